"""The job lifecycle as an explicit state machine. An illegal transition is a bug and fails loudly."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"  # waiting for a decision (or a reserved start)
    PLACED = "placed"  # a pool is chosen; the attempt is being handed to the site
    STARTING = "starting"  # the site accepted the attempt; not running yet
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"  # can never run as asked (reasons in the decision)
    PREEMPTED = "preempted"  # stopped for higher-priority work; goes back to the queue
    SITE_LOST = "site-lost"  # the site lost it or went away; goes back to the queue


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.REJECTED})
ACTIVE = frozenset({JobState.PLACED, JobState.STARTING, JobState.RUNNING})

ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.PLACED, JobState.CANCELLED, JobState.REJECTED}),
    JobState.PLACED: frozenset(
        {JobState.STARTING, JobState.QUEUED, JobState.FAILED, JobState.CANCELLED, JobState.SITE_LOST}
    ),
    JobState.STARTING: frozenset(
        {
            JobState.RUNNING,
            JobState.SUCCEEDED,
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.SITE_LOST,
            JobState.PREEMPTED,
        }
    ),
    JobState.RUNNING: frozenset(
        {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.SITE_LOST, JobState.PREEMPTED}
    ),
    JobState.PREEMPTED: frozenset({JobState.QUEUED, JobState.CANCELLED}),
    JobState.SITE_LOST: frozenset({JobState.QUEUED, JobState.FAILED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
    JobState.REJECTED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A bug: code tried to move a job along an edge the lifecycle does not have."""

    def __init__(self, job_id: str, current: str, wanted: str) -> None:
        allowed = ", ".join(sorted(ALLOWED[JobState(current)])) or "none (terminal)"
        super().__init__(f"job {job_id}: illegal transition {current} -> {wanted}; allowed from {current}: {allowed}")


def check_transition(job_id: str, current: str, wanted: str) -> None:
    if JobState(wanted) not in ALLOWED[JobState(current)]:
        raise IllegalTransition(job_id, current, wanted)
