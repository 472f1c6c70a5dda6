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
from suanli.schedule.from_specs import efficiencies, pool_table, site_table
from suanli.schedule.tables import OBJECTIVES, WORKLOADS, JobTable, RunningTable, Snapshot
from suanli.sim.traces import Trace
from suanli.spec.common import PRECISIONS
from suanli.spec.network import NetworkSpec

DEFAULT_START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # a Monday, 08:00 in China


@dataclass
class SimResult:
    policy: str
    trace_jobs: int
    submit_s: np.ndarray
    start_s: np.ndarray  # NaN when never started
    end_s: np.ndarray
    pool: np.ndarray  # -1 when never placed
    rejected: np.ndarray  # bool
    reason: list[str]
    runtime_s: np.ndarray  # true runtime where it ran
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


def allowed_pools(trace: Trace, hardware: list[str]) -> np.ndarray | None:
    """(N, M) which pools each job may use, from the trace's allowed hardware (catalog ids); None when all may."""
    if not any(trace.allowed_hardware):
        return None
    ids = np.array(hardware)
    return np.array(
        [np.isin(ids, list(allowed)) if allowed else np.ones(len(ids), bool) for allowed in trace.allowed_hardware]
    )


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
        checkpoint_s=np.full(n, np.inf),
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
) -> SimResult:
    """Replay `trace` on `network` under `policy`. round_s > 0 schedules on a fixed beat (like a scheduler's cycle)
    instead of at every event: faster on long traces, and jobs start up to one beat later."""
    t_wall = time.perf_counter()
    eff = eff or default_efficiency()
    pools = pool_table(network, catalog, eff)
    jobs = replace(trace_jobs(trace, catalog, eff), allowed_pool=allowed_pools(trace, pools.hardware))
    runs_as_estimated = np.isfinite(jobs.work_tflops)  # their true runtime is the estimate on the pool they get
    n, m = jobs.size, pools.size
    span = float(np.max(trace.submit_s)) if n else 0.0
    slots_total = math.ceil((span + 2 * horizon_s) / slot_s) + 2
    k_h = math.ceil(horizon_s / slot_s)
    # energy curves over the whole replay, sliced from the slot at or before each event
    full_sites = site_table(network, start, slot_s, slots_total)
    effs = efficiencies(eff)
    cap_units = np.where(pools.accelerator, pools.nodes * pools.devices_per_node, pools.nodes * pools.cpus_per_node)

    res = SimResult(
        policy,
        n,
        jobs.submit_s.copy(),
        np.full(n, np.nan),
        np.full(n, np.nan),
        np.full(n, -1),
        np.zeros(n, bool),
        [""] * n,
        np.full(n, np.nan),
        np.zeros(n),
        np.zeros(n),
        np.zeros(n),
        jobs.deadline_s.copy(),
        np.zeros(n),
        cap_units.astype(np.float64),
        list(pools.key),
        tenant=list(trace.tenant),
        peak_use=np.zeros(m),
    )
    order = np.argsort(jobs.submit_s, kind="stable")
    next_arrival = 0
    pending: list[int] = []
    running: dict[int, tuple[int, float, float, np.ndarray]] = {}  # job -> (pool, start, planned end, demand)
    completions: list[tuple[float, int]] = []  # (true end, job)
    timers: list[float] = []  # reserved start times to wake up at
    in_use = np.zeros(m)
    capacity = pools.capacity  # (M, 3)
    used = np.zeros_like(capacity)
    all_demand = jobs.demand
    fits_somewhere = np.any(np.all(all_demand[:, None, :] <= capacity[None, :, :] + 1e-9, axis=2), axis=1)
    now = 0.0
    while next_arrival < n or pending or running:
        candidates = []
        if next_arrival < n:
            candidates.append(jobs.submit_s[order[next_arrival]])
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
            _, i = heapq.heappop(completions)
            pool, _, _, demand = running.pop(i)
            in_use[pool] -= res.units[i]
            used[pool] -= demand
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
        # (most arrivals behind a full machine), the round would change nothing and is skipped.
        free = capacity - used
        if not np.any(np.all(all_demand[rows][:, None, :] <= free[None, :, :] + 1e-9, axis=2)):
            continue
        snap = _snapshot(jobs, rows, pools, full_sites, effs, running, now, slot_s, k_h)
        dec = schedule(snap, policy)
        res.rounds += 1
        still = []
        wake = math.inf  # the earliest reserved start: the round after it re-plans every reservation anyway
        for b, i in enumerate(pending):
            action = Action(int(dec.action[b]))
            if action == Action.PLACE:
                pool = int(dec.pool[b])
                planned = float(dec.runtime_s[b])
                true_run = (
                    planned
                    if runs_as_estimated[i] or not math.isfinite(trace.duration_s[i])
                    else float(trace.duration_s[i])
                )
                demand = snap.jobs.demand[b].copy()
                if not pools.accelerator[pool]:
                    demand[0] = 0.0
                res.start_s[i] = now
                res.end_s[i] = now + true_run
                res.runtime_s[i] = true_run
                res.pool[i] = pool
                res.units[i] = demand[0] if pools.accelerator[pool] else demand[1]
                scale = true_run / planned if planned > 0 else 1.0
                res.cost_cny[i] = dec.cost_cny[b] * scale
                res.energy_kwh[i] = dec.energy_kwh[b] * scale
                res.carbon_kg[i] = dec.carbon_kg[b] * scale
                running[i] = (pool, now, now + max(planned, 1.0), demand)
                heapq.heappush(completions, (now + true_run, i))
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
        pending = still
        if math.isfinite(wake) and (not timers or wake < timers[0]):
            heapq.heappush(timers, wake)
        if progress is not None and n:
            progress(next_arrival / n)
    res.sim_wall_s = time.perf_counter() - t_wall
    return res


def _snapshot(
    jobs: JobTable, rows: np.ndarray, pools, full_sites, effs, running, now: float, slot_s: float, k_h: int
) -> Snapshot:
    # curves start at the slot at or before now (off by under one slot); past the precomputed span the last
    # window is reused, which keeps the daily pattern of prices and carbon
    k0 = min(int(now // slot_s), full_sites.price_cum.shape[1] - k_h - 2)
    sites = replace(
        full_sites,
        price_cum=full_sites.price_cum[:, k0 : k0 + k_h + 1] - full_sites.price_cum[:, k0 : k0 + 1],
        carbon_cum=full_sites.carbon_cum[:, k0 : k0 + k_h + 1] - full_sites.carbon_cum[:, k0 : k0 + 1],
    )
    if running:
        keys = list(running)
        r_pool = np.array([running[i][0] for i in keys], dtype=np.int64)
        r_start = np.array([running[i][1] for i in keys]) - now
        r_end = np.maximum(np.array([running[i][2] for i in keys]) - now, slot_s)
        r_demand = np.array([running[i][3] for i in keys])
        zeros = np.zeros(len(keys))
        run = RunningTable(
            [jobs.key[i] for i in keys],
            r_pool,
            r_demand,
            r_start,
            r_end,
            jobs.priority[keys],
            np.zeros(len(keys), bool),
            zeros + np.inf,
            jobs.tenant[keys],
        )
    else:
        run = RunningTable.empty()
    return Snapshot(_take(jobs, rows, now), pools, sites, effs, run, slot_s)
