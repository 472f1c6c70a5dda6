"""Start local jobs from a small helper process, so that the broker never forks itself.

Forking the broker (a large Python process) holds its interpreter lock until the child has exec'd: a millisecond
or more per job during which neither the API nor the loop can run. The helper is this file run as a script by
a fresh interpreter that imports nothing of suanli: it receives one request per job over a Unix socket — the
command, directory, environment, log paths and, as an SCM_RIGHTS file descriptor, the attempt's locked lock
file — starts the job and answers with its pid. The broker waits for the answer with the lock released.

The lock travels inside the message: until the helper has passed it on to the job, the message itself keeps
it held, and if the helper dies first the kernel drops the message and with it the lock, so the attempt reads
as never started (LOST), as it would had the broker died at that point.

When the broker goes away (end of file on the socket) the helper exits; jobs it started keep running, each the
leader of its own session."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys

MAX_MESSAGE = 1 << 20


def serve(sock: socket.socket) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the jobs: their exit codes go to files
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C at the broker's terminal is the broker's to handle
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 4)
        except ConnectionError:
            return
        if not data:
            for fd in fds:
                os.close(fd)
            return
        try:
            sock.send(json.dumps(start(json.loads(data), fds)).encode())
        except ConnectionError:
            return


def start(request: dict, fds: list[int]) -> dict:
    """Fork and exec the job. A plain fork of this small process is cheap and, unlike vfork or posix_spawn, does
    not wait for the child's exec; the few things the child does before exec cannot fail silently: an exec
    that fails leaves no exit-code file, so the attempt reads as died (LOST) and is placed again."""
    try:
        out = os.open(request["stdout"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except (OSError, KeyError, TypeError) as exc:
        for fd in fds:
            os.close(fd)
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    try:
        argv, cwd, env = request["argv"], request["cwd"], request["env"]
        pid = os.fork()
        if pid == 0:  # the child: never returns
            _exec_child(argv, cwd, env, out, err, fds)
        return {"ok": True, "pid": pid}
    except (OSError, KeyError, TypeError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        for fd in (out, err, *fds):
            os.close(fd)


def _exec_child(argv: list[str], cwd: str, env: dict[str, str], out: int, err: int, keep: list[int]) -> None:
    try:
        os.setsid()
        os.chdir(cwd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        for fd in keep:
            os.set_inheritable(fd, True)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the job's own shell must see its children exit
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _close_except(keep)
        os.execve(argv[0], argv, env)
    except BaseException as exc:  # report, and leave without running any of the parent's code
        with contextlib.suppress(OSError):
            os.write(2, f"suanli launcher: cannot start the job: {exc}\n".encode())
    finally:
        os._exit(127)


def _close_except(keep: list[int]) -> None:
    """Close every descriptor above 2 but the kept ones (the attempt's lock)."""
    low = 3
    for fd in sorted(keep):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, 1 << 16)


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
