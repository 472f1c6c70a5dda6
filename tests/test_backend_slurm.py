"""The Slurm back-end against a real Slurm 22.05 cluster (scripts/services.sh slurm), over the CLI and over REST.

Every test uses fresh attempt ids: the controller keeps finished jobs for an hour and the back-end finds an attempt
by its job name, so a reused id would be taken for an earlier run."""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from _slurm_fixture import SlurmCluster
from suanli.backends.base import AttemptState, AttemptStatus, BackendError, LaunchSpec
from suanli.backends.slurm import FENCE_WAIT_S, SlurmBackend, decode_wait_status
from suanli.spec.network import Pool
from suanli.spec.network import SlurmBackend as SlurmConfig

POOL = Pool.model_validate(
    {
        "id": "a100",
        "hardware": "nvidia-a100-sxm4-80gb",
        "nodes": 4,
        "devices_per_node": 2,
        "cpus_per_node": 8,
        "memory_gb_per_node": 15,
        "price": {"device_hour_cny": 10},
    }
)
DONE = (AttemptState.SUCCEEDED, AttemptState.FAILED, AttemptState.CANCELLED, AttemptState.LOST)


def config(cluster: SlurmCluster, mode: str, workdir: Path, **extra: object) -> SlurmConfig:
    common: dict[str, object] = {
        "type": "slurm",
        "partitions": {"a100": cluster.partition},
        "gres_types": {"a100": cluster.gres_type},
        "workdir": str(workdir),
        "timeout_s": 5,
    }
    if mode == "rest":
        common.update(url=cluster.rest_url, user=cluster.user)
    else:
        common.update(conf=cluster.conf)
    return SlurmConfig.model_validate({**common, **extra})


@pytest.fixture(params=["cli", "rest"])
def make(request: pytest.FixtureRequest, slurm_cluster: SlurmCluster) -> Iterator[Callable[..., SlurmBackend]]:
    """A factory of back-ends in one mode sharing one workdir (a second one stands for a restarted broker).
    Afterwards, jobs the test left running are cancelled and the workdir removed."""
    workdir = slurm_cluster.workdir / f"test-{uuid.uuid4().hex[:10]}"
    workdir.mkdir(mode=0o755)
    made: list[SlurmBackend] = []

    def _make(**extra: object) -> SlurmBackend:
        cfg = config(slurm_cluster, request.param, workdir, **extra)
        made.append(SlurmBackend("hpc", [POOL], cfg, workdir, token=slurm_cluster.token))
        return made[-1]

    yield _make
    for b in made[:1]:
        with contextlib.suppress(BackendError):
            for attempt in b.attempts():
                if (workdir / "attempts" / attempt).exists():
                    b.cancel(attempt)
    for b in made:
        b.close()
    shutil.rmtree(workdir, ignore_errors=True)


def spec(run: str, **kw: object) -> LaunchSpec:
    attempt = f"t{uuid.uuid4().hex[:12]}"
    return LaunchSpec(attempt_id=attempt, job_id=f"job-{attempt}", pool="a100", hardware=POOL.hardware, run=run, **kw)  # type: ignore[arg-type]


def wait(
    backend: SlurmBackend, attempt_id: str, states: tuple[AttemptState, ...], timeout_s: float = 15
) -> AttemptStatus:
    deadline = time.monotonic() + timeout_s
    while True:
        st = backend.status(attempt_id)
        if st.state in states or time.monotonic() > deadline:
            return st
        time.sleep(0.1)


def test_job_succeeds_with_its_output_and_environment(make: Callable[..., SlurmBackend]) -> None:
    b = make()
    s = spec('echo "hello $SUANLI_JOB_ID $SUANLI_ATTEMPT_ID $GREETING"; echo oops >&2', env={"GREETING": "it's a,b"})
    b.submit(s)
    st = wait(b, s.attempt_id, DONE)
    assert st.state == AttemptState.SUCCEEDED, st
    assert st.exit_code == 0
    assert st.started_at and st.finished_at and st.finished_at >= st.started_at
    assert b.logs(s.attempt_id) == f"hello {s.job_id} {s.attempt_id} it's a,b\n[stderr] oops\n"
    assert b.logs(s.attempt_id, tail_lines=1) == "[stderr] oops\n"


