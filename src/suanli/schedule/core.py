"""The scheduling round: a snapshot in, a decision for every pending job out. Pure: no clock, no I/O.

The round walks the pending jobs once, in the policy's order. For each job it looks at every pool at once
(numpy over pools, with the job-by-pool estimates prepared a block of jobs at a time), keeps the feasible
pools, scores them by the policy, and takes the best one that has room in the capacity timeline now — or,
where the policy allows, holds a reservation for a later start (backfill, waiting for faster hardware, or
shifting to cheaper and greener hours). Every choice is committed to the timeline before the next job is
looked at, so no capacity is promised twice, now or in any reserved window."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from suanli.schedule.estimates import BlockEstimates, energy_integral, estimate_block, start_now_money
from suanli.schedule.policies import Policy, get_policy
from suanli.schedule.reasons import Reason
from suanli.schedule.tables import DEVICES, OBJECTIVES, Snapshot
from suanli.schedule.timeline import Timeline
from suanli.spec.common import Objective

BLOCK = 512  # jobs estimated together: bounds memory at BLOCK x pools
ALTERNATIVES = 3
SHIFT_POOLS = 8  # pools (best by the start-now score) whose later starts are considered
SHIFT_TOLERANCE = 0.01  # a later start must save more than 1% of the objective to be chosen over an earlier one
_FASTEST, _CHEAPEST, _GREENEST, _BALANCED = (OBJECTIVES.index(o) for o in Objective)


class Action(IntEnum):
    PLACE = 0  # start now on the pool
    RESERVE = 1  # start later on the pool; the capacity is held
    DEFER = 2  # wait for the next round
    REJECT = 3  # can never run as asked


class How(IntEnum):
    """Why a placed or reserved job went where and when it did."""

    NONE = 0
    BEST_NOW = 1  # the best-scored pool with room now
    WAITS_FOR_FASTER = 2  # a busy pool that finishes it sooner even after the wait
    TIME_SHIFTED = 3  # a later start in cheaper or greener hours
    EARLIEST = 4  # no room now: the earliest start among its best pools (a backfill reservation)
    PREEMPTED = 5  # room made by preempting lower-priority preemptible work


class Wait(IntEnum):
    """Why a deferred job waits."""

    NONE = 0
    CAPACITY = 1  # no room now on any pool it may use
    BLOCKED = 2  # FIFO: behind a queue head that cannot start
    FAIR_SHARE = 3  # its tenant has used its fair share this round


@dataclass(frozen=True)
class Preemption:
    job: int  # index of the pending job that needed the room
    pool: int
    victims: list[str]  # keys of running allocations to stop (checkpoint first where declared)
    lost_s: list[float]  # work each victim loses: time since its last checkpoint


@dataclass
class Decisions:
    policy: str
    jobs: list[str]
    action: np.ndarray  # (N,) Action
    pool: np.ndarray  # (N,) -1 when none
    start_s: np.ndarray  # (N,) from now
    runtime_s: np.ndarray
    finish_s: np.ndarray  # start + staging + runtime
    cost_cny: np.ndarray
    energy_kwh: np.ndarray
    carbon_kg: np.ndarray
    score: np.ndarray
    reasons: np.ndarray  # (N,) Reason bits: for REJECT what rules out every pool; for DEFER the wait
    wait: np.ndarray  # (N,) Wait
    how: np.ndarray  # (N,) How
    alt_pool: np.ndarray  # (N, ALTERNATIVES) runner-up pools by the same score, -1 padded
    alt_score: np.ndarray
    alt_finish_s: np.ndarray
    alt_cost_cny: np.ndarray
    alt_carbon_kg: np.ndarray
    preemptions: list[Preemption] = field(default_factory=list)
    decision_s: np.ndarray | None = None  # (N,) decision latency, when schedule() was given a clock

    @classmethod
    def empty(cls, policy: str, jobs: list[str]) -> Decisions:
        n = len(jobs)

        def nan(*shape: int) -> np.ndarray:
            return np.full(shape or (n,), np.nan)

        return cls(
            policy,
            jobs,
            np.full(n, Action.DEFER, dtype=np.int8),
            np.full(n, -1),
            nan(),
            nan(),
            nan(),
            nan(),
            nan(),
            nan(),
            nan(),
            np.zeros(n, dtype=np.int32),
            np.zeros(n, dtype=np.int8),
            np.zeros(n, dtype=np.int8),
            np.full((n, ALTERNATIVES), -1),
            nan(n, ALTERNATIVES),
            nan(n, ALTERNATIVES),
            nan(n, ALTERNATIVES),
            nan(n, ALTERNATIVES),
        )

    def count(self, action: Action) -> int:
        return int(np.count_nonzero(self.action == action))


@dataclass
class _Block:
    """A block's estimates plus the start-now money, carbon and energy of every (job, pool)."""

    est: BlockEstimates
    cost: np.ndarray
    carbon: np.ndarray
    energy: np.ndarray
    end_slot: np.ndarray  # (n, M) slot after the allocation if it starts now
    ok: np.ndarray  # (n, M) feasible, meets deadline and budget when started now
    bits: np.ndarray  # (n, M) reasons, with deadline and budget added
    score: np.ndarray  # (n, M) the policy's score for starting now, lower is better; inf where not ok


