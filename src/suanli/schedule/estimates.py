"""Vectorised estimates for a block of jobs against every pool: the same model as suanli.estimate.runtime and
suanli.energy.run (which stay the readable, scalar reference and are tested to agree), as (n, M) arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from suanli.schedule.reasons import Reason
from suanli.schedule.tables import CPU_KIND, Snapshot


@dataclass(frozen=True)
class BlockEstimates:
    """Estimates of jobs `rows` (indices into the snapshot's jobs) on every pool."""

    rows: np.ndarray  # (n,)
    reasons: np.ndarray  # (n, M) int32 bit set of Reason; 0 = feasible before capacity, deadline and budget
    runtime_s: np.ndarray  # (n, M) inf where infeasible
    staging_s: np.ndarray  # (n, M) seconds to bring the job's data to the pool's site
    occupy_s: np.ndarray  # (n, M) staging + runtime: how long the allocation is held
    facility_kw: np.ndarray  # (n, M) power at the meter (IT x PUE)
    compute_cny: np.ndarray  # (n, M) hardware-hour price over the run
    egress_cny: np.ndarray  # (n, M)
    units: np.ndarray  # (n, M) devices, or socket-equivalents on CPU pools


def estimate_block(snap: Snapshot, rows: np.ndarray) -> BlockEstimates:
    j, p, s, e = snap.jobs, snap.pools, snap.sites, snap.efficiencies
    w = j.workload[rows]
    nodes = j.nodes[rows].astype(np.float64)[:, None]
    accel = p.accelerator[None, :]
    wants_devices = (j.devices[rows] > 0)[:, None]

    # -- how much of the pool the job occupies (units over nodes), and the scaling it gets. On accelerator pools
    # the share per node is the job's own, so the power law is taken per job for the two link classes.
    units = np.where(accel, j.devices[rows][:, None], j.cpus[rows][:, None] / p.cores[None, :]).astype(np.float64)
    per_node = units / nodes
    log_nodes = np.log2(nodes)
    dev_per_node = np.maximum(j.devices[rows] / j.nodes[rows], 1.0)
    inside_fast = e.inside_fast[w] ** np.log2(dev_per_node)
    inside_pcie = e.inside_pcie[w] ** np.log2(dev_per_node)
    scaling = np.where(p.fast_link[None, :], inside_fast[:, None], inside_pcie[:, None])
    cpu_cols = np.flatnonzero(~p.accelerator)
    if cpu_cols.size:
        inside_cpu = np.where(p.fast_link[cpu_cols][None, :], e.inside_fast[w][:, None], e.inside_pcie[w][:, None])
        scaling[:, cpu_cols] = inside_cpu ** np.log2(np.maximum(per_node[:, cpu_cols], 1.0))
    scaling *= e.inter_node[w][:, None] ** log_nodes
    effective = units * scaling

    # -- feasibility that does not depend on load: each failed rule adds its bit
    def flag(mask: np.ndarray, reason: Reason) -> np.ndarray:
        return mask * np.int32(reason)

    bits = flag(wants_devices & ~accel, Reason.NEEDS_ACCELERATOR)
    bits += flag(~wants_devices & accel, Reason.CPU_ONLY_JOB)
    bits += flag(nodes > p.nodes[None, :], Reason.NODES)
    whole_dev_per_node = (j.devices[rows] // np.maximum(j.nodes[rows], 1))[:, None]
    bits += flag(wants_devices & accel & (whole_dev_per_node > p.devices_per_node[None, :]), Reason.DEVICES_PER_NODE)
    bits += flag(j.device_memory_gb[rows][:, None] > p.device_memory_gb[None, :], Reason.DEVICE_MEMORY)
    bits += flag(np.ceil(j.cpus[rows] / j.nodes[rows])[:, None] > p.cpus_per_node[None, :], Reason.CPUS_PER_NODE)
    bits += flag((j.memory_gb[rows] / j.nodes[rows])[:, None] > p.memory_gb_per_node[None, :], Reason.MEMORY_PER_NODE)
    # Precision paths and the harmonic blend of rates are one matrix product each over the P precisions:
    # secs per 1e12 ops = sum_q mix[q] / (carried[q] x efficiency) = (mix @ (1 / carried).T) / efficiency
    mix = j.mix[rows]  # (n, P)
    missing = np.isnan(p.carried_tflops)  # (M, P)
    with np.errstate(divide="ignore"):
        inverse = np.where(missing, 0.0, 1.0 / np.where(missing, 1.0, p.carried_tflops))
    no_path = ((mix > 0).astype(np.float64) @ missing.T.astype(np.float64)) > 0
    bits += flag(no_path & j.declares_precision[rows][:, None], Reason.PRECISION)
    secs_per_tflop = (mix @ inverse.T) / e.compute[w][:, p.kind]
    if j.allowed_site is not None:
        bits += flag(~j.allowed_site[rows][:, p.site], Reason.SITE_CONSTRAINT)
    if j.allowed_pool is not None:
        bits += flag(~j.allowed_pool[rows], Reason.HARDWARE_CONSTRAINT)

    # -- runtime: work over sustained rate (harmonic blend over the precision mix), roofline, or as given
    with np.errstate(divide="ignore", invalid="ignore"):
        compute_s = j.work_tflops[rows][:, None] * secs_per_tflop / effective
        bw = p.bandwidth_gbs[None, :] * e.bandwidth[p.kind][None, :] * effective
        memory_s = j.memory_traffic_gb[rows][:, None] / bw
    runtime = np.maximum(compute_s, memory_s)
    given = j.walltime_s[rows]
    runtime = np.where(np.isnan(given)[:, None], runtime, given[:, None])
    if j.pool_runtime_s is not None:  # measured per-pool runtimes override the model where known
        measured = j.pool_runtime_s[rows]
        runtime = np.where(np.isnan(measured), runtime, measured)
    runtime = np.where((bits == 0) & np.isfinite(runtime), runtime, np.inf)

    # -- data staging and egress to each pool's site (data sets move in parallel; the slowest decides)
    staging = np.zeros((len(rows), s.size))
    egress = np.zeros((len(rows), s.size))
    for d in range(j.data_site.shape[1]):
        src = j.data_site[rows, d]
        gb = j.data_gb[rows, d]
        has = (src >= 0) & (gb > 0)
        if not has.any():
            continue
        src_c = np.where(has, src, 0)
        move = s.latency_ms[src_c] / 1000.0 + gb[:, None] * 8.0 / s.bandwidth_gbps[src_c]
        here = np.arange(s.size)[None, :] == src_c[:, None]
        move = np.where(has[:, None] & ~here, move, 0.0)
        staging = np.maximum(staging, move)
        egress += np.where(has[:, None] & ~here, gb[:, None] * s.egress_cny_per_gb[src_c], 0.0)
    staging_p = staging[:, p.site]
    egress_p = egress[:, p.site]

    # -- power and hardware price
    host_share = np.minimum(1.0, per_node / p.devices_per_node[None, :]) * nodes
    it_kw = (units * p.tdp_w[None, :] * e.power[w][:, None] + p.host_power_w[None, :] * host_share) / 1000.0
    facility_kw = it_kw * s.pue[p.site][None, :]
    occupy = staging_p + runtime  # the allocation is held while data arrives; billing covers the run
    hours = runtime / 3600.0
    by_unit = ~np.isnan(p.unit_hour_cny)
    with np.errstate(invalid="ignore"):  # 0 x inf on infeasible pairs, masked below by inf runtime
        compute_cny = np.where(
            by_unit[None, :],
            np.nan_to_num(p.unit_hour_cny)[None, :] * units * hours,
            np.nan_to_num(p.node_hour_cny)[None, :] * host_share * hours,
        )
    return BlockEstimates(rows, bits, runtime, staging_p, occupy, facility_kw, compute_cny, egress_p, units)


def start_now_money(snap: Snapshot, est: BlockEstimates) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cost CNY, carbon kg, energy kWh) of every (job, pool) of a block if started now: hardware, egress and
    the electricity over the run's span on the site's tariff; carbon on its grid curve less its green share."""
    site = snap.pools.site
    run = np.where(np.isfinite(est.runtime_s), est.runtime_s, 0.0)
    t0 = est.staging_s
    price, grid = energy_integrals(
        [snap.sites.price_cum, snap.sites.carbon_cum], site[None, :], snap.slot_s, t0, t0 + run
    )
    kw = est.facility_kw
    cost = est.compute_cny + est.egress_cny + kw * price
    carbon = kw * grid * (1.0 - snap.sites.green_share[site])[None, :]
    return cost, carbon, kw * run / 3600.0


def energy_integral(
    cum: np.ndarray, site: np.ndarray | int, slot_s: float, t0: np.ndarray, t1: np.ndarray
) -> np.ndarray:
    """∫ rate dt from t0 to t1 (seconds from now) on the per-site cumulative curves cum (S, K+1), for sites
    `site` broadcast against t0 and t1: linear inside a slot, continued at the horizon's mean rate past its end."""
    return energy_integrals([cum], site, slot_s, t0, t1)[0]


def energy_integrals(
    curves: list[np.ndarray], site: np.ndarray | int, slot_s: float, t0: np.ndarray, t1: np.ndarray
) -> list[np.ndarray]:
    """energy_integral for several curves over the same spans, sharing the index arithmetic."""
    k_max = curves[0].shape[1] - 1
    horizon = k_max * slot_s
    site = np.asarray(site)

    def position(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = np.asarray(t, dtype=np.float64)
        x = np.clip(t, 0.0, horizon) / slot_s
        k = np.minimum(x.astype(np.int64), k_max - 1)
        return k, x - k, np.maximum(t - horizon, 0.0)

    k0, f0, over0 = position(t0)
    k1, f1, over1 = position(t1)
    out = []
    for cum in curves:
        mean_rate = (cum[site, -1] - cum[site, 0]) / max(horizon, 1e-9)
        lo0, lo1 = cum[site, k0], cum[site, k1]
        a = lo0 + f0 * (cum[site, k0 + 1] - lo0) + over0 * mean_rate
        b = lo1 + f1 * (cum[site, k1 + 1] - lo1) + over1 * mean_rate
        out.append(b - a)
    return out


__all__ = ["CPU_KIND", "BlockEstimates", "energy_integral", "energy_integrals", "estimate_block", "start_now_money"]
