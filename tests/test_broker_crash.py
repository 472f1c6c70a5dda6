"""The broker never loses a job and never runs one twice: 50 jobs submitted to a real `suanli up`, the broker
killed with SIGKILL while they run, started again — and every job finishes exactly once. On SQLite and on a
real PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

JOBS = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Up:
    """A `suanli up` process on a home directory, started and killed like a user (or a crash) would."""

    def __init__(self, home: Path, port: int, db: str | None) -> None:
        self.home, self.port, self.db = home, port, db
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "suanli", "up", "--port", str(self.port), "--poll", "0.1"]
        if self.db:
            cmd += ["--db", self.db]
        env = {**os.environ, "SUANLI_HOME": str(self.home)}
        log = (self.home / "up.log").open("ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("suanli up did not come up:\n" + (self.home / "up.log").read_text()[-3000:])

    def client(self) -> httpx.Client:
        """An HTTP client with the admin token this instance wrote."""
        headers = {"Authorization": "Bearer " + (self.home / "admin.token").read_text().strip()}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)  # the broker only: its jobs run in their own sessions
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


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
