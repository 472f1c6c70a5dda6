"""Run attempts as Slurm batch jobs, through slurmrestd (openapi v0.0.38, JWT) or the Slurm commands.

Each attempt is one batch job named `suanli-<attempt_id>` whose comment carries the site, job, attempt and pool,
so the controller itself answers "was this attempt submitted?": a restarted broker finds its jobs again, finished
ones included (the controller keeps them for MinJobAge; after that, the jobcomp file when one is configured).

Files under `workdir/attempts/<attempt_id>/` (the workdir must be the same path on the compute nodes, e.g. a shared
filesystem: the jobs write their output there):
    job.sh                  the batch script: exports the job's environment, then runs its command in work/
    work/                   the job's working directory
    stdout.log, stderr.log  its --output and --error
    slurm_job_id            the Slurm job id, written once Slurm accepted the job
    submit.lock             flocked around look-up-then-submit: two submitters of one attempt cannot both submit

Every call to Slurm is bounded by `timeout_s`: an unreachable controller is a retryable BackendError in seconds,
never a hang (Slurm's own clients retry a dead controller for about 10 s)."""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import pwd
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from suanli.backends.base import (
    AttemptState,
    AttemptStatus,
    BackendError,
    LaunchSpec,
    PoolCapacity,
    merged_logs,
    pool_of,
    tail,
)
from suanli.backends.files import read_int, read_text, write_atomic
from suanli.spec.network import Pool
from suanli.spec.network import SlurmBackend as SlurmConfig

NAME_PREFIX = "suanli-"
FENCE_WAIT_S = 6.0  # how long `fence` waits for started attempts to stop (their watch looks every 0.5 s)

# The batch script's body, after the job's variables, $A (the attempt directory, shared with the broker) and
# $RUN. It runs the command in a session of its own and watches for the broker's fence file: the broker writes
# it when it moves the attempt to another site because the controller is unreachable, and the script then stops
# the command (the nodes still run jobs with the controller gone) and says so in `fenced`; a script that starts
# after its fence (a job left pending in a dead controller's state) never runs the command. `started` is written
# before the fence is read, and the broker writes the fence before it reads `started`: if the broker finds no
# `started`, the script will see the fence. The exit code goes to `exit_code`, which tells the broker the job
# finished after all; a command killed by a signal is re-raised so Slurm records the signal.
_FENCED_RUN = """: > "$A/started"
if [ -e "$A/fence" ]; then echo "suanli: attempt moved to another site; not started" >&2; : > "$A/fenced"; exit 125; fi
cd "$A/work" || exit 126
setsid /bin/sh -c "$RUN" &
child=$!
stop() { /bin/kill -s "$1" -- "-$child" 2>/dev/null || kill -s "$1" "$child" 2>/dev/null; }
trap 'stop TERM' TERM INT
while kill -0 "$child" 2>/dev/null; do
  if [ -e "$A/fence" ]; then
    stop TERM; sleep 2; stop KILL
    wait "$child"
    echo "suanli: attempt moved to another site; stopped" >&2; : > "$A/fenced"; exit 125
  fi
  sleep 0.5
done
wait "$child"; code=$?
echo "$code" > "$A/exit_code.tmp" && mv "$A/exit_code.tmp" "$A/exit_code"
if [ "$code" -gt 128 ] && [ "$code" -lt 160 ]; then trap - TERM INT; kill -s "$(kill -l "$code")" $$; fi
exit "$code"
"""
API = "/slurm/v0.0.38"
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Job states (openapi v0.0.38 / squeue --json) that may still run, and what they mean to the broker.
_LIVE: dict[str, AttemptState] = {
    "PENDING": AttemptState.PENDING,
    "CONFIGURING": AttemptState.PENDING,
    "REQUEUED": AttemptState.PENDING,
    "REQUEUE_HOLD": AttemptState.PENDING,
    "REQUEUE_FED": AttemptState.PENDING,
    "RESV_DEL_HOLD": AttemptState.PENDING,
    "RUNNING": AttemptState.RUNNING,
    "COMPLETING": AttemptState.RUNNING,  # the script ended; Slurm is still cleaning up
    "SIGNALING": AttemptState.RUNNING,
    "STAGE_OUT": AttemptState.RUNNING,
    "SUSPENDED": AttemptState.RUNNING,
    "STOPPED": AttemptState.RUNNING,
    "RESIZING": AttemptState.RUNNING,
}
# Ended without a result of the job's own making: the site lost it, and the broker places it again.
_LOST_STATES = {
    "NODE_FAIL": "a node of the job failed",
    "BOOT_FAIL": "a node failed to boot",
    "PREEMPTED": "preempted by Slurm",
    "REVOKED": "revoked by a sibling cluster",
}
_FAILED_REASONS = {
    "TIMEOUT": "reached its time limit",
    "OUT_OF_MEMORY": "ran out of memory",
    "DEADLINE": "passed its deadline",
}

