"""The one interface every site back-end implements (local processes now; Slurm and Ray next).

The broker calls these from its control loop. Every call is keyed by the attempt id, which the broker writes
to its store before it calls `submit`, so that a broker that dies at any point and starts again can ask the
back-end what became of each attempt and never start one twice."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class AttemptState(StrEnum):
    PENDING = "pending"  # accepted by the site's scheduler, not running yet
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # exit code 0
    FAILED = "failed"  # non-zero exit code
    CANCELLED = "cancelled"
    LOST = "lost"  # the back-end knows nothing of it, or it died without an exit code


@dataclass(frozen=True)
class LaunchSpec:
    """What to run for one attempt of a job on one pool of a site."""

    attempt_id: str  # unique and stable: the idempotency key of the submission
    job_id: str
    pool: str
    hardware: str  # catalog id of the pool's hardware (sets the visible-devices variable's vendor)
    run: str  # shell command
    env: dict[str, str] = field(default_factory=dict)
    devices: int = 0
    cpus: int = 1
    memory_gb: float = 1.0
    nodes: int = 1
    time_limit_s: float | None = None


@dataclass(frozen=True)
class AttemptStatus:
    state: AttemptState
    exit_code: int | None = None
    started_at: float | None = None  # unix seconds, when known
    finished_at: float | None = None
    message: str = ""


@dataclass(frozen=True)
class PoolCapacity:
    pool: str
    devices_total: int
    devices_free: int
    cpus_total: int
    cpus_free: int
    memory_gb_total: float
    memory_gb_free: float


class BackendError(Exception):
    """The back-end refused or failed a request; `retryable` says whether trying again may help."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Backend(Protocol):
    """What every back-end does. Some also offer, and the broker uses when present: `watch(callback)` (call back
    when a job ends), `fence(attempt_ids)` (stop attempts without the site's scheduler, for failover), `prune()`
    (drop the files of attempts that ended long ago) and `close()`."""

    site: str

    def submit(self, spec: LaunchSpec) -> None:
        """Start the attempt; a second submit of the same attempt id is a no-op (idempotent)."""

    def status(self, attempt_id: str) -> AttemptStatus:
        """What became of the attempt; LOST when the back-end has no trace of it."""

    def cancel(self, attempt_id: str) -> None:
        """Stop the attempt if it still runs; cancelling a finished or unknown attempt is a no-op."""

    def logs(self, attempt_id: str, tail_lines: int | None = None) -> str:
        """The attempt's stdout and stderr so far (stderr lines prefixed), or its last lines."""

    def capacity(self) -> list[PoolCapacity]:
        """Total and free capacity of each pool of the site."""

    def attempts(self) -> list[str]:
        """Ids of every attempt the back-end knows that may still run (for reconciling with the store)."""


def tail(text: str, lines: int | None) -> str:
    """The last `lines` lines of a log (all of it for None)."""
    if lines is None:
        return text
    if lines <= 0:
        return ""
    return "".join(text.splitlines(keepends=True)[-lines:])


def merged_logs(out: str, err: str) -> str:
    """A job's stdout, then its stderr with each line prefixed `[stderr] ` (what `suanli logs` shows)."""
    if out and not out.endswith("\n") and err:
        out += "\n"
    return out + "".join(f"[stderr] {line}" for line in err.splitlines(keepends=True))


def pool_of(pools: dict[str, Any], site: str, pool_id: str) -> Any:
    """A site's pool by id, or the non-retryable error that names the pools it has."""
    pool = pools.get(pool_id)
    if pool is None:
        raise BackendError(f"site {site!r} has no pool {pool_id!r}; known: {', '.join(sorted(pools))}", retryable=False)
    return pool
