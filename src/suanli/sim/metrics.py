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
    busy = np.zeros(len(r.pool_keys))
    np.add.at(busy, r.pool[done], r.units[done] * run)
    capacity_time = r.capacity_units * makespan
    per_pool = {
        k: (float(busy[m] / capacity_time[m]) if capacity_time[m] > 0 else 0.0) for m, k in enumerate(r.pool_keys)
    }
    misses = int(np.count_nonzero(done & np.isfinite(r.deadline_s) & (r.end_s > r.deadline_s)))

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
        "utilization_per_pool": per_pool,
        "cost_cny": float(r.cost_cny.sum()),
        "energy_kwh": float(r.energy_kwh.sum()),
        "carbon_kg": float(r.carbon_kg.sum()),
        "deadline_misses": misses,
        "sim_wall_s": r.sim_wall_s,
        "events": r.events,
        "scheduling_rounds": r.rounds,
    }
