"""Run attempts as local processes, one directory of files per attempt, so a restarted broker re-attaches.

Layout under `root/attempts/<attempt_id>/`:
    attempt.json   what it asked for and got (pool, demand, device indices, started_at), written before the spawn
    lock           flocked by the backend before the spawn and inherited by the job: held <=> the job still runs
    spawned        marker written just before the spawn: a second submit never starts the attempt again
    pid            the wrapper's pid, which is also its process group id (it is a session leader)
    work/          the job's working directory
    stdout.log, stderr.log
    exit_code      written atomically by the wrapper when the job ends (its mtime is finished_at)
    cancelled      marker written by cancel()

Exactly once: the lock is taken before `spawned` is written and handed to the child (pass_fds), so it is held
from before the spawn until the job's last process exits, and the kernel drops it if the broker dies first. A
`spawned` marker without an exit code and without a lock holder therefore means the job died (or was never
started because the broker died in between): LOST, never started again."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from suanli.backends.exits import ExitWatcher
from suanli.backends.files import read_int, read_text, write_atomic
from suanli.backends.spawn import Launcher, LauncherUnavailable, LaunchRefused
from suanli.hardware.catalog import Catalog
from suanli.spec.network import Pool

# Vendor (first word of the catalog's vendor, lowercased) -> the runtime's visible-devices variable.
VISIBLE_DEVICES_VAR: dict[str, str] = {
    "nvidia": "CUDA_VISIBLE_DEVICES",
    "huawei": "ASCEND_RT_VISIBLE_DEVICES",
    "amd": "HIP_VISIBLE_DEVICES",
    "hygon": "HIP_VISIBLE_DEVICES",
    "cambricon": "MLU_VISIBLE_DEVICES",
    "kunlunxin": "XPU_VISIBLE_DEVICES",
}
DEFAULT_VISIBLE_DEVICES_VAR = "CUDA_VISIBLE_DEVICES"

# The wrapper runs in the attempt directory; $1 is the job's command, $2 its time limit in seconds (or empty).
# `$$` is the session leader's pid, which is the process group that cancel() signals. A time limit runs the command
# under coreutils `timeout` in the same process group (--foreground), so cancel still reaches all of it; a job
# that runs out ends with exit code 124. The exit code is renamed into place so a reader never sees it half written.
_WRAPPER = """echo $$ > pid.tmp && mv pid.tmp pid
if [ -n "$2" ]; then
  (cd work && exec timeout --foreground --kill-after=30 "$2" /bin/sh -c "$1")
else
  (cd work && exec /bin/sh -c "$1")
