"""Writes and reads of jobs, attempts and events. Every state change goes through `transition`, which checks
the lifecycle and appends the event in the same transaction."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from suanli.spec.job import JobSpec
from suanli.store.models import Attempt, Event, Job
from suanli.store.states import ACTIVE, JobState, check_transition


def now() -> datetime:
    return datetime.now(UTC)


def add_event(
    session: Session,
    kind: str,
    job_id: str | None = None,
    data: dict[str, Any] | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
) -> None:
    session.add(
        Event(
            at=now(),
            job_id=job_id,
            kind=kind,
            from_state=from_state,
            to_state=to_state,
            data=json.dumps(data, default=str) if data else None,
        )
    )


def transition(
    session: Session, job: Job, to: JobState, reason: str | None = None, data: dict[str, Any] | None = None
) -> None:
    check_transition(job.id, job.state, to)
    before = job.state
    job.state = to.value
    job.updated_at = now()
    if reason is not None:
        job.reason = reason
    add_event(
        session, "state", job.id, {"reason": reason, **(data or {})} if reason or data else None, before, to.value
    )


def submit_job(
    session: Session,
    tenant_id: str,
    spec: JobSpec,
    idempotency_key: str | None,
    submitted: datetime,
    flush: bool = True,
) -> tuple[Job, bool]:
    """Store a new queued job; with an idempotency key already used by this tenant, return that job instead.
    The bool says whether a job was created. With flush=False the caller has checked the key itself and the
    rows are written with the rest of its transaction (a key taken meanwhile fails the commit instead)."""
    if idempotency_key and flush:
        existing = session.scalar(select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == idempotency_key))
        if existing is not None:
            return existing, False
    job = Job(
        id="j_" + secrets.token_hex(8),
        tenant_id=tenant_id,
        name=spec.name,
        state=JobState.QUEUED.value,
        spec=spec.model_dump_json(exclude_defaults=False),
        idempotency_key=idempotency_key,
        priority=spec.priority,
        devices=spec.resources.devices,
        submitted_at=submitted,
        updated_at=submitted,
        deadline_at=spec.deadline_at(submitted),
        attempts=0,
    )
    session.add(job)
    if flush:
        try:
            session.flush()
        except IntegrityError:  # a concurrent submit with the same key won the race: return its job
            session.rollback()
            raise
    add_event(session, "submitted", job.id, {"tenant": tenant_id}, None, JobState.QUEUED.value)
    return job, True


def get_job(session: Session, job_id: str, tenant_id: str | None) -> Job | None:
    """A job, if it exists and the tenant may see it (None for tenant_id means an admin: any job)."""
    job = session.get(Job, job_id)
    if job is None or (tenant_id is not None and job.tenant_id != tenant_id):
        return None
    return job


def list_jobs(
    session: Session,
    tenant_id: str | None,
    state: Sequence[str] = (),
    site: str | None = None,
    name: str | None = None,
    limit: int = 100,
    after: str | None = None,
) -> list[Job]:
    """Newest first; `after` is the last id of the previous page."""
    q = select(Job)
    if tenant_id is not None:
        q = q.where(Job.tenant_id == tenant_id)
    if state:
        q = q.where(Job.state.in_(list(state)))
    if site:
        q = q.where(Job.site == site)
    if name:
        q = q.where(Job.name == name)
    if after:
        last = session.get(Job, after)
        if last is not None:
            q = q.where(
                (Job.submitted_at < last.submitted_at) | ((Job.submitted_at == last.submitted_at) & (Job.id < last.id))
            )
    q = q.order_by(Job.submitted_at.desc(), Job.id.desc()).limit(limit)
    return list(session.scalars(q))


def attempts_of(session: Session, job_id: str) -> list[Attempt]:
    return list(session.scalars(select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.number)))


def events_of(session: Session, job_id: str) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.job_id == job_id).order_by(Event.id)))


def queued_count(session: Session, tenant_id: str) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(Job).where(Job.tenant_id == tenant_id, Job.state == JobState.QUEUED.value)
        )
        or 0
    )


def devices_in_use(session: Session, tenant_id: str) -> int:
    return (
        session.scalar(
            select(func.coalesce(func.sum(Job.devices), 0)).where(
                Job.tenant_id == tenant_id, Job.state.in_([s.value for s in ACTIVE])
            )
        )
        or 0
    )


def open_attempt(session: Session, job: Job, site: str, pool: str, hardware: str, estimate: dict[str, Any]) -> Attempt:
    job.attempts += 1
    attempt = Attempt(
        id=f"{job.id}-a{job.attempts}",
        job_id=job.id,
        number=job.attempts,
        site=site,
        pool=pool,
        hardware=hardware,
        state="starting",
        created_at=now(),
        estimate=json.dumps(estimate),
    )
    session.add(attempt)
    return attempt


def preload(session: Session, model: type[Any], ids: Sequence[str], chunk: int = 500) -> dict[str, Any]:
    """Rows of `model` by primary key, fetched in a few IN queries and kept in the session's identity map, so
    that `session.get` on them afterwards costs no query (the broker handles hundreds of rows per tick)."""
    found: dict[str, Any] = {}
    unique = list(dict.fromkeys(ids))
    for i in range(0, len(unique), chunk):
        for row in session.scalars(select(model).where(model.id.in_(unique[i : i + chunk]))):
            found[row.id] = row
    return found


def current_attempt_id(job: Job) -> str | None:
    return f"{job.id}-a{job.attempts}" if job.attempts else None


def current_attempt(session: Session, job: Job) -> Attempt | None:
    attempt_id = current_attempt_id(job)
    return None if attempt_id is None else session.get(Attempt, attempt_id)
