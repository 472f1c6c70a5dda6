"""The local-process back-end, with real processes: env, devices, capacity, exactly once, re-attach, cancel, LOST."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from suanli.backends.base import AttemptState, BackendError, LaunchSpec
from suanli.backends.local import LocalBackend
from suanli.spec.network import Pool, PoolPrice

FINAL = {AttemptState.SUCCEEDED, AttemptState.FAILED, AttemptState.CANCELLED, AttemptState.LOST}


def pool(pool_id: str = "gpu", hardware: str = "nvidia-a100-sxm4-80gb", nodes: int = 1, devices: int = 4) -> Pool:
    return Pool(
        id=pool_id,
        hardware=hardware,
        nodes=nodes,
        devices_per_node=devices,
        cpus_per_node=16,
        memory_gb_per_node=64,
        price=PoolPrice(device_hour_cny=1.0),
    )


def spec(attempt_id: str, run: str, pool_id: str = "gpu", **kw: Any) -> LaunchSpec:
    return LaunchSpec(attempt_id=attempt_id, job_id=f"job-{attempt_id}", pool=pool_id, hardware="x", run=run, **kw)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def wait_final(backend: LocalBackend, attempt_id: str, timeout: float = 5.0) -> AttemptState:
    wait_for(lambda: backend.status(attempt_id).state in FINAL, timeout)
    return backend.status(attempt_id).state


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (an orphaned zombie may wait long for a reaper in a container)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalBackend:
    for var in ("CUDA_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    pools = [pool("gpu"), pool("npu", "huawei-ascend-910b", devices=8), pool("cpu", "amd-epyc-9654", devices=2)]
    return LocalBackend("site-a", pools, tmp_path / "site")


def test_runs_in_own_dir_with_env_and_captured_output(backend: LocalBackend, tmp_path: Path) -> None:
    run = textwrap.dedent("""
        while [ ! -f go ]; do sleep 0.02; done
        echo "job=$SUANLI_JOB_ID attempt=$SUANLI_ATTEMPT_ID pool=$SUANLI_POOL devices=$SUANLI_DEVICES"
        echo "cuda=$CUDA_VISIBLE_DEVICES omp=$OMP_NUM_THREADS mine=$MINE pwd=$(pwd)"
        echo oops >&2
    """)
    backend.submit(spec("a1", run, devices=2, cpus=3, env={"MINE": "yes"}))
    work = backend.root / "attempts" / "a1" / "work"
    status = backend.status("a1")
    assert status.state is AttemptState.RUNNING and status.started_at is not None
    assert backend.attempts() == ["a1"]
    (work / "go").touch()
    assert wait_final(backend, "a1") is AttemptState.SUCCEEDED
    status = backend.status("a1")
    assert status.exit_code == 0 and status.finished_at is not None and status.finished_at >= status.started_at
    logs = backend.logs("a1")
    assert "job=job-a1 attempt=a1 pool=gpu devices=0,1\n" in logs
    assert f"cuda=0,1 omp=3 mine=yes pwd={work}\n" in logs
    assert logs.endswith("[stderr] oops\n")
    assert backend.logs("a1", tail_lines=1) == "[stderr] oops\n"
    assert backend.attempts() == []


@pytest.mark.parametrize(
    ("hardware", "var"),
    [
        ("nvidia-h100-sxm5-80gb", "CUDA_VISIBLE_DEVICES"),
        ("huawei-ascend-910b", "ASCEND_RT_VISIBLE_DEVICES"),
        ("amd-mi300x", "HIP_VISIBLE_DEVICES"),
        ("hygon-dcu-z100", "HIP_VISIBLE_DEVICES"),
        ("cambricon-mlu370-x8", "MLU_VISIBLE_DEVICES"),
        ("kunlunxin-r200", "XPU_VISIBLE_DEVICES"),
        ("metax-mxc500", "CUDA_VISIBLE_DEVICES"),  # no variable of its own here: the default
    ],
)
def test_visible_devices_variable_per_vendor(tmp_path: Path, hardware: str, var: str) -> None:
    b = LocalBackend("s", [pool("p", hardware)], tmp_path)
    b.submit(spec("a", f'echo "{var}=${var}"', pool_id="p", devices=3))
    assert wait_final(b, "a") is AttemptState.SUCCEEDED
    assert b.logs("a") == f"{var}=0,1,2\n"


def test_cpu_job_sees_no_devices(backend: LocalBackend) -> None:
    backend.submit(spec("c", 'echo "[$SUANLI_DEVICES] [${HIP_VISIBLE_DEVICES-unset}]"', pool_id="cpu", cpus=4))
    assert wait_final(backend, "c") is AttemptState.SUCCEEDED
    assert backend.logs("c") == "[] []\n"  # set, and empty: the job cannot take the node's accelerators


def test_non_zero_exit_is_failed_and_tail(backend: LocalBackend) -> None:
    backend.submit(spec("f", "for i in 1 2 3 4; do echo line$i; done; exit 3"))
    assert wait_final(backend, "f") is AttemptState.FAILED
    assert backend.status("f").exit_code == 3
    assert backend.logs("f", tail_lines=2) == "line3\nline4\n"
    assert backend.logs("f", tail_lines=0) == ""


def test_devices_disjoint_capacity_and_reuse(backend: LocalBackend) -> None:
    hold = "while [ ! -f go ]; do sleep 0.02; done; echo $SUANLI_DEVICES"
    backend.submit(spec("d1", hold, devices=2, cpus=4, memory_gb=10))
    backend.submit(spec("d2", hold, devices=2, cpus=4, memory_gb=10))
    with pytest.raises(BackendError) as err:
        backend.submit(spec("d3", hold, devices=2))
    assert err.value.retryable
    gpu = {c.pool: c for c in backend.capacity()}["gpu"]
    assert (gpu.devices_total, gpu.devices_free, gpu.cpus_free, gpu.memory_gb_free) == (4, 0, 8, 44)

    (backend.root / "attempts" / "d1" / "work" / "go").touch()
    assert wait_final(backend, "d1") is AttemptState.SUCCEEDED
    assert {c.pool: c for c in backend.capacity()}["gpu"].devices_free == 2
    backend.submit(spec("d3", hold, devices=2))
    for a in ("d2", "d3"):
        (backend.root / "attempts" / a / "work" / "go").touch()
        assert wait_final(backend, a) is AttemptState.SUCCEEDED
    assert backend.logs("d1") == "0,1\n" and backend.logs("d2") == "2,3\n"
    assert backend.logs("d3") == "0,1\n"  # the first job's devices, reused
    gpu = {c.pool: c for c in backend.capacity()}["gpu"]
    assert (gpu.devices_free, gpu.cpus_free, gpu.memory_gb_free) == (4, 16, 64)


def test_cpu_and_memory_limits(backend: LocalBackend) -> None:
    backend.submit(spec("m1", "sleep 5", memory_gb=60))
    with pytest.raises(BackendError) as err:
        backend.submit(spec("m2", "true", memory_gb=8))
    assert err.value.retryable
    with pytest.raises(BackendError) as err:
        backend.submit(spec("m3", "true", cpus=17))  # more than the whole pool: never fits
    assert not err.value.retryable
    backend.cancel("m1")


def test_unknown_pool_is_not_retryable(backend: LocalBackend) -> None:
    with pytest.raises(BackendError) as err:
        backend.submit(spec("u", "true", pool_id="nowhere"))
    assert not err.value.retryable


def test_submit_twice_runs_once(backend: LocalBackend, tmp_path: Path) -> None:
    out = tmp_path / "ran"
    s = spec("once", f"echo x >> {out}")
    backend.submit(s)
    LocalBackend(backend.site, list(backend.pools.values()), backend.root).submit(s)
    backend.submit(s)
    assert wait_final(backend, "once") is AttemptState.SUCCEEDED
    backend.submit(s)  # finished: still a no-op
    time.sleep(0.1)
    assert out.read_text() == "x\n"


def test_new_backend_reattaches(backend: LocalBackend, tmp_path: Path) -> None:
    out = tmp_path / "ran"
    backend.submit(spec("r", f"sleep 1.5; echo $SUANLI_ATTEMPT_ID >> {out}", devices=3))
    again = LocalBackend(backend.site, list(backend.pools.values()), backend.root)
    assert again.status("r").state is AttemptState.RUNNING
    assert again.attempts() == ["r"]
    assert {c.pool: c for c in again.capacity()}["gpu"].devices_free == 1
    with pytest.raises(BackendError):
        again.submit(spec("r2", "true", devices=2))  # the first job's devices are still taken
    again.submit(spec("r", "echo never"))
    assert wait_final(again, "r") is AttemptState.SUCCEEDED
    assert again.attempts() == []
    assert out.read_text() == "r\n"


BROKER = """
import sys, time
from pathlib import Path
from suanli.backends.base import LaunchSpec
from suanli.backends.local import LocalBackend
from suanli.spec.network import Pool, PoolPrice
p = Pool(id="gpu", hardware="nvidia-a100-sxm4-80gb", nodes=1, devices_per_node=4, cpus_per_node=16,
         memory_gb_per_node=64, price=PoolPrice(device_hour_cny=1.0))