# Refusals that another try may get past: the controller is away or busy, or a limit of the moment.
_TRANSIENT = re.compile(
    r"unable to contact|connect failure|connection refused|timed out|temporarily|zero bytes|communication"
    r"|busy|try again|submit limit|job violates accounting/qos policy|authenticat|credential|expired",
    re.IGNORECASE,
)

# Node flags under which a node takes no new work (its resources count in totals, never as free).
_UNUSABLE_FLAGS = {"DRAIN", "DRAINED", "DRAINING", "NOT_RESPONDING", "FAIL", "FAILING", "MAINTENANCE", "POWERED_DOWN"}
_USABLE_STATES = {"idle", "mixed", "allocated", "completing"}


@dataclass(frozen=True)
class _Request:
    """One batch job, in the units Slurm takes: everything per node, memory in MB, time in minutes."""

    name: str
    comment: str
    script: str
    partition: str | None
    nodes: int
    cpus_per_node: int
    memory_mb_per_node: int
    gres: str | None  # e.g. gpu:a100:2 (per node)
    time_min: int | None
    cwd: str
    stdout: str
    stderr: str

    def summary(self) -> str:
        parts = [f"{self.nodes} node(s) x {self.cpus_per_node} cpus, {self.memory_mb_per_node} MB"]
        if self.gres:
            parts.append(self.gres)
        if self.time_min:
            parts.append(f"{self.time_min} min")
        where = f"partition {self.partition}" if self.partition else "the default partition"
        return f"{', '.join(parts)} in {where}"


