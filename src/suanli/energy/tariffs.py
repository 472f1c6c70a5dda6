"""Time-of-use tariffs: the built-in library of Chinese tariffs (data/tariffs_cn.yaml, sources inside) plus
any a network defines, turned into daily price profiles."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from suanli.energy.profile import MINUTES, DailyProfile
from suanli.errors import UnknownIdError
from suanli.spec.network import NetworkSpec, Tariff, TariffPeriod, parse_span


def tariff_profile(tariff: Tariff) -> DailyProfile:
    default = _day(tariff.periods)
    values = np.tile(default, (12, 1))
    for season in tariff.seasonal:
        day = _day(season.periods)
        for month in season.months:
            values[month - 1] = day
    return DailyProfile(values, ZoneInfo(tariff.timezone))


def _day(periods: list[TariffPeriod]) -> np.ndarray:
    day = np.full(MINUTES, np.nan)
    for p in periods:
        for span in p.hours:
            a, b = parse_span(span)
            day[a:b] = p.price_cny_per_kwh
    return day


def builtin_tariffs_path() -> Path:
    return Path(str(resources.files("suanli.energy") / "data" / "tariffs_cn.yaml"))


@cache
def builtin_tariffs() -> dict[str, Tariff]:
    from pydantic import TypeAdapter, ValidationError

    from suanli.errors import SpecError
    from suanli.spec.loader import problems_from_validation, read_document

    path = builtin_tariffs_path()
    if not path.exists():
        return {}
    data, lines = read_document(path.read_text(encoding="utf-8"), str(path), "tariff library")
    try:
        return TypeAdapter(dict[str, Tariff]).validate_python(data or {})
    except ValidationError as exc:
        raise SpecError(problems_from_validation(exc, Tariff, lines), str(path), "tariff library") from None


def resolve_tariff(network: NetworkSpec, tariff_id: str) -> Tariff:
    if tariff_id in network.tariffs:
        return network.tariffs[tariff_id]
    library = builtin_tariffs()
    if tariff_id in library:
        return library[tariff_id]
    raise UnknownIdError("tariff", tariff_id, sorted(set(network.tariffs) | set(library)))
