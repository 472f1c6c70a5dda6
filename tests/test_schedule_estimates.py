"""The vectorised estimates of the scheduling core agree with the readable scalar estimator, pair by pair."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suanli.estimate.candidates import estimate_candidates
from suanli.hardware import builtin_catalog
from suanli.schedule.estimates import estimate_block, start_now_money
from suanli.schedule.from_specs import PendingJob, build_snapshot
from suanli.spec import JobSpec, load_job, load_network

ROOT = Path(__file__).resolve().parents[1]
NETWORK = load_network(str(ROOT / "examples" / "zhengzhou.yaml"))
CATALOG = builtin_catalog()
NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def compare(specs: list[JobSpec]) -> None:
    pending = [PendingJob(f"j{k}", s, NOW) for k, s in enumerate(specs)]
    snap = build_snapshot(NETWORK, CATALOG, pending, NOW, slot_s=600, horizon_s=30 * 86400)
    est = estimate_block(snap, np.arange(len(specs)))
    cost, carbon, energy = start_now_money(snap, est)
    for i, spec in enumerate(specs):
        scalar = {f"{c.site}/{c.pool}": c for c in estimate_candidates(spec, NETWORK, CATALOG, NOW)}
        for m, key in enumerate(snap.pools.key):
            c = scalar[key]
            vector_ok = bool(np.isfinite(est.runtime_s[i, m]))
            static_ok = c.runtime_s is not None  # deadline and budget are applied later in both paths
            assert vector_ok == static_ok, (key, c.reasons, est.reasons[i, m])
            if not static_ok:
                continue
            assert est.runtime_s[i, m] == pytest.approx(c.runtime_s, rel=1e-9)
            assert est.staging_s[i, m] == pytest.approx(c.staging_s, rel=1e-9, abs=1e-9)
            # inside the horizon the slot curves are exact; past it they continue at the horizon's mean rate
            within = c.staging_s + c.runtime_s <= snap.horizon_slots * snap.slot_s
            tol = 1e-6 if within else 1e-2
            # (abs: the scalar path's datetimes resolve microseconds, which shows on sub-second runs)
            assert cost[i, m] == pytest.approx(c.cost_cny, rel=tol, abs=1e-6)
            assert energy[i, m] == pytest.approx(c.energy_kwh, rel=1e-9)
            assert carbon[i, m] == pytest.approx(c.carbon_kg, rel=tol, abs=1e-6)


def test_example_jobs_agree() -> None:
    compare([load_job(str(p)) for p in sorted((ROOT / "examples" / "jobs").glob("*.yaml"))])


jobs = st.builds(
    lambda workload, devices, nodes, prec, flops, traffic, data_site, gb: JobSpec.model_validate(
        {
            "name": "x",
            "workload": workload,
            "resources": {"devices": devices * nodes, "nodes": nodes, "cpus": 8 * nodes, "memory_gb": 64 * nodes}
            if devices
            else {"cpus": 32 * nodes, "nodes": nodes, "memory_gb": 64 * nodes},
            "compute": {"flops": {prec: flops}, **({"memory_traffic_gb": traffic} if traffic else {})},
            "data": [{"name": "d", "site": data_site, "size_gb": gb}] if gb else [],
        }
    ),
    workload=st.sampled_from(["ai-training", "ai-inference", "hpc", "general"]),
    devices=st.sampled_from([0, 1, 2, 4, 8]),
    nodes=st.sampled_from([1, 2, 4]),
    prec=st.sampled_from(["fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8"]),
    flops=st.floats(1e14, 1e20),
    traffic=st.sampled_from([0.0, 1e3, 1e6]),
    data_site=st.sampled_from([s.id for s in NETWORK.sites]),
    gb=st.sampled_from([0.0, 10.0, 5000.0]),
)


@given(st.lists(jobs, min_size=1, max_size=4))
@settings(max_examples=25, deadline=None)
def test_random_jobs_agree(specs: list[JobSpec]) -> None:
    compare(specs)
