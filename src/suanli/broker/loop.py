"""The broker's control loop: the store of record on one side, the sites' back-ends on the other, and the pure
scheduler in between.

Each tick: (1) reconcile — ask the back-ends what became of every attempt the store thinks is live, and record
it; (2) carry out cancellations; (3) schedule — snapshot the queue and the running work, call the scheduler,
record its decisions; (4) launch — hand placed jobs to their sites.

Exactly once across crashes: an attempt row (whose id is the back-end's idempotency key) is committed before
the back-end is called, a back-end's submit of a known attempt id is a no-op, and every state change re-reads
the job inside its own transaction and checks the lifecycle. A broker killed at any instant and started
again finds placed jobs and re-submits them (a no-op where they had started), and finds live attempts and
asks their back-ends about them."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select

from suanli.backends.base import AttemptState, AttemptStatus, Backend, BackendError, LaunchSpec
from suanli.broker.health import Change, Health, HealthTracker
from suanli.broker.metering import meter
from suanli.energy.run import SiteEnergyCurves
from suanli.hardware.catalog import Catalog
from suanli.schedule.core import Action, schedule
from suanli.schedule.explain import explain, ruled_out_many
from suanli.schedule.from_specs import PendingJob, RunningJob, build_snapshot
from suanli.spec.job import JobSpec
from suanli.spec.network import NetworkSpec
from suanli.store.db import Store
from suanli.store.jobs import add_event, current_attempt, current_attempt_id, open_attempt, preload, transition
from suanli.store.models import Attempt, Job, Tenant
from suanli.store.states import ACTIVE, JobState

log = logging.getLogger("suanli.broker")

EXPLAIN_REFRESH_S = 30.0  # how often the account of a job whose decision is unchanged is written again
EXPLAIN_PER_TICK = 256  # accounts of waiting jobs written per tick; placements and rejections always are
SCHEDULE_WINDOW = 500  # queued jobs a tick considers (by priority, then age) between full passes
FULL_PASS_S = 10.0  # how often a tick considers the whole queue: at least this, and at least
FULL_PASS_SHARE = 0.1  # ... so often that full passes take at most this share of the broker's time
MAX_ATTEMPTS = 3
STRAY_CHECK_S = 30.0  # how often the sites' lists of attempts are compared with the store
PRUNE_EVERY_S = 3600.0  # how often back-ends drop the files of attempts that ended long ago
LIVE_ATTEMPT = ("starting", "running")
FINISHED = (AttemptState.SUCCEEDED, AttemptState.FAILED, AttemptState.CANCELLED)
TIME_LIMIT_FACTOR = 3.0  # the site's time limit: this many times the estimated runtime ...
TIME_LIMIT_MIN_S = (
    3600.0  # ... and at least this  # a job whose site loses it this often fails instead of being placed again
)
BACKOFF_S = (2.0, 10.0, 30.0)


@dataclass
class TickStats:
    placed: int = 0
    started: int = 0
    finished: int = 0
    requeued: int = 0
    rejected: int = 0
    schedule_s: float = 0.0


@dataclass
class Broker:
    store: Store
    network: NetworkSpec
    catalog: Catalog
    backends: dict[str, Backend]
    policy: str = "objective"
    poll_s: float = 0.5
    min_tick_s: float = float(os.environ.get("SUANLI_MIN_TICK_S", "0.05"))
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _specs: dict[str, JobSpec] = field(default_factory=dict, repr=False)
    _curves: dict[str, SiteEnergyCurves] = field(default_factory=dict, repr=False)  # by site, see curves()
    _explained: dict[str, tuple[tuple[int, int, int], float]] = field(default_factory=dict, repr=False)
    _last_full_pass: float = field(default=float("-inf"), repr=False)
    _full_pass_s: float = field(default=0.0, repr=False)  # how long the last full pass took
    _health: HealthTracker | None = field(default=None, repr=False)
    _last_prune: float = field(default=float("-inf"), repr=False)
    _last_stray_check: float = field(default=float("-inf"), repr=False)
    _strays: dict[str, set[str]] = field(default_factory=dict, repr=False)  # by site: reported, still running
    _wake: threading.Event = field(default_factory=threading.Event, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    last_tick: TickStats = field(default_factory=TickStats)
    on_tick: Callable[[TickStats], None] | None = None

    # -- running the loop ----------------------------------------------------------------------------------

    def start(self) -> None:
        for backend in self.backends.values():  # back-ends that can tell when a job ends wake the loop
            watch = getattr(backend, "watch", None)
            if watch is not None:
                watch(self.wake)
        self._thread = threading.Thread(target=self._run, name="suanli-broker", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._health is not None:
            self._health.close()

    def _run(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            # Under a burst of submissions ticks would run back to back and starve the API of the GIL; a short
            # floor between ticks batches the burst into fewer, larger rounds.
            pause = self.min_tick_s - (time.monotonic() - last)
            if pause > 0:
                self._stop.wait(pause)
            self._wake.clear()
            last = time.monotonic()
            try:
                self.tick()
            except Exception:  # a failing tick is logged and retried on the next one; the loop never dies
                log.exception("broker tick failed")
                time.sleep(min(self.poll_s, 1.0))

    def tick(self) -> TickStats:
        stats = TickStats()
        self.prune()
        self.check_health(stats)
        self.reconcile(stats)
        self.cancel_requested()
        self.schedule_queue(stats)
        self.launch(stats)
        self.last_tick = stats
        if self.on_tick:
            self.on_tick(stats)
        return stats

    # -- helpers -------------------------------------------------------------------------------------------

    def spec(self, job: Job) -> JobSpec:
        cached = self._specs.get(job.id)
        if cached is None:
            cached = JobSpec.model_validate_json(job.spec)
            self._specs[job.id] = cached
        return cached

    def curves(self, site_id: str) -> SiteEnergyCurves:
        """A site's price and carbon curves, built once (for metering and for /v1/sites)."""
        if site_id not in self._curves:
            self._curves[site_id] = SiteEnergyCurves.of(self.network, self.network.site(site_id))
        return self._curves[site_id]

    def _backend(self, site: str) -> Backend | None:
        return self.backends.get(site)

    @property
    def health(self) -> HealthTracker:
        if self._health is None:
            self._health = HealthTracker(self.backends)
        return self._health

    def prune(self) -> None:
        """Let back-ends that keep files of finished attempts drop the old ones, at most every PRUNE_EVERY_S."""
        if time.monotonic() - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = time.monotonic()
        for site, backend in self.backends.items():
            prune = getattr(backend, "prune", None)
            if prune is not None:
                try:
                    if removed := prune():
                        log.info("site %s: removed %d old attempt directories", site, removed)
                except OSError as exc:
                    log.warning("site %s: pruning old attempts: %s", site, exc)

    # -- 0. site health and failover -----------------------------------------------------------------------

    def check_health(self, stats: TickStats) -> None:
        for change in self.health.probe():
            self._on_health_change(change, stats)

    def _on_health_change(self, change: Change, stats: TickStats) -> None:
        with self.store.tx() as s:
            add_event(
                s,
                "site-health",
                None,
                {"site": change.site, "from": change.before.value, "to": change.after.value, "why": change.message},
            )
        if change.after == Health.UNREACHABLE:
            self.failover(change.site, change.message, stats)
        elif change.before == Health.UNREACHABLE:
            self.fence_returned(change.site)

    def failover(self, site: str, why: str, stats: TickStats) -> None:
        """Move every live attempt of an unreachable site elsewhere. Each is fenced first where the back-end can
        (a Slurm job's script stops its command when told through the shared attempt directory, even with the
        controller gone): an attempt that turns out to have finished is recorded as finished, not run again."""
        with self.store.read() as s:
            live = [
                (a.id, a.job_id)
                for a in s.scalars(select(Attempt).where(Attempt.site == site, Attempt.state.in_(LIVE_ATTEMPT)))
            ]
        if not live:
            return
        outcomes = _fence(self._backend(site), [a for a, _ in live])
        with self.store.tx() as s, s.no_autoflush:
            rows = preload(s, Attempt, [a for a, _ in live]), preload(s, Job, [j for _, j in live])
            for attempt_id, job_id in live:
                outcome = outcomes[attempt_id]
                if outcome is not None and outcome.state in FINISHED:
                    self._apply_status(s, attempt_id, outcome, stats)
                    continue
                attempt, job = rows[0][attempt_id], rows[1][job_id]
                if attempt.state not in LIVE_ATTEMPT or JobState(job.state) not in ACTIVE:
                    continue
                fenced = (
                    "stopped there"
                    if outcome is not None
                    else "could not be stopped there (it stops itself if it reads its fence)"
                )
                reason = f"failover: site {site} is unreachable ({why}); attempt {attempt_id} {fenced}"
                attempt.state = "lost"
                attempt.message = reason
                attempt.finished_at = self.clock()
                transition(s, job, JobState.SITE_LOST, reason, {"attempt": attempt_id, "site": site})
                if job.cancel_requested:  # the tenant wanted it stopped: it is, as far as can be known
                    transition(s, job, JobState.CANCELLED, f"cancelled by the tenant; {reason}")
                    continue
                job.site = job.pool = None
                job.not_before = None  # placed again at once, elsewhere: the site is offline to the scheduler
                transition(s, job, JobState.QUEUED, f"failover: to be placed away from {site}")
                add_event(s, "failover", job.id, {"site": site, "attempt": attempt_id, "why": why, "fenced": fenced})
                stats.requeued += 1
            del rows

    def fence_returned(self, site: str) -> None:
        """A site is back: whatever it still runs or holds of attempts that were moved away is cancelled there,
        so that a job's effect happens once."""
        backend = self._backend(site)
        if backend is None:
            return
        try:
            running = set(backend.attempts())
        except BackendError as exc:
            log.warning("site %s is back but cannot list its attempts: %s", site, exc)
            return
        with self.store.read() as s:
            moved = [
                (a.id, a.job_id)
                for a in s.scalars(select(Attempt).where(Attempt.id.in_(list(running)), Attempt.state == "lost"))
            ]
        for attempt_id, job_id in moved:
            try:
                backend.cancel(attempt_id)
            except BackendError as exc:
                log.warning("cancel of moved attempt %s at %s: %s", attempt_id, site, exc)
                continue
            with self.store.tx() as s:
                add_event(s, "fenced", job_id, {"site": site, "attempt": attempt_id, "why": "the site is back"})

    # -- 1. reconcile --------------------------------------------------------------------------------------

    def reconcile(self, stats: TickStats) -> None:
        with self.store.read() as s:
            rows = s.scalars(select(Attempt).where(Attempt.state.in_(["starting", "running"])))
            live = [(a.id, a.site, a.job_id) for a in rows]
        answers: dict[str, AttemptStatus] = {}
        suspect = set(self.health.suspect)  # not answering (unreachable ones included): left to the probes
        for attempt_id, site, _ in live:
            backend = self._backend(site)
            if backend is None:
                answers[attempt_id] = AttemptStatus(AttemptState.LOST, message=f"site {site} has no back-end")
                continue
            if site in suspect:
                continue
            try:
                answers[attempt_id] = backend.status(attempt_id)
            except BackendError as exc:
                log.warning("status of %s at %s: %s", attempt_id, site, exc)
                suspect.add(site)  # one timeout per site and tick, not one per attempt
                for change in self.health.failed(site, str(exc)):
                    self._on_health_change(change, stats)
        changed = {a: st for a, st in answers.items() if st.state != AttemptState.PENDING}
        if changed:
            # One transaction for the whole batch, its rows fetched in bulk and flushed once at commit.
            with self.store.tx() as s, s.no_autoflush:
                # the session's identity map holds rows weakly: keep them referenced for the loop
                rows = preload(s, Attempt, list(changed)), preload(s, Job, [job for a, _, job in live if a in changed])
                for attempt_id, status in changed.items():
                    self._apply_status(s, attempt_id, status, stats)
                del rows
        self._report_strays(live)

    def _apply_status(self, s: Any, attempt_id: str, status: AttemptStatus, stats: TickStats) -> None:
        attempt = s.get(Attempt, attempt_id)
        if attempt is None or attempt.state not in ("starting", "running"):
            return
        job = s.get(Job, attempt.job_id)
        state = JobState(job.state)
        if state not in ACTIVE:  # e.g. cancelled meanwhile; the attempt is closed by the cancel path
            return
        if status.state in (AttemptState.PENDING,):
            return
        if status.state == AttemptState.RUNNING:
            if attempt.state != "running":
                attempt.state = "running"
                attempt.started_at = _ts(status.started_at) or self.clock()
            if state in (JobState.PLACED, JobState.STARTING):
                if state == JobState.PLACED:
                    transition(s, job, JobState.STARTING)
                transition(s, job, JobState.RUNNING)
            return
        attempt.finished_at = _ts(status.finished_at) or self.clock()
        attempt.started_at = attempt.started_at or _ts(status.started_at) or attempt.created_at
        attempt.exit_code = status.exit_code
        attempt.message = status.message or None
        if state == JobState.PLACED:
            transition(s, job, JobState.STARTING)
        if status.state in (AttemptState.SUCCEEDED, AttemptState.FAILED):
            attempt.state = status.state.value
            usage = meter(self.network, self.catalog, self.spec(job), attempt, self.curves(attempt.site))
            attempt.usage = json.dumps(usage)
            job.usage = attempt.usage
            job.exit_code = status.exit_code
            to = JobState.SUCCEEDED if status.state == AttemptState.SUCCEEDED else JobState.FAILED
            reason = None if to == JobState.SUCCEEDED else f"exit code {status.exit_code}"
            transition(s, job, to, reason, {"attempt": attempt.id, "exit_code": status.exit_code})
            stats.finished += 1
        elif status.state == AttemptState.CANCELLED and job.cancel_requested:
            attempt.state = "cancelled"
            transition(s, job, JobState.CANCELLED, "cancelled at the site")
        elif status.state == AttemptState.CANCELLED:
            # Stopped by the site without the tenant asking (an operator, or e.g. Slurm refusing a job id it
            # still holds after a controller crash): the site lost it, and it is placed again.
            attempt.state = "lost"
            self._requeue(
                s, job, JobState.SITE_LOST, f"site {attempt.site} cancelled attempt {attempt.id} without being asked"
            )
            stats.requeued += 1
        else:  # LOST
            attempt.state = "lost"
            self._requeue(
                s,
                job,
                JobState.SITE_LOST,
                f"site {attempt.site} lost attempt {attempt.id}: {status.message or 'no trace of it'}",
            )
            stats.requeued += 1

    def _requeue(self, s: Any, job: Job, via: JobState, reason: str) -> None:
        transition(s, job, via, reason)
        if job.attempts >= MAX_ATTEMPTS:
            transition(s, job, JobState.FAILED, f"{reason}; gave up after {job.attempts} attempts")
            return
        job.site = job.pool = None
        job.not_before = self.clock() + timedelta(seconds=BACKOFF_S[min(job.attempts, len(BACKOFF_S)) - 1])
        transition(s, job, JobState.QUEUED, reason)

    def _report_strays(self, live: list[tuple[str, str, str]]) -> None:
        """Attempts a back-end runs that the store does not know, or does not count as live, are reported (once
        each), not touched. Listing a site's attempts can be costly (Ray lists every job it kept): at most every
        STRAY_CHECK_S."""
        if time.monotonic() - self._last_stray_check < STRAY_CHECK_S:
            return
        self._last_stray_check = time.monotonic()
        known = {a for a, _, _ in live}
        for site, backend in self.backends.items():
            if site in self.health.suspect:
                continue
            try:
                running = set(backend.attempts())
            except BackendError:
                continue
            reported = self._strays.setdefault(site, set())
            reported &= running  # forget what has ended
            strays = sorted(running - known - reported)
            if not strays:
                continue
            with self.store.tx() as s:
                for a in strays:
                    row = s.get(Attempt, a)
                    if row is not None and row.state in LIVE_ATTEMPT:
                        continue  # became live after the snapshot of this tick
                    add_event(
                        s,
                        "stray-attempt",
                        row.job_id if row is not None else None,
                        {"site": site, "attempt": a, "store_state": row.state if row is not None else None},
                    )
                    reported.add(a)

    # -- 2. cancellations ----------------------------------------------------------------------------------

    def cancel_requested(self) -> None:
        with self.store.read() as s:
            wanted = [
                (j.id, j.attempts)
                for j in s.scalars(select(Job).where(Job.cancel_requested.is_(True)))
                if JobState(j.state) not in (JobState.CANCELLED, JobState.SUCCEEDED, JobState.FAILED, JobState.REJECTED)
            ]
        for job_id, _ in wanted:
            with self.store.read() as s:
                job = s.get(Job, job_id)
                attempt = current_attempt(s, job)
                site = attempt.site if attempt is not None and attempt.state in ("starting", "running") else None
                attempt_id = attempt.id if attempt is not None else None
            if site is not None and attempt_id is not None:
                if site in self.health.suspect:
                    continue  # asked again once the site answers; if it is lost, the failover cancels the job
                backend = self._backend(site)
                if backend is not None:
                    try:
                        backend.cancel(attempt_id)
                    except BackendError as exc:
                        log.warning("cancel %s at %s: %s", attempt_id, site, exc)
                        continue
            with self.store.tx() as s:
                job = s.get(Job, job_id)
                if JobState(job.state) in (JobState.CANCELLED, JobState.SUCCEEDED, JobState.FAILED, JobState.REJECTED):
                    continue
                attempt = current_attempt(s, job)
                if attempt is not None and attempt.state in ("starting", "running"):
                    attempt.state = "cancelled"
                    attempt.finished_at = self.clock()
                transition(s, job, JobState.CANCELLED, "cancelled by the tenant")

    # -- 3. schedule ---------------------------------------------------------------------------------------

    def snapshot_inputs(
        self, s: Any, now: datetime, window: int | None = None
    ) -> tuple[list[PendingJob], list[RunningJob]]:
        """The queue (its first `window` jobs by priority and age, or all) and the running work, for a snapshot.
        Only the columns the scheduler needs are read; a job's spec is parsed once and then cached."""
        q = (
            select(Job.id, Job.tenant_id, Job.submitted_at, Job.not_before)
            .where(Job.state == JobState.QUEUED.value, Job.cancel_requested.is_(False))
            .order_by(Job.priority.desc(), Job.submitted_at, Job.id)
        )
        queued = s.execute(q if window is None else q.limit(window)).all()
        missing = [row[0] for row in queued if row[0] not in self._specs]
        for i in range(0, len(missing), 500):
            for job_id, text in s.execute(select(Job.id, Job.spec).where(Job.id.in_(missing[i : i + 500]))):
                self._specs[job_id] = JobSpec.model_validate_json(text)
        pending = [
            PendingJob(job_id, self._specs[job_id], submitted, tenant)
            for job_id, tenant, submitted, not_before in queued
            if not_before is None or not_before <= now
        ]
        active = s.scalars(select(Job).where(Job.state.in_([x.value for x in ACTIVE]))).all()
        running = []
        known = {(site.id, pool.id) for site in self.network.sites for pool in site.pools}
        attempts = preload(s, Attempt, [i for i in map(current_attempt_id, active) if i])
        for j in active:
            a = attempts.get(current_attempt_id(j) or "")
            if a is None or (a.site, a.pool) not in known:  # e.g. a pool removed from the network file
                continue
            est = json.loads(a.estimate or "{}")
            started = a.started_at or a.created_at
            end = started + timedelta(seconds=float(est.get("runtime_s") or 3600.0))
            running.append(
                RunningJob(
                    a.id, a.site, a.pool, self.spec(j), started, max(end, now + timedelta(seconds=60)), j.tenant_id
                )
            )
        return pending, running

    def schedule_queue(self, stats: TickStats) -> None:
        # A tick looks at the head of the queue; a full pass over all of it runs every FULL_PASS_S (the way
        # Slurm's main scheduler and its backfill pass divide the work), so a deep queue does not make every
        # tick, and with it every job's start, as slow as the whole queue.
        now = self.clock()
        started = time.monotonic()
        full = started - self._last_full_pass >= max(FULL_PASS_S, self._full_pass_s / FULL_PASS_SHARE)
        with self.store.read() as s:
            pending, running = self.snapshot_inputs(s, now, None if full else SCHEDULE_WINDOW)
            if full:  # forget the specs of jobs that have ended
                self._last_full_pass = time.monotonic()
                keep = {p.id for p in pending} | set(s.scalars(select(Job.id).where(Job.state.in_(list(ACTIVE)))))
                self._specs = {k: v for k, v in self._specs.items() if k in keep}
        try:
            self._place(pending, running, now, full, stats)
        finally:
            if full:
                self._full_pass_s = time.monotonic() - started

    def _place(
        self, pending: list[PendingJob], running: list[RunningJob], now: datetime, full: bool, stats: TickStats
    ) -> None:
        if not pending:
            return
        t0 = time.perf_counter()
        snap = build_snapshot(self.network, self.catalog, pending, now, running, offline_sites=self.health.unreachable)
        dec = schedule(snap, self.policy)
        stats.schedule_s = time.perf_counter() - t0
        self._preempt(dec, snap)
        # A waiting job's account is written again only when its decision changes or has aged: re-explaining
        # a long queue on every tick would cost more than scheduling it.
        fresh = time.monotonic()
        signatures = {p.id: (int(dec.action[i]), int(dec.pool[i]), int(dec.wait[i])) for i, p in enumerate(pending)}
        final = [i for i, p in enumerate(pending) if signatures[p.id][0] in (Action.PLACE, Action.REJECT)]
        changed = [
            i
            for i, p in enumerate(pending)
            if signatures[p.id][0] not in (Action.PLACE, Action.REJECT)
            and (
                (last := self._explained.get(p.id)) is None
                or last[0] != signatures[p.id]
                or fresh - last[1] > EXPLAIN_REFRESH_S
            )
        ]
        stale = sorted(final + changed[:EXPLAIN_PER_TICK])  # the rest of a burst is explained in later ticks
        ruled = dict(zip(stale, ruled_out_many(snap, np.array(stale, dtype=np.int64)), strict=True))
        explained = self._explained if not full else {}
        for i, p in enumerate(pending):
            if i in ruled:
                explained[p.id] = (signatures[p.id], fresh)
            elif p.id in self._explained:
                explained[p.id] = self._explained[p.id]
        self._explained = explained
        with self.store.tx() as s, s.no_autoflush:
            quota = _DeviceQuota(s)
            rows = preload(s, Job, [pending[i].id for i in ruled])
            for i in ruled:
                job = rows.get(pending[i].id)
                if job is None or job.state != JobState.QUEUED.value or job.cancel_requested:
                    continue  # changed since the snapshot (cancelled): its decision no longer applies
                action = Action(int(dec.action[i]))
                account = explain(snap, dec, i, ruled[i])
                job.decision = json.dumps(account, default=str)
                if action == Action.PLACE and not quota.take(job):
                    job.reason = quota.why(job)
                    continue
                if action == Action.PLACE:
                    site, pool = snap.pools.key[int(dec.pool[i])].split("/", 1)
                    job.site, job.pool = site, pool
                    job.reason = None
                    estimate = {
                        k: account.get(k) for k in ("runtime_s", "cost_cny", "energy_kwh", "carbon_kg", "finish_s")
                    }
                    open_attempt(s, job, site, pool, snap.pools.hardware[int(dec.pool[i])], estimate)
                    transition(s, job, JobState.PLACED, None, {"site": site, "pool": pool})
                    stats.placed += 1
                elif action == Action.REJECT:
                    reasons = "; ".join(f"{k}: {', '.join(v)}" for k, v in account["ruled_out"].items()) or "no pool"
                    transition(s, job, JobState.REJECTED, f"no pool can run it: {reasons}")
                    stats.rejected += 1
                else:
                    job.reason = str(account.get("why") or "")
                    if action == Action.RESERVE:
                        job.reason = (
                            f"reserved on {account['pool']} in {account['start_s']:.0f} s: {account.get('why', '')}"
                        )

    def _preempt(self, dec: Any, snap: Any) -> None:
        for p in dec.preemptions:
            for attempt_id in p.victims:
                with self.store.tx() as s:
                    attempt = s.get(Attempt, attempt_id)
                    site = attempt.site if attempt is not None else None
                backend = self._backend(site) if site else None
                if backend is not None:
                    try:
                        backend.cancel(attempt_id)
                    except BackendError as exc:
                        log.warning("preempt %s: %s", attempt_id, exc)
                        continue
                with self.store.tx() as s:
                    attempt = s.get(Attempt, attempt_id)
                    job = s.get(Job, attempt.job_id)
                    if JobState(job.state) not in (JobState.STARTING, JobState.RUNNING):
                        continue
                    attempt.state = "preempted"
                    attempt.finished_at = self.clock()
                    transition(s, job, JobState.PREEMPTED, f"preempted for {snap.jobs.key[p.job]}")
                    job.site = job.pool = None
                    transition(s, job, JobState.QUEUED, "preempted; queued again")

    # -- 4. launch -----------------------------------------------------------------------------------------

    def launch(self, stats: TickStats) -> None:
        with self.store.read() as s:
            work = []
            placed = s.scalars(select(Job).where(Job.state == JobState.PLACED.value).order_by(Job.updated_at)).all()
            attempts = preload(s, Attempt, [i for i in map(current_attempt_id, placed) if i])
            for j in placed:
                a = attempts.get(current_attempt_id(j) or "")
                if a is not None:
                    estimate = json.loads(a.estimate or "{}")
                    work.append((j.id, a.id, a.site, a.pool, a.hardware, self.spec(j), a.number, estimate))
        if not work:
            return
        outcomes: list[tuple[str, str, str, BackendError | None]] = []
        suspect = self.health.suspect
        for job_id, attempt_id, site, pool, hardware, spec, number, estimate in work:
            backend = self._backend(site)
            error: BackendError | None = None
            if backend is None:
                error = BackendError(f"site {site} has no back-end", retryable=False)
            elif site in suspect:
                continue  # stays placed: handed over once the site answers, or moved by its failover
            else:
                try:
                    backend.submit(_launch_spec(attempt_id, job_id, pool, hardware, spec, number, estimate))
                except BackendError as exc:
                    error = exc
            outcomes.append((job_id, attempt_id, site, error))
        with self.store.tx() as s, s.no_autoflush:
            jobs, attempts = preload(s, Job, [o[0] for o in outcomes]), preload(s, Attempt, [o[1] for o in outcomes])
            for job_id, attempt_id, site, error in outcomes:
                job = jobs[job_id]
                if job.state != JobState.PLACED.value:
                    continue  # cancelled meanwhile: the cancel path stops what was started
                attempt = attempts[attempt_id]
                if error is None:
                    transition(s, job, JobState.STARTING, None, {"attempt": attempt_id})
                    stats.started += 1
                elif error.retryable:
                    attempt.state = "lost"
                    attempt.message = str(error)
                    job.site = job.pool = None
                    job.not_before = self.clock() + timedelta(seconds=BACKOFF_S[0])
                    transition(s, job, JobState.QUEUED, f"site {site} refused it for now: {error}")
                else:
                    attempt.state = "failed"
                    attempt.message = str(error)
                    transition(s, job, JobState.FAILED, f"site {site} cannot run it: {error}")