def test_exit_code_3_is_failed_with_3(make: Callable[..., SlurmBackend]) -> None:
    b = make()
    s = spec("exit 3")
    b.submit(s)
    st = wait(b, s.attempt_id, DONE)
    assert (st.state, st.exit_code) == (AttemptState.FAILED, 3), st


def test_killed_by_a_signal_is_failed_naming_it(make: Callable[..., SlurmBackend]) -> None:
    b = make()
    s = spec("kill -9 $$")
    b.submit(s)
    st = wait(b, s.attempt_id, DONE)
    assert st.state == AttemptState.FAILED, st
    assert st.exit_code == 128 + 9
    assert "SIGKILL" in st.message


def test_cancel_gives_cancelled_and_attempts_lists_live_ones(make: Callable[..., SlurmBackend]) -> None:
    b = make()
    s = spec("sleep 60", time_limit_s=61)
    b.submit(s)
    assert wait(b, s.attempt_id, (AttemptState.RUNNING, *DONE)).state == AttemptState.RUNNING
    assert s.attempt_id in b.attempts()
    job = b._find(s.attempt_id, fresh=True)  # what Slurm holds: the limit in whole minutes, never shorter
    assert job is not None and job["time_limit"] == 2 and job["partition"] == "gpu"
    assert f"job={s.job_id} attempt={s.attempt_id}" in job["comment"]
    b.cancel(s.attempt_id)
    st = wait(b, s.attempt_id, DONE, timeout_s=10)
    assert st.state == AttemptState.CANCELLED, st
    assert s.attempt_id not in b.attempts()
    b.cancel(s.attempt_id)  # cancelling a finished attempt is a no-op
    b.cancel("never-submitted")


def test_same_attempt_submitted_twice_runs_once(make: Callable[..., SlurmBackend], tmp_path: Path) -> None:
    first, restarted = make(), make()
    shared = first.root / "shared"  # REST jobs run as the REST user, not root
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    marker = shared / "ran.txt"
    s = spec(f"echo ran >> {marker}; sleep 1")
    # Two submitters at once (threads of one broker), then a restarted broker that lost its note of the job id.
    errors: list[BaseException] = []

    def go(b: SlurmBackend) -> None:
        try:
            b.submit(s)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(b,)) for b in (first, restarted)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    (first.root / "attempts" / s.attempt_id / "slurm_job_id").unlink()
    restarted.submit(s)
    first.submit(s)
    assert wait(restarted, s.attempt_id, DONE).state == AttemptState.SUCCEEDED
    assert marker.read_text() == "ran\n"
    restarted.submit(s)  # also after it finished
    time.sleep(1.0)
    assert marker.read_text() == "ran\n"


def test_gpu_job_gets_its_gres(make: Callable[..., SlurmBackend], slurm_cluster: SlurmCluster) -> None:
    b = make()
    s = spec('echo "gpus=$SLURM_JOB_GPUS cuda=$CUDA_VISIBLE_DEVICES"', devices=2)
    b.submit(s)
    assert wait(b, s.attempt_id, DONE).state == AttemptState.SUCCEEDED
    line = b.logs(s.attempt_id).strip()
    gpus = line.split()[0].removeprefix("gpus=")
    cuda = line.split()[1].removeprefix("cuda=")
    assert len(gpus.split(",")) == 2, line
    assert len(cuda.split(",")) == 2, line


