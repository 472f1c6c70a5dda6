# Sourced by the other scripts: a project virtual environment in .venv, created and brought up to date with
# the package and the extras named in SUANLI_EXTRAS. Only reinstalls when pyproject.toml changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SUANLI_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
extras="${SUANLI_EXTRAS:-}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtual environment in $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.suanli-installed"
want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16) [$extras]"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing suanli${extras:+[$extras]} into $VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT${extras:+[$extras]}"
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
