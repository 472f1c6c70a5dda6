#!/usr/bin/env bash
# A one-host Slurm 22.05 cluster for development and tests: scripts/services.sh up|down|status slurm.
#
# slurmctld, four slurmd nodes n[1-4] (ports 17001-17004, each advertising 8 CPUs, 16 GB and two fake
# "gpu:a100" devices backed by character-device clones of /dev/null), a private munged and slurmrestd
# (openapi v0.0.38, JWT auth on 127.0.0.1). Everything lives under $SUANLI_SERVICES_DIR/slurm: slurm.conf,
# gres.conf, the munge and JWT keys, spool, state, logs and pid files. Nothing is written to /etc/slurm: the
# daemons get `-f slurm.conf` and clients read $SLURM_CONF, which is written to $SUANLI_SERVICES_DIR/slurm.env
# with the REST URL, user and a token.
#
# Knobs (environment): SUANLI_SLURM_CTLD_PORT (16817), SUANLI_SLURM_REST_PORT (16820),
# SUANLI_SLURM_REST_USER (suanli-slurm: slurmrestd runs as it and REST jobs run as it), SUANLI_SLURM_UP_TIMEOUT (60 s).
set -euo pipefail
SERVICES_DIR="${SUANLI_SERVICES_DIR:-/tmp/suanli-services}"
DIR="$SERVICES_DIR/slurm"
ENV_FILE="$SERVICES_DIR/slurm.env"
CONF="$DIR/slurm.conf"
CTLD_PORT="${SUANLI_SLURM_CTLD_PORT:-16817}"
REST_PORT="${SUANLI_SLURM_REST_PORT:-16820}"
REST_USER="${SUANLI_SLURM_REST_USER:-suanli-slurm}"
UP_TIMEOUT="${SUANLI_SLURM_UP_TIMEOUT:-60}"
NODES=(n1 n2 n3 n4)
NODE_PORTS=(17001 17002 17003 17004)
GPU_TYPE=a100
GPUS_PER_NODE=2
PARTITION=gpu
export SLURM_CONF="$CONF"

say() { echo "slurm: $*"; }
die() { echo "slurm: $*" >&2; exit 1; }

alive() { # pid file -> whether its process lives
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_if_missing() {
  local missing=()
  for bin in slurmctld slurmd sbatch munged slurmrestd; do
    command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || missing+=("$bin")
  done
  [ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/auth_jwt.so ] || [ -n "$(ls /usr/lib/*/slurm-wlm/auth_jwt.so 2>/dev/null)" ] \
    || missing+=(auth_jwt)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]} and not root; install Debian's slurmctld slurmd slurm-client munge slurmrestd slurm-wlm-jwt-plugin"
  say "installing Debian's Slurm packages (missing: ${missing[*]})"
  # The packages' init scripts would start system-wide munged/slurmctld/slurmd; we start our own. A policy-rc.d
  # that refuses every start keeps them down (containers usually have one; if not, one is put in place meanwhile).
  local policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy_added=1
  fi
  local rc=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurmctld slurmd slurm-client munge slurmrestd slurm-wlm-jwt-plugin >/dev/null; } || rc=$?
  [ -n "$policy_added" ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" -eq 0 ] || die "apt-get install of the Slurm packages failed (exit $rc)"
}

ensure_user() {
  id -u "$REST_USER" >/dev/null 2>&1 && return 0
  say "creating user $REST_USER (slurmrestd refuses to run as root)"
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$REST_USER"
}