class _DeviceQuota:
    """Tenants' max_devices, enforced where devices are taken: at placement (submit only checks the request)."""

    def __init__(self, s: Any) -> None:
        limited = {t.id: t.max_devices for t in s.scalars(select(Tenant).where(Tenant.max_devices.is_not(None)))}
        self.limit = limited
        self.in_use: dict[str, int] = {t: 0 for t in limited}
        if limited:
            rows = s.execute(
                select(Job.tenant_id, func.sum(Job.devices))
                .where(Job.state.in_([x.value for x in ACTIVE]), Job.tenant_id.in_(list(limited)))
                .group_by(Job.tenant_id)
            )
            for tenant_id, devices in rows:
                self.in_use[tenant_id] = int(devices or 0)

    def take(self, job: Job) -> bool:
        limit = self.limit.get(job.tenant_id)
        if limit is None:
            return True
        if self.in_use[job.tenant_id] + job.devices > limit:
            return False
        self.in_use[job.tenant_id] += job.devices
        return True

    def why(self, job: Job) -> str:
        return (
            f"waiting for its tenant's device quota: {self.in_use[job.tenant_id]} of max_devices "
            f"{self.limit[job.tenant_id]} in use, this job needs {job.devices}"
        )


def _launch_spec(
    attempt_id: str, job_id: str, pool: str, hardware: str, spec: JobSpec, number: int, estimate: dict[str, Any]
) -> LaunchSpec:
    r = spec.resources
    env = dict(spec.env)
    if spec.checkpoint is not None and spec.checkpoint.path:
        env["SUANLI_CHECKPOINT_DIR"] = spec.checkpoint.path
        if number > 1:  # an attempt after one that was lost, failed over or preempted picks up where it stopped
            env["SUANLI_RESUME"] = "1"
    runtime = estimate.get("runtime_s")
    # The site's own scheduler gets a time limit from the estimate with a wide margin: it protects the site
    # from a runaway job without cutting short one the estimate merely underrated.
    limit = None if not runtime else max(TIME_LIMIT_MIN_S, TIME_LIMIT_FACTOR * float(runtime))
    return LaunchSpec(
        attempt_id=attempt_id,
        job_id=job_id,
        pool=pool,
        hardware=hardware,
        run=spec.run,
        env=env,
        devices=r.devices,
        cpus=r.cpus,
        memory_gb=r.memory_gb,
        nodes=r.nodes,
        time_limit_s=limit,
    )


def _fence(backend: Backend | None, attempt_ids: list[str]) -> dict[str, AttemptStatus | None]:
    """Stop attempts at a site that cannot be reached, where the back-end has a way: each one's final status
    (finished after all, or stopped: LOST), or None when nothing could be learnt."""
    fence = getattr(backend, "fence", None)
    if fence is not None:
        try:
            return dict(fence(attempt_ids))
        except (BackendError, OSError) as exc:
            log.warning("fence of %d attempts: %s", len(attempt_ids), exc)
    return dict.fromkeys(attempt_ids)


def _ts(unix: float | None) -> datetime | None:
    return None if unix is None else datetime.fromtimestamp(unix, UTC)
