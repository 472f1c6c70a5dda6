"""Properties of the pure scheduling core (suanli.schedule), for every policy: nothing is promised twice, no job
goes where it cannot run, deadlines and budgets hold by the estimates, every decision is accounted for and
explained, rounds are deterministic, and the policies' own rules (FIFO blocking, one EASY reservation,
preemption of lower-priority preemptible work only, fair shares) hold.

Snapshots come from suanli.bench.workload.synthetic_snapshot (random networks with running work) and from small
hand-written specs through suanli.schedule.from_specs.build_snapshot (running, preemptible work with
priorities)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from suanli.bench.workload import synthetic_snapshot
from suanli.hardware.catalog import builtin_catalog
from suanli.schedule.core import Action, Decisions, How, Wait, schedule
from suanli.schedule.estimates import estimate_block
from suanli.schedule.explain import explain
from suanli.schedule.from_specs import PendingJob, RunningJob, build_snapshot
from suanli.schedule.policies import POLICIES
from suanli.schedule.reasons import Reason
from suanli.schedule.tables import DEVICES, Snapshot
from suanli.spec.job import JobSpec
from suanli.spec.network import NetworkSpec

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SLOT_S = 600.0
HORIZON_S = 2 * 86400.0
TOL = 1e-6
SLOT_EPS = 1e-9  # float noise allowed when rounding an end time up to a slot boundary

POLICY_NAMES = list(POLICIES)
PROPS = settings(max_examples=30, deadline=None)
SPEC_PROPS = settings(max_examples=30, deadline=None)

# (seed, jobs, pools, busy, load, tenants)
SNAPSHOT_PARAMS = st.tuples(
    st.integers(0, 10_000),
    st.integers(5, 60),
    st.integers(4, 12),
    st.sampled_from([0.0, 0.3, 0.7]),
    st.sampled_from([0.5, 1.0, 4.0]),
    st.integers(1, 4),
)


@lru_cache(maxsize=256)
def synthetic(params: tuple[int, int, int, float, float, int]) -> Snapshot:
    seed, jobs, pools, busy, load, tenants = params
    return synthetic_snapshot(
        jobs,
        pools,
        now=NOW,
        seed=seed,
        busy=busy,
        load=load,
        tenants=tenants,
        slot_s=SLOT_S,
        horizon_s=HORIZON_S,
    )


@lru_cache(maxsize=2048)
def decided(params: tuple[int, int, int, float, float, int], policy: str) -> Decisions:
    return schedule(synthetic(params), policy)


def taken(dec: Decisions) -> np.ndarray:
    """Indices of the jobs placed now or reserved for later."""
    return np.flatnonzero((dec.action == Action.PLACE) | (dec.action == Action.RESERVE))


# -- independent checks, shared by the synthetic and the spec-built snapshots ----------------------------------


def free_capacity(snap: Snapshot, dec: Decisions) -> np.ndarray:
    """free[m, d, k] rebuilt from the snapshot and the decisions alone (no Timeline)."""
    k_max = snap.horizon_slots
    slot = snap.slot_s
    free = np.repeat(snap.pools.capacity[:, :, None], k_max, axis=2)
    victims = {v for p in dec.preemptions for v in p.victims}
    r = snap.running
    for k in range(r.size):
        if r.key[k] in victims:
            continue
        a = min(k_max, max(0, math.floor(max(r.start_s[k], 0.0) / slot)))
        b = min(k_max, max(0, math.ceil(r.end_s[k] / slot - SLOT_EPS)))
        free[r.pool[k], :, a:b] -= r.demand[k][:, None]
    demand = snap.jobs.demand
    for i in taken(dec):
        m = int(dec.pool[i])
        d = demand[i].copy()
        if not snap.pools.accelerator[m]:
            d[DEVICES] = 0.0
        start = float(dec.start_s[i])
        occupy = float(dec.finish_s[i] - dec.start_s[i])
        a = math.floor(start / slot)
        b = max(a + 1, math.ceil((start + occupy) / slot - SLOT_EPS))
        a, b = min(a, k_max), min(b, k_max)
        free[m, :, a:b] -= d[:, None]
    return free


def assert_never_overcommitted(snap: Snapshot, dec: Decisions) -> None:
    free = free_capacity(snap, dec)
    low = free.min()
    if low < -TOL:
        m, d, k = np.unravel_index(int(np.argmin(free)), free.shape)
        users = [(dec.jobs[i], dec.action[i], dec.start_s[i], dec.finish_s[i]) for i in taken(dec) if dec.pool[i] == m]
        raise AssertionError(
            f"{dec.policy}: pool {snap.pools.key[m]} over-committed by {-low:g} in dimension {d} at slot {k}; "
            f"jobs there: {users}"
        )


def assert_feasible_where_placed(snap: Snapshot, dec: Decisions) -> None:
    speed_aware = POLICIES[dec.policy].speed_aware
    for i in taken(dec):
        m = int(dec.pool[i])
        est = estimate_block(snap, np.array([i]))
        assert est.reasons[0, m] == 0, (dec.policy, dec.jobs[i], snap.pools.key[m], int(est.reasons[0, m]))
        assert np.isfinite(est.runtime_s[0, m]), (dec.policy, dec.jobs[i], snap.pools.key[m])
        if speed_aware:
            assert dec.runtime_s[i] == pytest.approx(est.runtime_s[0, m], rel=1e-9), (dec.policy, dec.jobs[i])


def assert_deadline_and_budget(snap: Snapshot, dec: Decisions) -> None:
    for i in taken(dec):
        assert dec.finish_s[i] <= snap.jobs.deadline_s[i] + TOL, (
            dec.policy,
            dec.jobs[i],
            dec.finish_s[i],
            snap.jobs.deadline_s[i],
        )
        assert dec.cost_cny[i] <= snap.jobs.budget_cny[i] + TOL, (
            dec.policy,
            dec.jobs[i],
            dec.cost_cny[i],
            snap.jobs.budget_cny[i],
        )


def assert_accounting(snap: Snapshot, dec: Decisions) -> None:
    n = snap.jobs.size
    assert dec.jobs == snap.jobs.key
    assert dec.action.shape == (n,)
    assert set(np.unique(dec.action).tolist()) <= {int(a) for a in Action}
    assert sum(dec.count(a) for a in Action) == n
    placed = dec.action == Action.PLACE
    reserved = dec.action == Action.RESERVE
    other = ~(placed | reserved)
    assert (dec.pool[placed | reserved] >= 0).all()
    assert (dec.pool[placed | reserved] < snap.pools.size).all()
    assert (dec.pool[other] == -1).all(), dec.policy
    assert (dec.start_s[placed] == 0).all(), dec.policy
    assert (dec.start_s[reserved] > 0).all(), dec.policy
    assert (dec.start_s[reserved] < snap.horizon_slots * snap.slot_s).all(), dec.policy
    for i in np.flatnonzero(placed | reserved):
        assert dec.pool[i] not in dec.alt_pool[i].tolist(), (dec.policy, dec.jobs[i], dec.alt_pool[i])
        assert dec.how[i] != How.NONE, (dec.policy, dec.jobs[i])
        assert dec.finish_s[i] >= dec.start_s[i]


def assert_reasons(snap: Snapshot, dec: Decisions) -> None:
    for i in np.flatnonzero(dec.action == Action.REJECT):
        assert dec.reasons[i] != 0, (dec.policy, dec.jobs[i])
        assert explain(snap, dec, int(i))["ruled_out"], (dec.policy, dec.jobs[i], int(dec.reasons[i]))
    for i in np.flatnonzero(dec.action == Action.DEFER):
        assert dec.wait[i] != Wait.NONE, (dec.policy, dec.jobs[i])


def assert_preemptions_lawful(snap: Snapshot, dec: Decisions) -> None:
    r = snap.running
    index = {key: k for k, key in enumerate(r.key)}
    seen: set[str] = set()
    if not POLICIES[dec.policy].preemption:
        assert dec.preemptions == [], dec.policy
    for p in dec.preemptions:
        assert dec.action[p.job] == Action.PLACE, (dec.policy, dec.jobs[p.job])
        assert dec.pool[p.job] == p.pool
        assert dec.how[p.job] == How.PREEMPTED
        assert p.victims and len(p.victims) == len(p.lost_s)
        for key, lost in zip(p.victims, p.lost_s, strict=True):
            assert key not in seen, f"{key} preempted twice"
            seen.add(key)
            v = index[key]
            assert r.preemptible[v], f"{dec.policy}: non-preemptible {key} was preempted"
            assert r.priority[v] < snap.jobs.priority[p.job], (dec.policy, key)
            assert r.pool[v] == p.pool
            elapsed = max(-r.start_s[v], 0.0)
            assert 0.0 <= lost <= elapsed + TOL
            if np.isfinite(r.checkpoint_s[v]):
                assert lost < r.checkpoint_s[v]


# -- 1-6: every policy on synthetic snapshots ------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICY_NAMES)
@PROPS
@given(params=SNAPSHOT_PARAMS)
def test_no_pool_is_ever_overcommitted(policy: str, params: tuple) -> None:
    assert_never_overcommitted(synthetic(params), decided(params, policy))


@pytest.mark.parametrize("policy", POLICY_NAMES)
@PROPS
@given(params=SNAPSHOT_PARAMS)
def test_no_job_is_placed_where_it_cannot_run(policy: str, params: tuple) -> None:
    assert_feasible_where_placed(synthetic(params), decided(params, policy))


@pytest.mark.parametrize("policy", POLICY_NAMES)
@PROPS
@given(params=SNAPSHOT_PARAMS)
def test_placed_jobs_meet_deadline_and_budget(policy: str, params: tuple) -> None:
    assert_deadline_and_budget(synthetic(params), decided(params, policy))


@pytest.mark.parametrize("policy", POLICY_NAMES)
@PROPS
@given(params=SNAPSHOT_PARAMS)
def test_rejections_and_waits_carry_a_reason(policy: str, params: tuple) -> None:
    assert_reasons(synthetic(params), decided(params, policy))


@pytest.mark.parametrize("policy", POLICY_NAMES)
@PROPS
@given(params=SNAPSHOT_PARAMS)
def test_every_job_gets_exactly_one_consistent_decision(policy: str, params: tuple) -> None:
    assert_accounting(synthetic(params), decided(params, policy))


@pytest.mark.parametrize("policy", POLICY_NAMES)
@PROPS
@given(params=SNAPSHOT_PARAMS)
def test_rounds_are_deterministic(policy: str, params: tuple) -> None:
    snap = synthetic(params)
    a, b = schedule(snap, policy), schedule(snap, policy)
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.pool, b.pool)
    np.testing.assert_array_equal(a.start_s, b.start_s)
    np.testing.assert_array_equal(a.alt_pool, b.alt_pool)
    assert [(p.job, p.pool, p.victims) for p in a.preemptions] == [(p.job, p.pool, p.victims) for p in b.preemptions]


@pytest.mark.parametrize("policy", POLICY_NAMES)
@PROPS
@given(params=SNAPSHOT_PARAMS)
def test_preemptions_on_synthetic_snapshots_are_lawful(policy: str, params: tuple) -> None:
    assert_preemptions_lawful(synthetic(params), decided(params, policy))


@pytest.mark.parametrize("policy", POLICY_NAMES)
@PROPS
@given(params=SNAPSHOT_PARAMS)
def test_explain_a_placed_job(policy: str, params: tuple) -> None:
    snap, dec = synthetic(params), decided(params, policy)
    for i in taken(dec)[:10]:
        out = explain(snap, dec, int(i))
        assert out["action"] in ("place", "reserve")
        assert out["pool"] == snap.pools.key[dec.pool[i]]
        assert isinstance(out["why"], str) and out["why"], (policy, dec.jobs[i], dec.how[i])
        runners = out["runners_up"]
        assert isinstance(runners, list)
        assert len(runners) == int((dec.alt_pool[i] >= 0).sum())
        for runner in runners:
            assert runner["pool"] != out["pool"], (policy, dec.jobs[i])
            assert "compared" in runner


# -- 7-8: the baselines' own rules -----------------------------------------------------------------------------


@PROPS
@given(params=SNAPSHOT_PARAMS)
def test_fifo_head_blocks_everything_behind_it(params: tuple) -> None:
    snap, dec = synthetic(params), decided(params, "fifo")
    order = np.lexsort((np.arange(snap.jobs.size), snap.jobs.submit_s))
    blocked = False
    for i in order:
        if blocked:
            assert dec.action[i] == Action.REJECT or (dec.action[i] == Action.DEFER and dec.wait[i] == Wait.BLOCKED), (
                dec.jobs[i],
                dec.action[i],
                dec.wait[i],
            )
        elif dec.action[i] == Action.DEFER:
            assert dec.wait[i] == Wait.CAPACITY, dec.jobs[i]
            blocked = True
    assert dec.count(Action.RESERVE) == 0


@PROPS
@given(params=SNAPSHOT_PARAMS)
def test_easy_backfill_holds_at_most_one_reservation(params: tuple) -> None:
    dec = decided(params, "easy-backfill")
    assert dec.count(Action.RESERVE) <= 1
    assert (dec.how[dec.action == Action.RESERVE] == How.EARLIEST).all()


# -- hand-written networks: running, preemptible work with priorities ------------------------------------------

CATALOG = builtin_catalog()


def network(pools: int = 1, nodes: int = 1) -> NetworkSpec:
    return NetworkSpec.model_validate(
        {
            "name": "props",
            "sites": [
                {
                    "id": "s",
                    "name": "site",
                    "kind": "intelligent",
                    "province": "henan",
                    "city": "zhengzhou",
                    "energy": {
                        "pue": 1.3,
                        "tariff": "henan-ci-single-part-2026-01",
                        "carbon": {"kg_per_kwh": 0.6058},
                    },
                    "pools": [
                        {
                            "id": f"p{k}",
                            "hardware": "nvidia-a100-sxm4-80gb",
                            "nodes": nodes,
                            "devices_per_node": 8,
                            "cpus_per_node": 128,
                            "memory_gb_per_node": 1024,
                            "price": {"device_hour_cny": 10.0},
                        }
                        for k in range(pools)
                    ],
                }
            ],
        }
    )


def job(
    devices: int,
    hours: float,
    priority: int = 0,
    deadline: str | None = None,
    preemptible: bool = False,
    checkpoint_min: float | None = None,
    budget_cny: float | None = None,
) -> JobSpec:
    data: dict[str, Any] = {
        "name": "j",
        "workload": "ai-training",
        "resources": {
            "devices": devices,
            "cpus": 8 * devices,
            "memory_gb": 64.0 * devices,
            "nodes": max(1, devices // 8),
        },
        "compute": {"walltime_h": hours},
        "priority": priority,
        "preemptible": preemptible,
    }
    if deadline is not None:
        data["deadline"] = deadline
    if checkpoint_min is not None:
        data["checkpoint"] = {"interval_min": checkpoint_min}
    if budget_cny is not None:
        data["budget_cny"] = budget_cny
    return JobSpec.model_validate(data)


def snapshot(pending: list[PendingJob], running: list[RunningJob], pools: int = 1, nodes: int = 1) -> Snapshot:
    return build_snapshot(network(pools, nodes), CATALOG, pending, NOW, running, slot_s=SLOT_S, horizon_s=HORIZON_S)


def check_all(snap: Snapshot, dec: Decisions) -> None:
    assert_never_overcommitted(snap, dec)
    assert_feasible_where_placed(snap, dec)
    assert_deadline_and_budget(snap, dec)
    assert_accounting(snap, dec)
    assert_reasons(snap, dec)
    assert_preemptions_lawful(snap, dec)


def test_high_priority_job_preempts_a_checkpointed_low_priority_job() -> None:
    low = RunningJob(
        "low",
        "s",
        "p0",
        job(8, 20.0, priority=0, preemptible=True, checkpoint_min=30.0),
        started=NOW - timedelta(hours=2, minutes=10),
        expected_end=NOW + timedelta(hours=10),
    )
    # the deadline rules out waiting for the running job to end, so only preemption makes room in time
    high = PendingJob("high", job(8, 1.0, priority=10, deadline="+6h"), submitted=NOW)
    snap = snapshot([high], [low])
    dec = schedule(snap, "hetero")
    assert dec.action[0] == Action.PLACE
    assert dec.pool[0] == 0
    assert dec.how[0] == How.PREEMPTED
    assert len(dec.preemptions) == 1
    p = dec.preemptions[0]
    assert p.job == 0 and p.pool == 0 and p.victims == ["low"]
    assert p.lost_s[0] < 30 * 60.0
    assert p.lost_s[0] == pytest.approx(10 * 60.0)
    check_all(snap, dec)
    assert "preempt" in str(explain(snap, dec, 0)["why"])


@pytest.mark.parametrize("preemptible, priority", [(False, 0), (True, 10), (True, 20)])
def test_no_preemption_without_a_lawful_victim(preemptible: bool, priority: int) -> None:
    """A non-preemptible job, or one of equal or higher priority, keeps running: the newcomer waits."""
    running = RunningJob(
        "r",
        "s",
        "p0",
        job(8, 20.0, priority=priority, preemptible=preemptible, checkpoint_min=30.0),
        started=NOW - timedelta(hours=1),
        expected_end=NOW + timedelta(hours=10),
    )
    high = PendingJob("high", job(8, 1.0, priority=10, deadline="+6h"), submitted=NOW)
    snap = snapshot([high], [running])
    for policy in POLICY_NAMES:
        dec = schedule(snap, policy)
        assert dec.preemptions == [], policy
        assert dec.action[0] == Action.DEFER, policy
        assert dec.wait[0] == Wait.CAPACITY, policy
        check_all(snap, dec)


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_explain_names_the_budget_when_it_alone_rules_a_job_out(policy: str) -> None:
    snap = snapshot([PendingJob("cheap", job(1, 1.0, budget_cny=0.01), NOW)], [])
    dec = schedule(snap, policy)
    assert dec.action[0] == Action.REJECT
    assert dec.reasons[0] == Reason.BUDGET
    ruled_out = explain(snap, dec, 0)["ruled_out"]
    assert ruled_out, "a budget-only rejection is explained by nothing"
    assert any("budget" in text for texts in ruled_out.values() for text in texts)


DEVICE_CHUNKS = st.sampled_from([1, 2, 4, 8])


@st.composite
def preemption_world(draw: st.DrawFn) -> tuple[list[PendingJob], list[RunningJob], int]:
    pools = draw(st.integers(1, 3))
    running = []
    for m in range(pools):
        used = 0
        for k in range(draw(st.integers(0, 5))):
            devices = draw(DEVICE_CHUNKS)
            if used + devices > 8:
                continue
            used += devices
            checkpoint = draw(st.sampled_from([None, 10.0, 30.0, 60.0]))
            spec = job(
                devices,
                20.0,
                priority=draw(st.integers(-2, 3)),
                preemptible=draw(st.booleans()),
                checkpoint_min=checkpoint,
            )
            started = NOW - timedelta(minutes=draw(st.integers(0, 600)))
            ends = NOW + timedelta(minutes=draw(st.integers(60, 3000)))
            running.append(RunningJob(f"run-{m}-{k}", "s", f"p{m}", spec, started, ends))
    pending = []
    for k in range(draw(st.integers(1, 6))):
        spec = job(
            draw(DEVICE_CHUNKS),
            draw(st.sampled_from([0.5, 1.0, 3.0])),
            priority=draw(st.integers(-1, 5)),
            # tight deadlines rule out waiting for running work to end, so preemption is tried often
            deadline=draw(st.sampled_from([None, "+2h", "+4h", "+4h", "+8h"])),
        )
        pending.append(PendingJob(f"job-{k}", spec, NOW - timedelta(minutes=k)))
    return pending, running, pools


@SPEC_PROPS
@given(world=preemption_world())
def test_only_lower_priority_preemptible_work_is_ever_preempted(world: tuple) -> None:
    pending, running, pools = world
    snap = snapshot(pending, running, pools)
    for policy in POLICY_NAMES:
        dec = schedule(snap, policy)
        check_all(snap, dec)
        victims = {v for p in dec.preemptions for v in p.victims}
        for r in running:
            if not r.spec.preemptible:
                assert r.id not in victims, (policy, r.id)


# -- 10: fair shares -------------------------------------------------------------------------------------------


@SPEC_PROPS
@given(
    n_big=st.integers(5, 30),
    n_small=st.integers(1, 3),
    big_devices=st.sampled_from([4, 8, 16]),
    pools=st.integers(1, 3),
    nodes=st.integers(2, 4),
)
def test_fair_share_gives_the_small_tenant_a_place(
    n_big: int, n_small: int, big_devices: int, pools: int, nodes: int
) -> None:
    """A tenant with a long backlog, submitted first, does not crowd out a tenant with a few small jobs. (A tenant
    may always start one job where it has any share, so the big tenant's first job alone may fill a one-pool
    network; the small tenant's jobs then have no capacity, and the property does not apply.)"""
    assume(pools > 1 or big_devices < nodes * 8)
    capacity = pools * nodes * 8
    n_big = max(n_big, capacity // big_devices + 2)  # the big tenant alone asks for more than there is
    pending = [
        PendingJob(f"big-{k}", job(big_devices, 4.0), NOW - timedelta(hours=2, minutes=-k), tenant="big")
        for k in range(n_big)
    ]
    pending += [
        PendingJob(f"small-{k}", job(1, 1.0), NOW - timedelta(minutes=10 - k), tenant="small") for k in range(n_small)
    ]
    snap = snapshot(pending, [], pools, nodes)
    dec = schedule(snap, "fair")
    check_all(snap, dec)
    small = np.array([key.startswith("small-") for key in dec.jobs])
    assert (dec.action[small] == Action.PLACE).any(), dec.action[small]
    big = ~small
    assert (dec.action[big] == Action.PLACE).any()
