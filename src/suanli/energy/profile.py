"""Piecewise-constant daily profiles (a tariff's prices, a grid's carbon intensity) and their integral over
any stretch of time, in the profile's local time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

MINUTES = 1440


@dataclass(frozen=True)
class DailyProfile:
    """values[month-1, minute of day]; `cum` holds running sums so an integral costs O(days), not O(minutes)."""

    values: np.ndarray  # shape (12, 1440)
    tz: ZoneInfo
    cum: np.ndarray = field(init=False, repr=False, compare=False)  # shape (12, 1441)

    def __post_init__(self) -> None:
        if self.values.shape != (12, MINUTES):
            raise ValueError(f"a daily profile is 12 months x {MINUTES} minutes, got {self.values.shape}")
        cum = np.concatenate([np.zeros((12, 1)), np.cumsum(self.values, axis=1)], axis=1)
        object.__setattr__(self, "cum", cum)

    @classmethod
    def constant(cls, value: float, tz: str = "Asia/Shanghai") -> DailyProfile:
        return cls(np.full((12, MINUTES), float(value)), ZoneInfo(tz))

    @classmethod
    def hourly(cls, values: list[float], tz: str = "Asia/Shanghai") -> DailyProfile:
        if len(values) != 24:
            raise ValueError(f"an hourly profile has 24 values, got {len(values)}")
        day = np.repeat(np.asarray(values, dtype=float), 60)
        return cls(np.tile(day, (12, 1)), ZoneInfo(tz))

    def at(self, when: datetime) -> float:
        local = when.astimezone(self.tz)
        return float(self.values[local.month - 1, local.hour * 60 + local.minute])

    def integrate_hours(self, start: datetime, end: datetime) -> float:
        """∫ value dt over [start, end), with dt in real hours (e.g. CNY/kWh -> CNY per kW drawn). The profile
        is read at local wall-clock time; a day with a DST change counts its real 23 or 25 hours."""
        if end <= start:
            return 0.0
        total = 0.0
        for seg_start, seg_end in self._constant_offset_segments(start, end):
            local = seg_start.astimezone(self.tz)
            midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
            a = (local.replace(tzinfo=None) - midnight.replace(tzinfo=None)).total_seconds() / 60.0
            b = a + (seg_end - seg_start).total_seconds() / 60.0
            row = local.month - 1
            total += _cum_at(self.cum[row], self.values[row], b) - _cum_at(self.cum[row], self.values[row], a)
        return total / 60.0

    def _constant_offset_segments(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """Split [start, end) at local midnights and UTC-offset changes, so that inside each piece the local
        wall clock runs with real time and stays within one local day."""
        out = []
        t = start.astimezone(UTC)
        stop = end.astimezone(UTC)
        while t < stop:
            local = t.astimezone(self.tz)
            next_day = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=self.tz).astimezone(UTC)
            seg_end = min(stop, next_day)
            offset = local.utcoffset()
            if seg_end.astimezone(self.tz).utcoffset() != offset or next_day.astimezone(self.tz).utcoffset() != offset:
                seg_end = min(seg_end, _offset_change(t, seg_end, self.tz, offset))
            out.append((t, seg_end))
            t = seg_end
        return out

    def mean(self, start: datetime, end: datetime) -> float:
        hours = (end - start).total_seconds() / 3600.0
        return self.integrate_hours(start, end) / hours if hours > 0 else self.at(start)


def _cum_at(cum_row: np.ndarray, row: np.ndarray, minute: float) -> float:
    """Running sum up to a fractional minute of the day."""
    whole = int(minute)
    if whole >= MINUTES:
        return float(cum_row[MINUTES])
    return float(cum_row[whole] + (minute - whole) * row[whole])


def _offset_change(lo: datetime, hi: datetime, tz: ZoneInfo, offset: timedelta | None) -> datetime:
    """The first instant in (lo, hi] whose UTC offset differs from `offset` (to the second), or hi."""
    if hi.astimezone(tz).utcoffset() == offset:
        return hi
    while (hi - lo).total_seconds() > 1:
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == offset:
            lo = mid
        else:
            hi = mid
    return hi.replace(microsecond=0) if hi.microsecond == 0 else hi
