#!/usr/bin/env bash
# Development and test services on this one machine: a Slurm 22.05 cluster (controller, four slurmd nodes with
# fake GPUs, slurmrestd), a local Ray head with custom accelerator resources, and a throwaway PostgreSQL.
#
#   scripts/services.sh up|down|status [slurm] [ray] [postgres]     (no name: all three)
#
# Each service installs itself if missing (Debian packages; Ray from PyPI into the project's .venv), keeps its
# state under $SUANLI_SERVICES_DIR (default /tmp/suanli-services/<name>) and, once up, writes the variables a
# client needs to $SUANLI_SERVICES_DIR/<name>.env (e.g. SUANLI_RAY_ADDRESS). `up` of a running service is a
# no-op; `status` exits non-zero when a named service is not up.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export SUANLI_SERVICES_DIR="${SUANLI_SERVICES_DIR:-/tmp/suanli-services}"
mkdir -p "$SUANLI_SERVICES_DIR"
action="${1:-}"
case "$action" in
  up|down|status) shift ;;
  *) echo "usage: $0 up|down|status [slurm] [ray] [postgres]" >&2; exit 2 ;;
esac
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(slurm ray postgres)
rc=0
for name in "${names[@]}"; do
  case "$name" in
    slurm|ray|postgres) ;;
    *) echo "unknown service '$name': accepted are slurm, ray, postgres" >&2; exit 2 ;;
  esac
  if ! bash "$HERE/services/$name.sh" "$action"; then
    echo "service $name: $action failed" >&2
    rc=1
  fi
done
exit "$rc"
