"""What a replay measured, per policy: the JSON contract of `suanli simulate`."""

from __future__ import annotations

from typing import Any

import numpy as np

from suanli.sim.engine import SimResult

BOUND_S = 10.0  # bounded slowdown: runs shorter than this count as this long (Feitelson's convention)


def metrics(r: SimResult) -> dict[str, Any]:
    ran = np.isfinite(r.start_s)
    done = ran & np.isfinite(r.end_s)
    wait = r.start_s[ran] - r.submit_s[ran]
    jct = r.end_s[done] - r.submit_s[done]
    run = r.runtime_s[done]
    slowdown = np.maximum(1.0, jct / np.maximum(run, BOUND_S)) if jct.size else np.zeros(0)
    first = float(np.min(r.submit_s)) if r.trace_jobs else 0.0
    last = float(np.max(r.end_s[done])) if done.any() else first
    makespan = max(0.0, last - first)
    busy = pool_busy(r, done)
    capacity_time = r.capacity_units * makespan
    per_pool = {
        k: (float(busy[m] / capacity_time[m]) if capacity_time[m] > 0 else 0.0) for m, k in enumerate(r.pool_keys)
    }
    misses = int(np.count_nonzero(done & np.isfinite(r.deadline_s) & (r.end_s > r.deadline_s)))

    return {
        **_headline(r, jct, wait, slowdown, makespan, busy, capacity_time, misses, done),
        "utilization_per_pool": per_pool,
        "per_site": per_site(r, done),
        "fairness": fairness(r, done),
    }


def _headline(
    r: SimResult,
    jct: np.ndarray,
    wait: np.ndarray,
    slowdown: np.ndarray,
    makespan: float,
    busy: np.ndarray,
    capacity_time: np.ndarray,
    misses: int,
    done: np.ndarray,
) -> dict[str, Any]:
    def pct(x: np.ndarray, q: float) -> float:
        return float(np.percentile(x, q)) if x.size else 0.0

    return {
        "policy": r.policy,
        "jobs": r.trace_jobs,
        "completed": int(done.sum()),
        "rejected": int(r.rejected.sum()),
        "avg_jct_s": float(jct.mean()) if jct.size else 0.0,
        "p50_jct_s": pct(jct, 50),
        "p99_jct_s": pct(jct, 99),
        "avg_wait_s": float(wait.mean()) if wait.size else 0.0,
        "avg_bounded_slowdown": float(slowdown.mean()) if slowdown.size else 0.0,
        "makespan_s": makespan,
        "utilization": float(busy.sum() / capacity_time.sum()) if capacity_time.sum() > 0 else 0.0,
        "cost_cny": float(r.cost_cny.sum()),
        "energy_kwh": float(r.energy_kwh.sum()),
        "carbon_kg": float(r.carbon_kg.sum()),
        "deadline_misses": misses,
        "sim_wall_s": r.sim_wall_s,
        "events": r.events,
        "scheduling_rounds": r.rounds,
        "seed": r.seed,
        "preemptions": r.preemptions,
        "lost_unit_hours": float((r.seg_units * r.seg_lost_s).sum() / 3600.0),
        "throughput_jobs": r.throughput_jobs,
    }


def pool_busy(r: SimResult, done: np.ndarray) -> np.ndarray:
    """Unit-seconds each pool was held: every run counts where it ran (a preempted job's runs too)."""
    busy = np.zeros(len(r.pool_keys))
    if r.seg_job.size:
        np.add.at(busy, r.seg_pool, r.seg_units * (r.seg_end - r.seg_start))
    else:  # a result without run records (built by hand): one run per completed job
        np.add.at(busy, r.pool[done], r.units[done] * r.runtime_s[done])
    return busy


def compare_to(results: list[dict[str, Any]], baseline: str = "agnostic") -> dict[str, float]:
    """Each policy's average JCT relative to the baseline's (0.6 = 40% shorter); empty without the baseline."""
    base = next((m for m in results if m["policy"] == baseline), None)
    if base is None or base["avg_jct_s"] <= 0:
        return {}
    return {m["policy"]: m["avg_jct_s"] / base["avg_jct_s"] for m in results}


def per_site(r: SimResult, done: np.ndarray) -> dict[str, dict[str, float]]:
    """Jobs, unit-hours, cost and carbon by site."""
    out: dict[str, dict[str, float]] = {}
    busy = pool_busy(r, done)
    for m, key in enumerate(r.pool_keys):
        site = key.split("/", 1)[0]
        here = done & (r.pool == m)
        row = out.setdefault(site, {"jobs": 0, "unit_hours": 0.0, "cost_cny": 0.0, "energy_kwh": 0.0, "carbon_kg": 0.0})
        row["jobs"] += int(here.sum())
        row["unit_hours"] += float(busy[m] / 3600.0)
        row["cost_cny"] += float(r.cost_cny[here].sum())
        row["energy_kwh"] += float(r.energy_kwh[here].sum())
        row["carbon_kg"] += float(r.carbon_kg[here].sum())
    return out


def fairness(r: SimResult, done: np.ndarray) -> dict[str, Any]:
    """Finish-time fairness (after Themis, Mahajan et al., NSDI 2020): for each job, rho = its JCT over the time it
    would take on its tenants' equal share of the network, 1/N of all units for N tenants (a job asking for more
    than that share runs proportionally slower there). A tenant's rho is the mean over its jobs; rho <= 1 means it
    did at least as well as with a static equal share. Reported per tenant, with the worst and the spread."""
    tenants = sorted(set(r.tenant)) if r.tenant else []
    if not tenants or not done.any():
        return {"per_tenant_rho": {}, "max_rho": 0.0, "min_rho": 0.0}
    share = r.capacity_units.sum() / len(tenants)
    jct = r.end_s - r.submit_s
    isolated = r.runtime_s * np.maximum(1.0, r.units / max(share, 1e-9))
    rho = np.where(done, jct / np.maximum(isolated, 1e-9), np.nan)
    tenant = np.array(r.tenant)
    per = {t: float(np.nanmean(rho[tenant == t])) for t in tenants if np.any(done & (tenant == t))}
    values = list(per.values())
    return {"per_tenant_rho": per, "max_rho": max(values), "min_rho": min(values)}
