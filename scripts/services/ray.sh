#!/usr/bin/env bash
# A local Ray head for development and tests: scripts/services.sh up|down|status ray.
#
# One node on 127.0.0.1 with SUANLI_RAY_CPUS CPUs (default 4) and SUANLI_RAY_GPUS fake GPUs (default 4). Ray
# sets CUDA_VISIBLE_DEVICES for `num_gpus`, and the custom resource GPU_<TYPE> (SUANLI_RAY_ACCEL_TYPE, default
# A100) counts the same devices by accelerator type: a suanli pool maps to one such resource name, and a job
# asks for `devices` units of it. (Not Ray's own `accelerator_type:A100`, which Ray sets to 1 per node and
# requests in fractions: it cannot count devices.)
#
# Writes to $SUANLI_SERVICES_DIR/ray.env: SUANLI_RAY_ADDRESS (Jobs API / dashboard URL), SUANLI_RAY_GCS_ADDRESS,
# SUANLI_RAY_ACCEL_RESOURCE, SUANLI_RAY_GPUS, SUANLI_RAY_CPUS. `down` runs `ray stop --force`, which stops every
# Ray process of this machine (this head is meant to be the only one).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="$SUANLI_SERVICES_DIR/ray"
ENV_FILE="$SUANLI_SERVICES_DIR/ray.env"
VENV="${SUANLI_VENV:-$ROOT/.venv}"
RAY="$VENV/bin/ray"
PORT="${SUANLI_RAY_PORT:-6379}"
DASH_PORT="${SUANLI_RAY_DASHBOARD_PORT:-8265}"
CPUS="${SUANLI_RAY_CPUS:-4}"
GPUS="${SUANLI_RAY_GPUS:-4}"
ACCEL="GPU_${SUANLI_RAY_ACCEL_TYPE:-A100}"
TIMEOUT="${SUANLI_RAY_UP_TIMEOUT:-60}"
URL="http://127.0.0.1:$DASH_PORT"
export RAY_USAGE_STATS_ENABLED=0
# Job entrypoints inherit the head's PATH: `python` there must be the one with Ray (the back-end's cancel of a
# pending job runs a small Ray driver as a job).
export PATH="$VENV/bin:$PATH"

# Ray's unix sockets live under its temp dir and a socket path may not exceed 107 bytes; Ray's own part of the
# path takes about 75, so a long state dir gets a short temp dir under /tmp instead (recorded for `down`).
temp_dir() {
  if [ -f "$DIR/temp_dir" ]; then cat "$DIR/temp_dir"; return; fi
  local t="$DIR/tmp"
  [ ${#t} -gt 30 ] && t="$(mktemp -d /tmp/suanli-ray-XXXXXX)"
  echo "$t" > "$DIR/temp_dir"; echo "$t"
}

# The Jobs API answers: what clients use, and what `up` waits for.
jobs_api_up() {
  "$VENV/bin/python" - "$URL" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/api/jobs/", timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
}

running() { [ -x "$RAY" ] && jobs_api_up; }

write_env() {
  cat > "$ENV_FILE" <<EOF
SUANLI_RAY_ADDRESS=$URL
SUANLI_RAY_GCS_ADDRESS=127.0.0.1:$PORT
SUANLI_RAY_ACCEL_RESOURCE=$ACCEL
SUANLI_RAY_GPUS=$GPUS
SUANLI_RAY_CPUS=$CPUS
EOF
}

case "${1:-}" in
  up)
    if running; then write_env; echo "ray: already up at $URL"; exit 0; fi
    if ! "$VENV/bin/python" -c "import ray.job_submission, ray.dashboard" >/dev/null 2>&1 || [ ! -x "$RAY" ]; then
      echo "ray: installing ray[default] into $VENV" >&2
      "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'ray[default]>=2.9,<3'
    fi
    # A head that is half up (dashboard dead, or left over from a crash) would make `ray start` fail; stopping
    # costs seconds, so only when there are traces of one (our state dir, or the GCS port taken).
    if [ -d "$DIR" ] || (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
      echo "ray: stopping what is left of an earlier head"
      "$RAY" stop --force >/dev/null 2>&1 || true
      rm -rf "$(cat "$DIR/temp_dir" 2>/dev/null || echo "$DIR/tmp")" "$DIR"
    fi
    mkdir -p "$DIR"
    tmp="$(temp_dir)"; mkdir -p "$tmp"
    echo "ray: starting head (cpus=$CPUS gpus=$GPUS $ACCEL=$GPUS, temp dir $tmp)"
    t0=$(date +%s%N)
    if ! "$RAY" start --head --node-ip-address=127.0.0.1 --port="$PORT" \
        --num-cpus="$CPUS" --num-gpus="$GPUS" --resources="{\"$ACCEL\": $GPUS}" \
        --object-store-memory=$((256 * 1024 * 1024)) \
        --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port="$DASH_PORT" \
        --disable-usage-stats --temp-dir="$tmp" > "$DIR/start.log" 2>&1; then
      echo "ray: 'ray start' failed; its output ($DIR/start.log):" >&2
      tail -20 "$DIR/start.log" >&2
      "$RAY" stop --force >/dev/null 2>&1 || true
      exit 1
    fi
    echo "ray: head started, waiting for the Jobs API at $URL (up to ${TIMEOUT}s)"
    deadline=$(( $(date +%s) + TIMEOUT ))
    until jobs_api_up; do
      if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "ray: the Jobs API at $URL did not answer within ${TIMEOUT}s; dashboard log:" >&2
        tail -20 "$tmp"/session_latest/logs/dashboard.log 2>/dev/null >&2 || true
        "$RAY" stop --force >/dev/null 2>&1 || true
        exit 1
      fi
      sleep 0.5
    done
    write_env
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    echo "ray: up at $URL in $((ms / 1000)).$(printf %03d $((ms % 1000)))s ($ENV_FILE)"
    ;;
  down)
    if [ -x "$RAY" ]; then "$RAY" stop --force >/dev/null 2>&1 || true; fi
    tmp="$(cat "$DIR/temp_dir" 2>/dev/null || true)"
    [ -n "$tmp" ] && rm -rf "$tmp"
    rm -rf "$DIR" "$ENV_FILE"
    echo "ray: down"
    ;;
  status)
    if running; then echo "ray: up at $URL"; else echo "ray: down"; exit 1; fi
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
