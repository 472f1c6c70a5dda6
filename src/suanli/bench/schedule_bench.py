"""Measure the scheduling core on a generated workload: what `suanli bench schedule` runs."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import numpy as np

from suanli.bench.workload import synthetic_snapshot
from suanli.schedule.core import Action, schedule
from suanli.schedule.policies import get_policy


@dataclass(frozen=True)
class ScheduleBench:
    policy: str
    jobs: int
    pools: int
    load: float
    placements: int  # placed now + reserved for a later start
    placed_now: int
    reserved: int
    deferred: int
    rejected: int
    setup_s: float
    wall_s: float
    placements_per_s: float
    decisions_per_s: float
    p50_decision_ms: float
    p99_decision_ms: float
    seed: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def run_schedule_bench(
    jobs: int, pools: int, policy: str = "hetero", seed: int = 0, load: float = 1.0
) -> ScheduleBench:
    get_policy(policy)  # an unknown name fails before the workload is built
    t0 = time.perf_counter()
    snap = synthetic_snapshot(jobs, pools, datetime(2026, 12, 1, tzinfo=UTC), seed=seed, load=load)
    setup = time.perf_counter() - t0
    t1 = time.perf_counter()
    dec = schedule(snap, policy, clock=time.perf_counter)
    wall = time.perf_counter() - t1
    assert dec.decision_s is not None
    placed, reserved = dec.count(Action.PLACE), dec.count(Action.RESERVE)
    return ScheduleBench(
        policy=policy,
        jobs=jobs,
        pools=snap.pools.size,
        load=load,
        placements=placed + reserved,
        placed_now=placed,
        reserved=reserved,
        deferred=dec.count(Action.DEFER),
        rejected=dec.count(Action.REJECT),
        setup_s=round(setup, 3),
        wall_s=round(wall, 3),
        placements_per_s=round((placed + reserved) / wall, 1),
        decisions_per_s=round(jobs / wall, 1),
        p50_decision_ms=round(float(np.percentile(dec.decision_s, 50)) * 1e3, 4),
        p99_decision_ms=round(float(np.percentile(dec.decision_s, 99)) * 1e3, 4),
        seed=seed,
    )