def schedule(snap: Snapshot, policy: Policy | str, clock: Callable[[], float] | None = None) -> Decisions:
    """Decide for every pending job of the snapshot under a policy. With a clock (e.g. time.perf_counter),
    each job's decision latency is recorded in decision_s: its share of its block's preparation plus its own
    selection. The core reads no clock of its own."""
    pol = get_policy(policy) if isinstance(policy, str) else policy
    return _Round(snap, pol, clock).run()


class _Round:
    def __init__(self, snap: Snapshot, pol: Policy, clock: Callable[[], float] | None = None) -> None:
        self.snap, self.pol, self.clock = snap, pol, clock
        self.tl = Timeline(snap)
        self.out = Decisions.empty(pol.name, snap.jobs.key)
        if clock is not None:
            self.out.decision_s = np.zeros(snap.jobs.size)
        self.reservations_left = pol.reserve_depth
        self.blocked = False
        self.preempted = np.zeros(snap.running.size, dtype=bool)
        self.running_end_slot = self.tl.end_slots(snap.running.end_s)
        self.demand = snap.jobs.demand
        # CPU pools offer no devices: a job's device demand there is zero (CPU jobs ask for none anyway)
        self.unit_dim = np.where(snap.pools.accelerator, DEVICES, 1)
        self.share: np.ndarray | None = None
        self._lowest_preemptible: int | None = None
        self.used: np.ndarray | None = None

    # -- the round ------------------------------------------------------------------------------------------

    def run(self) -> Decisions:
        order = self._order()
        if self.pol.fair_share:
            from suanli.schedule.fair import fair_shares

            self.share = fair_shares(self.snap, order)
            self.used = np.zeros_like(self.share)
            order = _round_robin(order, self.snap.jobs.tenant[order])
        deferred_by_share = []
        clock = self.clock
        for start in range(0, len(order), BLOCK):
            rows = order[start : start + BLOCK]
            t0 = clock() if clock else 0.0
            block = self._prepare(rows)
            if clock is None:
                for b, i in enumerate(rows):
                    if not self._decide(i, b, block) and self.out.wait[i] == Wait.FAIR_SHARE:
                        deferred_by_share.append(i)
                self._alternatives(rows, block)
                continue
            share = (clock() - t0) / len(rows)
            for b, i in enumerate(rows):
                t1 = clock()
                if not self._decide(i, b, block) and self.out.wait[i] == Wait.FAIR_SHARE:
                    deferred_by_share.append(i)
                self.out.decision_s[i] = share + clock() - t1
            t2 = clock()
            self._alternatives(rows, block)
            self.out.decision_s[rows] += (clock() - t2) / len(rows)
        if deferred_by_share:  # work-conserving: what fair shares left idle goes to whoever can use it
            self.share = None
            rows = np.array(deferred_by_share)
            for start in range(0, len(rows), BLOCK):
                chunk = rows[start : start + BLOCK]
                block = self._prepare(chunk)
                for b, i in enumerate(chunk):
                    self._decide(i, b, block)
                self._alternatives(chunk, block)
        return self.out

    def _order(self) -> np.ndarray:
        j = self.snap.jobs
        idx = np.arange(j.size)
        if self.pol.order == "submit":
            return np.lexsort((idx, j.submit_s))
        return np.lexsort((idx, j.submit_s, -j.priority))

    def _prepare(self, rows: np.ndarray) -> _Block:
        snap = self.snap
        est = estimate_block(snap, rows)
        if not self.pol.speed_aware:
            est = _as_if_equal_speed(est)
        cost, carbon, energy = start_now_money(snap, est)
        bits = est.reasons.copy()
        late = est.occupy_s > snap.jobs.deadline_s[rows][:, None]
        bits |= np.where(late & (bits == 0), Reason.DEADLINE, 0).astype(np.int32)
        dear = cost > snap.jobs.budget_cny[rows][:, None]
        bits |= np.where(dear & (est.reasons == 0), Reason.BUDGET, 0).astype(np.int32)
        ok = bits == 0
        with np.errstate(invalid="ignore"):
            end_slot = np.clip(np.ceil(np.where(ok, est.occupy_s, 0.0) / snap.slot_s - 1e-9), 1, self.tl.slots)
        score = self._block_scores(rows, est.occupy_s, cost, carbon, ok)
        return _Block(est, cost, carbon, energy, end_slot.astype(np.int64), ok, bits, score)

    def _block_scores(
        self, rows: np.ndarray, finish: np.ndarray, cost: np.ndarray, carbon: np.ndarray, ok: np.ndarray
    ) -> np.ndarray:
        kind = self.pol.choose
        if kind == "objective":
            per_job = self.snap.jobs.objective[rows][:, None]
            balanced = _balanced_rows(
                np.where(ok, finish, np.inf), np.where(ok, cost, np.inf), np.where(ok, carbon, np.inf)
            )
            score = np.select(
                [per_job == _FASTEST, per_job == _CHEAPEST, per_job == _GREENEST],
                [finish, cost + 1e-9 * finish, carbon + 1e-9 * finish],
                balanced,
            )
        elif kind == "cost":
            score = cost + 1e-9 * finish
        elif kind == "carbon":
            score = carbon + 1e-9 * finish
        elif kind == "first":
            score = np.broadcast_to(np.arange(ok.shape[1], dtype=np.float64), ok.shape)
        else:  # completion; least-loaded ranks its runners-up by completion too (its choice is made per job)
            score = finish
        return np.where(ok, score, np.inf)

    # -- one job --------------------------------------------------------------------------------------------

    def _decide(self, i: int, b: int, blk: _Block) -> bool:
        """Decide job i (row b of the block); True when it was placed or reserved."""
        out, pol = self.out, self.pol
        if self.blocked:
            out.wait[i] = Wait.BLOCKED
            return False
        cand = np.flatnonzero(blk.ok[b])
        if cand.size == 0:
            if pol.time_shift and _only_budget(blk, b) and self.reservations_left > 0:
                # over budget now everywhere, but a later start in cheaper hours might fit the budget
                alt = np.flatnonzero(blk.bits[b] == Reason.BUDGET)
                alt_demand = self.demand[i]
                shifted = self._time_shift(i, b, blk, alt, alt_demand)
                if shifted is not None:
                    self._record(i, b, blk, alt, blk.cost[b, alt], shifted[0], shifted[1], alt_demand, How.TIME_SHIFTED)
                    return True
            out.action[i] = Action.REJECT
            out.reasons[i] = int(np.bitwise_or.reduce(blk.bits[b])) if blk.bits.shape[1] else 0
            return False
        demand = self.demand[i]  # the same in every candidate: accelerator jobs only fit accelerator pools
        score = self._score(b, blk, cand)
        fits = self.tl.fits_now(cand, blk.end_slot[b, cand], demand) if cand.size else np.zeros(0, bool)
        if self.share is not None:
            fits &= self._within_share(i, cand)
        choice = self._choose(i, b, blk, cand, score, fits, demand)
        if choice is None and pol.preemption and cand.size and self._may_preempt(i):
            pre = self._preempt(i, b, blk, cand, score, demand)
            choice = None if pre is None else (*pre, How.PREEMPTED)
        if choice is None:
            if self.share is not None and cand.size and self.tl.fits_now(cand, blk.end_slot[b, cand], demand).any():
                out.wait[i] = Wait.FAIR_SHARE
            else:
                out.wait[i] = Wait.CAPACITY
                out.reasons[i] = Reason.NO_CAPACITY
            self.blocked = pol.blocking
            return False
        pool, start_slot, how = choice
        self._record(i, b, blk, cand, score, pool, start_slot, demand, how)
        return True

    def _score(self, b: int, blk: _Block, cand: np.ndarray) -> np.ndarray:
        """Lower is better, over the candidates, for starting now."""
        if self.pol.choose == "least-loaded":
            units = self.unit_dim[cand]
            cap = self.tl.capacity[cand, units]
            return -(self.tl.free_now(cand, units) / np.maximum(cap, 1e-9))
        return blk.score[b, cand]

    def _choose(
        self, i: int, b: int, blk: _Block, cand: np.ndarray, score: np.ndarray, fits: np.ndarray, demand: np.ndarray
    ) -> tuple[int, int, How] | None:
        """(pool, start slot, how) or None."""
        pol = self.pol
        best_now = None
        if fits.any():
            k = int(np.argmin(np.where(fits, score, np.inf)))
            best_now = (int(cand[k]), 0)
        shifting = pol.time_shift and self._deferrable(i, b, blk)
        if shifting:
            shifted = self._time_shift(i, b, blk, cand, demand)
            if shifted is not None:
                return (*shifted, How.TIME_SHIFTED if shifted[1] else How.BEST_NOW)
        if best_now is not None:
            if pol.wait_for_faster and self.reservations_left > 0 and self._objective_is_time(i):
                faster = self._wait_for_faster(b, blk, cand, demand, fits, best_now[0])
                if faster is not None:
                    return (*faster, How.WAITS_FOR_FASTER)
            return (*best_now, How.BEST_NOW)
        if self.reservations_left > 0 and cand.size:
            earliest = self._reserve_earliest(b, blk, cand, score, demand)
            return None if earliest is None else (*earliest, How.EARLIEST)
        return None

    def _objective_is_time(self, i: int) -> bool:
        c = self.pol.choose
        return c == "completion" or (c == "objective" and self.snap.jobs.objective[i] == _FASTEST)

    def _deferrable(self, i: int, b: int, blk: _Block) -> bool:
        c = self.pol.choose
        if c == "objective" and self.snap.jobs.objective[i] == _FASTEST:
            return False
        slack = self.snap.jobs.deadline_s[i] - np.nanmin(np.where(blk.ok[b], blk.est.occupy_s[b], np.inf))
        return bool(np.isfinite(self.snap.jobs.deadline_s[i]) and slack >= self.pol.shift_step_s)

    def _wait_for_faster(
        self, b: int, blk: _Block, cand: np.ndarray, demand: np.ndarray, fits: np.ndarray, now_pool: int
    ) -> tuple[int, int] | None:
        """Hold a busy pool that, even after waiting for it, finishes the job before the best pool free now."""
        now_finish = blk.est.occupy_s[b, now_pool]
        busy = np.flatnonzero(~fits & (blk.est.occupy_s[b, cand] < now_finish))
        best: tuple[float, int, int] | None = None
        for k in busy[np.argsort(blk.est.occupy_s[b, cand[busy]])][:3]:
            m = int(cand[k])
            length = int(blk.end_slot[b, m])
            latest = int((now_finish - blk.est.occupy_s[b, m]) // self.tl.slot_s)
            a = self.tl.earliest_start(m, length, demand, 1, latest)
            if a is None:
                continue
            finish = a * self.tl.slot_s + blk.est.occupy_s[b, m]
            if finish < now_finish and (best is None or finish < best[0]) and self._meets(b, blk, m, a):
                best = (finish, m, a)
        return None if best is None else (best[1], best[2])

    def _reserve_earliest(
        self, b: int, blk: _Block, cand: np.ndarray, score: np.ndarray, demand: np.ndarray
    ) -> tuple[int, int] | None:
        """The earliest finish among the best-scored pools, for a job that cannot start now."""
        best: tuple[float, int, int] | None = None
        for k in np.argsort(score, kind="stable")[:4]:
            m = int(cand[k])
            a = self.tl.earliest_start(m, int(blk.end_slot[b, m]), demand, 1)
            if a is None:
                continue
            finish = a * self.tl.slot_s + blk.est.occupy_s[b, m]
            if (best is None or finish < best[0]) and self._meets(b, blk, m, a):
                best = (finish, m, a)
        return None if best is None else (best[1], best[2])

    def _meets(self, b: int, blk: _Block, pool: int, start_slot: int) -> bool:
        """Do the deadline and the budget still hold for a start at this slot?"""
        i = int(blk.est.rows[b])
        start = start_slot * self.tl.slot_s
        if start + blk.est.occupy_s[b, pool] > self.snap.jobs.deadline_s[i] + 1e-6:
            return False
        return self._cost_at(b, blk, pool, start) <= self.snap.jobs.budget_cny[i] + 1e-9

    def _cost_at(self, b: int, blk: _Block, pool: int, start: float) -> float:
        est, snap = blk.est, self.snap
        t0 = start + est.staging_s[b, pool]
        price = _integral(snap.sites.price_cum[snap.pools.site[pool]], snap.slot_s, t0, t0 + est.runtime_s[b, pool])
        return float(est.compute_cny[b, pool] + est.egress_cny[b, pool] + est.facility_kw[b, pool] * price)

    def _time_shift(self, i: int, b: int, blk: _Block, cand: np.ndarray, demand: np.ndarray) -> tuple[int, int] | None:
        """Best (pool, start) over start times up to the deadline, by money or carbon; nothing promised twice."""
        snap, pol = self.snap, self.pol
        est = blk.est
        if cand.size > SHIFT_POOLS:  # shifting reorders hours, not hardware: look at the best pools only
            key = np.where(np.isfinite(blk.score[b, cand]), blk.score[b, cand], blk.cost[b, cand])
            cand = np.sort(cand[np.argpartition(key, SHIFT_POOLS - 1)[:SHIFT_POOLS]])
        occupy = est.occupy_s[b, cand]
        latest = np.minimum(snap.jobs.deadline_s[i] - occupy, (self.tl.slots - 1) * self.tl.slot_s)
        step = max(pol.shift_step_s, self.tl.slot_s)
        n_points = int(min(pol.max_shift_points, max(1, np.nanmax(latest) // step + 1)))
        starts = np.arange(n_points) * step  # (T,)
        site = snap.pools.site[cand]
        t0 = starts[None, :] + est.staging_s[b, cand][:, None]
        t1 = t0 + est.runtime_s[b, cand][:, None]
        kw = est.facility_kw[b, cand][:, None]
        price = energy_integral(snap.sites.price_cum, site[:, None], snap.slot_s, t0, t1)
        cost = (est.compute_cny[b, cand] + est.egress_cny[b, cand])[:, None] + kw * price
        objective = (
            pol.choose
            if pol.choose != "objective"
            else ("cost", "cost", "carbon", "balanced")[int(snap.jobs.objective[i])]
        )
        if objective not in ("carbon", "balanced"):
            objective = "cost"  # a fastest-first job only shifts to get under its budget
        else:
            grid = energy_integral(snap.sites.carbon_cum, site[:, None], snap.slot_s, t0, t1)
            carbon = kw * grid * (1.0 - snap.sites.green_share[site])[:, None]
        valid = (starts[None, :] <= latest[:, None] + 1e-6) & (cost <= snap.jobs.budget_cny[i])
        if objective == "cost":
            score = cost
        elif objective == "carbon":
            score = carbon + 1e-6 * cost
        else:
            score = _balanced(starts[None, :] + occupy[:, None], cost, carbon)
        score = np.where(valid, score, np.inf)
        # Shifting is worth it only for a real gain: among options within SHIFT_TOLERANCE of the best, the one
        # that finishes first is tried first (so a flat carbon curve does not delay work for a cost tie-break).
        best = np.min(score)
        if not np.isfinite(best):
            return None
        finish = starts[None, :] + occupy[:, None]
        near = score <= best + SHIFT_TOLERANCE * abs(best) + 1e-12
        flat = np.lexsort(((score).ravel(), finish.ravel(), ~near.ravel()))[:16]
        for f in flat:
            k, t = divmod(int(f), n_points)
            if not np.isfinite(score[k, t]):
                break
            m = int(cand[k])
            a = self.tl.slot_of(starts[t])
            end = min(self.tl.slots, a + int(blk.end_slot[b, m]))
            if a == 0:
                if self.tl.fits_one_now(m, end, demand):
                    return (m, 0)
            elif self.reservations_left > 0 and self.tl.fits_at(m, a, end, demand):
                return (m, a)
        return None

    def _may_preempt(self, i: int) -> bool:
        """Is there any running preemptible work of lower priority at all? (Skips the search for most jobs.)"""
        r = self.snap.running
        if r.size == 0:
            return False
        if self._lowest_preemptible is None:
            live = r.preemptible & ~self.preempted
            self._lowest_preemptible = int(r.priority[live].min()) if live.any() else None
            if self._lowest_preemptible is None:
                return False
        return bool(self.snap.jobs.priority[i] > self._lowest_preemptible)

    def _preempt(
        self, i: int, b: int, blk: _Block, cand: np.ndarray, score: np.ndarray, demand: np.ndarray
    ) -> tuple[int, int] | None:
        """Free room now by stopping lower-priority preemptible work, losing as little work as possible."""
        r = self.snap.running
        if r.size == 0:
            return None
        prio = self.snap.jobs.priority[i]
        for k in np.argsort(score, kind="stable")[:4]:
            m = int(cand[k])
            victims = np.flatnonzero((r.pool == m) & r.preemptible & (r.priority < prio) & ~self.preempted)
            if victims.size == 0:
                continue
            lost = _lost_work(r.start_s[victims], r.checkpoint_s[victims])
            victims = victims[np.lexsort((lost, r.priority[victims]))]
            end = int(blk.end_slot[b, m])
            taken = []
            for v in victims:
                self.tl.release(m, 0, int(self.running_end_slot[v]), r.demand[v])
                taken.append(v)
                if self.tl.fits_one_now(m, end, demand):
                    break
            if self.tl.fits_one_now(m, end, demand):
                self.preempted[taken] = True
                self._lowest_preemptible = None  # recomputed on next use
                self.out.preemptions.append(
                    Preemption(
                        i,
                        m,
                        [r.key[v] for v in taken],
                        [float(x) for x in _lost_work(r.start_s[taken], r.checkpoint_s[taken])],
                    )
                )
                return (m, 0)
            for v in taken:  # not enough here: put them back
                self.tl.commit(m, 0, int(self.running_end_slot[v]), r.demand[v])
        return None

    # -- fair shares ----------------------------------------------------------------------------------------

    def _within_share(self, i: int, cand: np.ndarray) -> np.ndarray:
        assert self.share is not None and self.used is not None
        t = self.snap.jobs.tenant[i]
        units = self.demand[i, self.unit_dim[cand]]
        # a tenant may always start one job on a pool where it has any share, so shares round up, not down
        return (self.used[t, cand] + units <= self.share[t, cand] + 1e-9) | (
            (self.used[t, cand] == 0) & (self.share[t, cand] > 0)
        )

    # -- recording ------------------------------------------------------------------------------------------

    def _record(
        self,
        i: int,
        b: int,
        blk: _Block,
        cand: np.ndarray,
        score: np.ndarray,
        pool: int,
        start_slot: int,
        demand: np.ndarray,
        how: How,
    ) -> None:
        out, snap = self.out, self.snap
        est = blk.est
        k = int(np.searchsorted(cand, pool)) if cand.size else None  # cand is sorted (from flatnonzero)
        if k is not None and (k >= cand.size or cand[k] != pool):
            k = None
        d = demand if k is not None else self._demand(i, np.array([pool]))[0]
        end = min(self.tl.slots, start_slot + int(blk.end_slot[b, pool]))
        self.tl.commit(pool, start_slot, end, d)
        if self.used is not None:
            self.used[snap.jobs.tenant[i], pool] += self.demand[i, self.unit_dim[pool]]
        start = start_slot * self.tl.slot_s
        out.action[i] = Action.PLACE if start_slot == 0 else Action.RESERVE
        out.how[i] = how
        if start_slot:
            self.reservations_left -= 1
        out.pool[i] = pool
        out.start_s[i] = start
        out.runtime_s[i] = est.runtime_s[b, pool]
        out.finish_s[i] = start + est.occupy_s[b, pool]
        if start_slot == 0:
            out.cost_cny[i] = blk.cost[b, pool]
            out.carbon_kg[i] = blk.carbon[b, pool]
        else:
            kw = est.facility_kw[b, pool]
            site = snap.pools.site[pool]
            t0 = start + est.staging_s[b, pool]
            t1 = t0 + est.runtime_s[b, pool]
            price = _integral(snap.sites.price_cum[site], snap.slot_s, t0, t1)
            grid = _integral(snap.sites.carbon_cum[site], snap.slot_s, t0, t1)
            out.cost_cny[i] = est.compute_cny[b, pool] + est.egress_cny[b, pool] + kw * price
            out.carbon_kg[i] = kw * grid * (1.0 - snap.sites.green_share[site])
        out.energy_kwh[i] = blk.energy[b, pool]
        out.score[i] = score[k] if k is not None else np.nan

    def _alternatives(self, rows: np.ndarray, blk: _Block) -> None:
        """Runners-up for a whole block at once: the best-scored feasible pools other than the one chosen."""
        score = blk.score.copy()
        chosen = self.out.pool[rows]
        has = chosen >= 0
        score[np.flatnonzero(has), chosen[has]] = np.inf
        k = min(ALTERNATIVES, score.shape[1])
        if k == 0:
            return
        part = (
            np.argpartition(score, k - 1, axis=1)[:, :k]
            if score.shape[1] > k
            else np.tile(np.arange(score.shape[1]), (len(rows), 1))
        )
        order = np.argsort(np.take_along_axis(score, part, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(part, order, axis=1)  # (n, k)
        val = np.take_along_axis(score, top, axis=1)
        real = np.isfinite(val)
        r = np.arange(len(rows))[:, None]
        out = self.out
        out.alt_pool[rows, :k] = np.where(real, top, -1)
        out.alt_score[rows, :k] = np.where(real, val, np.nan)
        out.alt_finish_s[rows, :k] = np.where(real, blk.est.occupy_s[r, top], np.nan)
        out.alt_cost_cny[rows, :k] = np.where(real, blk.cost[r, top], np.nan)
        out.alt_carbon_kg[rows, :k] = np.where(real, blk.carbon[r, top], np.nan)


def _integral(cum: np.ndarray, slot_s: float, t0: float, t1: float) -> float:
    """energy_integral for one site and one span, without numpy's per-call overhead."""
    k_max = cum.shape[0] - 1
    horizon = k_max * slot_s
    mean_rate = (cum[-1] - cum[0]) / max(horizon, 1e-9)

    def at(t: float) -> float:
        x = min(max(t, 0.0), horizon) / slot_s
        k = min(int(x), k_max - 1)
        lo, hi = float(cum[k]), float(cum[k + 1])
        return lo + (x - k) * (hi - lo) + max(t - horizon, 0.0) * mean_rate

    return at(t1) - at(t0)


def _balanced_rows(finish: np.ndarray, cost: np.ndarray, carbon: np.ndarray) -> np.ndarray:
    """_balanced for each row of (n, M) matrices at once."""

    def rel(x: np.ndarray) -> np.ndarray:
        low = np.min(x, axis=1, keepdims=True)
        return x / np.where(np.isfinite(low) & (low > 1e-12), low, 1.0)

    return rel(finish) + rel(cost) + rel(carbon)


def _balanced(finish: np.ndarray, cost: np.ndarray, carbon: np.ndarray) -> np.ndarray:
    """Each criterion relative to the best candidate's, summed: 3.0 is a candidate best at everything."""

    def rel(x: np.ndarray) -> np.ndarray:
        finite = x[np.isfinite(x)]
        low = finite.min() if finite.size else 1.0
        return x / max(low, 1e-12)

    return rel(finish) + rel(cost) + rel(carbon)


def _only_budget(blk: _Block, b: int) -> bool:
    """Every otherwise-feasible pool is out on budget alone: a later, cheaper start might still do."""
    return bool(np.any(blk.bits[b] == Reason.BUDGET))


def _lost_work(start_s: np.ndarray, checkpoint_s: np.ndarray) -> np.ndarray:
    elapsed = np.maximum(-np.asarray(start_s, dtype=np.float64), 0.0)
    cp = np.asarray(checkpoint_s, dtype=np.float64)
    return np.where(np.isfinite(cp), np.mod(elapsed, np.where(np.isfinite(cp), cp, 1.0)), elapsed)


def _as_if_equal_speed(est: BlockEstimates) -> BlockEstimates:
    """The heterogeneity-agnostic view: a job's runtime is the same on every pool it can use (the mean)."""
    finite = np.isfinite(est.runtime_s)
    count = finite.sum(axis=1, keepdims=True)
    mean = np.where(finite, est.runtime_s, 0.0).sum(axis=1, keepdims=True) / np.maximum(count, 1)
    runtime = np.where(finite, mean, np.inf)
    return BlockEstimates(
        est.rows,
        est.reasons,
        runtime,
        est.staging_s,
        est.staging_s + runtime,
        est.facility_kw,
        est.compute_cny,
        est.egress_cny,
        est.units,
    )


def _round_robin(order: np.ndarray, tenant: np.ndarray) -> np.ndarray:
    """Interleave tenants (keeping each tenant's own order), so no tenant's backlog crowds out the others."""
    rank = np.zeros(order.size, dtype=np.int64)
    seen: dict[int, int] = {}
    for pos, t in enumerate(tenant):
        rank[pos] = seen.get(int(t), 0)
        seen[int(t)] = rank[pos] + 1
    return order[np.lexsort((np.arange(order.size), rank))]