class SlurmBackend:
    """The Backend protocol over one Slurm cluster. Pools map to partitions (and GPU gres types) by the site's
    config; capacity, states and exit codes come from the controller, never from a model of it."""

    def __init__(
        self,
        site_id: str,
        pools: list[Pool],
        config: SlurmConfig,
        root: Path,
        *,
        token: str | None = None,
        cache_s: float = 0.5,
    ) -> None:
        self.site = site_id
        self.pools = {p.id: p for p in pools}
        self.config = config
        unknown = sorted((set(config.partitions) | set(config.gres_types)) - set(self.pools))
        if unknown:
            raise ValueError(
                f"site {site_id!r}: the Slurm back-end maps pools {unknown} that the site does not have; "
                f"known: {', '.join(sorted(self.pools))}"
            )
        self.root = Path(config.workdir) if config.workdir else Path(root)
        self.rest = config.mode == "rest"
        self._t: _Rest | _Cli
        if self.rest:
            assert config.url is not None and config.user is not None  # the config's validator requires them
            self._t = _Rest(config.url, config.user, _TokenSource(config, token), config.timeout_s)
        else:
            self._t = _Cli(config.conf, config.timeout_s)
        self._cache_s = cache_s
        self._snapshot: _Snapshot | None = None
        self._snap_lock = threading.Lock()

    # -- Backend protocol --------------------------------------------------------------------------------------

    def submit(self, spec: LaunchSpec) -> None:
        pool_of(self.pools, self.site, spec.pool)  # an unknown pool is refused before anything is written
        d = self._dir(spec.attempt_id)
        req = self._request(spec, d)
        d.mkdir(parents=True, exist_ok=True)
        with _flocked(d / "submit.lock"):
            if read_int(d / "slurm_job_id") is not None:
                return  # submitted before: never again
            # The broker may have died between Slurm's answer and our writing it down: Slurm knows by name.
            found = self._find(spec.attempt_id, fresh=True)
            if found is not None and not _refused(found):
                write_atomic(d / "slurm_job_id", f"{found['job_id']}\n")
                return
            self._prepare(d, req)
            try:
                job_id = self._t.submit(req, d / "job.sh")
            except BackendError as exc:
                if not exc.retryable:
                    raise BackendError(
                        f"Slurm cannot run attempt {spec.attempt_id} ({req.summary()}): {exc}", retryable=False
                    ) from exc
                # A submit that timed out may still have been accepted; if so, it counts as submitted.
                with contextlib.suppress(BackendError):
                    found = self._find(spec.attempt_id, fresh=True)
                if found is None or _refused(found):
                    raise
                job_id = int(found["job_id"])
            write_atomic(d / "slurm_job_id", f"{job_id}\n")
            self._snapshot = None

    def status(self, attempt_id: str) -> AttemptStatus:
        d = self._dir(attempt_id)
        job_id = read_int(d / "slurm_job_id")
        job = self._job(attempt_id, job_id)
        if job is not None:
            return _decode(job)
        if self.config.jobcomp:
            record = _jobcomp_record(Path(self.config.jobcomp), NAME_PREFIX + attempt_id, job_id)
            if record is not None:
                return _decode(record)
        if job_id is not None:
            return AttemptStatus(
                AttemptState.LOST,
                message=f"Slurm no longer knows job {job_id} (ended over MinJobAge ago, or the cluster was reset)",
            )
        return AttemptStatus(AttemptState.LOST, message=f"Slurm has no job named {NAME_PREFIX}{attempt_id}")

    def fence(self, attempt_ids: list[str], wait_s: float = FENCE_WAIT_S) -> dict[str, AttemptStatus | None]:
        """Stop attempts without the controller, through their shared directories (see _FENCED_RUN): for each,
        its final status if it finished after all (SUCCEEDED or FAILED), LOST when it stopped or never started
        and never will, or None when it gave no sign within `wait_s` (a node that is gone, too)."""
        result: dict[str, AttemptStatus | None] = {}
        waiting = []
        for attempt_id in attempt_ids:
            d = self._dir(attempt_id)
            if not d.is_dir():
                result[attempt_id] = AttemptStatus(AttemptState.LOST, message="never handed to Slurm")
                continue
            write_atomic(d / "fence", "moved to another site\n")
            if not (d / "started").exists():
                result[attempt_id] = AttemptStatus(AttemptState.LOST, message="fenced before it started")
            else:
                waiting.append(attempt_id)
        deadline = time.monotonic() + wait_s
        while waiting:
            for attempt_id in list(waiting):
                d = self._dir(attempt_id)
                code = read_int(d / "exit_code")
                if code is not None:
                    state = AttemptState.SUCCEEDED if code == 0 else AttemptState.FAILED
                    result[attempt_id] = AttemptStatus(state, exit_code=code, message="finished before its fence")
                elif (d / "fenced").exists():
                    result[attempt_id] = AttemptStatus(AttemptState.LOST, message="stopped by its fence")
                else:
                    continue
                waiting.remove(attempt_id)
            if waiting and time.monotonic() >= deadline:
                result.update(dict.fromkeys(waiting))
                break
            if waiting:
                time.sleep(0.1)
        return result

    def cancel(self, attempt_id: str) -> None:
        d = self._dir(attempt_id)
        job = self._job(attempt_id, read_int(d / "slurm_job_id"), fresh=True)
        if job is None or _base_state(job) not in _LIVE:
            return  # unknown or finished: nothing to stop
        self._t.cancel(int(job["job_id"]))
        self._snapshot = None

    def logs(self, attempt_id: str, tail_lines: int | None = None) -> str:
        d = self._dir(attempt_id)
        if not d.is_dir():
            raise BackendError(f"unknown attempt {attempt_id!r}", retryable=False)
        return tail(merged_logs(read_text(d / "stdout.log"), read_text(d / "stderr.log")), tail_lines)

    def capacity(self) -> list[PoolCapacity]:
        nodes = self._t.nodes()
        result = []
        for pool in self.pools.values():
            partition = self._partition(pool.id)
            gres_type = self.config.gres_types.get(pool.id)
            mine = [n for n in nodes if partition is None or partition in (n.get("partitions") or [])]
            totals = {"dev": 0, "dev_free": 0, "cpu": 0, "cpu_free": 0, "mem": 0.0, "mem_free": 0.0}
            for node in mine:
                gpus = _gres_count(node.get("gres") or "", gres_type)
                cpus = int(node.get("cpus") or 0)
                memory_gb = float(node.get("real_memory") or 0) / 1024
                totals["dev"] += gpus
                totals["cpu"] += cpus
                totals["mem"] += memory_gb
                if _node_usable(node):
                    totals["dev_free"] += max(0, gpus - _gres_count(node.get("gres_used") or "", gres_type))
                    totals["cpu_free"] += max(0, cpus - int(node.get("alloc_cpus") or 0))
                    totals["mem_free"] += max(0.0, memory_gb - float(node.get("alloc_memory") or 0) / 1024)
            result.append(
                PoolCapacity(
                    pool=pool.id,
                    devices_total=int(totals["dev"]),
                    devices_free=int(totals["dev_free"]),
                    cpus_total=int(totals["cpu"]),
                    cpus_free=int(totals["cpu_free"]),
                    memory_gb_total=round(totals["mem"], 3),
                    memory_gb_free=round(totals["mem_free"], 3),
                )
            )
        return result

    def attempts(self) -> list[str]:
        snap = self._jobs(fresh=True)
        live = []
        for name, job in snap.by_name.items():
            if not name.startswith(NAME_PREFIX) or _base_state(job) not in _LIVE:
                continue
            site = _comment_field(job.get("comment") or "", "site")
            if site is not None and site != self.site:
                continue  # another suanli site driving the same cluster
            live.append(name[len(NAME_PREFIX) :])
        return sorted(live)

    def close(self) -> None:
        """Release the REST connection pool (the CLI mode holds nothing)."""
        if isinstance(self._t, _Rest):
            self._t.client.close()

    # -- internals ---------------------------------------------------------------------------------------------

    def _dir(self, attempt_id: str) -> Path:
        if not attempt_id or "/" in attempt_id or attempt_id in (".", "..") or not attempt_id.isprintable():
            raise BackendError(f"attempt id {attempt_id!r} cannot name a directory", retryable=False)
        return self.root / "attempts" / attempt_id

    def _partition(self, pool_id: str) -> str | None:
        return self.config.partitions.get(pool_id, self.config.partition)

    def _request(self, spec: LaunchSpec, d: Path) -> _Request:
        """The batch job for a launch spec; a spec no Slurm job can express is refused here, not retried."""
        bad = [k for k in spec.env if not _ENV_NAME.match(k)]
        if bad:
            raise BackendError(
                f"attempt {spec.attempt_id}: environment names {bad} are not shell variable names "
                "(letters, digits and _, not starting with a digit)",
                retryable=False,
            )
        nodes = max(1, spec.nodes)
        # LaunchSpec counts the whole job; Slurm takes per-node amounts (one task per node runs the command).
        cpus = max(1, math.ceil(spec.cpus / nodes))
        memory_mb = max(1, math.ceil(spec.memory_gb * 1024 / nodes))
        gres = None
        if spec.devices > 0:
            per_node = math.ceil(spec.devices / nodes)
            gres_type = self.config.gres_types.get(spec.pool)
            gres = f"gpu:{gres_type}:{per_node}" if gres_type else f"gpu:{per_node}"
        time_min = None
        if spec.time_limit_s is not None:
            time_min = max(1, math.ceil(spec.time_limit_s / 60))  # Slurm counts whole minutes; never cut a job short
        exports = {"SUANLI_JOB_ID": spec.job_id, "SUANLI_ATTEMPT_ID": spec.attempt_id, "SUANLI_POOL": spec.pool}
        exports.update(spec.env)
        lines = [
            "#!/bin/sh",
            f"# suanli attempt {spec.attempt_id} of job {spec.job_id} on pool {spec.pool}, site {self.site}",
            *(f"export {k}={shlex.quote(v)}" for k, v in exports.items()),
            f"A={shlex.quote(str(d))}",
            f"RUN={shlex.quote(spec.run)}",
            _FENCED_RUN,
        ]
        return _Request(
            name=NAME_PREFIX + spec.attempt_id,
            comment=f"suanli site={self.site} job={spec.job_id} attempt={spec.attempt_id} pool={spec.pool}",
            script="\n".join(lines) + "\n",
            partition=self._partition(spec.pool),
            nodes=nodes,
            cpus_per_node=cpus,
            memory_mb_per_node=memory_mb,
            gres=gres,
            time_min=time_min,
            cwd=str(d / "work"),
            stdout=str(d / "stdout.log"),
            stderr=str(d / "stderr.log"),
        )

    def _prepare(self, d: Path, req: _Request) -> None:
        (d / "work").mkdir(exist_ok=True)
        write_atomic(d / "job.sh", req.script)
        if self.rest:
            # REST jobs run as the token's user, who must be able to write the output and work directories.
            user = self.config.user or ""
            try:
                entry = pwd.getpwnam(user)
            except KeyError:
                entry = None  # not a local user: the compute nodes' filesystem permissions decide
            if entry is not None and entry.pw_uid != os.geteuid():
                for path in (d, d / "work"):
                    if os.geteuid() == 0:
                        os.chown(path, entry.pw_uid, entry.pw_gid)
                    else:
                        path.chmod(0o777)

    def _jobs(self, fresh: bool = False) -> _Snapshot:
        """Every job the controller knows, finished ones included; reused for `cache_s` so a reconcile pass
        over many attempts asks Slurm once."""
        snap = self._snapshot
        if fresh or snap is None or time.monotonic() - snap.at > self._cache_s:
            with self._snap_lock:
                snap = self._snapshot
                if fresh or snap is None or time.monotonic() - snap.at > self._cache_s:
                    snap = _Snapshot.of(self._t.jobs())
                    self._snapshot = snap
        return snap

    def _find(self, attempt_id: str, fresh: bool = False) -> dict[str, Any] | None:
        return self._jobs(fresh).by_name.get(NAME_PREFIX + attempt_id)

    def _job(self, attempt_id: str, job_id: int | None, fresh: bool = False) -> dict[str, Any] | None:
        """The attempt's job: by its recorded id when that job still carries the attempt's name (ids restart when
        a cluster is reset), else by name. A miss in a cached snapshot is checked against a fresh one."""
        for refresh in (True,) if fresh else (False, True):
            snap = self._jobs(refresh)
            job = snap.by_id.get(job_id) if job_id is not None else None
            if job is None or job.get("name") != NAME_PREFIX + attempt_id:
                job = snap.by_name.get(NAME_PREFIX + attempt_id)
            if job is not None:
                return job
        return None


