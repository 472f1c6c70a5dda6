"""Metering a finished attempt: its real runtime, and the energy, carbon and money of that runtime on its pool
by the same estimators that quoted it (the hardware-hour price over the run, electricity over the tariff
periods it crossed, the site's grid carbon less its green share)."""

from __future__ import annotations

import json
from typing import Any

from suanli.energy.run import SiteEnergyCurves, run_energy
from suanli.estimate.runtime import job_shape
from suanli.hardware.catalog import Catalog
from suanli.spec.job import JobSpec
from suanli.spec.network import NetworkSpec
from suanli.store.models import Attempt


def meter(
    network: NetworkSpec, catalog: Catalog, spec: JobSpec, attempt: Attempt, curves: SiteEnergyCurves
) -> dict[str, Any]:
    """Usage of a finished attempt, with its site's price and carbon curves."""
    started = attempt.started_at or attempt.created_at
    finished = attempt.finished_at or started
    runtime_s = max(0.0, (finished - started).total_seconds())
    site = network.site(attempt.site)
    pool = next(p for p in site.pools if p.id == attempt.pool)
    device = catalog.get(pool.hardware)
    e = run_energy(spec.workload, pool, device, job_shape(spec, device), curves, started, runtime_s)
    estimate = json.loads(attempt.estimate or "{}")
    return {
        "runtime_s": round(runtime_s, 3),
        "energy_kwh": e.energy_kwh,
        "cost_cny": round(e.cost_cny, 6),
        "compute_cost_cny": round(e.compute_cost_cny, 6),
        "energy_cost_cny": round(e.energy_cost_cny, 6),
        "carbon_kg": e.carbon_kg,
        "site": attempt.site,
        "pool": attempt.pool,
        "hardware": attempt.hardware,
        "estimated": estimate,
    }