fi
echo $? > exit_code.tmp && mv exit_code.tmp exit_code
"""

CANCEL_GRACE_S = 5.0
LIVE_SWEEP_S = 0.05  # see _live_attempts


class LocalBackend:
    def __init__(
        self, site_id: str, pools: list[Pool], root: Path, catalog: Catalog | None = None, keep_days: float = 7.0
    ) -> None:
        self.site = site_id
        self.keep_s = keep_days * 86400.0
        self.pools = {p.id: p for p in pools}
        self.root = Path(root)
        self._catalog = catalog
        self._procs: dict[str, subprocess.Popen[bytes]] = {}  # children of this process, kept to reap them
        self._pids: dict[str, int] = {}  # attempts started by the launcher helper, whose children they are
        self._launcher = Launcher()
        self._lock = threading.Lock()  # guards _procs and makes check-capacity-then-claim atomic in-process
        # Attempts that may still run, by directory: found by one scan of the disk, then kept up to date, so that
        # a submit costs O(live attempts) rather than O(every attempt ever run here).
        self._live: dict[Path, dict[str, Any]] | None = None
        self._swept = 0.0  # monotonic time of the last liveness sweep of _live
        self._exits = ExitWatcher()

    def prune(self) -> int:
        """Remove the directories of attempts that ended more than keep_days ago (their logs go with them); the
        number removed. An attempt that still runs, or whose end is unknown, is never touched."""
        cutoff = time.time() - self.keep_s
        removed = 0
        for d in self._attempt_dirs():
            try:
                ended = (d / "exit_code").stat().st_mtime
            except FileNotFoundError:
                continue
            if ended < cutoff and not _lock_held(d):
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        return removed

    def close(self) -> None:
        """Let the launcher helper go (jobs keep running)."""
        self._launcher.close()

    def watch(self, callback: Callable[[], None]) -> None:
        """Call `callback` (from another thread) whenever one of this site's jobs ends, so the broker records it
        and fills the freed capacity without waiting for its next poll."""
        self._exits.listen(callback)
        for d in self._live_attempts():  # jobs started before a restart
            if (pid := read_int(d / "pid")) is not None:
                self._exits.add(pid)

    # -- Backend protocol --------------------------------------------------------------------------------------

    def submit(self, spec: LaunchSpec) -> None:
        pool = pool_of(self.pools, self.site, spec.pool)
        d = self._dir(spec.attempt_id)
        with self._lock:
            if (d / "spawned").exists():
                return  # running or has run: never again
            d.mkdir(parents=True, exist_ok=True)
            fd = os.open(d / "lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    # Another backend holds it: it is submitting this attempt right now, or the job runs.
                    if (d / "spawned").exists():
                        return
                    raise BackendError(
                        f"attempt {spec.attempt_id} is being submitted elsewhere", retryable=True
                    ) from None
                # Re-check under the lock: the other submitter may have spawned and finished meanwhile.
                if (d / "spawned").exists():
                    return
                devices = self._claim(pool, spec)
                self._spawn(d, pool, spec, devices, fd)
            finally:
                os.close(fd)  # the child holds its own copy of the locked file description

    def status(self, attempt_id: str) -> AttemptStatus:
        self._reap()
        d = self._dir(attempt_id)
        if not d.is_dir():
            return AttemptStatus(AttemptState.LOST, message="unknown attempt")
        started_at = self._meta(d).get("started_at")
        code = read_int(d / "exit_code")
        if code is not None:
            if self._live is not None:  # what the broker learns has ended frees its share at once
                self._live.pop(d, None)
            self._pids.pop(attempt_id, None)
            finished_at = (d / "exit_code").stat().st_mtime
            if (d / "cancelled").exists():
                state = AttemptState.CANCELLED
            else:
                state = AttemptState.SUCCEEDED if code == 0 else AttemptState.FAILED
            return AttemptStatus(state, exit_code=code, started_at=started_at, finished_at=finished_at)
        if _lock_held(d):
            return AttemptStatus(AttemptState.RUNNING, started_at=started_at)
        if (d / "spawned").exists():
            return AttemptStatus(AttemptState.LOST, started_at=started_at, message="died without an exit code")
        return AttemptStatus(AttemptState.LOST, message="never started (its submit failed or was interrupted)")

    def cancel(self, attempt_id: str) -> None:
        d = self._dir(attempt_id)
        if not d.is_dir() or (d / "exit_code").exists() or not _lock_held(d):
            return  # unknown, finished, or dead: nothing to stop
        (d / "cancelled").touch()
        pgid = self._pid(attempt_id)
        if pgid is None:
            return
        signalled = signal.SIGTERM
        _killpg(pgid, signal.SIGTERM)
        if not self._wait_released(d, CANCEL_GRACE_S):
            signalled = signal.SIGKILL
            _killpg(pgid, signal.SIGKILL)
            self._wait_released(d, 2.0)
        # Sweep what is left of the group: a descendant that closed its copy of the lock fd would survive unseen.
        _killpg(pgid, signal.SIGKILL)
        if not (d / "exit_code").exists():  # the wrapper died with the group; make the state final
            write_atomic(d / "exit_code", f"{128 + signalled}\n")

    def logs(self, attempt_id: str, tail_lines: int | None = None) -> str:
        d = self._dir(attempt_id)
        if not d.is_dir():
            raise BackendError(f"unknown attempt {attempt_id!r}", retryable=False)
        return tail(merged_logs(read_text(d / "stdout.log"), read_text(d / "stderr.log")), tail_lines)

    def capacity(self) -> list[PoolCapacity]:
        self._reap()
        result = []
        for pool in self.pools.values():
            used = self._used(pool.id)
            devices_total = pool.nodes * pool.devices_per_node
            cpus_total = pool.nodes * pool.cpus_per_node
            memory_total = pool.nodes * pool.memory_gb_per_node
            result.append(
                PoolCapacity(
                    pool=pool.id,
                    devices_total=devices_total,
                    devices_free=devices_total - len(used["devices"]),
                    cpus_total=cpus_total,
                    cpus_free=cpus_total - used["cpus"],
                    memory_gb_total=memory_total,
                    memory_gb_free=memory_total - used["memory_gb"],
                )
            )
        return result

    def attempts(self) -> list[str]:
        self._reap()
        self._swept = 0.0  # an exact answer: the broker reports what is listed here and not live in its store
        return [d.name for d in self._live_attempts()]

    # -- internals ---------------------------------------------------------------------------------------------

    def _dir(self, attempt_id: str) -> Path:
        if not attempt_id or "/" in attempt_id or attempt_id in (".", ".."):
            raise BackendError(f"attempt id {attempt_id!r} cannot name a directory", retryable=False)
        return self.root / "attempts" / attempt_id

    def _attempt_dirs(self) -> list[Path]:
        base = self.root / "attempts"
        return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def _live_attempts(self) -> dict[Path, dict[str, Any]]:
        """Attempts whose job still runs (lock held), with their metadata; finished ones are dropped."""
        if self._live is None:
            self._live = {d: self._meta(d) for d in self._attempt_dirs() if not (d / "exit_code").exists()}
        # Checking every live attempt's lock costs a few system calls each; a burst of submits would check
        # them all for every submit. One sweep serves for LIVE_SWEEP_S: meanwhile an attempt that ended still
        # counts as using its share, which errs on the safe side (a pool looks fuller, never over-committed).
        now = time.monotonic()
        if now - self._swept >= LIVE_SWEEP_S:
            self._swept = now
            for d in list(self._live):
                if (d / "exit_code").exists() or not _lock_held(d):
                    self._live.pop(d, None)
        return self._live

    def _meta(self, d: Path) -> dict[str, Any]:
        try:
            return json.loads((d / "attempt.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _used(self, pool_id: str) -> dict[str, Any]:
        """Devices, cpus and memory of the pool's attempts that still run (from their files: survives restarts)."""
        used: dict[str, Any] = {"devices": set(), "cpus": 0, "memory_gb": 0.0}
        for meta in list(self._live_attempts().values()):
            if meta.get("pool") != pool_id:
                continue
            used["devices"].update(meta["device_indices"])
            used["cpus"] += meta["cpus"]
            used["memory_gb"] += meta["memory_gb"]
        return used

    def _claim(self, pool: Pool, spec: LaunchSpec) -> list[int]:
        """The lowest free device indices for the attempt, or BackendError when it does not fit now."""
        devices_total = pool.nodes * pool.devices_per_node
        cpus_total = pool.nodes * pool.cpus_per_node
        memory_total = pool.nodes * pool.memory_gb_per_node
        if spec.devices > devices_total or spec.cpus > cpus_total or spec.memory_gb > memory_total:
            raise BackendError(
                f"attempt {spec.attempt_id} asks for {spec.devices} devices, {spec.cpus} cpus, {spec.memory_gb} GB; "
                f"pool {pool.id!r} has {devices_total}, {cpus_total}, {memory_total} GB in all",
                retryable=False,
            )
        # Our own lock is held by us now, so a half-written earlier try of this attempt must not count.
        used = self._used(pool.id)
        if (d := self._dir(spec.attempt_id)).is_dir():
            mine = self._meta(d)
            if mine.get("pool") == pool.id:
                used["devices"].difference_update(mine["device_indices"])
                used["cpus"] -= mine["cpus"]
                used["memory_gb"] -= mine["memory_gb"]
        free = [i for i in range(devices_total) if i not in used["devices"]]
        if (
            len(free) < spec.devices
            or used["cpus"] + spec.cpus > cpus_total
            or used["memory_gb"] + spec.memory_gb > memory_total + 1e-9
        ):
            raise BackendError(
                f"pool {pool.id!r} is full for attempt {spec.attempt_id}: free {len(free)} devices, "
                f"{cpus_total - used['cpus']} cpus, {memory_total - used['memory_gb']:g} GB",
                retryable=True,
            )
        return free[: spec.devices]

    def _spawn(self, d: Path, pool: Pool, spec: LaunchSpec, devices: list[int], lock_fd: int) -> None:
        (d / "work").mkdir(exist_ok=True)
        indices = ",".join(str(i) for i in devices)
        env = {**os.environ, **spec.env}
        env.update(
            SUANLI_JOB_ID=spec.job_id,
            SUANLI_ATTEMPT_ID=spec.attempt_id,
            SUANLI_POOL=spec.pool,
            SUANLI_DEVICES=indices,
            OMP_NUM_THREADS=str(spec.cpus),
        )
        # Set even when empty, so a CPU job cannot see (and take) the node's accelerators.
        env[self._visible_var(pool.hardware)] = indices
        meta = {
            "job_id": spec.job_id,
            "pool": spec.pool,
            "device_indices": devices,
            "devices": spec.devices,
            "cpus": spec.cpus,
            "memory_gb": spec.memory_gb,
            "started_at": time.time(),
        }
        write_atomic(d / "attempt.json", json.dumps(meta))
        self._live_attempts()[d] = meta
        (d / "spawned").touch()  # from here on, never again: at most once, and the lock makes it at least once
        limit = "" if spec.time_limit_s is None else str(max(1, math.ceil(spec.time_limit_s)))
        argv = ["/bin/sh", "-c", _WRAPPER, "suanli-attempt", spec.run, limit]
        try:
            pid = self._launcher.start(argv, d, env, d / "stdout.log", d / "stderr.log", lock_fd)
        except LaunchRefused as exc:
            # Nothing ran (the helper reports a failed fork or exec), and we hold the lock: safe to allow a retry.
            (d / "spawned").unlink()
            raise BackendError(f"could not start attempt {spec.attempt_id}: {exc}", retryable=True) from exc
        except LauncherUnavailable:
            pid = self._spawn_here(argv, d, env, lock_fd, spec.attempt_id)
        if pid is not None:
            self._pids[spec.attempt_id] = pid
            self._exits.add(pid)

    def _spawn_here(self, argv: list[str], d: Path, env: dict[str, str], lock_fd: int, attempt_id: str) -> int:
        """Start the job from this process: the fallback when the launcher helper cannot be run."""
        try:
            with open(d / "stdout.log", "ab") as out, open(d / "stderr.log", "ab") as err:
                proc = subprocess.Popen(
                    argv,
                    cwd=d,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    pass_fds=(lock_fd,),
                )
        except OSError as exc:
            (d / "spawned").unlink()
            raise BackendError(f"could not start attempt {attempt_id}: {exc}", retryable=True) from exc
        self._procs[attempt_id] = proc
        return proc.pid

    def _visible_var(self, hardware: str) -> str:
        catalog = self._catalog
        if catalog is None:
            from suanli.hardware.catalog import builtin_catalog

            catalog = self._catalog = builtin_catalog()
        if hardware not in catalog:
            return DEFAULT_VISIBLE_DEVICES_VAR
        words = catalog.get(hardware).vendor.lower().split()
        return VISIBLE_DEVICES_VAR.get(words[0] if words else "", DEFAULT_VISIBLE_DEVICES_VAR)

    def _reap(self) -> None:
        """Wait for children that exited, so they do not linger as zombies in this long-lived process."""
        with self._lock:
            for attempt_id, proc in list(self._procs.items()):
                if proc.poll() is not None:
                    del self._procs[attempt_id]

    def _pid(self, attempt_id: str) -> int | None:
        with self._lock:
            proc = self._procs.get(attempt_id)
        if proc is not None:
            return proc.pid
        if (pid := self._pids.get(attempt_id)) is not None:
            return pid
        # Re-attached: the wrapper writes its pid first thing; give a just-spawned one a moment.
        pid_file = self._dir(attempt_id) / "pid"
        for _ in range(50):
            if (pid := read_int(pid_file)) is not None:
                return pid
            time.sleep(0.02)
        return None

    def _wait_released(self, d: Path, timeout_s: float) -> bool:
        """Wait until no process holds the attempt's lock. Not `killpg(pgid, 0)`: orphaned zombies of the group
        answer it until init reaps them, which can take a second or more."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._reap()
            if not _lock_held(d):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def _lock_held(d: Path) -> bool:
    """Whether some process holds the attempt's lock, i.e. the job (or a submit of it) is still alive."""
    try:
        fd = os.open(d / "lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
