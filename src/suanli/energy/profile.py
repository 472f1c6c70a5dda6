"""Piecewise-constant daily profiles (a tariff's prices, a grid's carbon intensity) and their integral over
any stretch of time, in the profile's local time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
        """∫ value dt over [start, end), with dt in hours (e.g. CNY/kWh -> CNY per kW drawn)."""
        if end <= start:
            return 0.0
        cum = self.cum
        t = start.astimezone(self.tz)
        stop = end.astimezone(self.tz)
        total = 0.0
        while t < stop:
            midnight = t.replace(hour=0, minute=0, second=0, microsecond=0)
            next_midnight = midnight + timedelta(days=1)
            seg_end = min(stop, next_midnight)
            a = (t - midnight).total_seconds() / 60.0
            b = (seg_end - midnight).total_seconds() / 60.0
            row = t.month - 1
            total += _cum_at(cum[row], self.values[row], b) - _cum_at(cum[row], self.values[row], a)
            t = seg_end
        return total / 60.0

    def mean(self, start: datetime, end: datetime) -> float:
        hours = (end - start).total_seconds() / 3600.0
        return self.integrate_hours(start, end) / hours if hours > 0 else self.at(start)


def _cum_at(cum_row: np.ndarray, row: np.ndarray, minute: float) -> float:
    """Running sum up to a fractional minute of the day."""
    whole = int(minute)
    if whole >= MINUTES:
        return float(cum_row[MINUTES])
    return float(cum_row[whole] + (minute - whole) * row[whole])
