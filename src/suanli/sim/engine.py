"""Discrete-event replay of a trace against a network, with the very scheduling core the live broker uses.

Events are arrivals, completions and the start times the scheduler reserved. At every event time the engine
builds a snapshot (the jobs waiting, the work running with its *planned* end, the energy curves from that
moment), calls `schedule`, and starts what it placed. The scheduler plans with what a user declared (a SWF
job's requested time); the job then runs for its true duration, as in the trace. Capacity is the scheduler's
own timeline, rebuilt from the running work at every event, so the simulator cannot over-commit a pool
without the scheduler doing so — and the engine checks that it does not.

Time 0 is the trace's first submission, placed at `start` (a real date, for tariffs and carbon curves)."""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from suanli.estimate.efficiency import Efficiency, default_efficiency
from suanli.hardware.catalog import Catalog
from suanli.schedule.core import Action, schedule
from suanli.schedule.estimates import estimate_block
from suanli.schedule.from_specs import efficiencies, pool_table, site_table
from suanli.schedule.policies import get_policy
from suanli.schedule.tables import OBJECTIVES, WORKLOADS, JobTable, RunningTable, Snapshot
from suanli.sim.throughput import Throughputs, pool_runtimes
from suanli.sim.traces import Trace
from suanli.spec.common import PRECISIONS
from suanli.spec.network import NetworkSpec

DEFAULT_START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # a Monday, 08:00 in China


@dataclass
class SimResult:
    policy: str
    trace_jobs: int
    submit_s: np.ndarray
    start_s: np.ndarray  # first start; NaN when never started
    end_s: np.ndarray  # completion
    pool: np.ndarray  # the pool it finished on; -1 when never placed
    rejected: np.ndarray  # bool
    reason: list[str]
    runtime_s: np.ndarray  # time it held its allocation, summed over its runs (preempted runs included)
    cost_cny: np.ndarray
    energy_kwh: np.ndarray
    carbon_kg: np.ndarray
    deadline_s: np.ndarray
    units: np.ndarray  # devices (or cores on CPU pools) held while running
    capacity_units: np.ndarray  # per pool
    pool_keys: list[str]
    tenant: list[str] = field(default_factory=list)
    sim_wall_s: float = 0.0
    events: int = 0
    rounds: int = 0
    peak_use: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per pool, the most units held at once
    seed: int | None = None
    preemptions: int = 0
    throughput_jobs: int = 0  # jobs whose speed came from a throughput matrix
    # every run of a job, one row each (a job preempted k times has k + 1): which pool, when, the units held, the
    # share of the job's work it did (kept), and the seconds it ran whose work was lost (to be done again)
    seg_job: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    seg_pool: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    seg_start: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seg_end: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seg_units: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seg_work: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seg_lost_s: np.ndarray = field(default_factory=lambda: np.zeros(0))


def allowed_pools(trace: Trace, hardware: list[str], pool_names: list[set[str]] | None = None) -> np.ndarray | None:
    """(N, M) which pools each job may use, from the trace's allowed hardware; None when all may. A name matches a
    pool when it is the pool's catalog id or one of `pool_names[m]` (e.g. the Alibaba model a pool was built from)."""
    if not any(trace.allowed_hardware):
        return None
    names = [{h} | (pool_names[m] if pool_names else set()) for m, h in enumerate(hardware)]
    out = np.ones((len(trace), len(hardware)), dtype=bool)
    cache: dict[tuple[str, ...], np.ndarray] = {}
    for i, allowed in enumerate(trace.allowed_hardware):
        if allowed:
            row = cache.get(allowed)
            if row is None:
                row = cache[allowed] = np.array([bool(n & set(allowed)) for n in names], dtype=bool)
            out[i] = row
    return out


