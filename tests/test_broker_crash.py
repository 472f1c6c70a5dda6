"""The broker never loses a job and never runs one twice: 50 jobs submitted to a real `suanli up`, the broker
killed with SIGKILL while they run, started again — and every job finishes exactly once. On SQLite and on a
real PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from _up import Up, free_port

JOBS = 50


def run_crash_scenario(tmp_path: Path, db: str | None) -> None:
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "ran.txt"
    up = Up(home, free_port(), db)
    up.start()
    try:
        api = up.client()
        ids = []
        for k in range(JOBS):
            spec = {
                "name": f"once-{k}",
                "workload": "general",
                "resources": {"cpus": 8, "memory_gb": 8},
                "compute": {"walltime_h": 0.001},
                "run": f"sleep 1.5; echo $SUANLI_JOB_ID >> {out}",
            }
            r = api.post("/v1/jobs", json=spec, headers={"Idempotency-Key": f"once-{k}"})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        # wait until some run, then kill the broker in the middle of it all
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = [j["state"] for j in api.get("/v1/jobs", params={"limit": 1000}).json()["jobs"]]
            if states.count("running") >= 4:
                break
            time.sleep(0.1)
        assert "running" in states, states
        up.kill()
        time.sleep(0.5)
        up.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            jobs = api.get("/v1/jobs", params={"limit": 1000}).json()["jobs"]
            if all(j["state"] in ("succeeded", "failed", "cancelled", "rejected") for j in jobs):
                break
            time.sleep(0.25)
        by_id = {j["id"]: j for j in jobs}
        assert set(by_id) == set(ids)
        assert all(j["state"] == "succeeded" for j in jobs), [(j["id"], j["state"], j["reason"]) for j in jobs]
        lines = out.read_text().split()
        assert len(lines) == JOBS, f"{len(lines)} runs for {JOBS} jobs"
        assert set(lines) == set(ids)
        assert all(j["attempts"] == 1 for j in jobs)  # picked up again, never re-submitted
    finally:
        up.stop()


def test_sigkill_broker_sqlite_every_job_exactly_once(tmp_path: Path) -> None:
    run_crash_scenario(tmp_path, None)


def test_sigkill_broker_postgresql_every_job_exactly_once(tmp_path: Path, fresh_postgres: str) -> None:
    run_crash_scenario(tmp_path, fresh_postgres)


@pytest.mark.parametrize("signal_name", ["SIGINT"])
def test_ctrl_c_leaves_local_jobs_running_and_the_next_start_picks_them_up(tmp_path: Path, signal_name: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "ran.txt"
    up = Up(home, free_port(), None)
    up.start()
    try:
        api = up.client()
        spec = {
            "name": "survivor",
            "resources": {"cpus": 1},
            "compute": {"walltime_h": 0.001},
            "run": f"sleep 3; echo done >> {out}",
        }
        job_id = api.post("/v1/jobs", json=spec).json()["id"]
        deadline = time.monotonic() + 20
        while api.get(f"/v1/jobs/{job_id}").json()["state"] != "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        up.stop()  # Ctrl-C
        assert up.proc is not None and up.proc.returncode is not None
        up.start()
        deadline = time.monotonic() + 30
        while api.get(f"/v1/jobs/{job_id}").json()["state"] != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert api.get(f"/v1/jobs/{job_id}").json()["state"] == "succeeded"
        assert out.read_text().split() == ["done"]
    finally:
        up.stop()
