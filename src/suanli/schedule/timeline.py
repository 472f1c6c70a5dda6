"""Free capacity of every pool over the coming slots, with what runs and what is reserved already subtracted,
so nothing is promised twice: a job fits a window only if every slot of it has room."""

from __future__ import annotations

import numpy as np

from suanli.schedule.tables import Snapshot

EPS = 1e-9


class Timeline:
    """free[m, d, k]: capacity of pool m left in dimension d (devices, cpus, memory) in slot k (0 = now).

    Allocations are rounded out to whole slots (start down, end up), which may hold capacity a little longer
    than needed but never less. prefix_min[m, d, k] = min(free[m, d, 0..k]) answers 'can it start now and
    hold until slot k' with one lookup."""

    def __init__(self, snap: Snapshot) -> None:
        self.slot_s = snap.slot_s
        self.slots = snap.horizon_slots
        cap = snap.pools.capacity  # (M, 3)
        self.capacity = cap
        r = snap.running
        # Running work as a difference array over slots (minus at its first slot, plus after its last), summed
        # along the slots: O(running + pools x slots) without a Python loop per allocation.
        delta = np.zeros((cap.shape[0], 3, self.slots + 1))
        if r.size:
            a = self.slots_of(np.maximum(r.start_s, 0.0))
            b = self.end_slots(r.end_s)
            hold = b > a
            np.add.at(delta, (r.pool[hold], slice(None), a[hold]), -r.demand[hold])
            np.add.at(delta, (r.pool[hold], slice(None), b[hold]), r.demand[hold])
        self.free = cap[:, :, None] + np.cumsum(delta[:, :, : self.slots], axis=2)
        if snap.pools.offline is not None:
            self.free[snap.pools.offline] = np.minimum(self.free[snap.pools.offline], 0.0)
        self.prefix_min = np.minimum.accumulate(self.free, axis=2)
        # A pool whose free capacity never drops later in the horizon (only releases ahead, no reservations) has
        # prefix_min equal to its free capacity now in every slot, which a start-now commit keeps true. Such
        # pools skip the O(slots) prefix scan on commit; a reservation or a release makes a pool general.
        self.monotone = np.all(np.diff(self.free, axis=2) >= 0, axis=(1, 2))

    def slot_of(self, t: float) -> int:
        return int(min(self.slots, max(0, np.floor(t / self.slot_s))))

    def slots_of(self, t: np.ndarray) -> np.ndarray:
        return np.clip(np.floor(np.asarray(t, dtype=np.float64) / self.slot_s), 0, self.slots).astype(np.int64)

    def end_slots(self, t: np.ndarray) -> np.ndarray:
        """end_slot for many ends at once."""
        x = np.ceil(np.asarray(t, dtype=np.float64) / self.slot_s - EPS)
        return np.clip(x, 1, self.slots).astype(np.int64)

    def end_slot(self, t: float) -> int:
        """First slot after an allocation that ends at t (at least one slot is held)."""
        return int(min(self.slots, max(1, np.ceil(t / self.slot_s - EPS))))

    def fits_now(self, pools: np.ndarray, end_slots: np.ndarray, demand: np.ndarray) -> np.ndarray:
        """For each pool, whether `demand` (3,) fits in every slot from now until its end slot."""
        low = self.prefix_min[pools, :, end_slots - 1]  # (len, 3)
        return (low >= demand - EPS).all(axis=1)

    def fits_one_now(self, pool: int, end_slot: int, demand: np.ndarray) -> bool:
        low = self.prefix_min[pool, :, end_slot - 1]
        return bool(low[0] >= demand[0] - EPS and low[1] >= demand[1] - EPS and low[2] >= demand[2] - EPS)

    def earliest_start(
        self, pool: int, length: int, demand: np.ndarray, first: int = 0, last: int | None = None
    ) -> int | None:
        """The first slot a >= first with room for `length` slots (clipped at the horizon), or None by `last`."""
        last = self.slots - 1 if last is None else min(last, self.slots - 1)
        if first > last:
            return None
        ok = (self.free[pool] >= demand[:, None] - EPS).all(axis=0)  # (K,)
        bad = np.concatenate([[0], np.cumsum(~ok)])
        starts = np.arange(first, last + 1)
        ends = np.minimum(starts + length, self.slots)
        good = np.nonzero(bad[ends] - bad[starts] == 0)[0]
        return int(starts[good[0]]) if good.size else None

    def fits_at(self, pool: int, start: int, end: int, demand: np.ndarray) -> bool:
        window = self.free[pool, :, start : max(end, start + 1)]
        return bool((window >= demand[:, None] - EPS).all())

    def commit(self, pool: int, start: int, end: int, demand: np.ndarray) -> None:
        end = max(end, start + 1)
        self.free[pool, :, start:end] -= demand[:, None]
        if start == 0 and self.monotone[pool] and (demand >= 0).all():
            self.prefix_min[pool] = self.free[pool, :, :1]
            return
        self.monotone[pool] = False
        # prefix minima before `start` are unchanged; recompute from there on
        tail = np.minimum.accumulate(self.free[pool, :, start:], axis=1)
        if start > 0:
            np.minimum(tail, self.prefix_min[pool, :, start - 1 : start], out=tail)
        self.prefix_min[pool, :, start:] = tail

    def release(self, pool: int, start: int, end: int, demand: np.ndarray) -> None:
        self.commit(pool, start, end, -demand)

    def free_now(self, pools: np.ndarray, dim: np.ndarray) -> np.ndarray:
        return self.free[pools, dim, 0]
