"""Build a scheduling Snapshot from specs: the network, the catalog, pending job specs and what runs. Pure: the
caller passes `now`; nothing here reads a clock, a file or a database."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from suanli.energy.profile import DailyProfile
from suanli.energy.tariffs import resolve_tariff, tariff_profile
from suanli.estimate.candidates import site_reasons
from suanli.estimate.efficiency import Efficiency, default_efficiency
from suanli.estimate.runtime import reference_work_tflops
from suanli.hardware.catalog import Catalog
from suanli.schedule.tables import (
    KINDS,
    OBJECTIVES,
    WORKLOADS,
    Efficiencies,
    JobTable,
    PoolTable,
    RunningTable,
    SiteTable,
    Snapshot,
)
from suanli.spec.common import PRECISIONS
from suanli.spec.job import JobSpec
from suanli.spec.network import NetworkSpec


@dataclass(frozen=True)
class PendingJob:
    id: str
    spec: JobSpec
    submitted: datetime
    tenant: str = "default"


@dataclass(frozen=True)
class RunningJob:
    id: str
    site: str
    pool: str
    spec: JobSpec
    started: datetime
    expected_end: datetime
    tenant: str = "default"


def efficiencies(eff: Efficiency) -> Efficiencies:
    t = eff.table
    return Efficiencies(
        compute=np.array([[getattr(t.compute[w], k) for k in KINDS] for w in WORKLOADS]),
        bandwidth=np.array([getattr(t.memory_bandwidth, k) for k in KINDS]),
        inside_fast=np.array([t.scaling[w].fast for w in WORKLOADS]),
        inside_pcie=np.array([t.scaling[w].pcie for w in WORKLOADS]),
        inter_node=np.array([t.scaling[w].inter_node for w in WORKLOADS]),
        power=np.array([t.power[w] for w in WORKLOADS]),
    )


def pool_table(network: NetworkSpec, catalog: Catalog, eff: Efficiency) -> PoolTable:
    rows = [
        (si, site, pool, catalog.get(pool.hardware)) for si, site in enumerate(network.sites) for pool in site.pools
    ]
    return PoolTable(
        key=[f"{site.id}/{pool.id}" for _, site, pool, _ in rows],
        hardware=[d.id for *_, d in rows],
        site=np.array([si for si, *_ in rows], dtype=np.int64),
        kind=np.array([KINDS.index(d.kind) for *_, d in rows], dtype=np.int64),
        carried_tflops=np.array(
            [[np.nan if (c := d.capacity(q)) is None else c for q in PRECISIONS] for *_, d in rows], dtype=np.float64
        ).reshape(len(rows), len(PRECISIONS)),
        device_memory_gb=np.array([d.memory_gb if d.memory_gb and d.is_accelerator else np.inf for *_, d in rows]),
        bandwidth_gbs=np.array([d.memory_bw_gbs for *_, d in rows]),
        tdp_w=np.array([d.tdp_w for *_, d in rows]),
        cores=np.array([float(d.cores or 1) if not d.is_accelerator else 1.0 for *_, d in rows]),
        fast_link=np.array([eff.link_class(d.intra_node_link) == "fast" for *_, d in rows], dtype=bool),
        nodes=np.array([pool.nodes for _, _, pool, _ in rows], dtype=np.int64),
        devices_per_node=np.array([pool.devices_per_node for _, _, pool, _ in rows], dtype=np.int64),
        cpus_per_node=np.array([pool.cpus_per_node for _, _, pool, _ in rows], dtype=np.int64),
        memory_gb_per_node=np.array([pool.memory_gb_per_node for _, _, pool, _ in rows], dtype=np.float64),
        unit_hour_cny=np.array(
            [np.nan if pool.price.device_hour_cny is None else pool.price.device_hour_cny for _, _, pool, _ in rows]
        ),
        node_hour_cny=np.array(
            [np.nan if pool.price.node_hour_cny is None else pool.price.node_hour_cny for _, _, pool, _ in rows]
        ),
        host_power_w=np.array(
            [pool.host_power_w if pool.host_power_w is not None else eff.host_power_w(d.kind) for _, _, pool, d in rows]
        ),
    )


def _utc_offsets_min(profile: DailyProfile, now: datetime, step: int, slots: int) -> np.ndarray:
    """The zone's UTC offset in minutes at each slot boundary, held over its slot (exact for zones without
    DST). Most zones (all of China's) keep one offset over the horizon: checked at every day boundary, it is one
    number instead of a time-zone conversion per slot; only a horizon that crosses a change goes slot by slot."""

    def offset(minutes: int) -> int:
        return int((now + timedelta(minutes=minutes)).astimezone(profile.tz).utcoffset().total_seconds() // 60)

    span = slots * step
    probes = {offset(m) for m in range(0, span + 1, 1440)} | {offset(span)}
    if len(probes) == 1:
        return np.full(slots + 1, probes.pop(), dtype=np.int64)
    return np.array([offset(k * step) for k in range(slots + 1)], dtype=np.int64)


def cumulative_curve(profile: DailyProfile, now: datetime, slot_s: float, slots: int) -> np.ndarray:
    """∫ profile dt (value x hours) from now to each slot boundary, sampled minute by minute in local time."""
    step = int(slot_s // 60)
    minutes = slots * step
    utc_now = np.datetime64(now.astimezone(UTC).replace(tzinfo=None), "m")
    t = utc_now + np.arange(minutes).astype("timedelta64[m]")
    offsets = _utc_offsets_min(profile, now, step, slots)
    local = t + np.repeat(offsets[:-1], step).astype("timedelta64[m]")
    month = local.astype("datetime64[M]").astype(np.int64) % 12
    minute = (local - local.astype("datetime64[D]")).astype(np.int64)
    values = profile.values[month, minute]
    cum = np.concatenate([[0.0], np.cumsum(values) / 60.0])
    return cum[::step][: slots + 1]


def site_table(network: NetworkSpec, now: datetime, slot_s: float, slots: int) -> SiteTable:
    prices, carbons = [], []
    for site in network.sites:
        tariff = resolve_tariff(network, site.energy.tariff)
        c = site.energy.carbon
        carbon = (
            DailyProfile.constant(c.kg_per_kwh, tariff.timezone)
            if c.kg_per_kwh is not None
            else DailyProfile.hourly(list(c.hourly_kg_per_kwh or []), tariff.timezone)
        )
        prices.append(cumulative_curve(tariff_profile(tariff), now, slot_s, slots))
        carbons.append(cumulative_curve(carbon, now, slot_s, slots))
    ids = [s.id for s in network.sites]
    links = [[network.link(a, b) for b in ids] for a in ids]
    return SiteTable(
        key=ids,
        pue=np.array([s.energy.pue for s in network.sites]),
        green_share=np.array([s.energy.green_share for s in network.sites]),
        price_cum=np.array(prices),
        carbon_cum=np.array(carbons),
        latency_ms=np.array([[link.latency_ms for link in row] for row in links]),
        bandwidth_gbps=np.array([[link.bandwidth_gbps for link in row] for row in links]),
        egress_cny_per_gb=np.array([[link.egress_cny_per_gb for link in row] for row in links]),
    )


def job_table(
    jobs: list[PendingJob],
    network: NetworkSpec,
    pools: PoolTable,
    catalog: Catalog,
    eff: Efficiency,
    now: datetime,
    tenants: list[str],
) -> JobTable:
    n = len(jobs)
    site_ids = [s.id for s in network.sites]
    d_max = max([len(j.spec.data) for j in jobs] + [1])
    data_site = np.full((n, d_max), -1, dtype=np.int64)
    data_gb = np.zeros((n, d_max))
    mix = np.zeros((n, len(PRECISIONS)))
    work = np.full(n, np.nan)
    walltime = np.full(n, np.nan)
    deadline = np.full(n, np.inf)
    allowed_site = np.ones((n, len(site_ids)), dtype=bool)
    allowed_pool = np.ones((n, pools.size), dtype=bool)
    for i, job in enumerate(jobs):
        spec = job.spec
        for p, share in spec.work_mix().items():
            mix[i, PRECISIONS.index(p)] = share
        c = spec.compute
        if c.walltime_h is not None:
            walltime[i] = c.walltime_h * 3600.0
        elif c.flops is not None:
            work[i] = sum(c.flops.values()) / 1e12
        else:
            work[i] = reference_work_tflops(spec, catalog, eff)
        when = spec.deadline_at(job.submitted)
        if when is not None:
            deadline[i] = (when - now).total_seconds()
        for d, ds in enumerate(spec.data):
            data_site[i, d] = site_ids.index(ds.site)
            data_gb[i, d] = ds.size_gb
        for si, site in enumerate(network.sites):
            allowed_site[i, si] = not site_reasons(spec, site)
        hw = spec.constraints
        if hw.hardware:
            allowed_pool[i] &= np.isin(pools.hardware, hw.hardware)
        if hw.exclude_hardware:
            allowed_pool[i] &= ~np.isin(pools.hardware, hw.exclude_hardware)
    specs = [j.spec for j in jobs]
    return JobTable(
        key=[j.id for j in jobs],
        tenant=np.array([tenants.index(j.tenant) for j in jobs], dtype=np.int64),
        priority=np.array([s.priority for s in specs], dtype=np.int64),
        submit_s=np.array([(j.submitted - now).total_seconds() for j in jobs]),
        workload=np.array([WORKLOADS.index(s.workload) for s in specs], dtype=np.int64),
        objective=np.array([OBJECTIVES.index(s.objective) for s in specs], dtype=np.int64),
        devices=np.array([s.resources.devices for s in specs], dtype=np.int64),
        cpus=np.array([s.resources.cpus for s in specs], dtype=np.int64),
        memory_gb=np.array([s.resources.memory_gb for s in specs], dtype=np.float64),
        nodes=np.array([s.resources.nodes for s in specs], dtype=np.int64),
        device_memory_gb=np.array([s.resources.device_memory_gb or 0.0 for s in specs]),
        mix=mix,
        declares_precision=np.array([s.declares_precision for s in specs], dtype=bool),
        work_tflops=work,
        walltime_s=walltime,
        memory_traffic_gb=np.array([s.compute.memory_traffic_gb or 0.0 for s in specs]),
        deadline_s=deadline,
        budget_cny=np.array([s.budget_cny if s.budget_cny is not None else np.inf for s in specs]),
        preemptible=np.array([s.preemptible for s in specs], dtype=bool),
        checkpoint_s=np.array([s.checkpoint.interval_min * 60.0 if s.checkpoint else np.inf for s in specs]),
        data_site=data_site,
        data_gb=data_gb,
        allowed_site=allowed_site if not allowed_site.all() else None,
        allowed_pool=allowed_pool if not allowed_pool.all() else None,
    )


def running_table(running: list[RunningJob], pools: PoolTable, now: datetime, tenants: list[str]) -> RunningTable:
    if not running:
        return RunningTable.empty()
    index = {k: i for i, k in enumerate(pools.key)}
    pool = np.array([index[f"{r.site}/{r.pool}"] for r in running], dtype=np.int64)
    accel = pools.accelerator[pool]
    return RunningTable(
        key=[r.id for r in running],
        pool=pool,
        demand=np.array(
            [
                [r.spec.resources.devices if a else 0, r.spec.resources.cpus, r.spec.resources.memory_gb]
                for r, a in zip(running, accel, strict=True)
            ],
            dtype=np.float64,
        ),
        start_s=np.array([(r.started - now).total_seconds() for r in running]),
        end_s=np.array([(r.expected_end - now).total_seconds() for r in running]),
        priority=np.array([r.spec.priority for r in running], dtype=np.int64),
        preemptible=np.array([r.spec.preemptible for r in running], dtype=bool),
        checkpoint_s=np.array(
            [r.spec.checkpoint.interval_min * 60.0 if r.spec.checkpoint else np.inf for r in running]
        ),
        tenant=np.array([tenants.index(r.tenant) for r in running], dtype=np.int64),
    )


def build_snapshot(
    network: NetworkSpec,
    catalog: Catalog,
    pending: list[PendingJob],
    now: datetime,
    running: list[RunningJob] | None = None,
    eff: Efficiency | None = None,
    slot_s: float = 600.0,
    horizon_s: float = 7 * 86400.0,
    offline_sites: frozenset[str] = frozenset(),
) -> Snapshot:
    if slot_s < 60 or slot_s % 60:
        raise ValueError(f"slot_s must be a whole number of minutes, got {slot_s}")
    eff = eff or default_efficiency()
    running = running or []
    tenants = sorted({j.tenant for j in pending} | {r.tenant for r in running} | {"default"})
    slots = max(1, int(np.ceil(horizon_s / slot_s)))
    pools = pool_table(network, catalog, eff)
    if offline_sites:
        pools = dataclasses.replace(
            pools, offline=np.array([key.split("/", 1)[0] in offline_sites for key in pools.key], dtype=bool)
        )
    return Snapshot(
        jobs=job_table(pending, network, pools, catalog, eff, now, tenants),
        pools=pools,
        sites=site_table(network, now, slot_s, slots),
        efficiencies=efficiencies(eff),
        running=running_table(running, pools, now, tenants),
        slot_s=slot_s,
        tenants=tenants,
    )
