"""Site health from the back-ends' own answers: healthy, degraded, unreachable.

Every PROBE_S each site is asked for its capacity, all sites at once in worker threads, each answer bounded by
the back-end's own timeout (a few seconds) and by PROBE_TIMEOUT_S here; the loop never waits for a probe. A
site whose call fails is degraded at once; one that has given no good answer for UNREACHABLE_AFTER_S is
unreachable, and the broker moves its jobs elsewhere. A site that answers again is healthy again (its probes
and its attempts' status calls both count). Bookkeeping only: the broker decides what the changes mean."""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from suanli.backends.base import Backend, BackendError, PoolCapacity

log = logging.getLogger("suanli.broker")

PROBE_S = 2.0
PROBE_TIMEOUT_S = 8.0
UNREACHABLE_AFTER_S = 8.0


class Health(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"  # its last answer was an error, or some of its nodes are down
    UNREACHABLE = "unreachable"  # no good answer for UNREACHABLE_AFTER_S: its jobs are placed elsewhere


@dataclass
class SiteHealth:
    site: str
    state: Health = Health.HEALTHY
    since: float = 0.0  # unix time of the last change of state
    last_ok: float | None = None  # unix time of the last good answer
    message: str = ""
    capacity: list[PoolCapacity] = field(default_factory=list)

    def view(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "since": self.since,
            "last_ok": self.last_ok,
            "message": self.message,
        }


@dataclass(frozen=True)
class Change:
    site: str
    before: Health
    after: Health
    message: str


class HealthTracker:
    def __init__(
        self,
        backends: dict[str, Backend],
        clock: Callable[[], float] = time.time,
        probe_s: float = PROBE_S,
        unreachable_after_s: float = UNREACHABLE_AFTER_S,
    ) -> None:
        self.backends = backends
        self.clock = clock
        self.probe_s = probe_s
        self.unreachable_after_s = unreachable_after_s
        now = clock()
        self.sites = {s: SiteHealth(s, since=now, last_ok=now) for s in backends}
        self._last_probe = float("-inf")
        self._pool = cf.ThreadPoolExecutor(max_workers=max(1, len(backends)), thread_name_prefix="suanli-probe")
        self._inflight: dict[str, tuple[float, cf.Future[list[PoolCapacity]]]] = {}  # site -> (sent, answer)
        self._suspect: set[str] = set()

    @property
    def suspect(self) -> frozenset[str]:
        """Sites whose last call failed (or that are unreachable): the loop leaves them to the probes, which run
        beside it, instead of waiting on a timeout per call in every tick."""
        return frozenset(self._suspect)

    @property
    def unreachable(self) -> frozenset[str]:
        return frozenset(s for s, h in self.sites.items() if h.state == Health.UNREACHABLE)

    def probe(self) -> list[Change]:
        """Collect the answers of the capacity probes sent earlier and send new ones; never waits. A probe still
        unanswered after PROBE_TIMEOUT_S counts as a failure (once per round) and is not sent twice."""
        now = self.clock()
        changes = []
        for site, (sent, future) in list(self._inflight.items()):
            if future.done():
                del self._inflight[site]
                try:
                    capacity = future.result()
                except BackendError as exc:
                    changes += self.failed(site, str(exc))
                except Exception as exc:  # a bug in a back-end must not stop the broker: the site is suspect
                    log.exception("probe of %s", site)
                    changes += self.failed(site, f"{type(exc).__name__}: {exc}")
                else:
                    self.sites[site].capacity = capacity
                    changes += self.answered(site, _down_note(capacity))
            elif now - sent >= PROBE_TIMEOUT_S:
                changes += self.failed(site, f"no answer to a capacity probe for {now - sent:.0f} s")
        if now - self._last_probe >= self.probe_s:
            self._last_probe = now
            for site, backend in self.backends.items():
                if site not in self._inflight:
                    self._inflight[site] = (now, self._pool.submit(backend.capacity))
        return changes

    def answered(self, site: str, note: str = "") -> list[Change]:
        """A good answer from the site (a probe or any other call)."""
        h = self.sites[site]
        h.last_ok = self.clock()
        self._suspect.discard(site)
        return self._set(h, Health.DEGRADED if note else Health.HEALTHY, note)

    def failed(self, site: str, message: str) -> list[Change]:
        """A failed call to the site."""
        h = self.sites[site]
        self._suspect.add(site)
        silent = self.clock() - (h.last_ok if h.last_ok is not None else h.since)
        if silent >= self.unreachable_after_s:
            return self._set(h, Health.UNREACHABLE, f"no good answer for {silent:.0f} s: {message}")
        return self._set(h, Health.DEGRADED if h.state != Health.UNREACHABLE else h.state, message)

    def _set(self, h: SiteHealth, state: Health, message: str) -> list[Change]:
        before = h.state
        h.message = message
        if state == before:
            return []
        h.state, h.since = state, self.clock()
        log.warning("site %s is %s (was %s): %s", h.site, state.value, before.value, message or "answers again")
        return [Change(h.site, before, state, message)]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _down_note(capacity: list[PoolCapacity]) -> str:
    """A site that answers but has pools with nothing at all to offer (every node down or drained) is degraded."""
    dead = [c.pool for c in capacity if c.cpus_total == 0 and c.devices_total == 0]
    return f"pools with no usable node: {', '.join(dead)}" if dead else ""
