"""One network across a real Slurm, a real Ray and local processes, driven through `suanli up`
(examples/real-backends.yaml): every workload class runs on Slurm and on Ray with its logs and exit code; when
slurmctld or the Ray head is killed, the jobs there move to another site within 30 s and finish exactly once,
also after the dead service is back; and a broker killed while Slurm and Ray jobs run loses and doubles nothing.

The services are started by the session fixtures (scripts/services.sh); the tests that kill one start it again."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from _ray_fixture import RayCluster
from _slurm_fixture import SlurmCluster
from _up import Up, free_port

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "scripts" / "services.sh"
FINAL = ("succeeded", "failed", "cancelled", "rejected")
FAILOVER_S = 30.0  # the goal: a lost site's jobs re-placed within this


def network_file(tmp_path: Path, slurm: SlurmCluster, ray: RayCluster) -> Path:
    """examples/real-backends.yaml pointed at the services of this test session."""
    net = yaml.safe_load((ROOT / "examples" / "real-backends.yaml").read_text())
    for site in net["sites"]:
        b = site["backend"]
        if b["type"] == "slurm":
            b.update(conf=slurm.conf, jobcomp=str(slurm.jobcomp))
            b["partitions"]["a100"] = slurm.partition
            b["gres_types"]["a100"] = slurm.gres_type
        elif b["type"] == "ray":
            b.update(address=ray.address, accelerator_resources={"a100": ray.accelerator_resource})
    path = tmp_path / "real-backends.yaml"
    path.write_text(yaml.safe_dump(net))
    return path


@pytest.fixture
def up(tmp_path: Path, slurm_cluster: SlurmCluster, ray_cluster: RayCluster) -> Iterator[Up]:
    home = tmp_path / "home"
    home.mkdir()
    u = Up(home, free_port(), network=network_file(tmp_path, slurm_cluster, ray_cluster))
    u.start()
    try:
        yield u
    finally:
        u.stop()


def job(name: str, run: str, workload: str = "general", devices: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "workload": workload,
        "run": run,
        "resources": {"devices": devices, "cpus": 1, "memory_gb": 1},
        "compute": {"walltime_h": 0.01},
        **extra,
    }


def submit(api: httpx.Client, spec: dict[str, Any]) -> str:
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def until(api: httpx.Client, ids: list[str], done: Any, timeout_s: float = 90) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = {i: api.get(f"/v1/jobs/{i}").json() for i in ids}
        if all(done(j) for j in jobs.values()) or time.monotonic() > deadline:
            return jobs
        time.sleep(0.3)


def finished(job: dict[str, Any]) -> bool:
    return job["state"] in FINAL


# -- every workload class, with logs and exit codes ------------------------------------------------------------


CLASSES = [("general", 0), ("hpc", 0), ("ai-training", 1), ("ai-inference", 1)]


def test_every_workload_class_runs_on_slurm_and_on_ray(up: Up) -> None:
    api = up.client()
    ids = {}
    for site in ("hpc-slurm", "ai-ray"):
        for workload, devices in CLASSES:
            spec = job(
                f"{workload}-on-{site}",
                f'echo "{workload} ran on {site} as $SUANLI_JOB_ID"; echo note >&2',
                workload,
                devices,
                constraints={"sites": [site]},
            )
            ids[(site, workload)] = submit(api, spec)
    failing = {
        site: submit(api, job(f"exit3-{site}", "echo about to fail; exit 3", constraints={"sites": [site]}))
        for site in ("hpc-slurm", "ai-ray")
    }
    jobs = until(api, [*ids.values(), *failing.values()], finished, timeout_s=120)
    for (site, workload), job_id in ids.items():
        j = jobs[job_id]
        assert (j["state"], j["site"], j["exit_code"]) == ("succeeded", site, 0), (site, workload, j)
        logs = api.get(f"/v1/jobs/{job_id}/logs").text
        assert f"{workload} ran on {site} as {job_id}" in logs, logs
        assert j["usage"] and j["usage"]["runtime_s"] >= 0  # metered
    for site, job_id in failing.items():
        j = jobs[job_id]
        assert (j["state"], j["exit_code"], j["site"]) == ("failed", 3, site), j
        assert "about to fail" in api.get(f"/v1/jobs/{job_id}/logs").text
    sites = {s["id"]: s for s in api.get("/v1/sites").json()["sites"]}
    assert sites["hpc-slurm"]["health"] == "healthy" and sites["ai-ray"]["health"] == "healthy"
    gpus = {p["id"]: p for p in sites["hpc-slurm"]["pools"]}["a100"]
    assert gpus["devices_total"] == 8  # live from Slurm: 4 nodes x 2 fake a100


# -- losing a site ----------------------------------------------------------------------------------------------


def lose_site_and_check(
    up: Up,
    out: Path,
    kill: list[str],
    restart: list[str],
    site: str,
    devices: int,
    after_return: Callable[[], object] | None = None,
) -> None:
    """Jobs running at `site`; `kill` stops its scheduler; each job must be running elsewhere within FAILOVER_S
    and finish exactly once; `restart` brings the service back, and nothing runs twice afterwards.
    `after_return` tidies the service for the next test."""
    api = up.client()
    spec = job("long", f"sleep 30; echo $SUANLI_JOB_ID >> {out}", "ai-training" if devices else "hpc", devices)
    ids = [submit(api, {**spec, "name": f"long-{k}"}) for k in range(3)]
    running = until(api, ids, lambda j: j["state"] == "running", timeout_s=60)
    assert all(j["state"] == "running" and j["site"] == site for j in running.values()), running
    subprocess.run(kill, check=False, capture_output=True)
    try:
        moved_and_finished_once(api, ids, out, site)
    finally:
        subprocess.run(restart, check=True, capture_output=True, timeout=180)
    time.sleep(8)  # the service's return is noticed and what it still holds of moved attempts is cancelled
    if after_return is not None:
        after_return()
    lines = out.read_text().split()
    assert sorted(lines) == sorted(ids), f"runs: {lines}"  # each job's effect exactly once, also after the return


def moved_and_finished_once(api: httpx.Client, ids: list[str], out: Path, site: str) -> None:
    killed = time.monotonic()
    moved = until(api, ids, lambda j: j["state"] == "running" and j["site"] not in (None, site), FAILOVER_S + 15)
    waited = time.monotonic() - killed
    assert all(j["site"] != site and j["state"] == "running" for j in moved.values()), {
        i: (j["state"], j["site"], j["reason"]) for i, j in moved.items()
    }
    assert waited <= FAILOVER_S, f"re-placed after {waited:.1f} s"
    print(f"{site}: jobs running elsewhere {waited:.1f} s after the kill")
    for job_id in ids:
        detail = api.get(f"/v1/jobs/{job_id}").json()
        first = detail["attempt_list"][0]
        assert first["site"] == site and first["state"] == "lost" and "failover" in (first["message"] or "")
        failovers = [e for e in detail["events"] if e["kind"] == "failover"]
        assert len(failovers) == 1 and failovers[0]["data"]["site"] == site and failovers[0]["data"]["why"]
    done = until(api, ids, finished, timeout_s=120)
    assert all(j["state"] == "succeeded" for j in done.values()), {
        i: (j["state"], j["reason"]) for i, j in done.items()
    }
    assert sorted(out.read_text().split()) == sorted(ids)


def test_killing_slurmctld_moves_its_jobs_within_30_s_and_each_finishes_once(
    up: Up, tmp_path: Path, slurm_cluster: SlurmCluster
) -> None:
    def resume_nodes() -> object:
        # A controller killed with SIGKILL restarts from state saved a moment earlier and may hand out a job id a
        # node still runs: Slurm drains that node ("Duplicate jobid"). Leave the cluster whole for the next test.
        env = {**os.environ, "SLURM_CONF": slurm_cluster.conf}
        return subprocess.run(["scontrol", "update", "nodename=ALL", "state=resume"], capture_output=True, env=env)

    lose_site_and_check(
        up,
        tmp_path / "ran",
        ["pkill", "-9", "-x", "slurmctld"],
        ["bash", str(SERVICES), "up", "slurm"],
        "hpc-slurm",
        devices=0,
        after_return=resume_nodes,
    )


def test_killing_the_ray_head_moves_its_jobs_within_30_s_and_each_finishes_once(up: Up, tmp_path: Path) -> None:
    lose_site_and_check(
        up,
        tmp_path / "ran",
        ["pkill", "-9", "-f", "ray/core/src/ray/(gcs/gcs_server|raylet/raylet)"],
        ["bash", "-c", f"bash {SERVICES} down ray; bash {SERVICES} up ray"],
        "ai-ray",
        devices=1,
    )


# -- the broker itself restarted -------------------------------------------------------------------------------


def test_broker_killed_while_slurm_and_ray_jobs_run_loses_and_doubles_nothing(up: Up, tmp_path: Path) -> None:
    api = up.client()
    out = tmp_path / "ran"
    ids = [
        submit(api, job(f"s-{k}", f"sleep 4; echo $SUANLI_JOB_ID >> {out}", constraints={"sites": ["hpc-slurm"]}))
        for k in range(3)
    ] + [
        submit(
            api,
            job(
                f"r-{k}", f"sleep 4; echo $SUANLI_JOB_ID >> {out}", "ai-inference", 1, constraints={"sites": ["ai-ray"]}
            ),
        )
        for k in range(2)
    ]
    until(api, ids, lambda j: j["state"] in ("running", *FINAL), timeout_s=60)
    up.kill()
    time.sleep(1)
    up.start()
    api = up.client()
    done = until(api, ids, finished, timeout_s=90)
    assert all(j["state"] == "succeeded" and j["attempts"] == 1 for j in done.values()), done
    assert sorted(out.read_text().split()) == sorted(ids)