b = LocalBackend("site-a", [p], Path(sys.argv[1]))
print("ready", flush=True)
b.submit(LaunchSpec(attempt_id="k", job_id="j", pool="gpu", hardware="x", run=sys.argv[2], devices=1))
print("submitted", flush=True)
time.sleep(60)
"""


def test_broker_killed_after_submit_job_finishes_once(backend: LocalBackend, tmp_path: Path) -> None:
    out = tmp_path / "ran"
    broker = subprocess.Popen(
        [sys.executable, "-c", BROKER, str(backend.root), f"sleep 0.5; echo x >> {out}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert broker.stdout is not None
    assert broker.stdout.readline() == "ready\n"
    assert broker.stdout.readline() == "submitted\n"
    os.kill(broker.pid, signal.SIGKILL)
    broker.wait()
    assert backend.status("k").state is AttemptState.RUNNING
    backend.submit(spec("k", f"echo again >> {out}", devices=1))  # the new broker asks again: a no-op
    assert wait_final(backend, "k") is AttemptState.SUCCEEDED
    assert out.read_text() == "x\n"


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.08])
def test_broker_killed_at_any_instant_never_runs_twice(backend: LocalBackend, tmp_path: Path, delay: float) -> None:
    out = tmp_path / "ran"
    broker = subprocess.Popen(
        [sys.executable, "-c", BROKER, str(backend.root), f"echo x >> {out}"], stdout=subprocess.PIPE, text=True
    )
    assert broker.stdout is not None
    assert broker.stdout.readline() == "ready\n"
    time.sleep(delay)
    os.kill(broker.pid, signal.SIGKILL)
    broker.wait()
    backend.submit(spec("k", f"echo x >> {out}", devices=1))  # the dead broker's own lock died with it
    state = wait_final(backend, "k")
    ran = out.read_text() if out.exists() else ""
    # Killed before the `spawned` marker: the new submit runs it. Between the marker and the spawn: LOST, not run.
    assert (state, ran) in {(AttemptState.SUCCEEDED, "x\n"), (AttemptState.LOST, "")}


def test_cancel_stops_the_whole_process_group(backend: LocalBackend) -> None:
    backend.submit(spec("c", "sleep 30 & echo $! > child; wait"))
    child_file = backend.root / "attempts" / "c" / "work" / "child"
    wait_for(lambda: child_file.exists() and child_file.read_text().strip() != "")
    child = int(child_file.read_text())
    assert alive(child)
    started = time.monotonic()
    backend.cancel("c")
    assert time.monotonic() - started < 3
    status = backend.status("c")
    assert status.state is AttemptState.CANCELLED and status.exit_code == 143
    wait_for(lambda: not alive(child), timeout=2)
    assert backend.attempts() == []
    backend.cancel("c")  # finished: a no-op
    backend.cancel("never-heard-of")
    assert backend.status("c").state is AttemptState.CANCELLED


def test_cancel_kills_a_job_that_ignores_sigterm(backend: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("suanli.backends.local.CANCEL_GRACE_S", 0.5)
    backend.submit(spec("stubborn", "trap '' TERM; echo ready; while :; do sleep 0.05; done"))
    wait_for(lambda: backend.logs("stubborn") == "ready\n")
    backend.cancel("stubborn")
    status = backend.status("stubborn")
    assert status.state is AttemptState.CANCELLED and status.exit_code is not None
    assert backend.attempts() == []


def test_killed_from_outside_is_lost(backend: LocalBackend) -> None:
    backend.submit(spec("gone", "sleep 30"))
    pid_file = backend.root / "attempts" / "gone" / "pid"
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
    os.killpg(int(pid_file.read_text()), signal.SIGKILL)
    assert wait_final(backend, "gone") is AttemptState.LOST
    assert "without an exit code" in backend.status("gone").message
    fresh = LocalBackend(backend.site, list(backend.pools.values()), backend.root)
    assert fresh.status("gone").state is AttemptState.LOST
    assert {c.pool: c for c in fresh.capacity()}["gpu"].cpus_free == 16


def test_unknown_attempt(backend: LocalBackend) -> None:
    status = backend.status("nope")
    assert status.state is AttemptState.LOST and status.message == "unknown attempt"
    with pytest.raises(BackendError) as err:
        backend.logs("nope")
    assert not err.value.retryable
    assert backend.attempts() == []


def test_failed_spawn_can_be_retried(backend: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork(*args: Any, **kwargs: Any) -> None:
        raise BlockingIOError("fork: resource temporarily unavailable")

    with monkeypatch.context() as m:
        m.setattr("suanli.backends.local.subprocess.Popen", no_fork)
        with pytest.raises(BackendError) as err:
            backend.submit(spec("s", "echo hi"))
    assert err.value.retryable
    assert backend.status("s").state is AttemptState.LOST and "never started" in backend.status("s").message
    backend.submit(spec("s", "echo hi"))
    assert wait_final(backend, "s") is AttemptState.SUCCEEDED
    assert backend.logs("s") == "hi\n"


# -- the launcher helper and exit notices ----------------------------------------------------------------------


def test_jobs_are_started_by_the_launcher_helper_not_the_broker(backend: LocalBackend) -> None:
    # $PPID of the job's shell is the attempt's wrapper; the wrapper's own parent is whoever started it
    backend.submit(spec("l", "cut -d' ' -f4 /proc/$PPID/stat"))
    assert wait_final(backend, "l") is AttemptState.SUCCEEDED
    helper = backend._launcher._proc
    assert helper is not None and helper.poll() is None
    assert int(backend.logs("l")) == helper.pid != os.getpid()


def test_a_killed_launcher_is_started_again_and_its_jobs_live_on(backend: LocalBackend, tmp_path: Path) -> None:
    backend.submit(spec("before", "sleep 0.5; echo done"))
    helper = backend._launcher._proc
    assert helper is not None
    os.kill(helper.pid, signal.SIGKILL)
    helper.wait()
    assert wait_final(backend, "before") is AttemptState.SUCCEEDED  # its job is in a session of its own
    assert backend.logs("before") == "done\n"
    backend.submit(spec("after", "echo again"))
    assert wait_final(backend, "after") is AttemptState.SUCCEEDED
    assert backend._launcher._proc is not None and backend._launcher._proc.pid != helper.pid


def test_a_start_the_launcher_refuses_can_be_retried(backend: LocalBackend) -> None:
    logs = backend.root / "attempts" / "r" / "stdout.log"
    logs.mkdir(parents=True)  # the helper cannot open the job's output: nothing runs
    with pytest.raises(BackendError) as err:
        backend.submit(spec("r", "echo hi"))
    assert err.value.retryable and "IsADirectoryError" in str(err.value)
    assert backend.status("r").state is AttemptState.LOST and "never started" in backend.status("r").message
    logs.rmdir()
    backend.submit(spec("r", "echo hi"))
    assert wait_final(backend, "r") is AttemptState.SUCCEEDED


DYING_HELPER = """
import socket, sys
s = socket.socket(fileno=int(sys.argv[1]))
socket.recv_fds(s, 1 << 20, 4)  # takes the request (and with it the lock) and dies without answering
"""


def test_a_launcher_dying_with_the_request_never_starts_the_job_twice(backend: LocalBackend, tmp_path: Path) -> None:
    """Whether the job started is unknown to the broker: the submit does not fail (a retry could run it twice);
    the lock, dropped with the helper's message, says it never ran: LOST, to be placed again as a new attempt."""
    script = tmp_path / "dying.py"
    script.write_text(DYING_HELPER)
    backend._launcher.script = str(script)
    out = tmp_path / "ran"
    backend.submit(spec("d", f"echo x >> {out}"))
    assert wait_final(backend, "d") is AttemptState.LOST
    assert "without an exit code" in backend.status("d").message
    backend.submit(spec("d", f"echo x >> {out}"))  # a second submit of the attempt: still never again
    time.sleep(0.2)
    assert not out.exists()


