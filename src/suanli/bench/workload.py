"""A synthetic city network of M pools and N pending jobs, for `suanli bench schedule`.

The network mixes real catalog hardware the way a Chinese city network does (NVIDIA, Ascend, Hygon DCU and
CPU pools at supercomputing, AI and general sites, some at western hubs), with the built-in tariffs and the
provinces' 2022 grid carbon factors. The workload mixes AI training (BF16, some FP8, 1-32 devices), inference
(FP16/FP8/INT8, bandwidth-bound), HPC (FP64 on CPUs or DCUs) and general CPU work, with runtimes log-uniform
from minutes to two days on reference hardware, data on other sites, deadlines, budgets, priorities and
tenants. Distributions are stated here so a figure can be reproduced: same seed, same workload."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from suanli.estimate.efficiency import default_efficiency
from suanli.hardware.catalog import Catalog, builtin_catalog
from suanli.schedule.from_specs import efficiencies, pool_table, site_table
from suanli.schedule.tables import OBJECTIVES, WORKLOADS, JobTable, RunningTable, Snapshot
from suanli.spec.common import PRECISIONS, Objective, Precision, Workload
from suanli.spec.network import NetworkSpec

# (province, city, hub, tariff, carbon kg/kWh, PUE, green share); factors: MEE & NBS 2022 (see energy/data)
PLACES = [
    ("henan", "zhengzhou", None, "henan-ci-single-part-2026-01", 0.6058, 1.35, 0.10),
    ("henan", "luoyang", None, "henan-ci-single-part-2026-01", 0.6058, 1.40, 0.05),
    ("gansu", "qingyang", "gansu-qingyang", "gansu-ci-2021-illustrative-price", 0.4772, 1.20, 0.50),
    ("ningxia", "zhongwei", "ningxia-zhongwei", "ningxia-ci-illustrative", 0.6423, 1.15, 0.40),
]
ACCELERATORS = [  # (hardware, share, device-hour CNY) — illustrative list prices
    ("nvidia-h800-sxm5-80gb", 0.10, 18.0),
    ("nvidia-h20-96gb", 0.12, 7.5),
    ("nvidia-a100-sxm4-80gb", 0.12, 10.0),
    ("nvidia-a800-sxm4-80gb", 0.08, 9.0),
    ("nvidia-l20", 0.08, 3.5),
    ("nvidia-l40s", 0.05, 5.0),
    ("huawei-ascend-910b", 0.20, 9.0),
    ("hygon-dcu-bw1000", 0.10, 4.5),
    ("nvidia-v100-sxm2-32gb", 0.05, 4.0),
    ("cambricon-mlu370-x8", 0.05, 3.0),
]
CPUS = [
    ("hygon-c86-7285", 6.4),
    ("amd-epyc-9654", 14.0),
    ("intel-xeon-platinum-8480p", 9.0),
    ("huawei-kunpeng-920-7260", 6.0),
]
P = {p: k for k, p in enumerate(PRECISIONS)}


def synthetic_network(
    pools: int, seed: int = 0, catalog: Catalog | None = None, devices: float | None = None, cores: float | None = None
) -> NetworkSpec:
    """M pools over M/4 sites. With `devices` and `cores`, accelerator and CPU pools are sized to hold about
    that many in all (a network sized for its load); otherwise 8-128 accelerator or 16-256 CPU nodes each."""
    rng = np.random.default_rng(seed)
    is_cpu = rng.random(pools) < 0.3
    weight = rng.uniform(0.5, 1.5, size=pools)
    accel_w = weight * ~is_cpu / max((weight * ~is_cpu).sum(), 1e-9)
    cpu_w = weight * is_cpu / max((weight * is_cpu).sum(), 1e-9)
    catalog = catalog or builtin_catalog()
    n_sites = max(2, pools // 4)
    sites = []
    remaining = pools
    for s in range(n_sites):
        place = PLACES[s % len(PLACES)]
        n = remaining // (n_sites - s)
        remaining -= n
        kind = ("supercomputing", "intelligent", "general")[s % 3]
        site_pools = []
        for k in range(n):
            g = pools - remaining - n + k  # this pool's index in the whole network
            if is_cpu[g]:
                hw, price = CPUS[rng.integers(len(CPUS))]
                per_node = 2 * (catalog.get(hw).cores or 32)
                nodes = int(rng.integers(16, 257)) if cores is None else max(8, round(cores * cpu_w[g] / per_node))
                site_pools.append(
                    {
                        "id": f"p{k}",
                        "hardware": hw,
                        "nodes": nodes,
                        "devices_per_node": 2,
                        "cpus_per_node": per_node,
                        "memory_gb_per_node": 4.0 * per_node,
                        "price": {"node_hour_cny": price},
                    }
                )
            else:
                shares = np.array([a[1] for a in ACCELERATORS])
                hw, _, price = ACCELERATORS[rng.choice(len(ACCELERATORS), p=shares / shares.sum())]
                nodes = int(rng.integers(8, 129)) if devices is None else max(4, round(devices * accel_w[g] / 8))
                site_pools.append(
                    {
                        "id": f"p{k}",
                        "hardware": hw,
                        "nodes": nodes,
                        "devices_per_node": 8,
                        "cpus_per_node": 128,
                        "memory_gb_per_node": 1024,
                        "price": {"device_hour_cny": price},
                    }
                )
        province, city, hub, tariff, carbon, pue, green = place
        sites.append(
            {
                "id": f"s{s}",
                "name": f"site {s} ({city})",
                "kind": kind,
                "province": province,
                "city": f"{city}{s // len(PLACES)}" if s >= len(PLACES) else city,
                "hub": hub,
                "energy": {"pue": pue, "tariff": tariff, "carbon": {"kg_per_kwh": carbon}, "green_share": green},
                "pools": site_pools,
            }
        )
    return NetworkSpec.model_validate({"name": f"synthetic-{pools}", "sites": sites})


def synthetic_snapshot(
    jobs: int,
    pools: int,
    now: datetime,
    seed: int = 0,
    busy: float = 0.3,
    load: float | None = 1.0,
    tenants: int = 10,
    slot_s: float = 600.0,
    horizon_s: float = 7 * 86400.0,
) -> Snapshot:
    """A network, N pending jobs, and running work holding about `busy` of every pool until random ends.

    load: the pending jobs' demand over the network's free capacity (devices and cores separately); 1.0 sizes
    the network so its free capacity about matches what is pending, 4.0 leaves three quarters waiting. None
    keeps the fixed pool sizes of synthetic_network."""
    catalog = builtin_catalog()
    eff = default_efficiency()
    rng = np.random.default_rng(seed + 1)
    n_sites = max(2, pools // 4)
    job_table = _jobs(jobs, n_sites, tenants, rng)
    if load is None:
        network = synthetic_network(pools, seed, catalog)
    else:
        free = max(1e-9, (1.0 - busy) * load)
        network = synthetic_network(
            pools,
            seed,
            catalog,
            devices=job_table.devices.sum() / free,
            cores=job_table.cpus[job_table.devices == 0].sum() / free,
        )
    pt = pool_table(network, catalog, eff)
    slots = int(np.ceil(horizon_s / slot_s))
    st = site_table(network, now, slot_s, slots)
    return Snapshot(
        job_table, pt, st, efficiencies(eff), _running(pt, busy, rng), slot_s, [f"tenant-{t}" for t in range(tenants)]
    )


def _jobs(n: int, sites: int, tenants: int, rng: np.random.Generator) -> JobTable:
    w = rng.choice(len(WORKLOADS), size=n, p=[0.3, 0.3, 0.2, 0.2])
    train, infer, hpc, general = (w == WORKLOADS.index(x) for x in Workload)
    devices = np.zeros(n, dtype=np.int64)
    nodes = np.ones(n, dtype=np.int64)
    cpus = np.ones(n, dtype=np.int64)
    devices[train] = rng.choice([1, 2, 4, 8, 16, 32], size=train.sum(), p=[0.2, 0.2, 0.2, 0.25, 0.1, 0.05])
    nodes[train] = np.maximum(1, devices[train] // 8)
    devices[infer] = rng.choice([1, 2, 4], size=infer.sum(), p=[0.5, 0.3, 0.2])
    hpc_accel = hpc & (rng.random(n) < 0.4)
    devices[hpc_accel] = rng.choice([4, 8, 16], size=hpc_accel.sum())
    nodes[hpc_accel] = np.maximum(1, devices[hpc_accel] // 4)
    hpc_cpu = hpc & ~hpc_accel
    nodes[hpc_cpu] = rng.choice([1, 2, 4, 8], size=hpc_cpu.sum(), p=[0.4, 0.3, 0.2, 0.1])
    cpus[hpc_cpu] = nodes[hpc_cpu] * rng.choice([32, 64], size=hpc_cpu.sum())
    cpus[general] = rng.choice([1, 2, 4, 8, 16, 32], size=general.sum())
    accel = devices > 0
    cpus[accel] = devices[accel] * 8
    memory = np.where(accel, devices * 64.0, cpus * 4.0)
    device_memory = np.where(accel, rng.choice([16.0, 24.0, 32.0, 48.0, 64.0], size=n), 0.0)

    mix = np.zeros((n, len(PRECISIONS)))
    mix[train, P[Precision.BF16]] = 1.0
    fp8 = train & (rng.random(n) < 0.2)
    mix[fp8] = 0.0
    mix[fp8, P[Precision.FP8]] = 1.0
    infer_p = rng.choice([P[Precision.FP16], P[Precision.FP8], P[Precision.INT8]], size=n)
    mix[infer, infer_p[infer]] = 1.0
    mix[hpc, P[Precision.FP64]] = 0.9
    mix[hpc, P[Precision.FP32]] = 0.1
    mix[general, P[Precision.FP32]] = 1.0
    # work: a target runtime on reference hardware (A100 BF16/FP16 0.4 x 312 TFLOPS per device; a CPU core
    # at 0.35 x 40 GFLOPS), log-uniform from 10 minutes to 48 hours
    hours = np.exp(rng.uniform(np.log(1 / 6), np.log(48), size=n))
    per_unit_tflops = np.where(accel, 0.4 * 312.0 * np.where(hpc, 19.5 / 312.0, 1.0), 0.35 * 0.04)
    units = np.where(accel, devices, cpus)
    work = hours * 3600.0 * per_unit_tflops * units
    walltime = np.full(n, np.nan)
    given = general & (rng.random(n) < 0.5)
    walltime[given] = hours[given] * 3600.0
    work[given] = np.nan
    traffic = np.where(infer, work * 1e12 / 50.0 / 1e9, 0.0)  # decode: ~50 FLOPs per byte of weights read

    deadline = np.full(n, np.inf)
    has_deadline = rng.random(n) < 0.4
    deadline[has_deadline] = hours[has_deadline] * 3600.0 * rng.uniform(1.5, 6.0, size=has_deadline.sum())
    budget = np.full(n, np.inf)
    has_budget = rng.random(n) < 0.1
    budget[has_budget] = units[has_budget] * hours[has_budget] * rng.uniform(5.0, 40.0, size=has_budget.sum())
    data_site = np.full((n, 1), -1, dtype=np.int64)
    data_gb = np.zeros((n, 1))
    has_data = rng.random(n) < 0.5
    data_site[has_data, 0] = rng.integers(0, sites, size=has_data.sum())
    data_gb[has_data, 0] = np.exp(rng.uniform(0.0, np.log(2000.0), size=has_data.sum()))
    objective = rng.choice(len(OBJECTIVES), size=n, p=[0.3, 0.3, 0.2, 0.2])
    assert OBJECTIVES[0] == Objective.FASTEST
    return JobTable(
        key=[f"job-{k}" for k in range(n)],
        tenant=rng.integers(0, tenants, size=n),
        priority=np.where(rng.random(n) < 0.05, 10, 0),
        submit_s=-rng.uniform(0, 3600.0, size=n),
        workload=w,
        objective=objective,
        devices=devices,
        cpus=cpus,
        memory_gb=memory,
        nodes=nodes,
        device_memory_gb=device_memory,
        mix=mix,
        declares_precision=np.ones(n, dtype=bool),
        work_tflops=work,
        walltime_s=walltime,
        memory_traffic_gb=traffic,
        deadline_s=deadline,
        budget_cny=budget,
        preemptible=rng.random(n) < 0.5,
        checkpoint_s=np.where(rng.random(n) < 0.5, 1800.0, np.inf),
        data_site=data_site,
        data_gb=data_gb,
    )


def _running(pt, busy: float, rng: np.random.Generator) -> RunningTable:
    """One allocation per pool holding `busy` of it, ending within the next day."""
    if busy <= 0:
        return RunningTable.empty()
    cap = pt.capacity
    m = pt.size
    return RunningTable(
        key=[f"running-{k}" for k in range(m)],
        pool=np.arange(m),
        demand=np.floor(cap * busy),
        start_s=-rng.uniform(0, 7200.0, size=m),
        end_s=rng.uniform(600.0, 86400.0, size=m),
        priority=np.zeros(m, dtype=np.int64),
        preemptible=rng.random(m) < 0.5,
        checkpoint_s=np.full(m, 1800.0),
        tenant=rng.integers(0, 10, size=m),
    )
