"""Heterogeneity-aware max-min fair shares across tenants (after Gavel, Narayanan et al., OSDI 2020), as a
linear programme solved by HiGHS through scipy.

Variables x[t, m] >= 0: the share of pool m's units (devices, or cores on CPU pools) given to tenant t.
Each tenant's effective throughput is the sum over pools of x[t, m] x units_m x speed[t, m], where speed is how
fast the tenant's pending jobs run there relative to their best pool (0 where they cannot run). The programme
maximises the smallest ratio of that throughput to what the tenant would get from an equal split of every
pool, subject to pools not being over-given and no tenant getting more units than its jobs ask for; a small
second term hands out what is left, so the shares are work-conserving."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import lil_matrix

from suanli.schedule.estimates import estimate_block
from suanli.schedule.tables import DEVICES, Snapshot

SAMPLE = 512  # jobs per tenant sampled to estimate its speed on each pool


def fair_shares(snap: Snapshot, order: np.ndarray) -> np.ndarray:
    """(tenants, M) units of each pool each tenant may take this round."""
    tenants = len(snap.tenants)
    pools = snap.pools
    unit_dim = np.where(pools.accelerator, DEVICES, 1)
    cap = snap.pools.capacity[np.arange(pools.size), unit_dim]
    speed = np.zeros((tenants, pools.size))
    demand = np.zeros((tenants, pools.size))
    active = np.zeros(tenants, dtype=bool)
    for t in range(tenants):
        rows = order[snap.jobs.tenant[order] == t]
        if rows.size == 0:
            continue
        active[t] = True
        est = estimate_block(snap, rows[:SAMPLE])
        runtime = est.runtime_s
        best = np.min(runtime, axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(np.isfinite(runtime), best / runtime, 0.0)
        speed[t] = rel.mean(axis=0)
        units = np.where(pools.accelerator[None, :], snap.jobs.devices[rows][:, None], snap.jobs.cpus[rows][:, None])
        feasible = np.isfinite(estimate_block(snap, rows[:SAMPLE]).runtime_s).any(axis=0)
        demand[t] = np.where(feasible, units.sum(axis=0), 0.0)
    act = np.flatnonzero(active)
    if act.size <= 1:
        return np.where(active[:, None], cap[None, :], 0.0)
    equal = (speed[act] * cap[None, :] / act.size).sum(axis=1)  # throughput from an equal split
    equal = np.where(equal > 0, equal, 1.0)
    n_t, n_m = act.size, pools.size
    nx = n_t * n_m  # x flattened t-major, then z
    c = np.zeros(nx + 1)
    c[-1] = -1.0  # maximise z
    c[:nx] = -1e-6 * np.repeat(1.0 / np.maximum(cap.sum(), 1.0), nx)  # then hand out the rest
    a = lil_matrix((n_t + n_m, nx + 1))
    ub = np.zeros(n_t + n_m)
    for k, t in enumerate(act):
        # z x equal_t - sum_m x[t,m] cap_m speed[t,m] <= 0
        a[k, k * n_m : (k + 1) * n_m] = -(cap * speed[t])
        a[k, nx] = equal[k]
    for m in range(n_m):
        # sum_t x[t,m] <= 1
        a[n_t + m, [k * n_m + m for k in range(n_t)]] = 1.0
        ub[n_t + m] = 1.0
    upper = np.minimum(1.0, demand[act] / np.maximum(cap[None, :], 1e-9)).ravel()
    upper = np.where(speed[act].ravel() > 0, upper, 0.0)
    bounds = [(0.0, float(u)) for u in upper] + [(0.0, None)]
    res = linprog(c, A_ub=a.tocsr(), b_ub=ub, bounds=bounds, method="highs")
    shares = np.zeros((tenants, n_m))
    if res.status != 0:  # infeasible cannot happen (x = 0 is feasible); fall back to an equal split
        shares[act] = cap[None, :] / n_t
        return shares
    x = res.x[:nx].reshape(n_t, n_m)
    shares[act] = x * cap[None, :]
    return shares
