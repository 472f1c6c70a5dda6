"""/v1/jobs: submit (idempotent), list, get, cancel, logs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from suanli.api.auth import Caller, caller
from suanli.api.errors import ApiError
from suanli.api.views import job_detail, job_summary
from suanli.errors import Problem, SpecError
from suanli.estimate.candidates import check_references
from suanli.spec.job import JobSpec
from suanli.spec.loader import parse_json_model, parse_model, read_document
from suanli.store.jobs import current_attempt, get_job, list_jobs, transition
from suanli.store.models import Job
from suanli.store.states import TERMINAL, JobState

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


async def read_spec(request: Request) -> JobSpec:
    """The body as a job spec, YAML or JSON; every problem reported with its field and line."""
    state = request.app.state.suanli
    body = await request.body()
    if len(body) > state.max_body_bytes:
        raise ApiError(413, "too_large", f"body of {len(body)} bytes; at most {state.max_body_bytes}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_body", "body is not UTF-8 text") from None
    if "yaml" in request.headers.get("content-type", ""):
        data, lines = read_document(text, "request.yaml", "job spec")
        return parse_model(JobSpec, data, "request.yaml", lines, "job spec")
    return parse_json_model(JobSpec, text, "request.json", "job spec")


def validate_for_network(request: Request, spec: JobSpec, submitted: datetime) -> None:
    state = request.app.state.suanli
    check_references(spec, state.network, state.catalog, "request body")
    deadline = spec.deadline_at(submitted)
    if deadline is not None and deadline <= submitted:
        raise SpecError(
            [
                Problem(
                    "the deadline is in the past",
                    "deadline",
                    given=spec.deadline,
                    accepted="a time after now, or a relative '+48h'",
                )
            ],
            kind="job spec",
        )


@router.post("", status_code=201)
async def submit(
    request: Request,
    who: Annotated[Caller, Depends(caller)],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Submit a job spec (JSON, or YAML with a YAML content type). A retry with the same Idempotency-Key returns
    the job the first request created."""
    spec = await read_spec(request)
    submitted = datetime.now(UTC)
    validate_for_network(request, spec, submitted)
    state = request.app.state.suanli
    view, created = await state.submissions.submit(who.tenant_id, spec, idempotency_key, submitted)
    headers = {"Idempotent-Replayed": "false" if created else "true", "Location": f"/v1/jobs/{view['id']}"}
    return JSONResponse(view, status_code=201 if created else 200, headers=headers)


@router.get("")
def list_(
    who: Annotated[Caller, Depends(caller)],
    request: Request,
    state: Annotated[list[str] | None, Query()] = None,
    site: str | None = None,
    name: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    """The caller's jobs, newest first; filter by state (repeatable), site and name; page with `cursor`."""
    known = {s.value for s in JobState}
    for value in state or []:
        if value not in known:
            raise ApiError(
                422, "invalid_request", f"unknown state {value!r}; accepted: {', '.join(sorted(known))}", "state"
            )
    st = request.app.state.suanli
    with st.store.read() as s:
        if cursor is not None and get_job(s, cursor, who.scope) is None:
            raise ApiError(
                400,
                "invalid_cursor",
                f"cursor {cursor!r} names no job of yours; pass a next_cursor from a page",
                "cursor",
            )
        jobs = list_jobs(s, who.scope, state or (), site, name, limit, cursor)
        views = [job_summary(j) for j in jobs]
    return {"jobs": views, "next_cursor": views[-1]["id"] if len(views) == limit else None}


def own_job(s: Any, job_id: str, who: Caller) -> Job:
    """The caller's job, or 404 — also for another tenant's job, whose existence is not revealed."""
    job = get_job(s, job_id, who.scope)
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id}")
    return job


@router.get("/{job_id}")
def get(job_id: str, who: Annotated[Caller, Depends(caller)], request: Request) -> dict[str, Any]:
    """A job with its placement, the reasons and runners-up of its latest decision, attempts and metered usage."""
    st = request.app.state.suanli
    with st.store.read() as s:
        job = own_job(s, job_id, who)
        return job_detail(s, job)


@router.delete("/{job_id}")
def cancel(job_id: str, who: Annotated[Caller, Depends(caller)], request: Request) -> dict[str, Any]:
    """Cancel a job: at once while queued; a running one is stopped at its site by the broker."""
    st = request.app.state.suanli
    with st.store.tx() as s:
        job = own_job(s, job_id, who)
        if JobState(job.state) in TERMINAL:
            raise ApiError(409, "already_finished", f"job {job_id} is {job.state}; nothing to cancel")
        if job.state == JobState.QUEUED.value:
            transition(s, job, JobState.CANCELLED, "cancelled by the tenant")
        else:
            job.cancel_requested = True
        view = job_summary(job)
    st.broker.wake()
    return view


@router.get("/{job_id}/logs", response_model=None)
def logs(
    job_id: str,
    who: Annotated[Caller, Depends(caller)],
    request: Request,
    tail: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    follow: bool = False,
) -> PlainTextResponse | StreamingResponse:
    """The current attempt's output (stderr lines prefixed); `tail=N` for the last lines, `follow=true` to stream
    until the job ends."""
    st = request.app.state.suanli
    from suanli.backends.base import BackendError

    def where_now() -> tuple[tuple[str, str] | None, bool]:
        """(attempt id and site of the current attempt, whether the job has ended)."""
        with st.store.read() as s:
            job = own_job(s, job_id, who)
            attempt = current_attempt(s, job)
            place = (attempt.id, attempt.site) if attempt is not None else None
            return place, JobState(job.state) in TERMINAL

    def read(place: tuple[str, str] | None, tail_lines: int | None) -> str:
        backend = st.backends.get(place[1]) if place else None
        if place is None or backend is None:
            return ""
        try:
            return backend.logs(place[0], tail_lines)
        except BackendError:
            return ""

    place, _ = where_now()
    if not follow:
        return PlainTextResponse(read(place, tail))

    async def stream():  # type: ignore[no-untyped-def]
        sent, current, first = 0, None, True
        while True:
            place, done = await asyncio.to_thread(where_now)
            if place != current:  # a new attempt (or the first one, once the job is placed) starts afresh
                current, sent = place, 0
            text = await asyncio.to_thread(read, place, None)
            if first and tail is not None and place is not None:
                lines = text.splitlines(keepends=True)
                sent = len("".join(lines[:-tail])) if len(lines) > tail else 0
                first = False
            if len(text) > sent:
                yield text[sent:]
                sent = len(text)
            if done:
                return
            await asyncio.sleep(0.5)

    return StreamingResponse(stream(), media_type="text/plain")
