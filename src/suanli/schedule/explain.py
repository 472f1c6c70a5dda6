"""Decisions in words: why here, why not there — for `GET /v1/jobs/{id}`, the CLI and the simulator's report."""

from __future__ import annotations

import numpy as np

from suanli.schedule.core import Action, Decisions, How, Wait
from suanli.schedule.estimates import estimate_block, start_now_money
from suanli.schedule.reasons import Reason
from suanli.schedule.tables import CPU_KIND, OBJECTIVES, Snapshot
from suanli.spec.common import PRECISIONS
from suanli.text import duration


def explain(snap: Snapshot, dec: Decisions, i: int, ruled: dict[str, list[str]] | None = None) -> dict[str, object]:
    """A JSON-able account of job i's decision: what, where, when, why, the runners-up, and per-pool reasons
    for the pools that could not take it (`ruled`, when computed beforehand for many jobs by `ruled_out_many`)."""
    action = Action(int(dec.action[i]))
    out: dict[str, object] = {"job": dec.jobs[i], "policy": dec.policy, "action": action.name.lower()}
    if action in (Action.PLACE, Action.RESERVE):
        m = int(dec.pool[i])
        out.update(
            pool=snap.pools.key[m],
            hardware=snap.pools.hardware[m],
            start_s=_num(dec.start_s[i]),
            runtime_s=_num(dec.runtime_s[i]),
            finish_s=_num(dec.finish_s[i]),
            cost_cny=_num(dec.cost_cny[i]),
            energy_kwh=_num(dec.energy_kwh[i]),
            carbon_kg=_num(dec.carbon_kg[i]),
        )
        out["why"] = _why(snap, dec, i)
    elif action == Action.DEFER:
        out["why"] = _WAIT[Wait(int(dec.wait[i]))]
    runners = []
    for k in range(dec.alt_pool.shape[1]):
        m = int(dec.alt_pool[i, k])
        if m < 0:
            break
        runner = {
            "pool": snap.pools.key[m],
            "hardware": snap.pools.hardware[m],
            "finish_s": _num(dec.alt_finish_s[i, k]),
            "cost_cny": _num(dec.alt_cost_cny[i, k]),
            "carbon_kg": _num(dec.alt_carbon_kg[i, k]),
        }
        if action in (Action.PLACE, Action.RESERVE):
            runner["compared"] = _compare(dec, i, k)
        runners.append(runner)
    out["runners_up"] = runners
    out["ruled_out"] = ruled_out(snap, i) if ruled is None else ruled
    return out


def ruled_out(snap: Snapshot, i: int) -> dict[str, list[str]]:
    """For each pool that cannot run job i at all (if started now), the reasons with their numbers."""
    return ruled_out_many(snap, np.array([i]))[0]


def ruled_out_many(snap: Snapshot, rows: np.ndarray) -> list[dict[str, list[str]]]:
    """`ruled_out` for many jobs at once: one vectorised estimate for the whole block instead of one per job."""
    est = estimate_block(snap, rows)
    cost, _, _ = start_now_money(snap, est)
    j, p = snap.jobs, snap.pools
    late = est.occupy_s > j.deadline_s[rows, None]
    over = cost > j.budget_cny[rows, None]
    accounts = []
    for r, i in enumerate(rows.tolist()):
        out: dict[str, list[str]] = {}
        for m in np.flatnonzero((est.reasons[r] != 0) | late[r] | over[r]).tolist():
            bits = int(est.reasons[r, m])
            reasons = pool_reasons(snap, i, m, bits)
            if not bits:
                if late[r, m]:
                    reasons.append(f"would finish {duration(est.occupy_s[r, m] - j.deadline_s[i])} after the deadline")
                if over[r, m]:
                    reasons.append(f"costs {cost[r, m]:,.2f} CNY started now, over budget_cny {j.budget_cny[i]:,.2f}")
            if reasons:
                out[p.key[m]] = reasons
        accounts.append(out)
    return accounts


