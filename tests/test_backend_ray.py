"""RayBackend against the real Ray head of scripts/services.sh (fixture `ray_cluster`): one node with 4 CPUs and
4 fake GPUs, which the custom resource GPU_A100 counts again."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from _ray_fixture import RayCluster
from suanli.backends.base import AttemptState, AttemptStatus, BackendError, LaunchSpec
from suanli.backends.ray import RayBackend
from suanli.spec.network import Pool
from suanli.spec.network import RayBackend as RayConfig

TERMINAL = {AttemptState.SUCCEEDED, AttemptState.FAILED, AttemptState.CANCELLED, AttemptState.LOST}


def _pool(pool_id: str, devices: int = 4) -> Pool:
    return Pool.model_validate(
        {
            "id": pool_id,
            "hardware": "nvidia-a100-80g",
            "nodes": 1,
            "devices_per_node": devices,
            "cpus_per_node": 4,
            "memory_gb_per_node": 16,
            "price": {"device_hour_cny": 10},
        }
    )


@pytest.fixture
def backend(ray_cluster: RayCluster) -> Iterator[RayBackend]:
    """Pool a100 on the head's accelerator resource; pool h100 on one no node has."""
    config = RayConfig(
        type="ray",
        address=ray_cluster.address,
        accelerator_resources={"a100": ray_cluster.accelerator_resource, "h100": "GPU_H100"},
    )
    b = RayBackend(f"ray-test-{uuid.uuid4().hex[:6]}", [_pool("a100"), _pool("h100")], config)
    yield b
    for attempt_id in b.attempts():  # leave no job holding the head's GPUs for the next test
        b.cancel(attempt_id)


