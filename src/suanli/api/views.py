"""How jobs look on the wire."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from suanli.store.jobs import attempts_of, events_of
from suanli.store.models import Attempt, Job


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None


def job_summary(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "state": job.state,
        "tenant": job.tenant_id,
        "site": job.site,
        "pool": job.pool,
        "submitted_at": _iso(job.submitted_at),
        "updated_at": _iso(job.updated_at),
        "deadline_at": _iso(job.deadline_at),
        "priority": job.priority,
        "devices": job.devices,
        "attempts": job.attempts,
        "exit_code": job.exit_code,
        "reason": job.reason,
        "cancel_requested": job.cancel_requested,
        "usage": _json(job.usage),
    }


def attempt_view(a: Attempt) -> dict[str, Any]:
    return {
        "id": a.id,
        "number": a.number,
        "site": a.site,
        "pool": a.pool,
        "hardware": a.hardware,
        "state": a.state,
        "created_at": _iso(a.created_at),
        "started_at": _iso(a.started_at),
        "finished_at": _iso(a.finished_at),
        "exit_code": a.exit_code,
        "estimate": _json(a.estimate),
        "usage": _json(a.usage),
        "message": a.message,
    }


MAX_EVENTS = 200  # the latest events of a job shown with it (all stay in the store)


def job_detail(session: Session, job: Job) -> dict[str, Any]:
    out = job_summary(job)
    out["placement"] = {"site": job.site, "pool": job.pool} if job.site else None
    out["decision"] = _json(job.decision)
    out["attempt_list"] = [attempt_view(a) for a in attempts_of(session, job.id)]
    out["events"] = [
        {"at": _iso(e.at), "kind": e.kind, "from": e.from_state, "to": e.to_state, "data": _json(e.data)}
        for e in events_of(session, job.id)[-MAX_EVENTS:]
    ]
    out["spec"] = _json(job.spec)
    return out