def pool_reasons(snap: Snapshot, i: int, m: int, bits: int) -> list[str]:
    j, p = snap.jobs, snap.pools
    hw = p.hardware[m]
    nodes = int(j.nodes[i])
    texts = []
    if bits & Reason.NEEDS_ACCELERATOR:
        texts.append(f"needs {int(j.devices[i])} accelerator(s); {p.key[m]} has only CPUs ({hw})")
    if bits & Reason.CPU_ONLY_JOB:
        texts.append(f"CPU-only job; {p.key[m]} is an accelerator pool ({hw})")
    if bits & Reason.NODES:
        texts.append(f"needs {nodes} nodes, {p.key[m]} has {int(p.nodes[m])}")
    if bits & Reason.DEVICES_PER_NODE:
        texts.append(
            f"needs {int(j.devices[i]) // nodes} devices per node, {p.key[m]} nodes have {int(p.devices_per_node[m])}"
        )
    if bits & Reason.DEVICE_MEMORY:
        texts.append(f"needs {j.device_memory_gb[i]:g} GB per device, {hw} has {p.device_memory_gb[m]:g}")
    if bits & Reason.CPUS_PER_NODE:
        texts.append(
            f"needs {int(np.ceil(j.cpus[i] / nodes))} CPUs per node, {p.key[m]} nodes have {int(p.cpus_per_node[m])}"
        )
    if bits & Reason.MEMORY_PER_NODE:
        texts.append(
            f"needs {j.memory_gb[i] / nodes:g} GB memory per node, {p.key[m]} nodes have {p.memory_gb_per_node[m]:g}"
        )
    if bits & Reason.PRECISION:
        missing = [q.value for k, q in enumerate(PRECISIONS) if j.mix[i, k] > 0 and np.isnan(p.carried_tflops[m, k])]
        texts.extend(f"{q} work but {hw} has no {q} path" for q in missing)
    if bits & Reason.SITE_CONSTRAINT:
        texts.append(f"site {snap.sites.key[p.site[m]]} is ruled out by the job's constraints or data residency")
    if bits & Reason.HARDWARE_CONSTRAINT:
        texts.append(f"{hw} is ruled out by the job's hardware constraints")
    return texts


_WAIT = {
    Wait.NONE: "not decided",
    Wait.CAPACITY: "waiting for capacity: no pool it can use has room now, and no reservation was made this round",
    Wait.BLOCKED: "waiting behind the queue head (first come, first served)",
    Wait.FAIR_SHARE: "its tenant has used its fair share of the pools it can use this round",
}


def _why(snap: Snapshot, dec: Decisions, i: int) -> str:
    how = How(int(dec.how[i]))
    criterion = {
        "first": "the first pool with room",
        "least-loaded": "the least-loaded pool, speed not considered",
        "completion": "the earliest estimated completion",
        "cost": "the lowest cost",
        "carbon": "the lowest carbon",
    }
    choose = dec.policy
    from suanli.schedule.policies import get_policy

    kind = get_policy(choose).choose
    if kind == "objective":
        objective = OBJECTIVES[int(snap.jobs.objective[i])].value
        text = f"the job's objective, {objective}"
    else:
        text = criterion[kind]
    return {
        How.BEST_NOW: f"chosen for {text} among pools with room now",
        How.WAITS_FOR_FASTER: f"reserved: this pool is busy but, after the wait, gives {text} — sooner than any "
        "pool free now",
        How.TIME_SHIFTED: f"time-shifted to a later start for {text}; the deadline still holds",
        How.EARLIEST: "no room now: reserved the earliest start among its best pools (later jobs may backfill "
        "only where they do not delay it)",
        How.PREEMPTED: "room made by preempting lower-priority preemptible work",
        How.NONE: "",
    }[how]


def _compare(dec: Decisions, i: int, k: int) -> str:
    parts = []
    dt = dec.alt_finish_s[i, k] - (dec.finish_s[i] - dec.start_s[i])
    if np.isfinite(dt) and abs(dt) >= 1:
        parts.append(f"finishes {duration(abs(dt))} {'later' if dt > 0 else 'sooner'}")
    dc = dec.alt_cost_cny[i, k] - dec.cost_cny[i]
    if np.isfinite(dc) and abs(dc) >= 0.01:
        parts.append(f"costs {abs(dc):,.2f} CNY {'more' if dc > 0 else 'less'}")
    dg = dec.alt_carbon_kg[i, k] - dec.carbon_kg[i]
    if np.isfinite(dg) and abs(dg) >= 0.001:
        parts.append(f"emits {abs(dg):,.3f} kg CO2 {'more' if dg > 0 else 'less'}")
    return ", ".join(parts) or "the same by every measure"


def _num(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


__all__ = ["CPU_KIND", "explain", "pool_reasons", "ruled_out"]