def test_impossible_request_is_refused_naming_it(make: Callable[..., SlurmBackend]) -> None:
    b = make()
    too_many = spec("true", devices=9)  # nodes have 2 GPUs each
    with pytest.raises(BackendError) as err:
        b.submit(too_many)
    assert err.value.retryable is False
    assert "gpu:a100:9" in str(err.value) and "node configuration is not available" in str(err.value)
    # Slurm records the refused job under its name; it never ran, so it neither blocks a later submit nor reads
    # as a job that died of a signal.
    st = b.status(too_many.attempt_id)
    assert (st.state, st.exit_code) == (AttemptState.FAILED, None), st
    assert "refused" in st.message
    with pytest.raises(BackendError):
        b.submit(too_many)

    bad_partition = make(partitions={"a100": "no-such-partition"})
    with pytest.raises(BackendError) as err:
        bad_partition.submit(spec("true"))
    assert err.value.retryable is False
    assert "no-such-partition" in str(err.value) and "partition" in str(err.value).lower()

    with pytest.raises(BackendError) as err:
        b.submit(spec("true", memory_gb=1000))  # nodes have 16000 MB
    assert err.value.retryable is False and "1024000 MB" in str(err.value)

    with pytest.raises(BackendError) as err:
        b.submit(spec("true", env={"NOT A NAME": "x"}))
    assert err.value.retryable is False


def test_capacity_reflects_allocated_gpus(make: Callable[..., SlurmBackend], slurm_cluster: SlurmCluster) -> None:
    b = make()
    total = slurm_cluster.nodes * slurm_cluster.gpus_per_node
    deadline = time.monotonic() + 10
    while (before := b.capacity()[0]).devices_free != total and time.monotonic() < deadline:
        time.sleep(0.2)  # let jobs of earlier tests finish
    assert before.devices_total == total and before.devices_free == total, before
    assert before.cpus_total == slurm_cluster.nodes * 8
    s = spec("sleep 60", devices=2, cpus=3, memory_gb=2)
    b.submit(s)
    assert wait(b, s.attempt_id, (AttemptState.RUNNING, *DONE)).state == AttemptState.RUNNING
    during = b.capacity()[0]
    assert during.devices_free == total - 2, during
    assert during.cpus_free == before.cpus_free - 3
    assert during.memory_gb_free == pytest.approx(before.memory_gb_free - 2)
    b.cancel(s.attempt_id)
    assert wait(b, s.attempt_id, DONE).state == AttemptState.CANCELLED


def test_unknown_attempt_is_lost(make: Callable[..., SlurmBackend]) -> None:
    st = make().status(f"never-{uuid.uuid4().hex}")
    assert st.state == AttemptState.LOST and "no job named" in st.message


def test_a_job_the_controller_forgot_is_read_from_the_jobcomp_file(
    make: Callable[..., SlurmBackend], tmp_path: Path
) -> None:
    # A line as jobcomp/filetxt writes it, for a job slurmctld no longer holds (older than MinJobAge).
    attempt = f"gone-{uuid.uuid4().hex[:8]}"
    jobcomp = tmp_path / "jobcomp.txt"
    jobcomp.write_text(
        f"JobId=999999 UserId=root(0) GroupId=root(0) Name=suanli-{attempt} JobState=FAILED Partition=gpu "
        "TimeLimit=UNLIMITED StartTime=2026-11-28T07:31:23 EndTime=2026-11-28T07:31:25 NodeList=n1 NodeCnt=1 "
        "ProcCnt=1 WorkDir=/tmp ReservationName= Tres=cpu=1 Account= QOS= WcKey= Cluster=unknown "
        "SubmitTime=2026-11-28T07:31:22 EligibleTime=2026-11-28T07:31:22 DerivedExitCode=0:0 ExitCode=3:0 \n"
    )
    st = make(jobcomp=str(jobcomp)).status(attempt)
    assert (st.state, st.exit_code) == (AttemptState.FAILED, 3), st
    assert st.finished_at is not None and st.started_at is not None and st.finished_at - st.started_at == 2


def test_wait_status_decoding() -> None:
    assert decode_wait_status(3 << 8) == (3, 0)
    assert decode_wait_status(9) == (0, 9)
    assert decode_wait_status(0) == (0, 0)