@dataclass(frozen=True)
class _Snapshot:
    at: float
    by_id: dict[int, dict[str, Any]]
    by_name: dict[str, dict[str, Any]]  # the newest job of each name

    @classmethod
    def of(cls, jobs: list[dict[str, Any]]) -> _Snapshot:
        by_id: dict[int, dict[str, Any]] = {}
        by_name: dict[str, dict[str, Any]] = {}
        for job in sorted(jobs, key=lambda j: int(j.get("job_id") or 0)):
            by_id[int(job.get("job_id") or 0)] = job
            if name := job.get("name"):
                by_name[name] = job
        return cls(time.monotonic(), by_id, by_name)


# -- transports ----------------------------------------------------------------------------------------------------


class _Cli:
    """sbatch, squeue --json, scancel and sinfo --json, each bounded by a timeout."""

    def __init__(self, conf: str | None, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        # A clean environment: Slurm's commands read SLURM_*/SBATCH_* variables as options, and the job inherits
        # sbatch's environment (--export=ALL); the job's own variables are exported by its script.
        self.env = {"PATH": os.environ.get("PATH") or DEFAULT_PATH}
        for var in ("HOME", "USER", "LOGNAME", "LANG", "TZ"):
            if var in os.environ:
                self.env[var] = os.environ[var]
        if conf:
            self.env["SLURM_CONF"] = conf

    def _run(self, args: list[str], judges: bool = False) -> str:
        try:
            done = subprocess.run(
                args,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                env=self.env,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise BackendError(f"{args[0]} is not installed here (no Slurm client commands on PATH)") from None
        except subprocess.TimeoutExpired:
            raise BackendError(
                f"{args[0]} got no answer within {self.timeout_s:g} s: slurmctld unreachable "
                f"(SLURM_CONF={self.env.get('SLURM_CONF', 'default')})",
                retryable=True,
            ) from None
        if done.returncode != 0:
            message = _clean(done.stderr or done.stdout) or f"{args[0]} exited with {done.returncode}"
            # A refused sbatch judged the request (sbatch's own checks or the controller's), unless the refusal
            # is of the moment; the other commands carry no request to judge.
            retryable = not judges or bool(_TRANSIENT.search(message))
            raise BackendError(message, retryable=retryable)
        return done.stdout

    def _json(self, args: list[str], key: str) -> list[dict[str, Any]]:
        import json

        out = self._run(args)
        try:
            body = json.loads(out)
        except ValueError:
            raise BackendError(f"{args[0]} --json gave no JSON: {out[:200]!r}") from None
        if body.get("errors"):
            raise BackendError(f"{args[0]}: {_errors_text(body['errors'])}")
        return list(body.get(key) or [])

    def submit(self, req: _Request, script: Path) -> int:
        args = [
            "sbatch",
            "--parsable",
            f"--job-name={req.name}",
            f"--comment={req.comment}",
            f"--nodes={req.nodes}",
            "--ntasks-per-node=1",
            f"--cpus-per-task={req.cpus_per_node}",
            f"--mem={req.memory_mb_per_node}M",
            f"--chdir={req.cwd}",
            f"--output={_no_pattern(req.stdout)}",
            f"--error={_no_pattern(req.stderr)}",
            "--no-requeue",  # retries are the broker's: a requeued job would run a second time unasked
            "--export=ALL",
        ]
        if req.partition:
            args.append(f"--partition={req.partition}")
        if req.gres:
            args.append(f"--gres={req.gres}")
        if req.time_min:
            args.append(f"--time={req.time_min}")
        out = self._run([*args, str(script)], judges=True).strip()
        try:
            return int(out.split(";")[0])
        except ValueError:
            raise BackendError(f"sbatch answered {out!r}, not a job id") from None

    def jobs(self) -> list[dict[str, Any]]:
        # squeue --json lists finished jobs too (until MinJobAge) and ignores filters in 22.05: one call for all.
        return self._json(["squeue", "--json"], "jobs")

    def cancel(self, job_id: int) -> None:
        try:
            self._run(["scancel", str(job_id)])
        except BackendError as exc:
            if "invalid job id" in str(exc).lower() or "already completing or completed" in str(exc).lower():
                return
            raise

    def nodes(self) -> list[dict[str, Any]]:
        return self._json(["sinfo", "--json"], "nodes")


class _TokenSource:
    """The JWT for REST calls: given, or from a file (re-read when it changes, for rotated tokens), or from an
    environment variable."""

    def __init__(self, config: SlurmConfig, token: str | None) -> None:
        self.config = config
        self.token = token
        self._file_cache: tuple[float, str] | None = None

    def __call__(self) -> str:
        if self.token:
            return self.token
        if self.config.token_file:
            path = Path(self.config.token_file)
            try:
                mtime = path.stat().st_mtime
                if self._file_cache is None or self._file_cache[0] != mtime:
                    text = path.read_text().strip()
                    self._file_cache = (mtime, text.removeprefix("SLURM_JWT="))
                return self._file_cache[1]
            except OSError as exc:
                raise BackendError(f"cannot read the Slurm token file {path}: {exc}") from None
        token = os.environ.get(self.config.token_env)
        if not token:
            raise BackendError(f"no Slurm token: set ${self.config.token_env} (e.g. from `scontrol token`)")
        return token


class _Rest:
    """slurmrestd's openapi v0.0.38 with JWT headers; every call bounded by a timeout."""

    def __init__(self, url: str, user: str, token: Callable[[], str], timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self.user = user
        self.token = token
        self.client = httpx.Client(base_url=self.url + API, timeout=httpx.Timeout(timeout_s))
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"X-SLURM-USER-NAME": self.user, "X-SLURM-USER-TOKEN": self.token()}
        try:
            r = self.client.request(method, path, json=body, headers=headers)
        except httpx.TimeoutException:
            raise BackendError(
                f"slurmrestd at {self.url} gave no answer within {self.timeout_s:g} s", retryable=True
            ) from None
        except httpx.HTTPError as exc:
            raise BackendError(f"slurmrestd at {self.url} is unreachable: {exc}", retryable=True) from None
        if r.status_code in (401, 403):
            raise BackendError(
                f"slurmrestd at {self.url} refused user {self.user!r}'s token (HTTP {r.status_code}): expired or "
                "signed with another key?",
                retryable=True,
            )
        try:
            answer = r.json()
        except ValueError:
            raise BackendError(f"slurmrestd {method} {path}: HTTP {r.status_code} {r.text[:200]!r}") from None
        if not isinstance(answer, dict):
            raise BackendError(f"slurmrestd {method} {path}: unexpected answer {str(answer)[:200]!r}")
        return answer

    def submit(self, req: _Request, script: Path) -> int:
        job: dict[str, Any] = {
            "name": req.name,
            "comment": req.comment,
            "nodes": [req.nodes, req.nodes],
            "tasks": req.nodes,
            "tasks_per_node": 1,
            "cpus_per_task": req.cpus_per_node,
            "memory_per_node": req.memory_mb_per_node,
            "current_working_directory": req.cwd,
            "standard_output": _no_pattern(req.stdout),
            "standard_error": _no_pattern(req.stderr),
            "requeue": False,
            # Required by v0.0.38; the job's own variables are exported by its script.
            "environment": {"PATH": DEFAULT_PATH},
        }
        if req.partition:
            job["partition"] = req.partition
        if req.gres:
            job["gres"] = req.gres
        if req.time_min:
            job["time_limit"] = req.time_min
        answer = self._call("POST", "/job/submit", {"script": req.script, "job": job})
        errors = answer.get("errors") or []
        if errors:
            message = _errors_text(errors)
            raise BackendError(message, retryable=bool(_TRANSIENT.search(message)))
        try:
            return int(answer["job_id"])
        except (KeyError, TypeError, ValueError):
            raise BackendError(f"slurmrestd answered the submit without a job id: {str(answer)[:200]}") from None

    def jobs(self) -> list[dict[str, Any]]:
        answer = self._call("GET", "/jobs")
        if answer.get("errors"):
            raise BackendError(f"slurmrestd GET /jobs: {_errors_text(answer['errors'])}")
        return list(answer.get("jobs") or [])

    def cancel(self, job_id: int) -> None:
        # v0.0.38 cancels only with its default SIGKILL: another signal is merely delivered (and a job that dies
        # of it ends FAILED, not CANCELLED).
        answer = self._call("DELETE", f"/job/{job_id}")
        errors = answer.get("errors") or []
        text = _errors_text(errors).lower()
        if errors and "invalid job id" not in text and "already completing or completed" not in text:
            raise BackendError(f"slurmrestd could not cancel job {job_id}: {_errors_text(errors)}")

    def nodes(self) -> list[dict[str, Any]]:
        answer = self._call("GET", "/nodes")
        if answer.get("errors"):
            raise BackendError(f"slurmrestd GET /nodes: {_errors_text(answer['errors'])}")
        return list(answer.get("nodes") or [])


# -- decoding ------------------------------------------------------------------------------------------------------


def _base_state(job: dict[str, Any]) -> str:
    state = job.get("job_state") or ""
    if isinstance(state, list):  # later openapi versions give a list of flags
        state = state[0] if state else ""
    return str(state).split("+")[0].split(",")[0].strip().upper()


def decode_wait_status(raw: int) -> tuple[int, int]:
    """Slurm's exit_code (squeue --json, REST) is a raw wait(2) status: (exit code, signal number)."""
    return (raw >> 8) & 0xFF, raw & 0x7F


def _decode(job: dict[str, Any]) -> AttemptStatus:
    state = _base_state(job)
    started = _time(job.get("start_time"))
    reason = str(job.get("state_reason") or "")
    if state in _LIVE:
        live = _LIVE[state]
        message = "" if reason in ("", "None") else reason
        return AttemptStatus(live, started_at=started if live == AttemptState.RUNNING else None, message=message)
    finished = _time(job.get("end_time"))
    if _refused(job):
        return AttemptStatus(
            AttemptState.FAILED, finished_at=finished, message=f"refused by Slurm at submission ({reason or state})"
        )
    code, sig = decode_wait_status(int(job.get("exit_code") or 0))
    exit_code = 128 + sig if sig else code
    if state == "COMPLETED":
        return AttemptStatus(AttemptState.SUCCEEDED, exit_code=exit_code, started_at=started, finished_at=finished)
    if state == "CANCELLED":
        return AttemptStatus(
            AttemptState.CANCELLED, exit_code=exit_code or None, started_at=started, finished_at=finished
        )
    if state in _LOST_STATES:
        return AttemptStatus(AttemptState.LOST, started_at=started, finished_at=finished, message=_LOST_STATES[state])
    if sig:
        message = f"killed by signal {sig} ({_signal_name(sig)})"
    elif code:
        message = f"exit code {code}"
    elif state == "FAILED":
        # Failed without an exit status of its own (it could not be launched): the site's doing, not the job's.
        detail = f": {reason}" if reason and reason != "None" else ""
        return AttemptStatus(
            AttemptState.LOST,
            started_at=started,
            finished_at=finished,
            message=f"Slurm marked it FAILED without an exit status{detail}",
        )
    else:
        message = ""
    why = _FAILED_REASONS.get(state, "" if state == "FAILED" else f"Slurm state {state}")
    message = "; ".join(m for m in (why, message) if m)
    return AttemptStatus(
        AttemptState.FAILED,
        exit_code=exit_code if (code or sig) else None,
        started_at=started,
        finished_at=finished,
        message=message,
    )


def _refused(job: dict[str, Any]) -> bool:
    """A job the controller refused at submission: recorded as FAILED (with the job's name) but never given a
    node. It never ran, so submitting the attempt again is safe."""
    return _base_state(job) == "FAILED" and str(job.get("nodes") or "") in ("", "(null)", "None")


def _time(value: Any) -> float | None:
    if isinstance(value, dict):  # later openapi versions: {"set": true, "number": ...}
        value = value.get("number") if value.get("set", True) else None
    try:
        t = float(value)
    except (TypeError, ValueError):
        return None
    return t if t > 0 else None


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


_GRES_ITEM = re.compile(r"([^,(]+)(\([^)]*\))?")


def _gres_count(text: str, gres_type: str | None) -> int:
    """GPUs in a node's gres string, e.g. 'gpu:a100:2(S:0)' or used 'gpu:a100:1(IDX:0),gpu:h100:0(IDX:N/A)'."""
    total = 0
    for match in _GRES_ITEM.finditer(text):
        parts = match.group(1).strip(", ").split(":")
        if not parts or parts[0] != "gpu" or len(parts) < 2:
            continue
        count = parts[-1]
        kind = parts[1] if len(parts) >= 3 else None
        if gres_type is not None and kind != gres_type:
            continue
        with contextlib.suppress(ValueError):
            total += int(count)
    return total


def _node_usable(node: dict[str, Any]) -> bool:
    state = node.get("state") or ""
    if isinstance(state, list):
        state = state[0] if state else ""
    base = str(state).split("+")[0].lower()
    flags = {str(f).upper() for f in node.get("state_flags") or []}
    return base in _USABLE_STATES and not (flags & _UNUSABLE_FLAGS)


def _comment_field(comment: str, key: str) -> str | None:
    for word in comment.split():
        if word.startswith(key + "="):
            return word[len(key) + 1 :]
    return None


def _jobcomp_record(path: Path, name: str, job_id: int | None) -> dict[str, Any] | None:
    """The last jobcomp/filetxt line of the named job (its id too, when known), in the shape of a REST job."""
    needle = f" Name={name} "
    found: dict[str, str] | None = None
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if needle not in line:
                    continue
                fields = dict(re.findall(r"(\w+)=(\S*)", line))
                if job_id is None or fields.get("JobId") == str(job_id):
                    found = fields
    except OSError:
        return None
    if found is None:
        return None
    exit_code, _, sig = found.get("ExitCode", "0:0").partition(":")
    raw = (int(sig) & 0x7F) if sig.isdigit() and int(sig) else (int(exit_code or 0) & 0xFF) << 8
    return {
        "job_id": int(found.get("JobId") or 0),
        "name": found.get("Name"),
        "job_state": found.get("JobState", ""),
        "nodes": found.get("NodeList", ""),
        "exit_code": raw,
        "start_time": _local_time(found.get("StartTime", "")),
        "end_time": _local_time(found.get("EndTime", "")),
    }


def _local_time(text: str) -> float | None:
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def _errors_text(errors: list[Any]) -> str:
    texts = []
    for e in errors:
        if isinstance(e, dict):
            parts = [str(e.get(k)) for k in ("error", "description") if e.get(k)]
            texts.append(": ".join(dict.fromkeys(parts)) or str(e))
        else:
            texts.append(str(e))
    return "; ".join(texts)


def _clean(text: str) -> str:
    """One line from a Slurm command's stderr, without its 'sbatch: error:' prefixes."""
    lines = [re.sub(r"^\w+: error: ", "", line.strip()) for line in text.strip().splitlines() if line.strip()]
    return "; ".join(dict.fromkeys(lines))


def _no_pattern(path: str) -> str:
    """Slurm expands %j, %u... in --output paths; a literal % is written %%."""
    return path.replace("%", "%%")


@contextlib.contextmanager
def _flocked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # bounded: the holder's Slurm calls time out
        yield
    finally:
        os.close(fd)
