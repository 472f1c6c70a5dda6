"""Group commit for submissions: one writer thread stores the jobs of many concurrent submit requests in one
transaction.

A submission is durable when its response is sent, so each one needs a commit; taken one by one, the commits,
the session set-up and the hop to a worker thread per request cost more than the job itself. The writer takes
whatever requests are waiting (up to MAX_BATCH), checks their idempotency keys and quotas together, writes
them in one transaction and answers each request. Under light load a batch is a single request and nothing
waits; under a burst the batches grow and the cost per job falls.

A problem with one submission (a quota) answers that request alone. A failure of the whole transaction (a
race on an idempotency key with another process) makes the writer store that batch's submissions one by one,
so that one conflict never fails the others."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from suanli.api.errors import ApiError
from suanli.api.views import job_summary
from suanli.spec.job import JobSpec
from suanli.store.db import Store
from suanli.store.jobs import submit_job
from suanli.store.models import Job, Tenant
from suanli.store.states import ACTIVE, JobState

log = logging.getLogger("suanli.api")

MAX_BATCH = 256  # submissions per transaction: bounds the latency a burst adds to its first request


@dataclass
class Submission:
    tenant_id: str
    spec: JobSpec
    idempotency_key: str | None
    submitted: datetime
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[tuple[dict[str, Any], bool]] = field(repr=False)

    def answer(self, result: tuple[dict[str, Any], bool] | None, error: BaseException | None = None) -> None:
        def settle() -> None:
            if self.future.done():  # the client went away and the request was cancelled
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)  # type: ignore[arg-type]

        self.loop.call_soon_threadsafe(settle)


class SubmissionWriter:
    """The writer thread and its queue. `submit` is awaited by request handlers."""

    def __init__(self, store: Store, on_created: Any = None) -> None:
        self.store = store
        self.on_created = on_created  # called (from the writer thread) after a batch created jobs
        self._queue: queue.SimpleQueue[Submission | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def submit(
        self, tenant_id: str, spec: JobSpec, idempotency_key: str | None, submitted: datetime
    ) -> tuple[dict[str, Any], bool]:
        """The stored job's summary and whether this request created it (False: an idempotent replay)."""
        self._ensure_started()
        loop = asyncio.get_running_loop()
        item = Submission(tenant_id, spec, idempotency_key, submitted, loop, loop.create_future())
        self._queue.put(item)
        return await item.future

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(10)
            self._thread = None

    # -- the writer thread -------------------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="suanli-submissions", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[Submission]) -> None:
        try:
            with self.store.tx() as s, s.no_autoflush:
                results = _store_batch(s, batch)
        except IntegrityError:
            results = None  # a concurrent writer took an idempotency key: store them one by one
        except Exception as exc:  # the store failed: every request in the batch gets the error
            for item in batch:
                item.answer(None, exc)
            return
        if results is None:
            results = []
            for item in batch:
                try:
                    with self.store.tx() as s, s.no_autoflush:
                        results.extend(_store_batch(s, [item]))
                except IntegrityError:
                    with self.store.read() as s:
                        job = s.scalar(_by_key(item.tenant_id, item.idempotency_key))
                        results.append((job_summary(job), False) if job is not None else _conflict(item))
                except Exception as exc:
                    results.append(exc)
        created = False
        for item, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                item.answer(None, result)
            else:
                created = created or result[1]
                item.answer(result)
        if created and self.on_created is not None:
            self.on_created()


def _by_key(tenant_id: str, key: str | None) -> Any:
    return select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)


def _conflict(item: Submission) -> ApiError:
    return ApiError(409, "conflict", f"Idempotency-Key {item.idempotency_key!r} is being used by another request")


