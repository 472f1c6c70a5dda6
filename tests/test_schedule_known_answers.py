"""A small hand-made network where a person knows the right answer: each objective and policy must pick it,
and the explanation must say why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from suanli.hardware import builtin_catalog
from suanli.schedule.core import Action, How, Wait, schedule
from suanli.schedule.explain import explain
from suanli.schedule.from_specs import PendingJob, RunningJob, build_snapshot
from suanli.spec import JobSpec, NetworkSpec

CATALOG = builtin_catalog()
# 18:00 in Zhengzhou (UTC+8): Henan's evening peak; its valley starts at midnight
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def pool(pid: str, hw: str, price: float, nodes: int = 4, per_node: int = 8) -> dict:
    return {
        "id": pid,
        "hardware": hw,
        "nodes": nodes,
        "devices_per_node": per_node,
        "cpus_per_node": 128,
        "memory_gb_per_node": 1024,
        "price": {"device_hour_cny": price},
    }


NETWORK = NetworkSpec.model_validate(
    {
        "name": "two-sites",
        "sites": [
            {
                "id": "east",
                "name": "Zhengzhou",
                "kind": "intelligent",
                "province": "henan",
                "city": "zhengzhou",
                "energy": {"pue": 1.4, "tariff": "henan-ci-single-part-2026-01", "carbon": {"kg_per_kwh": 0.6058}},
                "pools": [pool("a100", "nvidia-a100-sxm4-80gb", 10.0), pool("h800", "nvidia-h800-sxm5-80gb", 25.0)],
            },
            {
                "id": "west",
                "name": "Qingyang hub",
                "kind": "intelligent",
                "province": "gansu",
                "city": "qingyang",
                "hub": "gansu-qingyang",
                "energy": {
                    "pue": 1.2,
                    "tariff": "gansu-ci-2021-illustrative-price",
                    "carbon": {"kg_per_kwh": 0.4772},
                    "green_share": 0.5,
                },
                "pools": [pool("ascend", "huawei-ascend-910b", 6.0), pool("h800", "nvidia-h800-sxm5-80gb", 25.0)],
            },
        ],
    }
)


def one_site(the_pool: dict) -> NetworkSpec:
    """A single Zhengzhou site on Henan's tariff with one pool."""
    return NetworkSpec.model_validate(
        {
            "name": "one-site",
            "sites": [
                {
                    "id": "east",
                    "name": "Zhengzhou",
                    "kind": "general",
                    "province": "henan",
                    "city": "zhengzhou",
                    "energy": {"pue": 1.4, "tariff": "henan-ci-single-part-2026-01", "carbon": {"kg_per_kwh": 0.6}},
                    "pools": [the_pool],
                }
            ],
        }
    )


def job(name: str, **fields: object) -> JobSpec:
    base: dict[str, object] = {
        "name": name,
        "workload": "ai-training",
        "resources": {"devices": 8, "device_memory_gb": 60, "cpus": 64, "memory_gb": 512},
        "compute": {"flops": {"bf16": 5e19}},
        "data": [{"name": "d", "site": "east", "size_gb": 100}],
    }
    base.update(fields)
    return JobSpec.model_validate(base)


def decide(specs: list[JobSpec], policy: str, running: list[RunningJob] | None = None, network=NETWORK):
    pending = [PendingJob(s.name, s, NOW + timedelta(seconds=k)) for k, s in enumerate(specs)]
    snap = build_snapshot(network, CATALOG, pending, NOW, running, slot_s=600, horizon_s=3 * 86400)
    return snap, schedule(snap, policy)


def chosen(snap, dec, name: str) -> str:
    i = dec.jobs.index(name)
    assert dec.action[i] in (Action.PLACE, Action.RESERVE), explain(snap, dec, i)
    return snap.pools.key[dec.pool[i]]


@pytest.mark.parametrize(
    ("objective", "expected"),
    [("fastest", "east/h800"), ("cheapest", "west/ascend"), ("greenest", "west/h800")],
)
def test_each_objective_picks_what_a_person_would(objective: str, expected: str) -> None:
    # fastest: H800 has 3x the BF16 peak of A100 and the data is already east (no staging);
    # cheapest: Ascend's 6 CNY/h beats H800's 25 CNY/h by more than its lower speed costs;
    # greenest: the H800 draws the least energy for the job, and the west's grid is cleaner and half green.
    snap, dec = decide([job("j", objective=objective)], "objective")
    assert chosen(snap, dec, "j") == expected
    why = explain(snap, dec, 0)
    assert objective in str(why["why"])
    assert all(r["pool"] != expected for r in why["runners_up"])  # type: ignore[index]


def test_fastest_runner_up_explains_the_difference() -> None:
    snap, dec = decide([job("j", objective="fastest")], "objective")
    runners = explain(snap, dec, 0)["runners_up"]
    west_h800 = next(r for r in runners if r["pool"] == "west/h800")  # type: ignore[union-attr]
    assert "later" in west_h800["compared"]  # the same speed, but its data must travel first


def test_fp64_job_avoids_ascend_and_says_why() -> None:
    hpc = job("cfd", workload="hpc", compute={"flops": {"fp64": 2e17}}, objective="fastest")
    snap, dec = decide([hpc], "hetero")
    # A100 has 9.7 TFLOPS of FP64; the China-market H800 about 1; Ascend none
    assert chosen(snap, dec, "cfd") == "east/a100"
    ruled = explain(snap, dec, 0)["ruled_out"]
    assert ruled["west/ascend"] == ["fp64 work but huawei-ascend-910b has no fp64 path"]