def _spec(run: str, devices: int = 0, pool: str = "a100", **kw: object) -> LaunchSpec:
    return LaunchSpec(
        attempt_id=f"t-{uuid.uuid4().hex[:10]}", job_id="job-1", pool=pool, hardware="nvidia-a100-80g", run=run,
        devices=devices, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def _wait(b: RayBackend, attempt_id: str, states: set[AttemptState], timeout_s: float = 20) -> AttemptStatus:
    deadline = time.monotonic() + timeout_s
    while True:
        st = b.status(attempt_id)
        if st.state in states or time.monotonic() > deadline:
            return st
        time.sleep(0.1)


def test_job_succeeds_and_its_output_is_in_the_logs(backend: RayBackend) -> None:
    spec = _spec('echo "hello from $SUANLI_JOB_ID/$SUANLI_ATTEMPT_ID $GREETING"; echo warn >&2', env={"GREETING": "hi"})
    t0 = time.monotonic()
    backend.submit(spec)
    st = _wait(backend, spec.attempt_id, TERMINAL)
    elapsed = time.monotonic() - t0
    assert st.state == AttemptState.SUCCEEDED, st
    assert st.exit_code == 0
    assert st.started_at is not None and st.finished_at is not None and st.finished_at >= st.started_at
    logs = backend.logs(spec.attempt_id)
    assert f"hello from job-1/{spec.attempt_id} hi\n" in logs
    assert "warn\n" in logs
    assert "Running entrypoint" not in logs and "job_manager.py" not in logs  # Ray's own lines are dropped
    assert backend.logs(spec.attempt_id, tail_lines=1) == logs.splitlines(keepends=True)[-1]
    assert elapsed < 10, f"a trivial job took {elapsed:.1f} s from submit to SUCCEEDED"


def test_exit_code_3_is_failed_with_exit_code_3(backend: RayBackend) -> None:
    spec = _spec("echo before; exit 3")
    backend.submit(spec)
    st = _wait(backend, spec.attempt_id, TERMINAL)
    assert st.state == AttemptState.FAILED, st
    assert st.exit_code == 3


def test_time_limit_stops_the_job_with_exit_code_124(backend: RayBackend) -> None:
    spec = _spec("echo started; sleep 60", time_limit_s=1.0)
    backend.submit(spec)
    st = _wait(backend, spec.attempt_id, TERMINAL)
    assert st.state == AttemptState.FAILED and st.exit_code == 124, st
    assert st.finished_at is not None and st.started_at is not None and st.finished_at - st.started_at < 10
    assert "started\n" in backend.logs(spec.attempt_id)


def test_cancel_of_a_running_job(backend: RayBackend) -> None:
    spec = _spec("echo started; sleep 60")
    backend.submit(spec)
    assert _wait(backend, spec.attempt_id, {AttemptState.RUNNING}).state == AttemptState.RUNNING
    assert spec.attempt_id in backend.attempts()
    backend.cancel(spec.attempt_id)
    st = _wait(backend, spec.attempt_id, TERMINAL, timeout_s=15)
    assert st.state == AttemptState.CANCELLED, st
    assert spec.attempt_id not in backend.attempts()
    backend.cancel(spec.attempt_id)  # a finished attempt: no-op
    backend.cancel("t-never-submitted")  # unknown: no-op


def test_cancel_of_a_pending_job_means_it_never_runs(backend: RayBackend, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    blocker = _spec("sleep 60", devices=4)  # every GPU of the head
    backend.submit(blocker)
    assert _wait(backend, blocker.attempt_id, {AttemptState.RUNNING}).state == AttemptState.RUNNING
    waiting = _spec(f"touch {marker}", devices=1)
    backend.submit(waiting)
    time.sleep(1)
    assert backend.status(waiting.attempt_id).state == AttemptState.PENDING
    backend.cancel(waiting.attempt_id)
    backend.cancel(blocker.attempt_id)  # frees the GPUs: a merely "stopped" pending job would start now
    assert _wait(backend, waiting.attempt_id, TERMINAL).state == AttemptState.CANCELLED
    assert _wait(backend, blocker.attempt_id, TERMINAL).state == AttemptState.CANCELLED
    time.sleep(2)
    assert not marker.exists(), "the cancelled pending job ran once the GPUs were free"


def test_same_attempt_id_twice_runs_once(backend: RayBackend, ray_cluster: RayCluster, tmp_path: Path) -> None:
    out = tmp_path / "runs.txt"
    spec = _spec(f"sleep 1; echo ran >> {out}")
    backend.submit(spec)
    backend.submit(spec)  # while it runs
    assert _wait(backend, spec.attempt_id, TERMINAL).state == AttemptState.SUCCEEDED
    backend.submit(spec)  # after it finished
    restarted = RayBackend(backend.site, list(backend.pools.values()), backend.config)  # a broker that restarted
    restarted.submit(spec)
    time.sleep(2.5)
    assert out.read_text() == "ran\n"
    assert backend.status(spec.attempt_id).state == AttemptState.SUCCEEDED


def test_gpu_job_sees_its_accelerators(backend: RayBackend) -> None:
    spec = _spec('echo "cuda=$CUDA_VISIBLE_DEVICES pool=$SUANLI_POOL"', devices=2)
    backend.submit(spec)
    assert _wait(backend, spec.attempt_id, TERMINAL).state == AttemptState.SUCCEEDED
    line = next(x for x in backend.logs(spec.attempt_id).splitlines() if x.startswith("cuda="))
    devices = line.split()[0].removeprefix("cuda=").split(",")
    assert len(devices) == 2 and all(d.isdigit() for d in devices), line
    assert "pool=a100" in line


@pytest.mark.parametrize(
    ("pool", "devices", "named"),
    [("h100", 1, "1 GPU_H100 asked, no node has any"), ("a100", 8, "8 GPU asked, the largest node has 4")],
)
def test_infeasible_request_is_lost_naming_the_resource(
    backend: RayBackend, pool: str, devices: int, named: str
) -> None:
    spec = _spec("echo never", devices=devices, pool=pool)
    backend.submit(spec)
    st = _wait(backend, spec.attempt_id, TERMINAL, timeout_s=5)
    assert st.state == AttemptState.LOST, st
    assert named in st.message
    # It is stopped in Ray too (not left pending there), and stays LOST (not cancelled) once it is.
    deadline = time.monotonic() + 20
    while backend._info(spec.attempt_id).status not in ("FAILED", "STOPPED") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert str(backend._info(spec.attempt_id).status.value) in ("FAILED", "STOPPED")
    fresh = RayBackend(backend.site, list(backend.pools.values()), backend.config)
    again = fresh.status(spec.attempt_id)
    assert again.state == AttemptState.LOST and named in again.message
    assert spec.attempt_id not in backend.attempts()


def test_capacity_reflects_gpus_in_use(backend: RayBackend, ray_cluster: RayCluster) -> None:
    (cap,) = [c for c in backend.capacity() if c.pool == "a100"]
    assert cap.devices_total == ray_cluster.gpus and cap.cpus_total == ray_cluster.cpus
    assert [c.devices_total for c in backend.capacity() if c.pool == "h100"] == [0]  # no node has GPU_H100
    spec = _spec("sleep 60", devices=3, cpus=1)
    backend.submit(spec)
    assert _wait(backend, spec.attempt_id, {AttemptState.RUNNING}).state == AttemptState.RUNNING
    # Ray's usage report is refreshed every few seconds.
    deadline = time.monotonic() + 15
    while (cap := backend.capacity()[0]).devices_free > ray_cluster.gpus - 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cap.devices_free == ray_cluster.gpus - 3, cap
    assert cap.cpus_free <= ray_cluster.cpus - 1, cap
    backend.cancel(spec.attempt_id)
    assert _wait(backend, spec.attempt_id, TERMINAL).state == AttemptState.CANCELLED
    deadline = time.monotonic() + 15
    while (cap := backend.capacity()[0]).devices_free < ray_cluster.gpus and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cap.devices_free == ray_cluster.gpus, cap


def test_unknown_attempt_is_lost_and_has_no_logs(backend: RayBackend) -> None:
    assert backend.status("t-never-submitted").state == AttemptState.LOST
    with pytest.raises(BackendError) as err:
        backend.logs("t-never-submitted")
    assert not err.value.retryable
    with pytest.raises(BackendError) as err:
        backend.submit(_spec("true", pool="no-such-pool"))
    assert not err.value.retryable


def test_pool_map_must_name_the_sites_pools() -> None:
    config = RayConfig(type="ray", accelerator_resources={"b200": "GPU_B200"})
    with pytest.raises(ValueError, match="b200"):
        RayBackend("s", [_pool("a100")], config)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An address that accepts connections and never answers (a hung head)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_unreachable_head_raises_retryable_error_quickly(kind: str, silent_server: str) -> None:
    address = silent_server if kind == "silent" else f"http://127.0.0.1:{_free_port()}"
    b = RayBackend("dead", [_pool("a100")], RayConfig(type="ray", address=address, timeout_s=1))
    calls = {
        "submit": lambda: b.submit(_spec("true")),
        "status": lambda: b.status("t-x"),
        "cancel": lambda: b.cancel("t-x"),
        "logs": lambda: b.logs("t-x"),
        "capacity": b.capacity,
        "attempts": b.attempts,
    }
    for name, call in calls.items():
        t0 = time.monotonic()
        with pytest.raises(BackendError) as err:
            call()
        elapsed = time.monotonic() - t0
        assert err.value.retryable, f"{name}: {err.value}"
        assert elapsed < 4, f"{name} took {elapsed:.1f} s to fail against a {kind} head"
