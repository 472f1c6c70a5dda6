"""Laws the runtime estimator keeps: scaling, feasibility with reasons, reference translation, roofline, and the
project's done-criteria on the Zhengzhou example network."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suanli.estimate.candidates import estimate_candidates
from suanli.estimate.efficiency import default_efficiency
from suanli.estimate.runtime import estimate_runtime
from suanli.hardware.catalog import Device, builtin_catalog
from suanli.spec import JobSpec, Pool, load_job, load_network
from suanli.spec.common import PRECISIONS, Precision, Workload

CATALOG = builtin_catalog()
EFF = default_efficiency()
ACCELERATORS = [d for d in CATALOG if d.is_accelerator]
CPUS = [d for d in CATALOG if not d.is_accelerator]
ASCEND = [d for d in CATALOG if "ascend" in d.id or "ascend" in d.name.lower()]
WORKLOADS = list(Workload)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
START = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)

SLOW = settings(max_examples=60, deadline=None)


def make_pool(device: Device | str, nodes: int = 1000, dpn: int = 8, **extra: Any) -> Pool:
    hw = device if isinstance(device, str) else device.id
    data = {
        "id": "p",
        "hardware": hw,
        "nodes": nodes,
        "devices_per_node": dpn,
        "cpus_per_node": 1024,
        "memory_gb_per_node": 100_000,
        "price": {"device_hour_cny": 1.0},
    }
    data.update(extra)
    return Pool.model_validate(data)


def make_job(
    compute: dict[str, Any],
    devices: int = 1,
    nodes: int = 1,
    workload: Workload | str = "ai-training",
    **resources: Any,
) -> JobSpec:
    res: dict[str, Any] = {"devices": devices, "nodes": nodes}
    res.update(resources)
    return JobSpec.model_validate({"name": "t", "workload": str(workload), "resources": res, "compute": compute})


def nodes_for(devices: int, per_node_cap: int = 8) -> int:
    """The layout rule used throughout: fill nodes of 8, one node when it fits."""
    return max(1, math.ceil(devices / per_node_cap))


def paths_for(device: Device) -> list[Precision]:
    return [p for p in PRECISIONS if device.carrier(p) is not None]


@st.composite
def device_and_mix(draw: st.DrawFn, devices: list[Device] = ACCELERATORS) -> tuple[Device, dict[Precision, float]]:
    device = draw(st.sampled_from(devices))
    precisions = draw(st.lists(st.sampled_from(paths_for(device)), min_size=1, max_size=3, unique=True))
    weights = draw(st.lists(st.floats(0.01, 100.0), min_size=len(precisions), max_size=len(precisions)))
    return device, dict(zip(precisions, weights, strict=True))


# --------------------------------------------------------------------------------------------------------------
# scaling


@SLOW
@given(
    dm=device_and_mix(),
    workload=st.sampled_from(WORKLOADS),
    n=st.sampled_from([1, 2, 4, 8]),
    k=st.sampled_from([2, 4, 8]),
    total=st.floats(1e12, 1e22),
    traffic=st.one_of(st.none(), st.floats(1.0, 1e9)),
)
def test_more_devices_never_slower_never_superlinear(
    dm: tuple[Device, dict[Precision, float]],
    workload: Workload,
    n: int,
    k: int,
    total: float,
    traffic: float | None,
) -> None:
    device, mix = dm
    wsum = sum(mix.values())
    compute: dict[str, Any] = {"flops": {p.value: total * w / wsum for p, w in mix.items()}}
    if traffic is not None:
        compute["memory_traffic_gb"] = traffic
    pool = make_pool(device)
    small = estimate_runtime(make_job(compute, n, nodes_for(n), workload), pool, device, CATALOG, EFF)
    big = estimate_runtime(make_job(compute, k * n, nodes_for(k * n), workload), pool, device, CATALOG, EFF)
    assert small.feasible and big.feasible, (small.reasons, big.reasons)
    assert small.runtime_s is not None and big.runtime_s is not None
    assert small.runtime_s > 0 and big.runtime_s > 0
    assert big.runtime_s <= small.runtime_s * (1 + 1e-12)
    assert big.runtime_s >= small.runtime_s / k * (1 - 1e-12)


@SLOW
@given(
    device=st.sampled_from(ACCELERATORS),
    workload=st.sampled_from(WORKLOADS),
    per_node=st.sampled_from([1, 2, 4, 8, 16]),
    nodes=st.sampled_from([1, 2, 4, 8, 64]),
)
def test_scaling_share_in_range(device: Device, workload: Workload, per_node: int, nodes: int) -> None:
    s = EFF.scaling(workload, device.intra_node_link, per_node, nodes)
    assert 0 < s <= 1
    # never slower: effective units grow with units
    assert per_node * nodes * s >= 1 - 1e-12


# --------------------------------------------------------------------------------------------------------------
# infeasibility is explained


@pytest.mark.parametrize("device", ASCEND, ids=lambda d: d.id)
def test_fp64_job_infeasible_on_ascend(device: Device) -> None:
    job = make_job({"flops": {"fp64": 1e18}}, devices=8, workload="hpc")
    est = estimate_runtime(job, make_pool(device), device, CATALOG, EFF)
    assert not est.feasible
    assert est.runtime_s is None
    assert any("fp64" in r and device.id in r for r in est.reasons), est.reasons


def test_fp64_mix_through_reference_infeasible_on_ascend() -> None:
    job = make_job(
        {"reference": {"hardware": "nvidia-a100-sxm4-80gb", "devices": 8, "hours": 2}, "mix": {"fp64": 1}},
        devices=8,
        workload="hpc",
    )
    for device in ASCEND:
        est = estimate_runtime(job, make_pool(device), device, CATALOG, EFF)
        assert not est.feasible
        assert any("fp64" in r for r in est.reasons)


def test_device_memory_too_large() -> None:
    device = CATALOG.get("nvidia-a100-sxm4-80gb")
    job = make_job({"flops": {"bf16": 1e18}}, devices=8, device_memory_gb=100)
    est = estimate_runtime(job, make_pool(device), device, CATALOG, EFF)
    assert not est.feasible
    assert any("100" in r and "80" in r for r in est.reasons), est.reasons


def test_too_many_nodes() -> None:
    device = CATALOG.get("nvidia-h100-sxm5-80gb")
    job = make_job({"flops": {"bf16": 1e18}}, devices=40, nodes=5)
    est = estimate_runtime(job, make_pool(device, nodes=4), device, CATALOG, EFF)
    assert not est.feasible
    assert any("5 nodes" in r and "4" in r for r in est.reasons), est.reasons


def test_too_many_devices_per_node() -> None:
    device = CATALOG.get("nvidia-h100-sxm5-80gb")
    job = make_job({"flops": {"bf16": 1e18}}, devices=16, nodes=1)
    est = estimate_runtime(job, make_pool(device, dpn=8), device, CATALOG, EFF)
    assert not est.feasible
    assert any("16 devices per node" in r for r in est.reasons), est.reasons


def test_cpu_only_job_on_accelerator_pool() -> None:
    device = CATALOG.get("nvidia-h100-sxm5-80gb")
    job = make_job({"flops": {"fp64": 1e15}}, devices=0, workload="hpc", cpus=16)
    est = estimate_runtime(job, make_pool(device), device, CATALOG, EFF)
    assert not est.feasible
    assert any("CPU-only" in r for r in est.reasons), est.reasons


def test_accelerator_job_on_cpu_pool() -> None:
    device = CATALOG.get("amd-epyc-9654")
    job = make_job({"flops": {"fp64": 1e15}}, devices=4, workload="hpc")
    est = estimate_runtime(job, make_pool(device, dpn=2), device, CATALOG, EFF)
    assert not est.feasible
    assert any("accelerator" in r and "CPU" in r for r in est.reasons), est.reasons


def test_too_many_cpus_and_memory_per_node() -> None:
    device = CATALOG.get("amd-epyc-9654")
    pool = make_pool(device, dpn=2, cpus_per_node=192, memory_gb_per_node=768)
    job = make_job({"flops": {"fp64": 1e15}}, devices=0, workload="hpc", cpus=400, memory_gb=1000)
    est = estimate_runtime(job, pool, device, CATALOG, EFF)
    assert not est.feasible
    assert any("400 CPUs per node" in r for r in est.reasons), est.reasons
    assert any("1000 GB memory per node" in r for r in est.reasons), est.reasons


@SLOW
@given(dm=device_and_mix(), workload=st.sampled_from(WORKLOADS), n=st.sampled_from([1, 2, 4, 8, 16]))
def test_feasible_results_are_positive_and_unexplained(
    dm: tuple[Device, dict[Precision, float]], workload: Workload, n: int
) -> None:
    device, mix = dm
    job = make_job({"flops": {p.value: w * 1e15 for p, w in mix.items()}}, n, nodes_for(n), workload)
    est = estimate_runtime(job, make_pool(device), device, CATALOG, EFF)
    assert est.feasible
    assert est.reasons == ()
    assert est.runtime_s is not None and est.runtime_s > 0
    assert est.bound == "compute"
    assert set(est.carriers) == set(mix)
    assert all(device.carrier(p) == q for p, q in est.carriers.items())


@SLOW
@given(dm=device_and_mix(CPUS), workload=st.sampled_from(WORKLOADS), sockets=st.sampled_from([1, 2, 4, 8]))
def test_cpu_jobs_feasible_on_cpu_pools(
    dm: tuple[Device, dict[Precision, float]], workload: Workload, sockets: int
) -> None:
    device, mix = dm
    assert device.cores is not None
    cpus = device.cores * sockets
    job = make_job({"flops": {p.value: w * 1e15 for p, w in mix.items()}}, 0, 1, workload, cpus=cpus)
    est = estimate_runtime(job, make_pool(device, dpn=sockets, cpus_per_node=cpus), device, CATALOG, EFF)
    assert est.feasible, est.reasons
    assert est.runtime_s is not None and est.runtime_s > 0
    assert est.shape is not None and est.shape.units == pytest.approx(sockets)


# --------------------------------------------------------------------------------------------------------------
# reference translation


@st.composite
def layout(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.sampled_from([1, 2, 4, 8]))
    nodes = draw(st.sampled_from([m for m in (1, 2, 4, 8) if n % m == 0]))
    return n, nodes


@settings(max_examples=100, deadline=None)
@given(
    dm=device_and_mix(),
    workload=st.sampled_from(WORKLOADS),
    lay=layout(),
    hours=st.floats(0.01, 10_000),
)
def test_reference_round_trips_on_same_hardware(
    dm: tuple[Device, dict[Precision, float]], workload: Workload, lay: tuple[int, int], hours: float
) -> None:
    device, mix = dm
    n, nodes = lay
    job = make_job(
        {
            "reference": {"hardware": device.id, "devices": n, "hours": hours},
            "mix": {p.value: w for p, w in mix.items()},
        },
        n,
        nodes,
        workload,
    )
    est = estimate_runtime(job, make_pool(device), device, CATALOG, EFF)
    assert est.feasible, est.reasons
    assert est.runtime_s == pytest.approx(hours * 3600.0, rel=1e-9)


@settings(max_examples=50, deadline=None)
@given(hours=st.floats(0.01, 10_000), n=st.sampled_from([1, 2, 4, 8]))
def test_reference_translates_by_bf16_peak_ratio(hours: float, n: int) -> None:
    a100 = CATALOG.get("nvidia-a100-sxm4-80gb")
    h800 = CATALOG.get("nvidia-h800-sxm5-80gb")
    assert EFF.link_class(a100.intra_node_link) == EFF.link_class(h800.intra_node_link)
    job = make_job(
        {"reference": {"hardware": a100.id, "devices": n, "hours": hours}, "mix": {"bf16": 1.0}}, n, 1, "ai-training"
    )
    est = estimate_runtime(job, make_pool(h800), h800, CATALOG, EFF)
    assert est.feasible, est.reasons
    assert est.runtime_s == pytest.approx(hours * 3600.0 * 312 / 989.4, rel=1e-6)


def test_reference_to_v100_runs_bf16_at_fp32_speed() -> None:
    a100 = CATALOG.get("nvidia-a100-sxm4-80gb")
    v100 = CATALOG.get("nvidia-v100-sxm2-32gb")
    job = make_job({"reference": {"hardware": a100.id, "devices": 1, "hours": 1}, "mix": {"bf16": 1.0}}, 1, 1)
    est = estimate_runtime(job, make_pool(v100), v100, CATALOG, EFF)
    assert est.feasible
    assert est.carriers == {Precision.BF16: Precision.FP32}
    assert est.runtime_s == pytest.approx(3600.0 * 312 / 15.7, rel=1e-9)


def _cpu_reference_job(nodes: int) -> tuple[JobSpec, Device, Pool]:
    hygon = CATALOG.get("hygon-c86-7285")
    assert hygon.cores == 32
    job = make_job(
        {"reference": {"hardware": hygon.id, "devices": 16, "hours": 6}, "mix": {"fp64": 0.9, "fp32": 0.1}},
        0,
        nodes,
        "hpc",
        cpus=16 * 32,
    )
    return job, hygon, make_pool(hygon, dpn=16 // nodes, cpus_per_node=512 // nodes)


def test_cpu_reference_round_trips_on_one_node() -> None:
    job, hygon, pool = _cpu_reference_job(1)
    est = estimate_runtime(job, pool, hygon, CATALOG, EFF)
    assert est.feasible, est.reasons
    assert est.runtime_s == pytest.approx(6 * 3600.0, rel=1e-9)


@pytest.mark.parametrize("nodes", [2, 8])
def test_cpu_reference_round_trips_over_nodes(nodes: int) -> None:
    job, hygon, pool = _cpu_reference_job(nodes)
    est = estimate_runtime(job, pool, hygon, CATALOG, EFF)
    assert est.feasible, est.reasons
    assert est.runtime_s == pytest.approx(6 * 3600.0, rel=1e-9)


# --------------------------------------------------------------------------------------------------------------
# walltime and roofline


@SLOW
@given(device=st.sampled_from(list(CATALOG)), workload=st.sampled_from(WORKLOADS), hours=st.floats(0.001, 10_000))
def test_walltime_taken_as_given(device: Device, workload: Workload, hours: float) -> None:
    if device.is_accelerator:
        job = make_job({"walltime_h": hours}, 8, 1, workload)
        pool = make_pool(device)
    else:
        job = make_job({"walltime_h": hours}, 0, 1, workload, cpus=8)
        pool = make_pool(device, dpn=2)
    est = estimate_runtime(job, pool, device, CATALOG, EFF)
    assert est.feasible, est.reasons
    assert est.bound == "given"
    assert est.runtime_s == pytest.approx(hours * 3600.0, rel=1e-12)


def test_roofline_single_device_by_number() -> None:
    h100 = CATALOG.get("nvidia-h100-sxm5-80gb")
    job = make_job({"flops": {"bf16": 1e12}, "memory_traffic_gb": 1e9}, 1, 1, "ai-inference")
    est = estimate_runtime(job, make_pool(h100), h100, CATALOG, EFF)
    assert est.bound == "memory"
    assert est.scaling == 1.0
    assert est.runtime_s == pytest.approx(1e9 / (3350 * EFF.bandwidth("gpu")), rel=1e-12)


@SLOW
@given(
    device=st.sampled_from(ACCELERATORS),
    workload=st.sampled_from(WORKLOADS),
    n=st.sampled_from([1, 2, 4, 8, 16, 32]),
    traffic=st.floats(1e9, 1e12),
)
def test_roofline_memory_bound(device: Device, workload: Workload, n: int, traffic: float) -> None:
    p = paths_for(device)[0]
    nodes = nodes_for(n)
    job = make_job({"flops": {p.value: 1e12}, "memory_traffic_gb": traffic}, n, nodes, workload)
    est = estimate_runtime(job, make_pool(device), device, CATALOG, EFF)
    assert est.feasible, est.reasons
    assert est.bound == "memory"
    scaling = EFF.scaling(workload, device.intra_node_link, n / nodes, nodes)
    assert est.scaling == pytest.approx(scaling, rel=1e-12)
    expected = traffic / (device.memory_bw_gbs * EFF.bandwidth(device.kind) * n * scaling)
    assert est.runtime_s == pytest.approx(expected, rel=1e-9)


def test_compute_bound_by_number() -> None:
    a100 = CATALOG.get("nvidia-a100-sxm4-80gb")
    job = make_job({"flops": {"bf16": 1e18}, "memory_traffic_gb": 1.0}, 1, 1, "ai-training")
    est = estimate_runtime(job, make_pool(a100), a100, CATALOG, EFF)
    assert est.bound == "compute"
    assert est.runtime_s == pytest.approx(1e18 / 1e12 / (312 * EFF.compute(Workload.AI_TRAINING, "gpu")), rel=1e-12)


# --------------------------------------------------------------------------------------------------------------
# the done-criteria on the Zhengzhou example


@pytest.fixture(scope="module")
def zhengzhou():
    return load_network(str(EXAMPLES / "zhengzhou.yaml"))


def _candidates(job: JobSpec, network) -> list:
    return estimate_candidates(job, network, CATALOG, START, EFF, submitted=START)


def test_cfd_fp64_rejects_every_ascend_pool(zhengzhou) -> None:
    job = load_job(str(EXAMPLES / "jobs" / "cfd-fp64.yaml"))
    cands = _candidates(job, zhengzhou)
    ascend = [c for c in cands if "ascend" in c.hardware]
    assert len(ascend) >= 2
    for c in ascend:
        assert not c.feasible
        assert any("fp64" in r for r in c.reasons), (c.pool, c.reasons)
    assert len(cands) == sum(len(s.pools) for s in zhengzhou.sites)


def test_llm_finetune_h800_vs_a100(zhengzhou) -> None:
    job = load_job(str(EXAMPLES / "jobs" / "llm-finetune.yaml"))
    cands = {c.hardware: c for c in _candidates(job, zhengzhou)}
    h800 = cands["nvidia-h800-sxm5-80gb"]
    a100 = cands["nvidia-a100-sxm4-80gb"]
    assert h800.runtime_s is not None and a100.runtime_s is not None
    ratio = a100.runtime_s / h800.runtime_s
    assert ratio >= 2.5
    assert ratio == pytest.approx(989.4 / 312, rel=0.10)


def test_feasible_candidates_come_first_with_full_numbers(zhengzhou) -> None:
    job = load_job(str(EXAMPLES / "jobs" / "llm-finetune.yaml"))
    cands = _candidates(job, zhengzhou)
    flags = [c.feasible for c in cands]
    assert flags == sorted(flags, reverse=True)
    feasible = [c for c in cands if c.feasible]
    assert feasible
    for c in feasible:
        assert c.reasons == []
        assert c.runtime_s > 0 and c.cost_cny > 0 and c.energy_kwh > 0
        assert c.finish_s == pytest.approx(c.staging_s + c.runtime_s)
    finishes = [c.finish_s for c in feasible]
    assert finishes == sorted(finishes)


def _with(job: JobSpec, **changes: Any) -> JobSpec:
    data = job.model_dump(mode="json", exclude_none=True)
    data.update(changes)
    return JobSpec.model_validate(data)


def test_tiny_budget_rules_out_everything(zhengzhou) -> None:
    job = load_job(str(EXAMPLES / "jobs" / "llm-finetune.yaml"))
    before = {(c.site, c.pool): c for c in _candidates(job, zhengzhou)}
    assert any(c.feasible for c in before.values())
    after = _candidates(_with(job, budget_cny=0.01), zhengzhou)
    assert all(not c.feasible for c in after)
    for c in after:
        if before[(c.site, c.pool)].feasible:
            assert any("budget" in r for r in c.reasons), c.reasons


def test_short_deadline_rules_out_everything(zhengzhou) -> None:
    job = load_job(str(EXAMPLES / "jobs" / "llm-finetune.yaml"))
    before = {(c.site, c.pool): c for c in _candidates(job, zhengzhou)}
    after = _candidates(_with(job, deadline="+1h"), zhengzhou)
    assert all(not c.feasible for c in after)
    checked = 0
    for c in after:
        if before[(c.site, c.pool)].feasible:
            checked += 1
            assert any("deadline" in r for r in c.reasons), c.reasons
    assert checked > 0


def test_absolute_deadline_in_the_past_rules_out_everything(zhengzhou) -> None:
    job = load_job(str(EXAMPLES / "jobs" / "etl-general.yaml"))
    after = _candidates(_with(job, deadline="2026-03-10T00:00:00+00:00"), zhengzhou)
    assert after and all(not c.feasible for c in after)
    assert any(any("deadline" in r for r in c.reasons) for c in after)


def test_cpu_weather_job_only_on_cpu_pools_in_henan(zhengzhou) -> None:
    job = load_job(str(EXAMPLES / "jobs" / "weather-cpu.yaml"))
    cands = _candidates(job, zhengzhou)
    feasible = [c for c in cands if c.feasible]
    assert feasible
    for c in feasible:
        assert not CATALOG.get(c.hardware).is_accelerator
        assert c.site in {s.id for s in zhengzhou.sites if s.province == "henan"}
    assert any(c.site == "nscc-zz" and c.pool == "cpu" for c in feasible)
    # data residency keeps it out of the western hubs, with a reason that says so
    for c in cands:
        if c.site in ("qy-hub", "zw-hub"):
            assert any("may not leave" in r for r in c.reasons), c.reasons


@pytest.mark.parametrize("name", ["cfd-fp64", "etl-general", "llm-finetune", "llm-inference", "weather-cpu"])
def test_every_example_job_estimates(zhengzhou, name: str) -> None:
    job = load_job(str(EXAMPLES / "jobs" / f"{name}.yaml"))
    cands = _candidates(job, zhengzhou)
    assert len(cands) == sum(len(s.pools) for s in zhengzhou.sites)
    for c in cands:
        if not c.feasible:
            assert c.reasons, f"{c.site}/{c.pool} infeasible without a reason"
        else:
            assert c.runtime_s is not None and c.runtime_s > 0