def test_deadline_and_budget_rejections_carry_their_reasons() -> None:
    late = job("late", deadline="+10m")
    poor = job("poor", budget_cny=1.0)
    snap, dec = decide([late, poor], "hetero")
    from suanli.schedule.reasons import Reason

    assert dec.action[0] == Action.REJECT and dec.reasons[0] & Reason.DEADLINE
    assert dec.action[1] == Action.REJECT and dec.reasons[1] & Reason.BUDGET
    assert any("deadline" in r for reasons in explain(snap, dec, 0)["ruled_out"].values() for r in reasons)


def test_cost_policy_shifts_deferrable_work_to_valley_hours() -> None:
    # Hardware is nearly free here, so the run's price is its electricity: at 18:00 in Henan that is the peak.
    cheap_hw = one_site(pool("a100", "nvidia-a100-sxm4-80gb", 0.01))
    spec = job("batch", compute={"walltime_h": 3}, deadline="+24h", data=[])
    _snap, dec = decide([spec], "cost", network=cheap_hw)
    assert dec.action[0] == Action.RESERVE and dec.how[0] == How.TIME_SHIFTED
    local_start = (NOW + timedelta(seconds=float(dec.start_s[0]))).astimezone(
        __import__("zoneinfo").ZoneInfo("Asia/Shanghai")
    )
    assert 0 <= local_start.hour < 7  # Henan's valley in December: 00:00-07:00
    assert dec.finish_s[0] <= 24 * 3600
    now_cost = dec.alt_cost_cny[0, 0] if dec.alt_pool[0, 0] >= 0 else None
    _, fastest = decide([spec], "hetero", network=cheap_hw)
    assert dec.cost_cny[0] < fastest.cost_cny[0] * 0.6  # valley is under half the peak price
    assert now_cost is None or dec.cost_cny[0] < now_cost


def _blocker(devices: int, hours: float) -> RunningJob:
    spec = job("running", resources={"devices": devices, "cpus": 8, "memory_gb": 64})
    return RunningJob("running", "east", "a100", spec, NOW - timedelta(hours=1), NOW + timedelta(hours=hours))


def test_easy_backfill_reserves_for_the_head_and_backfills_only_what_does_not_delay_it() -> None:
    one_node = one_site(pool("a100", "nvidia-a100-sxm4-80gb", 10.0, nodes=1))
    res = {"devices": 8, "cpus": 8, "memory_gb": 64}
    small = {"devices": 4, "cpus": 8, "memory_gb": 64}
    head = job("head", resources=res, compute={"walltime_h": 1}, data=[])
    short = job("short", resources=small, compute={"walltime_h": 1}, data=[])
    long = job("long", resources=small, compute={"walltime_h": 5}, data=[])
    running = [_blocker(4, 2)]
    _snap, easy = decide([head, short, long], "easy-backfill", running, one_node)
    assert easy.action[0] == Action.RESERVE and easy.start_s[0] == pytest.approx(2 * 3600)
    assert easy.action[1] == Action.PLACE  # done within the 2 h before the head's reservation
    assert easy.action[2] == Action.DEFER  # would still hold 4 devices when the head needs all 8
    _, fifo = decide([head, short, long], "fifo", running, one_node)
    assert list(fifo.action) == [Action.DEFER] * 3
    assert list(fifo.wait) == [Wait.CAPACITY, Wait.BLOCKED, Wait.BLOCKED]


def test_hetero_beats_agnostic_on_completion_for_a_mixed_batch() -> None:
    specs = [job(f"j{k}", data=[]) for k in range(4)]  # 4 x 8 devices: room for all, on any pool
    snap, het = decide(specs, "hetero")
    _, agn = decide(specs, "agnostic")
    # the agnostic choice is the least loaded pool; its real runtime there is what counts
    from suanli.schedule.estimates import estimate_block

    est = estimate_block(snap, np.arange(4))
    real_agn = est.runtime_s[np.arange(4), agn.pool]
    real_het = est.runtime_s[np.arange(4), het.pool]
    assert real_het.mean() < real_agn.mean()


@pytest.mark.parametrize("policy", ["objective", "hetero", "easy-backfill", "fair"])
def test_an_offline_site_takes_nothing_and_its_only_jobs_wait_instead_of_being_rejected(policy: str) -> None:
    """The broker marks the pools of an unreachable site offline: jobs go elsewhere, and a job only that site can
    run waits (it is not rejected: the site may come back)."""
    anywhere = job("anywhere", objective="fastest")  # east/h800 when everything is up
    west_only = job("west-only", constraints={"sites": ["west"]})
    pending = [PendingJob(s.name, s, NOW + timedelta(seconds=k)) for k, s in enumerate([anywhere, west_only])]
    for offline, moved in ((frozenset({"east"}), "west"), (frozenset({"west"}), "east")):
        snap = build_snapshot(
            NETWORK, CATALOG, pending, NOW, None, slot_s=600, horizon_s=3 * 86400, offline_sites=offline
        )
        dec = schedule(snap, policy)
        placed = {
            dec.jobs[i]: snap.pools.key[dec.pool[i]].split("/")[0]
            for i in range(len(dec.jobs))
            if dec.action[i] in (Action.PLACE, Action.RESERVE)
        }
        assert placed.get("anywhere") == moved, (offline, placed)
        i = dec.jobs.index("west-only")
        if "west" in offline:
            assert dec.action[i] == Action.DEFER, explain(snap, dec, i)
        else:
            assert placed.get("west-only") == "west"
