"""Energy and price: daily profiles and their integrals, tariffs and their validation, the built-in tariff library,
and the energy, carbon and money of a run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from suanli.energy.profile import DailyProfile
from suanli.energy.run import SiteEnergyCurves, it_power_kw, run_energy
from suanli.energy.tariffs import builtin_tariffs, resolve_tariff, tariff_profile
from suanli.errors import UnknownIdError
from suanli.estimate.efficiency import default_efficiency
from suanli.estimate.runtime import Shape
from suanli.hardware.catalog import builtin_catalog
from suanli.spec import NetworkSpec, Pool, Tariff
from suanli.spec.common import Workload

SHANGHAI = ZoneInfo("Asia/Shanghai")
EFF = default_efficiency()
CATALOG = builtin_catalog()

VALLEY = {"name": "valley", "price_cny_per_kwh": 0.3, "hours": ["00:00-08:00"]}
FLAT = {"name": "flat", "price_cny_per_kwh": 0.6, "hours": ["08:00-18:00"]}
PEAK = {"name": "peak", "price_cny_per_kwh": 1.2, "hours": ["18:00-24:00"]}
DAY_SUM = 0.3 * 8 + 0.6 * 10 + 1.2 * 6  # CNY per kW over one day

TARIFF = Tariff.model_validate({"periods": [VALLEY, FLAT, PEAK]})
PRICE = tariff_profile(TARIFF)

# times from 2020 to 2030, any second, as UTC
instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC))


# --------------------------------------------------------------------------------------------------------------
# daily profiles


@settings(max_examples=100, deadline=None)
@given(
    value=st.floats(0.0, 1000.0),
    start=instants,
    hours=st.floats(0.001, 24 * 100),
)
def test_constant_profile_integrates_to_value_times_hours(value: float, start: datetime, hours: float) -> None:
    p = DailyProfile.constant(value)
    end = start + timedelta(hours=hours)
    assert p.integrate_hours(start, end) == pytest.approx(value * hours, rel=1e-7, abs=1e-9)


def test_constant_profile_crosses_month_and_year() -> None:
    p = DailyProfile.constant(2.5)
    start = datetime(2025, 12, 30, 22, 17, 3, tzinfo=SHANGHAI)
    end = datetime(2026, 3, 2, 1, 0, tzinfo=SHANGHAI)
    hours = (end - start).total_seconds() / 3600
    assert p.integrate_hours(start, end) == pytest.approx(2.5 * hours, rel=1e-12)


def test_empty_or_backwards_interval_is_zero() -> None:
    p = DailyProfile.constant(3.0)
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert p.integrate_hours(t, t) == 0.0
    assert p.integrate_hours(t, t - timedelta(hours=1)) == 0.0


def test_hourly_profile_by_number() -> None:
    values = [float(h) for h in range(24)]
    p = DailyProfile.hourly(values)
    day = datetime(2026, 5, 4, tzinfo=SHANGHAI)
    assert p.integrate_hours(day, day + timedelta(days=1)) == pytest.approx(sum(values))
    assert p.at(day + timedelta(hours=13, minutes=30)) == 13.0
    # half an hour of hour 5 and half an hour of hour 6
    assert p.integrate_hours(day + timedelta(hours=5.5), day + timedelta(hours=6.5)) == pytest.approx(5.5)


def test_profile_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="24 values"):
        DailyProfile.hourly([1.0] * 23)


@pytest.mark.parametrize("start", [datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 10, 24, 12, tzinfo=UTC)])
def test_constant_profile_across_dst_change(start: datetime) -> None:
    p = DailyProfile.constant(1.0, "Europe/Berlin")
    assert p.integrate_hours(start, start + timedelta(hours=48)) == pytest.approx(48.0)


# --------------------------------------------------------------------------------------------------------------
# tariffs


def test_tariff_whole_day_by_number() -> None:
    day = datetime(2026, 4, 15, tzinfo=SHANGHAI)
    assert PRICE.integrate_hours(day, day + timedelta(days=1)) == pytest.approx(DAY_SUM, rel=1e-12)
    assert pytest.approx(15.6) == DAY_SUM


@settings(max_examples=100, deadline=None)
@given(start=instants)
def test_tariff_any_24_hours_integrate_to_the_day(start: datetime) -> None:
    # without seasonal days every 24-hour window holds each period exactly once
    assert PRICE.integrate_hours(start, start + timedelta(days=1)) == pytest.approx(DAY_SUM, rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(a=instants, gap1=st.floats(0, 24 * 40), gap2=st.floats(0, 24 * 40))
def test_tariff_integral_is_additive(a: datetime, gap1: float, gap2: float) -> None:
    b = a + timedelta(hours=gap1)
    c = b + timedelta(hours=gap2)
    whole = PRICE.integrate_hours(a, c)
    parts = PRICE.integrate_hours(a, b) + PRICE.integrate_hours(b, c)
    assert whole == pytest.approx(parts, rel=1e-9, abs=1e-9)
    # and bounded by the cheapest and dearest price
    hours = (c - a).total_seconds() / 3600
    assert 0.3 * hours - 1e-9 <= whole <= 1.2 * hours + 1e-9


def test_price_lookup() -> None:
    day = datetime(2026, 4, 15, tzinfo=SHANGHAI)
    assert PRICE.at(day + timedelta(hours=3)) == 0.3
    assert PRICE.at(day + timedelta(hours=12)) == 0.6
    assert PRICE.at(day + timedelta(hours=20)) == 1.2
    # 10:00 UTC is 18:00 in Shanghai: peak
    assert PRICE.at(datetime(2026, 4, 15, 10, tzinfo=UTC)) == 1.2


SEASONAL = Tariff.model_validate(
    {
        "periods": [VALLEY, FLAT, PEAK],
        "seasonal": [
            {
                "months": [7, 8],
                "periods": [
                    {"name": "valley", "price_cny_per_kwh": 0.3, "hours": ["00:00-08:00"]},
                    {"name": "flat", "price_cny_per_kwh": 0.6, "hours": ["08:00-18:00"]},
                    {"name": "peak", "price_cny_per_kwh": 1.2, "hours": ["18:00-20:00", "22:00-24:00"]},
                    {"name": "critical", "price_cny_per_kwh": 2.0, "hours": ["20:00-22:00"]},
                ],
            }
        ],
    }
)


def test_seasonal_days_apply_in_their_months_only() -> None:
    profile = tariff_profile(SEASONAL)
    summer = 0.3 * 8 + 0.6 * 10 + 1.2 * 4 + 2.0 * 2
    for month in range(1, 13):
        day = datetime(2026, month, 10, tzinfo=SHANGHAI)
        expected = summer if month in (7, 8) else DAY_SUM
        assert profile.integrate_hours(day, day + timedelta(days=1)) == pytest.approx(expected), month
        assert profile.at(day + timedelta(hours=21)) == (2.0 if month in (7, 8) else 1.2)


def test_seasonal_boundary_switches_at_local_midnight() -> None:
    profile = tariff_profile(SEASONAL)
    # 30 June 20:00 to 1 July 23:00 local: June evening at 1.2, July evening with its critical hours
    start = datetime(2026, 6, 30, 20, tzinfo=SHANGHAI)
    end = datetime(2026, 7, 1, 23, tzinfo=SHANGHAI)
    expected = 1.2 * 4 + (0.3 * 8 + 0.6 * 10 + 1.2 * 2 + 2.0 * 2 + 1.2 * 1)
    assert profile.integrate_hours(start, end) == pytest.approx(expected)


def _periods(*periods: dict[str, Any]) -> dict[str, Any]:
    return {"periods": list(periods)}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (
            _periods(
                {"name": "valley", "price_cny_per_kwh": 0.3, "hours": ["00:00-09:00"]},
                FLAT,
                PEAK,
            ),
            ["overlaps", "08:00"],
        ),
        (_periods(VALLEY, FLAT), ["uncovered", "18:00"]),
        (
            _periods(
                {"name": "valley", "price_cny_per_kwh": 0.3, "hours": ["23:00-02:00"]},
                FLAT,
                PEAK,
            ),
            ["23:00-02:00", "midnight"],
        ),
        (
            _periods({"name": "valley", "price_cny_per_kwh": 0.3, "hours": ["0-8"]}, FLAT, PEAK),
            ["'0-8'", "HH:MM-HH:MM"],
        ),
        (
            _periods({"name": "valley", "price_cny_per_kwh": 0.3, "hours": ["00:00-25:00"]}, FLAT, PEAK),
            ["outside 00:00-24:00"],
        ),
        (
            _periods({"name": "valley", "price_cny_per_kwh": 0.3, "hours": ["00:00-08:75"]}, FLAT, PEAK),
            ["outside 00:00-24:00"],
        ),
        ({**_periods(VALLEY, FLAT, PEAK), "timezone": "Asia/Zhengzhou"}, ["unknown timezone", "Asia/Zhengzhou"]),
        (
            {
                **_periods(VALLEY, FLAT, PEAK),
                "seasonal": [
                    {"months": [6, 7], "periods": [VALLEY, FLAT, PEAK]},
                    {"months": [7, 8], "periods": [VALLEY, FLAT, PEAK]},
                ],
            },
            ["[7]", "more than one seasonal day"],
        ),
        (
            {**_periods(VALLEY, FLAT, PEAK), "seasonal": [{"months": [13], "periods": [VALLEY, FLAT, PEAK]}]},
            ["months"],
        ),
        (
            {**_periods(VALLEY, FLAT, PEAK), "seasonal": [{"months": [1], "periods": [VALLEY, FLAT]}]},
            ["uncovered"],
        ),
        (_periods({"name": "shoulder", "price_cny_per_kwh": 0.3, "hours": ["00:00-24:00"]}), ["name"]),
        (_periods({"name": "flat", "price_cny_per_kwh": -1, "hours": ["00:00-24:00"]}), ["price_cny_per_kwh"]),
    ],
)
def test_tariff_validation_errors(data: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ValidationError) as info:
        Tariff.model_validate(data)
    text = str(info.value)
    for w in words:
        assert w in text, f"{w!r} not in {text!r}"


def test_one_period_for_the_whole_day_is_valid() -> None:
    t = Tariff.model_validate(_periods({"name": "flat", "price_cny_per_kwh": 0.5, "hours": ["00:00-24:00"]}))
    p = tariff_profile(t)
    day = datetime(2026, 1, 1, tzinfo=SHANGHAI)
    assert p.integrate_hours(day, day + timedelta(days=3)) == pytest.approx(0.5 * 72)


# --------------------------------------------------------------------------------------------------------------
# the built-in library


def test_builtin_tariffs_load_and_have_henan() -> None:
    lib = builtin_tariffs()
    assert lib
    henan = [k for k in lib if "henan" in k]
    assert henan
    t = lib["henan-ci-single-part-2026-01"]
    assert t.timezone == "Asia/Shanghai"
    assert t.source.strip()
    p = tariff_profile(t)
    for month in range(1, 13):  # every minute of every month has a price
        day = datetime(2026, month, 1, tzinfo=SHANGHAI)
        assert p.integrate_hours(day, day + timedelta(days=1)) > 0
    assert not (p.values != p.values).any()  # no NaN left uncovered


def _network(tariffs: dict[str, Any] | None = None) -> NetworkSpec:
    return NetworkSpec.model_validate(
        {
            "name": "n",
            "tariffs": tariffs or {},
            "sites": [
                {
                    "id": "s",
                    "name": "S",
                    "kind": "intelligent",
                    "province": "henan",
                    "city": "zhengzhou",
                    "energy": {"tariff": "henan-ci-single-part-2026-01", "carbon": {"kg_per_kwh": 0.6}},
                    "pools": [
                        {
                            "id": "p",
                            "hardware": "nvidia-h100-sxm5-80gb",
                            "nodes": 2,
                            "devices_per_node": 8,
                            "cpus_per_node": 64,
                            "memory_gb_per_node": 512,
                            "price": {"device_hour_cny": 10},
                        }
                    ],
                }
            ],
        }
    )


def test_resolve_builtin_and_network_tariffs() -> None:
    net = _network({"mine": {"periods": [VALLEY, FLAT, PEAK]}})
    assert resolve_tariff(net, "mine") == TARIFF
    assert resolve_tariff(net, "henan-ci-single-part-2026-01") is builtin_tariffs()["henan-ci-single-part-2026-01"]


def test_resolve_unknown_tariff_lists_known_ids() -> None:
    net = _network({"mine": {"periods": [VALLEY, FLAT, PEAK]}})
    with pytest.raises(UnknownIdError) as info:
        resolve_tariff(net, "qqqqqqqqq")
    err = info.value
    assert err.given == "qqqqqqqqq"
    assert set(err.known) == set(builtin_tariffs()) | {"mine"}
    text = str(err)
    assert "known:" in text
    for k in err.known:
        assert k in text


def test_resolve_near_miss_suggests() -> None:
    with pytest.raises(UnknownIdError, match="did you mean"):
        resolve_tariff(_network(), "henan-ci-single-part-2026-02")


# --------------------------------------------------------------------------------------------------------------
# a run's energy, carbon and money


H100 = CATALOG.get("nvidia-h100-sxm5-80gb")


def _pool(**price: float) -> Pool:
    return Pool.model_validate(
        {
            "id": "p",
            "hardware": H100.id,
            "nodes": 4,
            "devices_per_node": 8,
            "cpus_per_node": 64,
            "memory_gb_per_node": 512,
            "price": price or {"device_hour_cny": 10.0},
        }
    )


def _curves(pue: float = 1.0, green: float = 0.0, carbon: float = 0.5, price: DailyProfile = PRICE) -> SiteEnergyCurves:
    return SiteEnergyCurves(pue, price, DailyProfile.constant(carbon), green)


SHAPE = Shape(8.0, 1)
LOCAL_DAY = datetime(2026, 4, 15, tzinfo=SHANGHAI)


def test_valley_start_costs_less_than_peak_start() -> None:
    pool = _pool()
    valley = run_energy(Workload.AI_TRAINING, pool, H100, SHAPE, _curves(), LOCAL_DAY + timedelta(hours=1), 4 * 3600)
    peak = run_energy(Workload.AI_TRAINING, pool, H100, SHAPE, _curves(), LOCAL_DAY + timedelta(hours=19), 4 * 3600)
    assert valley.energy_cost_cny < peak.energy_cost_cny
    assert valley.energy_kwh == pytest.approx(peak.energy_kwh)
    assert valley.compute_cost_cny == pytest.approx(peak.compute_cost_cny)
    assert valley.energy_cost_cny == pytest.approx(valley.energy_kwh * 0.3)
    assert peak.energy_cost_cny == pytest.approx(peak.energy_kwh * 1.2)


@settings(max_examples=50, deadline=None)
@given(pue=st.floats(1.0, 3.0), start=instants, hours=st.floats(0.01, 500))
def test_energy_scales_with_pue(pue: float, start: datetime, hours: float) -> None:
    pool = _pool()
    base = run_energy(Workload.AI_TRAINING, pool, H100, SHAPE, _curves(1.0), start, hours * 3600)
    more = run_energy(Workload.AI_TRAINING, pool, H100, SHAPE, _curves(pue), start, hours * 3600)
    assert more.energy_kwh == pytest.approx(base.energy_kwh * pue, rel=1e-9)
    assert more.energy_cost_cny == pytest.approx(base.energy_cost_cny * pue, rel=1e-9)
    assert more.carbon_kg == pytest.approx(base.carbon_kg * pue, rel=1e-9)
    assert more.it_power_kw == pytest.approx(base.it_power_kw, rel=1e-12)  # IT power is before PUE
    assert more.compute_cost_cny == pytest.approx(base.compute_cost_cny)
    assert base.energy_kwh == pytest.approx(base.it_power_kw * hours, rel=1e-7)


@settings(max_examples=50, deadline=None)
@given(green=st.floats(0.0, 1.0), start=instants, hours=st.floats(0.01, 500))
def test_carbon_scales_with_non_green_share(green: float, start: datetime, hours: float) -> None:
    pool = _pool()
    grey = run_energy(Workload.AI_TRAINING, pool, H100, SHAPE, _curves(1.3, 0.0), start, hours * 3600)
    mixed = run_energy(Workload.AI_TRAINING, pool, H100, SHAPE, _curves(1.3, green), start, hours * 3600)
    assert mixed.carbon_kg == pytest.approx(grey.carbon_kg * (1 - green), rel=1e-9, abs=1e-12)
    assert mixed.energy_kwh == pytest.approx(grey.energy_kwh)  # green power is still power
    assert grey.carbon_kg == pytest.approx(grey.energy_kwh * 0.5, rel=1e-7)  # datetime resolves microseconds


def test_all_green_means_no_carbon() -> None:
    e = run_energy(Workload.HPC, _pool(), H100, SHAPE, _curves(1.2, 1.0), LOCAL_DAY, 10 * 3600)
    assert e.carbon_kg == 0.0
    assert e.energy_kwh > 0


@settings(max_examples=50, deadline=None)
@given(
    price=st.floats(0.0, 100.0),
    devices=st.sampled_from([1, 2, 4, 8, 16, 32]),
    hours=st.floats(0.01, 1000),
)
def test_compute_cost_is_device_hours_times_price(price: float, devices: int, hours: float) -> None:
    shape = Shape(float(devices), max(1, devices // 8))
    e = run_energy(Workload.AI_TRAINING, _pool(device_hour_cny=price), H100, shape, _curves(), LOCAL_DAY, hours * 3600)
    assert e.compute_cost_cny == pytest.approx(price * devices * hours, rel=1e-9, abs=1e-12)
    assert e.cost_cny == pytest.approx(e.compute_cost_cny + e.energy_cost_cny)


def test_node_hour_price_charges_share_of_nodes() -> None:
    pool = _pool(node_hour_cny=80.0)
    full = run_energy(Workload.AI_TRAINING, pool, H100, Shape(16.0, 2), _curves(), LOCAL_DAY, 3 * 3600)
    assert full.compute_cost_cny == pytest.approx(80.0 * 2 * 3)
    half = run_energy(Workload.AI_TRAINING, pool, H100, Shape(4.0, 1), _curves(), LOCAL_DAY, 3 * 3600)
    assert half.compute_cost_cny == pytest.approx(80.0 * 0.5 * 3)


def test_it_power_by_number() -> None:
    pool = _pool()
    kw = it_power_kw(Workload.AI_TRAINING, pool, H100, SHAPE, EFF)
    expected = (8 * 700 * EFF.power(Workload.AI_TRAINING) + EFF.host_power_w("gpu")) / 1000
    assert kw == pytest.approx(expected)
    custom = Pool.model_validate({**pool.model_dump(), "host_power_w": 0})
    assert it_power_kw(Workload.AI_TRAINING, custom, H100, SHAPE, EFF) == pytest.approx(
        8 * 700 * EFF.power(Workload.AI_TRAINING) / 1000
    )


def test_site_curves_from_network() -> None:
    net = _network()
    curves = SiteEnergyCurves.of(net, net.sites[0])
    assert curves.pue == 1.4  # the default
    assert curves.green_share == 0.0
    day = datetime(2026, 4, 15, tzinfo=SHANGHAI)
    assert curves.carbon.integrate_hours(day, day + timedelta(hours=10)) == pytest.approx(6.0)
    # Henan default day (April): valley 00-06 & 11-14, flat 06-11 & 14-16, peak 16-24
    expected = 0.2285 * 9 + 0.5078 * 7 + 0.8734 * 8
    assert curves.price.integrate_hours(day, day + timedelta(days=1)) == pytest.approx(expected)