def trace_jobs(trace: Trace, catalog: Catalog | None = None, eff: Efficiency | None = None) -> JobTable:
    """The trace as the scheduler's job table.

    - Jobs given as flops are planned by the estimator, and run as it estimates.
    - Jobs with a duration on a named reference hardware (and no requested time) become work: the duration times
      the reference's sustained rate for the job's precision mix (the workload's default), so they run faster or
      slower on other hardware exactly as the estimator says (a catalog is needed for this).
    - Other jobs with a duration are planned by their requested time (or their duration where none was
      requested) and run for their duration wherever they land."""
    n = len(trace)
    mix = np.zeros((n, len(PRECISIONS)))
    work = np.full(n, np.nan)
    flops_total = np.zeros(n)
    for k, p in enumerate(PRECISIONS):
        f = trace.flops.get(p.value)
        if f is not None:
            f = np.nan_to_num(np.asarray(f, dtype=np.float64))
            mix[:, k] = f
            flops_total += f
    has_flops = flops_total > 0
    mix[has_flops] /= flops_total[has_flops][:, None]
    work[has_flops] = flops_total[has_flops] / 1e12
    planned = np.where(np.isfinite(trace.requested_s) & (trace.requested_s > 0), trace.requested_s, trace.duration_s)
    walltime = np.where(has_flops, np.nan, planned)
    if catalog is not None:
        by_ref = _reference_work(trace, catalog, eff or default_efficiency(), has_flops)
        for i, (tflops, job_mix) in by_ref.items():
            work[i], mix[i], walltime[i], has_flops[i] = tflops, job_mix, np.nan, True
    tenants = sorted(set(trace.tenant))
    return JobTable(
        key=list(trace.job_id),
        tenant=np.array([tenants.index(t) for t in trace.tenant], dtype=np.int64),
        priority=np.asarray(trace.priority, dtype=np.int64),
        submit_s=np.asarray(trace.submit_s, dtype=np.float64),
        workload=np.array([WORKLOADS.index(next(x for x in WORKLOADS if x.value == w)) for w in trace.workload]),
        objective=np.full(n, OBJECTIVES.index(OBJECTIVES[0])),
        devices=np.asarray(trace.devices, dtype=np.int64),
        cpus=np.maximum(np.asarray(trace.cpus, dtype=np.int64), 1),
        memory_gb=np.nan_to_num(np.asarray(trace.memory_gb, dtype=np.float64), nan=0.0),
        nodes=np.maximum(np.asarray(trace.nodes, dtype=np.int64), 1),
        device_memory_gb=np.zeros(n),
        mix=mix,
        declares_precision=has_flops,
        work_tflops=work,
        walltime_s=walltime,
        memory_traffic_gb=np.zeros(n),
        deadline_s=np.asarray(trace.deadline_s, dtype=np.float64),
        budget_cny=np.full(n, np.inf),
        preemptible=np.asarray(trace.preemptible, dtype=bool),
        checkpoint_s=(
            np.full(n, np.inf) if trace.checkpoint_s is None else np.asarray(trace.checkpoint_s, dtype=np.float64)
        ),
        data_site=np.full((n, 1), -1, dtype=np.int64),
        data_gb=np.zeros((n, 1)),
    )


def _reference_work(
    trace: Trace, catalog: Catalog, eff: Efficiency, has_flops: np.ndarray
) -> dict[int, tuple[float, np.ndarray]]:
    """Work (1e12 ops) and precision mix of the jobs timed on a named reference hardware."""
    from suanli.spec.common import Workload
    from suanli.spec.job import DEFAULT_MIX

    out: dict[int, tuple[float, np.ndarray]] = {}
    for i, ref in enumerate(trace.reference_hardware):
        dur = float(trace.duration_s[i])
        if not ref or has_flops[i] or not math.isfinite(dur) or dur <= 0 or ref not in catalog:
            continue
        if math.isfinite(trace.requested_s[i]) and trace.requested_s[i] > 0:
            continue  # the user's estimate is what a scheduler would see: keep it planned by walltime
        device = catalog.get(ref)
        workload = Workload(trace.workload[i])
        job_mix = np.zeros(len(PRECISIONS))
        for p, share in DEFAULT_MIX[workload].items():
            job_mix[PRECISIONS.index(p)] = share
        share = eff.compute(workload, device.kind)
        secs = 0.0
        for k, p in enumerate(PRECISIONS):
            if job_mix[k] > 0:
                peak = device.capacity(p)
                if peak is None:
                    break
                secs += job_mix[k] / (peak * share)
        else:
            devices, nodes = int(trace.devices[i]), max(1, int(trace.nodes[i]))
            units = float(devices) if device.is_accelerator else float(trace.cpus[i]) / float(device.cores or 1)
            scaling = eff.scaling(workload, device.intra_node_link, max(1.0, units / nodes), nodes)
            out[i] = (dur * units * scaling / secs, job_mix)
    return out


def _take(jobs: JobTable, rows: np.ndarray, now: float) -> JobTable:
    """The rows waiting at `now`, with times made relative to it."""
    waiting = jobs.take(rows)
    return replace(waiting, submit_s=waiting.submit_s - now, deadline_s=waiting.deadline_s - now)


