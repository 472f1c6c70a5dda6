"""A real `suanli up` process for the tests that start, kill and restart the broker like a user or a crash."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Up:
    """A `suanli up` process on a home directory, started and killed like a user (or a crash) would."""

    def __init__(self, home: Path, port: int, db: str | None = None, network: Path | None = None) -> None:
        self.home, self.port, self.db, self.network = home, port, db, network
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "suanli", "up", "--port", str(self.port), "--poll", "0.1"]
        if self.db:
            cmd += ["--db", self.db]
        if self.network:
            cmd += ["--network", str(self.network)]
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