write_config() {
  local host
  host="$(hostname -s)"
  mkdir -p "$DIR"/{ctld,spool,run,log,dev,work}
  chmod 755 "$DIR"
  # Jobs submitted over REST run as $REST_USER; they write their output under work/.
  chmod 1777 "$DIR/work"
  for i in "${!NODES[@]}"; do
    local n="${NODES[$i]}"
    mkdir -p "$DIR/dev/$n"
    for g in $(seq 0 $((GPUS_PER_NODE - 1))); do
      # gres needs File= to be a character device (plain files are rejected, and without File= the node
      # goes INVAL): clones of /dev/null stand in for the GPUs.
      [ -c "$DIR/dev/$n/gpu$g" ] || mknod -m 666 "$DIR/dev/$n/gpu$g" c 1 3
    done
  done
  if [ ! -s "$DIR/jwt_hs256.key" ]; then
    dd if=/dev/urandom of="$DIR/jwt_hs256.key" bs=32 count=1 status=none
  fi
  chmod 600 "$DIR/jwt_hs256.key"
  : > "$DIR/plugstack.conf"
  cat > "$DIR/gres.conf" <<EOF
AutoDetect=off
$(for n in "${NODES[@]}"; do echo "NodeName=$n Name=gpu Type=$GPU_TYPE File=$DIR/dev/$n/gpu[0-$((GPUS_PER_NODE - 1))]"; done)
EOF
  # Settings chosen to run without cgroups, systemd or slurmdbd (see ../shared/notes/backends.md).
  cat > "$CONF.tmp" <<EOF
# Written by scripts/services/slurm.sh; rewritten by every 'up'.
ClusterName=suanli
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$DIR/jwt_hs256.key
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
PlugStackConfig=$DIR/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
SlurmdParameters=config_overrides
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol/REST for an hour (no slurmdbd here for sacct).
MinJobAge=3600
# Refuse at submit what no partition could ever run (else such a job pends forever), and never rerun a job on
# its own: the broker decides retries.
EnforcePartLimits=ALL
JobRequeue=0
KillWait=2
InactiveLimit=0
Waittime=0
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
GresTypes=gpu
NodeName=n[1-4] NodeHostname=$host NodeAddr=127.0.0.1 Port=[${NODE_PORTS[0]}-${NODE_PORTS[3]}] CPUs=8 RealMemory=16000 Gres=gpu:$GPU_TYPE:$GPUS_PER_NODE State=UNKNOWN
PartitionName=$PARTITION Nodes=n[1-4] Default=YES MaxTime=INFINITE State=UP
# The same nodes for CPU-only work (a supercomputing site's CPU pool); Slurm itself keeps the two from
# over-committing the nodes they share.
PartitionName=cpu Nodes=n[1-4] Default=NO MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
}

start_munge() {
  local m="$DIR/munge"
  if alive "$m/munged.pid" && [ -S "$m/munge.socket" ]; then return 0; fi
  say "starting munged (socket $m/munge.socket)"
  mkdir -p "$m"
  # A key of our own (kept across restarts): this cluster needs no other host to trust it. munged insists on
  # owning it, mode 0400.
  [ -s "$m/munge.key" ] || dd if=/dev/urandom of="$m/munge.key" bs=1024 count=1 status=none
  chown -R munge:munge "$m"
  # munged wants the socket's directory searchable by all (clients of any user) and not writable by others.
  chmod 755 "$m"
  chmod 400 "$m/munge.key"
  runuser -u munge -- /usr/sbin/munged --socket="$m/munge.socket" --key-file="$m/munge.key" \
    --pid-file="$m/munged.pid" --log-file="$m/munged.log" --seed-file="$m/munged.seed"
}

ctld_running() { alive "$DIR/run/slurmctld.pid"; }
slurmd_running() { alive "$DIR/run/slurmd-$1.pid"; }
rest_running() { alive "$DIR/run/slurmrestd.pid"; }

start_daemons() {
  if ! ctld_running; then
    say "starting slurmctld on 127.0.0.1:$CTLD_PORT"
    /usr/sbin/slurmctld -f "$CONF"
  fi
  for n in "${NODES[@]}"; do
    if ! slurmd_running "$n"; then
      mkdir -p "$DIR/spool/$n"
      say "starting slurmd $n"
      /usr/sbin/slurmd -f "$CONF" -N "$n"
    fi
  done
  if ! rest_running; then
    say "starting slurmrestd (openapi v0.0.38, JWT) on 127.0.0.1:$REST_PORT as $REST_USER"
    # SLURM_JWT=daemon: slurmrestd authenticates each request with the caller's token, not with munge.
    # Only openapi/v0.0.38: the dbv0.0.38 plugin makes it exit when there is no slurmdbd.
    SLURM_JWT=daemon start-stop-daemon --start --background --make-pidfile --pidfile "$DIR/run/slurmrestd.pid" \
      --chuid "$REST_USER" --output "$DIR/log/slurmrestd.log" --exec /usr/sbin/slurmrestd -- \
      -f "$CONF" -a rest_auth/jwt -s openapi/v0.0.38 "127.0.0.1:$REST_PORT"
  fi
}

