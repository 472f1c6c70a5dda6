"""Energy, carbon and money of one run of a job on a pool, integrated over the tariff and carbon periods that
the run crosses.

  IT power      = units x TDP x power share (by workload) + host power x nodes x (units per node / pool's)
  facility kWh  = IT power x hours x PUE
  carbon kg     = ∫ facility power x grid intensity dt x (1 - green share)
  cost CNY      = hardware-hour price x occupied hours + ∫ facility power x tariff dt"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from suanli.energy.profile import DailyProfile
from suanli.energy.tariffs import resolve_tariff, tariff_profile
from suanli.estimate.efficiency import Efficiency, default_efficiency
from suanli.estimate.runtime import Shape
from suanli.hardware.catalog import Device
from suanli.spec.common import Workload
from suanli.spec.network import NetworkSpec, Pool, Site


@dataclass(frozen=True)
class SiteEnergyCurves:
    """A site's price and carbon as functions of time, built once per site."""

    pue: float
    price: DailyProfile  # CNY per kWh
    carbon: DailyProfile  # kg CO2 per kWh (grid, before green share)
    green_share: float

    @classmethod
    def of(cls, network: NetworkSpec, site: Site) -> SiteEnergyCurves:
        e = site.energy
        tariff = resolve_tariff(network, e.tariff)
        if e.carbon.kg_per_kwh is not None:
            carbon = DailyProfile.constant(e.carbon.kg_per_kwh, tariff.timezone)
        else:
            carbon = DailyProfile.hourly(list(e.carbon.hourly_kg_per_kwh or []), tariff.timezone)
        return cls(e.pue, tariff_profile(tariff), carbon, e.green_share)


@dataclass(frozen=True)
class RunEnergy:
    it_power_kw: float
    energy_kwh: float  # at the facility meter (IT x PUE)
    carbon_kg: float
    energy_cost_cny: float
    compute_cost_cny: float

    @property
    def cost_cny(self) -> float:
        return self.energy_cost_cny + self.compute_cost_cny


def it_power_kw(workload: Workload, pool: Pool, device: Device, shape: Shape, eff: Efficiency) -> float:
    devices_w = shape.units * device.tdp_w * eff.power(workload)
    host_w = pool.host_power_w if pool.host_power_w is not None else eff.host_power_w(device.kind)
    node_share = min(1.0, shape.per_node / pool.devices_per_node)
    return (devices_w + host_w * shape.nodes * node_share) / 1000.0


def run_energy(
    workload: Workload,
    pool: Pool,
    device: Device,
    shape: Shape,
    curves: SiteEnergyCurves,
    start: datetime,
    runtime_s: float,
    eff: Efficiency | None = None,
) -> RunEnergy:
    eff = eff or default_efficiency()
    end = start + timedelta(seconds=runtime_s)
    hours = runtime_s / 3600.0
    kw = it_power_kw(workload, pool, device, shape, eff) * curves.pue
    energy_kwh = kw * hours
    energy_cost = kw * curves.price.integrate_hours(start, end)
    carbon = kw * curves.carbon.integrate_hours(start, end) * (1.0 - curves.green_share)
    if pool.price.device_hour_cny is not None:
        compute_cost = pool.price.device_hour_cny * shape.units * hours
    else:
        node_share = min(1.0, shape.per_node / pool.devices_per_node)
        compute_cost = (pool.price.node_hour_cny or 0.0) * shape.nodes * node_share * hours
    return RunEnergy(kw / curves.pue, energy_kwh, carbon, energy_cost, compute_cost)