def simulate(
    trace: Trace,
    network: NetworkSpec,
    catalog: Catalog,
    policy: str,
    start: datetime = DEFAULT_START,
    slot_s: float = 60.0,
    horizon_s: float = 2 * 86400.0,
    eff: Efficiency | None = None,
    progress: Callable[[float], None] | None = None,
    round_s: float = 0.0,
    throughputs: Throughputs | None = None,
    seed: int | None = None,
    pool_names: dict[str, set[str]] | None = None,
) -> SimResult:
    """Replay `trace` on `network` under `policy`.

    round_s > 0 schedules on a fixed beat (like a scheduler's cycle) instead of at every event: faster on long
    traces, and jobs start up to one beat later. `throughputs` is a measured speed model for jobs with a job_type
    (see suanli.sim.throughput). `seed` orders jobs submitted at the same instant (drawn from it; None keeps the
    trace's order): the replay has no other randomness, so the same seed gives the same result. `pool_names` are
    extra names (pool key -> names) a trace's allowed hardware may use for a pool.

    Preemptions the scheduler decides are applied: the victim stops, keeps the work up to its last checkpoint
    (none without a checkpoint interval) and waits again with what is left."""
    t_wall = time.perf_counter()
    eff = eff or default_efficiency()
    pol = get_policy(policy)
    pools = pool_table(network, catalog, eff)
    names = [(pool_names or {}).get(k, set()) for k in pools.key]
    allowed = allowed_pools(trace, pools.hardware, names if pool_names else None)
    jobs = trace_jobs(trace, catalog, eff)
    matched = 0
    if throughputs is not None:
        measured, runs, matched = pool_runtimes(trace, pools.hardware, throughputs)
        if matched:
            allowed = runs if allowed is None else allowed & runs
            jobs = replace(jobs, pool_runtime_s=measured)
    jobs = replace(jobs, allowed_pool=allowed)
    # jobs whose true runtime is the scheduler's estimate on the pool they get (work, or a measured matrix)
    runs_as_estimated = np.isfinite(jobs.work_tflops)
    if jobs.pool_runtime_s is not None:
        runs_as_estimated |= np.isfinite(jobs.pool_runtime_s).any(axis=1)
    n, m = jobs.size, pools.size
    span = float(np.max(trace.submit_s)) if n else 0.0
    slots_total = math.ceil((span + 2 * horizon_s) / slot_s) + 2
    k_h = math.ceil(horizon_s / slot_s)
    # energy curves over the whole replay, sliced from the slot at or before each event
    full_sites = site_table(network, start, slot_s, slots_total)
    effs = efficiencies(eff)
    cap_units = np.where(pools.accelerator, pools.nodes * pools.devices_per_node, pools.nodes * pools.cpus_per_node)

    res = SimResult(
        pol.name,
        n,
        jobs.submit_s.copy(),
        np.full(n, np.nan),
        np.full(n, np.nan),
        np.full(n, -1),
        np.zeros(n, bool),
        [""] * n,
        np.zeros(n),
        np.zeros(n),
        np.zeros(n),
        np.zeros(n),
        jobs.deadline_s.copy(),
        np.zeros(n),
        cap_units.astype(np.float64),
        list(pools.key),
        tenant=list(trace.tenant),
        peak_use=np.zeros(m),
        seed=seed,
        throughput_jobs=matched,
    )
    if seed is None:
        order = np.argsort(jobs.submit_s, kind="stable")
    else:  # jobs submitted at the same instant enter the queue in an order drawn from the seed
        order = np.lexsort((np.random.default_rng(seed).random(n), jobs.submit_s))
    next_arrival = 0
    pending: list[int] = []
    running: dict[int, _Run] = {}
    completions: list[tuple[float, int, int]] = []  # (true end, job, run number): stale once the run was preempted
    run_no = np.zeros(n, dtype=np.int64)
    remaining = np.ones(n)  # share of each job's work still to do (below 1 after a preemption kept some)
    segments: list[tuple[int, int, float, float, float, float, float]] = []
    timers: list[float] = []  # reserved start times to wake up at
    in_use = np.zeros(m)
    capacity = pools.capacity  # (M, 3)
    used = np.zeros_like(capacity)
    all_demand = jobs.demand
    fits_somewhere = np.any(np.all(all_demand[:, None, :] <= capacity[None, :, :] + 1e-9, axis=2), axis=1)
    now = 0.0
    can_preempt = pol.preemption and bool(jobs.preemptible.any())
    tenants = sorted(set(trace.tenant)) or ["default"]  # the job table's tenant indices name these

    def stop(i: int, at: float, finished: bool) -> None:
        run = running.pop(i)
        held = at - run.start
        if finished:
            work, lost = remaining[i], 0.0
        else:  # preempted: the work up to its last checkpoint is kept, the rest is done again
            cp = jobs.checkpoint_s[i]
            kept = math.floor(held / cp) * cp if math.isfinite(cp) and cp > 0 else 0.0
            work = min(remaining[i], kept / run.full_s) if run.full_s > 0 else 0.0
            lost = held - kept
        remaining[i] -= work
        share = held / run.true_s if run.true_s > 0 else 1.0
        res.cost_cny[i] += run.cost * share
        res.energy_kwh[i] += run.energy * share
        res.carbon_kg[i] += run.carbon * share
        res.runtime_s[i] += held
        segments.append((i, run.pool, run.start, at, res.units[i], work, lost))
        in_use[run.pool] -= res.units[i]
        used[run.pool] -= run.demand

    while next_arrival < n or pending or running:
        candidates = []
        if next_arrival < n:
            candidates.append(jobs.submit_s[order[next_arrival]])
        while completions and completions[0][2] != run_no[completions[0][1]]:
            heapq.heappop(completions)  # a preempted run's completion
        if completions:
            candidates.append(completions[0][0])
        while timers and timers[0] <= now:
            heapq.heappop(timers)
        if timers:
            candidates.append(timers[0])
        if not candidates:  # jobs wait that nothing will ever let start
            for i in pending:
                res.rejected[i] = True
                res.reason[i] = "never found room: nothing left running or arriving"
            break
        now = max(now, min(candidates))
        if round_s > 0:  # scheduling rounds on a fixed beat: everything that happened since is decided together
            now = math.ceil(now / round_s - 1e-9) * round_s
        res.events += 1
        while completions and completions[0][0] <= now:
            end, i, k = heapq.heappop(completions)
            if k == run_no[i]:
                stop(i, end, finished=True)
                res.end_s[i] = end
        while next_arrival < n and jobs.submit_s[order[next_arrival]] <= now:
            i = int(order[next_arrival])
            next_arrival += 1
            if not fits_somewhere[i]:  # larger than every pool even when empty: it can never run
                res.rejected[i] = True
                res.reason[i] = "asks for more devices, CPUs or memory than any pool has in all"
                continue
            pending.append(i)
        if not pending:
            continue
        rows = np.array(pending)
        # A round can only start work that fits somewhere now; when no waiting job fits any pool's free capacity
        # (most arrivals behind a full machine), the round would change nothing and is skipped — unless the
        # policy may preempt and a waiting job outranks preemptible work that runs.
        free = capacity - used
        if not np.any(np.all(all_demand[rows][:, None, :] <= free[None, :, :] + 1e-9, axis=2)) and not (
            can_preempt and _may_preempt(jobs, rows, running)
        ):
            continue
        snap, run_keys = _snapshot(jobs, rows, pools, full_sites, effs, running, now, slot_s, k_h, remaining, tenants)
        dec = schedule(snap, pol)
        res.rounds += 1
        for pre in dec.preemptions:  # stop the victims first: the core counted their room as free
            for key in pre.victims:
                v = run_keys[key]
                stop(v, now, finished=False)
                run_no[v] += 1
                res.preemptions += 1
                pending.append(v)
        placed = np.flatnonzero(dec.action == Action.PLACE)
        true_runtime = dec.runtime_s
        if placed.size and not pol.speed_aware:
            # the policy planned as if every pool ran a job at the same speed; the job runs at its pool's speed
            est = estimate_block(snap, placed)
            true_runtime = dec.runtime_s.copy()
            true_runtime[placed] = est.runtime_s[np.arange(placed.size), dec.pool[placed]]
        still = []
        wake = math.inf  # the earliest reserved start: the round after it re-plans every reservation anyway
        for b in range(len(rows)):
            i = int(rows[b])
            action = Action(int(dec.action[b]))
            if action == Action.PLACE:
                pool = int(dec.pool[b])
                planned = float(dec.runtime_s[b])
                if runs_as_estimated[i] or not math.isfinite(trace.duration_s[i]):
                    true_run = float(true_runtime[b])
                else:
                    true_run = float(trace.duration_s[i]) * remaining[i]
                demand = snap.jobs.demand[b].copy()
                if not pools.accelerator[pool]:
                    demand[0] = 0.0
                if not math.isfinite(res.start_s[i]):
                    res.start_s[i] = now
                res.pool[i] = pool
                res.units[i] = demand[0] if pools.accelerator[pool] else demand[1]
                scale = true_run / planned if planned > 0 else 1.0
                running[i] = _Run(
                    pool,
                    now,
                    now + max(planned, 1.0),
                    demand,
                    true_run,
                    true_run / remaining[i] if remaining[i] > 0 else true_run,
                    float(dec.cost_cny[b]) * scale,
                    float(dec.energy_kwh[b]) * scale,
                    float(dec.carbon_kg[b]) * scale,
                )
                heapq.heappush(completions, (now + true_run, i, int(run_no[i])))
                in_use[pool] += res.units[i]
                used[pool] += demand
                res.peak_use[pool] = max(res.peak_use[pool], in_use[pool])
            elif action == Action.REJECT:
                res.rejected[i] = True
                res.reason[i] = f"rejected: reason bits {int(dec.reasons[b])}"
            else:
                if action == Action.RESERVE:
                    wake = min(wake, now + float(dec.start_s[b]))
                still.append(i)
        pending = still + [v for v in pending[len(rows) :]]  # victims stopped this round wait again
        if math.isfinite(wake) and (not timers or wake < timers[0]):
            heapq.heappush(timers, wake)
        if progress is not None and n:
            progress(next_arrival / n)
    if segments:
        seg = list(zip(*segments, strict=True))
        res.seg_job = np.array(seg[0], dtype=np.int64)
        res.seg_pool = np.array(seg[1], dtype=np.int64)
        res.seg_start, res.seg_end, res.seg_units, res.seg_work, res.seg_lost_s = (np.array(c) for c in seg[2:])
    res.sim_wall_s = time.perf_counter() - t_wall
    return res


