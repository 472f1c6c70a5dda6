"""Tell the broker at once when a local job's process exits, instead of at its next poll.

One daemon thread waits on pidfds (Linux 5.3+) of every process it was given, with epoll; when one exits it
calls the listeners (the broker's wake). Without pidfd support the watcher does nothing and the broker's
poll interval bounds the delay as before."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections.abc import Callable

log = logging.getLogger("suanli.backends")


class ExitWatcher:
    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []
        self._fds: dict[int, int] = {}  # pidfd -> pid
        self._lock = threading.Lock()
        self._epoll: select.epoll | None = None
        self._thread: threading.Thread | None = None
        self.supported = hasattr(os, "pidfd_open") and hasattr(select, "epoll")

    def listen(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def add(self, pid: int) -> None:
        """Watch a process (a child or not); a process that is gone already wakes the listeners at once."""
        if not self.supported or not self._listeners:
            return
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._notify()
            return
        except OSError as exc:  # e.g. a kernel without pidfd: fall back to polling for good
            log.info("cannot watch process exits (%s); the broker polls instead", exc)
            self.supported = False
            return
        with self._lock:
            if self._epoll is None:
                self._epoll = select.epoll()
                self._thread = threading.Thread(target=self._run, name="suanli-exits", daemon=True)
                self._thread.start()
            self._fds[fd] = pid
            self._epoll.register(fd, select.EPOLLIN)

    def _notify(self) -> None:
        for callback in self._listeners:
            callback()

    def _run(self) -> None:
        assert self._epoll is not None
        while True:
            try:
                ready = self._epoll.poll(1.0)
            except InterruptedError:
                continue
            if not ready:
                continue
            with self._lock:
                for fd, _ in ready:
                    with contextlib.suppress(OSError):
                        self._epoll.unregister(fd)
                    os.close(fd)
                    self._fds.pop(fd, None)
            self._notify()
