"""The broker's side of the launcher helper (see launcher.py): start it, send it requests, restart it if it died."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
from pathlib import Path

from suanli.backends import launcher

log = logging.getLogger("suanli.backends")

REPLY_TIMEOUT_S = 30.0


class LaunchRefused(Exception):
    """The helper could not start the job (fork or exec failed): nothing ran."""


class LauncherUnavailable(Exception):
    """The helper cannot be run here: the caller starts the job itself."""


class Launcher:
    def __init__(self, script: str = launcher.__file__) -> None:
        self.script = script  # the helper program (a test may give another)
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._broken = False

    def start(self, argv: list[str], cwd: Path, env: dict[str, str], stdout: Path, stderr: Path, fd: int) -> int | None:
        """Start `argv` with `fd` inherited; its pid, or None when the helper died with the request, so that
        whether the job started is unknown (the caller's lock file tells: held while the job runs).
        LaunchRefused when nothing ran; LauncherUnavailable when the helper could not be started (the request
        was not sent)."""
        request = json.dumps(
            {"argv": argv, "cwd": str(cwd), "env": env, "stdout": str(stdout), "stderr": str(stderr)}
        ).encode()
        with self._lock:
            for _ in range(2):  # a helper that died is started once more
                sock = self._connect()
                try:
                    socket.send_fds(sock, [request], [fd])
                except OSError:
                    self._drop()
                    continue
                try:
                    reply = sock.recv(65536)
                except OSError:
                    reply = b""
                if not reply:
                    # It died with the request: the job may or may not have started. Not LaunchRefused, which
                    # would allow a second start; the caller's `spawned` marker stays and the lock decides.
                    log.warning("the launcher helper died while starting a job")
                    self._drop()
                    return None
                answer = json.loads(reply)
                if not answer["ok"]:
                    raise LaunchRefused(answer["error"])
                return int(answer["pid"])
            raise LauncherUnavailable("the launcher helper keeps dying")

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        if self._broken:
            raise LauncherUnavailable("the launcher helper could not be started")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", self.script, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            ours.close()
            self._broken = True
            log.warning("cannot run the launcher helper (%s); jobs are started from the broker itself", exc)
            raise LauncherUnavailable(str(exc)) from exc
        finally:
            theirs.close()
        ours.settimeout(REPLY_TIMEOUT_S)
        self._sock = ours
        return ours

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