def _store_batch(s: Session, batch: list[Submission]) -> list[tuple[dict[str, Any], bool] | BaseException]:
    """Store a batch in the session's transaction: replays, quota refusals and new jobs, in request order."""
    # Tenants are locked first (PostgreSQL; SQLite's writer holds the whole database) so that concurrent writers
    # see each other's keys and count each other against the quotas.
    tenant_ids = sorted({b.tenant_id for b in batch})
    tenants = {t.id: t for t in s.scalars(select(Tenant).where(Tenant.id.in_(tenant_ids)).with_for_update())}
    keyed = {(b.tenant_id, b.idempotency_key) for b in batch if b.idempotency_key is not None}
    existing: dict[tuple[str, str], Job] = {}
    if keyed:
        rows = s.scalars(select(Job).where(tuple_(Job.tenant_id, Job.idempotency_key).in_(list(keyed))))
        existing = {(j.tenant_id, j.idempotency_key): j for j in rows}  # type: ignore[misc]
    usage = _Usage(s, [t for t in tenants.values() if t.max_queued_jobs is not None or t.max_devices is not None])
    results: list[tuple[dict[str, Any], bool] | BaseException] = []
    for b in batch:
        key = (b.tenant_id, b.idempotency_key)
        if b.idempotency_key is not None and key in existing:  # a retry: the same job, whatever the quota says now
            results.append((job_summary(existing[key]), False))  # type: ignore[index]
            continue
        tenant = tenants.get(b.tenant_id)
        if tenant is None:
            results.append(ApiError(401, "unauthorized", "the token's tenant no longer exists"))
            continue
        refusal = usage.refuse(tenant, b.spec)
        if refusal is not None:
            results.append(refusal)
            continue
        job, _ = submit_job(s, b.tenant_id, b.spec, b.idempotency_key, b.submitted, flush=False)
        usage.add(tenant)
        if b.idempotency_key is not None:
            existing[key] = job  # type: ignore[index]
        results.append((job_summary(job), True))
    return results


class _Usage:
    """Queued jobs and devices in use of the quota-limited tenants of a batch, counted once and kept current."""

    def __init__(self, s: Session, limited: list[Tenant]) -> None:
        ids = [t.id for t in limited]
        self.queued: dict[str, int] = dict.fromkeys(ids, 0)
        self.devices: dict[str, int] = dict.fromkeys(ids, 0)
        if not ids:
            return
        for tenant_id, n in s.execute(
            select(Job.tenant_id, func.count())
            .where(Job.tenant_id.in_(ids), Job.state == JobState.QUEUED.value)
            .group_by(Job.tenant_id)
        ):
            self.queued[tenant_id] = int(n)
        for tenant_id, n in s.execute(
            select(Job.tenant_id, func.coalesce(func.sum(Job.devices), 0))
            .where(Job.tenant_id.in_(ids), Job.state.in_([x.value for x in ACTIVE]))
            .group_by(Job.tenant_id)
        ):
            self.devices[tenant_id] = int(n)

    def add(self, tenant: Tenant) -> None:
        if tenant.id in self.queued:
            self.queued[tenant.id] += 1

    def refuse(self, tenant: Tenant, spec: JobSpec) -> ApiError | None:
        if tenant.max_queued_jobs is not None and self.queued[tenant.id] >= tenant.max_queued_jobs:
            return ApiError(
                429,
                "quota_exceeded",
                f"tenant {tenant.name} has {tenant.max_queued_jobs} jobs queued, its "
                "limit (max_queued_jobs); wait for some to start or cancel some",
                "max_queued_jobs",
            )
        if tenant.max_devices is not None:
            wanted = spec.resources.devices
            if wanted > tenant.max_devices:
                return ApiError(
                    429,
                    "quota_exceeded",
                    f"the job asks for {wanted} devices; tenant "
                    f"{tenant.name} may use at most {tenant.max_devices} at once (max_devices)",
                    "resources.devices",
                )
            in_use = self.devices[tenant.id]
            if in_use + wanted > tenant.max_devices:
                return ApiError(
                    429,
                    "quota_exceeded",
                    f"tenant {tenant.name} uses {in_use} of its {tenant.max_devices} "
                    f"devices; this job needs {wanted} more (max_devices)",
                    "resources.devices",
                )
        return None