def test_dead_controller_fails_fast_and_retryably(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    dead_conf = tmp_path / "slurm.conf"
    lines = Path(slurm_cluster.conf).read_text().splitlines()
    dead_conf.write_text("\n".join("SlurmctldPort=1" if x.startswith("SlurmctldPort=") else x for x in lines) + "\n")
    backends = {
        "cli": SlurmConfig(type="slurm", conf=str(dead_conf), timeout_s=2),
        "rest": SlurmConfig(type="slurm", url="http://127.0.0.1:1", user=slurm_cluster.user, timeout_s=2),
    }
    for mode, cfg in backends.items():
        b = SlurmBackend("hpc", [POOL], cfg, tmp_path / mode, token=slurm_cluster.token)
        calls: list[Callable[[], object]] = [lambda b=b: b.submit(spec("true")), b.capacity]
        for call in calls:  # each costs the 2 s timeout in cli mode
            t0 = time.monotonic()
            with pytest.raises(BackendError) as err:
                call()
            assert err.value.retryable, (mode, err.value)
            assert time.monotonic() - t0 < 4, (mode, str(err.value))


def test_pools_the_site_lacks_are_refused(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    cfg = SlurmConfig(type="slurm", conf=slurm_cluster.conf, partitions={"h100": "gpu"})
    with pytest.raises(ValueError, match="h100"):
        SlurmBackend("hpc", [POOL], cfg, tmp_path)
    b = SlurmBackend("hpc", [POOL], SlurmConfig(type="slurm", conf=slurm_cluster.conf), tmp_path)
    with pytest.raises(BackendError) as err:
        b.submit(LaunchSpec("a1", "j1", "nope", "x", "true"))
    assert err.value.retryable is False and "nope" in str(err.value)


# -- fencing: stopping attempts without the controller -----------------------------------------------------------


def test_fence_stops_a_running_job_and_a_finished_one_reads_finished(
    make: Callable[..., SlurmBackend], tmp_path: Path
) -> None:
    b = make()
    out = b.root / "ran"
    running, done = spec(f"sleep 30; echo x >> {out}"), spec("exit 4")
    b.submit(running)
    b.submit(done)
    assert wait(b, running.attempt_id, (AttemptState.RUNNING,)).state == AttemptState.RUNNING
    assert wait(b, done.attempt_id, DONE).state == AttemptState.FAILED
    started = time.monotonic()
    outcome = b.fence([running.attempt_id, done.attempt_id])
    assert time.monotonic() - started < FENCE_WAIT_S
    stopped, finished = outcome[running.attempt_id], outcome[done.attempt_id]
    assert stopped is not None and stopped.state == AttemptState.LOST and "stopped by its fence" in stopped.message
    assert finished is not None and (finished.state, finished.exit_code) == (AttemptState.FAILED, 4)
    assert wait(b, running.attempt_id, DONE).state in (AttemptState.FAILED, AttemptState.SUCCEEDED)
    assert not out.exists()


def test_a_fenced_job_that_starts_later_never_runs_its_command(make: Callable[..., SlurmBackend]) -> None:
    b = make()
    out = b.root / "ran"
    hog = spec("sleep 60", devices=8, nodes=4)  # every GPU of the cluster
    b.submit(hog)
    assert wait(b, hog.attempt_id, (AttemptState.RUNNING,)).state == AttemptState.RUNNING
    late = spec(f"echo x >> {out}", devices=2)
    b.submit(late)
    assert b.status(late.attempt_id).state == AttemptState.PENDING
    outcome = b.fence([late.attempt_id])[late.attempt_id]
    assert outcome is not None and outcome.state == AttemptState.LOST and "before it started" in outcome.message
    b.cancel(hog.attempt_id)  # the pending job now starts, and stops at once
    wait(b, late.attempt_id, DONE, timeout_s=30)
    assert (b.root / "attempts" / late.attempt_id / "fenced").exists()
    assert not out.exists()