@dataclass
class _Run:
    """A job's current run."""

    pool: int
    start: float
    planned_end: float  # what the scheduler believes (it plans the capacity timeline with this)
    demand: np.ndarray
    true_s: float  # how long this run takes to finish the job's remaining work
    full_s: float  # how long the whole job takes on this pool
    cost: float
    energy: float
    carbon: float


def _may_preempt(jobs: JobTable, rows: np.ndarray, running: dict[int, _Run]) -> bool:
    """Does any waiting job outrank running preemptible work (so a round could make room by preemption)?"""
    if not running:
        return False
    keys = np.fromiter(running, dtype=np.int64, count=len(running))
    victims = keys[jobs.preemptible[keys]]
    return bool(victims.size) and bool(jobs.priority[rows].max() > jobs.priority[victims].min())


def _snapshot(
    jobs: JobTable,
    rows: np.ndarray,
    pools,
    full_sites,
    effs,
    running: dict[int, _Run],
    now: float,
    slot_s: float,
    k_h: int,
    remaining: np.ndarray,
    tenants: list[str],
) -> tuple[Snapshot, dict[str, int]]:
    """The round's snapshot, and the running work's keys (as the core names preemption victims) -> job."""
    # curves start at the slot at or before now (off by under one slot); past the precomputed span the last
    # window is reused, which keeps the daily pattern of prices and carbon
    k0 = min(int(now // slot_s), full_sites.price_cum.shape[1] - k_h - 2)
    sites = replace(
        full_sites,
        price_cum=full_sites.price_cum[:, k0 : k0 + k_h + 1] - full_sites.price_cum[:, k0 : k0 + 1],
        carbon_cum=full_sites.carbon_cum[:, k0 : k0 + k_h + 1] - full_sites.carbon_cum[:, k0 : k0 + 1],
    )
    run_keys: dict[str, int] = {}
    if running:
        keys = np.fromiter(running, dtype=np.int64, count=len(running))
        runs = list(running.values())
        run_keys = {str(i): int(i) for i in keys}
        run = RunningTable(
            list(run_keys),
            np.array([r.pool for r in runs], dtype=np.int64),
            np.array([r.demand for r in runs]),
            np.array([r.start for r in runs]) - now,
            np.maximum(np.array([r.planned_end for r in runs]) - now, slot_s),
            jobs.priority[keys],
            jobs.preemptible[keys],
            jobs.checkpoint_s[keys],
            jobs.tenant[keys],
        )
    else:
        run = RunningTable.empty()
    waiting = _take(jobs, rows, now)
    left = remaining[rows]
    if np.any(left < 1.0):  # jobs back after a preemption plan only the work they have left
        waiting = replace(
            waiting,
            work_tflops=waiting.work_tflops * left,
            walltime_s=waiting.walltime_s * left,
            pool_runtime_s=None if waiting.pool_runtime_s is None else waiting.pool_runtime_s * left[:, None],
        )
    return Snapshot(waiting, pools, sites, effs, run, slot_s, tenants), run_keys