def test_watch_calls_back_when_a_job_ends(backend: LocalBackend) -> None:
    import threading

    ended = threading.Event()
    backend.watch(ended.set)
    backend.submit(spec("w", "sleep 0.3"))
    assert not ended.wait(0.1)
    assert ended.wait(5), "no exit notice"
    assert backend.status("w").state is AttemptState.SUCCEEDED


def test_time_limit_stops_the_job_with_exit_code_124(backend: LocalBackend) -> None:
    backend.submit(spec("t", "echo started; sleep 30", time_limit_s=1.0))
    started = time.monotonic()
    st = wait_final(backend, "t", timeout=10)
    assert st is AttemptState.FAILED and backend.status("t").exit_code == 124
    assert time.monotonic() - started < 8
    assert backend.logs("t") == "started\n"


def test_prune_removes_attempts_that_ended_long_ago_and_nothing_else(tmp_path: Path) -> None:
    backend = LocalBackend("site-a", [pool()], tmp_path, keep_days=1)
    backend.submit(spec("old", "echo old"))
    backend.submit(spec("recent", "echo recent"))
    backend.submit(spec("running", "sleep 30"))
    assert wait_final(backend, "old") is AttemptState.SUCCEEDED
    assert wait_final(backend, "recent") is AttemptState.SUCCEEDED
    two_days_ago = time.time() - 2 * 86400
    os.utime(tmp_path / "attempts" / "old" / "exit_code", (two_days_ago, two_days_ago))
    assert backend.prune() == 1
    assert not (tmp_path / "attempts" / "old").exists()
    assert backend.logs("recent") == "recent\n"
    assert backend.status("running").state is AttemptState.RUNNING
    backend.cancel("running")