wait_ready() {
  local deadline=$((SECONDS + UP_TIMEOUT)) states="" code="" token=""
  say "waiting up to ${UP_TIMEOUT}s for the controller, ${#NODES[@]} idle nodes and the REST API"
  while :; do
    if ctld_running && scontrol ping >/dev/null 2>&1; then
      states="$(sinfo -h -N -o '%N=%T' 2>/dev/null | sort -u | tr '\n' ' ')"
      local ready=0
      for n in "${NODES[@]}"; do
        [[ " $states" == *" $n=idle "* || " $states" == *" $n=mixed "* || " $states" == *" $n=allocated "* ]] \
          && ready=$((ready + 1))
        # A node left down/drained by an earlier bad start comes back once its slurmd is healthy.
        if [[ " $states" == *" $n=down"* || " $states" == *" $n=drain"* ]]; then
          scontrol update nodename="$n" state=resume >/dev/null 2>&1 || true
        fi
      done
      # A real authenticated call: proves slurmrestd, the JWT key and the controller agree.
      [ -n "$token" ] || token="$(new_token 600 || true)"
      code="$(curl -s -o /dev/null -w '%{http_code}' -m 2 -H "X-SLURM-USER-NAME: $REST_USER" \
        -H "X-SLURM-USER-TOKEN: $token" "http://127.0.0.1:$REST_PORT/slurm/v0.0.38/ping" || true)"
      if [ "$ready" -eq "${#NODES[@]}" ] && [ "$code" = 200 ]; then return 0; fi
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "slurm: not ready after ${UP_TIMEOUT}s: controller $(ctld_running && echo running || echo 'not running')," \
        "nodes: ${states:-unknown}, REST http status ${code:-none}; logs in $DIR/log" >&2
      tail -n 5 "$DIR/log/slurmctld.log" "$DIR/log/slurmrestd.log" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.3
  done
}

new_token() { # lifespan in seconds -> a JWT for $REST_USER on stdout
  local t
  t="$(scontrol token username="$REST_USER" lifespan="$1" 2>/dev/null | sed -n 's/^SLURM_JWT=//p')"
  [ -n "$t" ] && echo "$t"
}

write_env() {
  local token
  # Tokens expire; each 'up' (also of a running cluster) writes a fresh one, valid one day.
  token="$(new_token 86400)" || die "scontrol token gave no token"
  umask 077
  cat > "$ENV_FILE.tmp" <<EOF
SLURM_CONF=$CONF
SUANLI_SLURM_CONF=$CONF
SUANLI_SLURM_REST_URL=http://127.0.0.1:$REST_PORT
SUANLI_SLURM_USER=$REST_USER
SUANLI_SLURM_TOKEN=$token
SUANLI_SLURM_PARTITION=$PARTITION
SUANLI_SLURM_GRES_TYPE=$GPU_TYPE
SUANLI_SLURM_NODES=${#NODES[@]}
SUANLI_SLURM_GPUS_PER_NODE=$GPUS_PER_NODE
SUANLI_SLURM_WORKDIR=$DIR/work
SUANLI_SLURM_JOBCOMP=$DIR/log/jobcomp.txt
EOF
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

all_up() {
  alive "$DIR/munge/munged.pid" && ctld_running && rest_running || return 1
  for n in "${NODES[@]}"; do slurmd_running "$n" || return 1; done
  [ -f "$CONF" ] && scontrol ping >/dev/null 2>&1
}

up() {
  if all_up && wait_ready >/dev/null 2>&1; then
    write_env
    say "already up (SLURM_CONF=$CONF, REST http://127.0.0.1:$REST_PORT)"
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || die "starting the cluster needs root (munged, slurmd as root, mknod)"
  install_if_missing
  ensure_user
  write_config
  start_munge
  start_daemons
  wait_ready || die "up failed; run 'scripts/services.sh down slurm' to clean up"
  write_env
  say "up: ${#NODES[@]} nodes x gpu:$GPU_TYPE:$GPUS_PER_NODE in partition $PARTITION; SLURM_CONF=$CONF;" \
    "REST http://127.0.0.1:$REST_PORT; variables in $ENV_FILE"
}

stop_pidfile() { # pid file, name: TERM, then KILL after 5 s
  local pf="$1" pid i
  alive "$pf" || { rm -f "$pf"; return 0; }
  pid="$(cat "$pf")"
  kill "$pid" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    say "$2 ($pid) ignored SIGTERM; killing it"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pf"
}

our_stepds() { # pids of job-step daemons of this cluster (they inherit SLURM_CONF from our slurmd)
  local pid
  for pid in $(pgrep -x slurmstepd 2>/dev/null || true); do
    { tr '\0' '\n' < "/proc/$pid/environ"; } 2>/dev/null | grep -qx "SLURM_CONF=$CONF" && echo "$pid"
  done
  return 0
}

kill_tree() { # pid: the process and every descendant, leaves first
  local child
  for child in $(pgrep -P "$1" 2>/dev/null || true); do kill_tree "$child"; done
  kill -9 "$1" 2>/dev/null || true
}

down() {
  if rest_running; then say "stopping slurmrestd"; stop_pidfile "$DIR/run/slurmrestd.pid" slurmrestd; fi
  if ctld_running && scontrol ping >/dev/null 2>&1; then
    # Jobs outlive `scontrol shutdown`: cancel them first so their processes end with them.
    local live
    live="$(squeue -h -t PD,CF,R,S,CG -o %A 2>/dev/null | tr '\n' ' ' || true)"
    if [ -n "${live// /}" ]; then
      say "cancelling jobs still queued or running: $live"
      # shellcheck disable=SC2086
      scancel $live >/dev/null 2>&1 || true
      for _ in $(seq 50); do
        [ -z "$(our_stepds)" ] && break
        sleep 0.1
      done
    fi
  fi
  if ctld_running; then
    say "stopping slurmctld and slurmd (scontrol shutdown)"
    scontrol shutdown >/dev/null 2>&1 || true
    for _ in $(seq 50); do
      ctld_running || break
      sleep 0.1
    done
  fi
  # Whatever did not stop on its own (no controller to tell it, or stuck) is stopped by its pid file.
  stop_pidfile "$DIR/run/slurmctld.pid" slurmctld
  for n in "${NODES[@]}"; do stop_pidfile "$DIR/run/slurmd-$n.pid" "slurmd $n"; done
  # Job steps whose slurmd died first (or that ignored the cancel) go with the processes they run.
  local pid
  for pid in $(our_stepds); do
    say "killing leftover job step $pid and its processes"
    kill_tree "$pid"
  done
  if alive "$DIR/munge/munged.pid"; then say "stopping munged"; stop_pidfile "$DIR/munge/munged.pid" munged; fi
  rm -f "$ENV_FILE"
  say "down"
}

status() {
  local bad=()
  alive "$DIR/munge/munged.pid" || bad+=(munged)
  ctld_running || bad+=(slurmctld)
  for n in "${NODES[@]}"; do slurmd_running "$n" || bad+=("slurmd-$n"); done
  rest_running || bad+=(slurmrestd)
  if [ ${#bad[@]} -gt 0 ]; then say "down (not running: ${bad[*]})"; return 1; fi
  if ! scontrol ping >/dev/null 2>&1; then say "down (slurmctld does not answer)"; return 1; fi
  say "up: $(sinfo -h -N -o '%N=%T' | sort -u | tr '\n' ' ')REST http://127.0.0.1:$REST_PORT"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
