"""The scheduler's input, as arrays: a snapshot of pending jobs, pools, sites, running work and the energy
curves ahead. Everything is relative to the snapshot's `now` (seconds), so the core never reads a clock.

Shapes: N pending jobs, M pools, S sites, R running (or held) allocations, K time slots of `slot_s` seconds,
P = 7 precisions in the order of suanli.spec.common.PRECISIONS, D data sets per job at most."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from suanli.spec.common import PRECISIONS, Objective, Workload

WORKLOADS: tuple[Workload, ...] = tuple(Workload)
OBJECTIVES: tuple[Objective, ...] = tuple(Objective)
KINDS: tuple[str, ...] = ("gpu", "npu", "dcu", "cpu")
CPU_KIND = KINDS.index("cpu")
N_PRECISIONS = len(PRECISIONS)
DEVICES, CPUS, MEMORY = 0, 1, 2  # the capacity dimensions


@dataclass(frozen=True)
class Efficiencies:
    """The efficiency table as arrays indexed by workload (W) and device kind (4)."""

    compute: np.ndarray  # (W, 4) sustained share of peak
    bandwidth: np.ndarray  # (4,)
    inside_fast: np.ndarray  # (W,) kept per doubling inside a node on a fast link
    inside_pcie: np.ndarray  # (W,)
    inter_node: np.ndarray  # (W,)
    power: np.ndarray  # (W,) share of TDP drawn


@dataclass(frozen=True)
class PoolTable:
    key: list[str]  # "site/pool"
    hardware: list[str]
    site: np.ndarray  # (M,) int site index
    kind: np.ndarray  # (M,) int index into KINDS
    carried_tflops: np.ndarray  # (M, P) peak of the fastest accurate carrier per precision; NaN = no path
    device_memory_gb: np.ndarray  # (M,) inf when unknown (CPU)
    bandwidth_gbs: np.ndarray  # (M,)
    tdp_w: np.ndarray  # (M,)
    cores: np.ndarray  # (M,) cores per unit for CPU pools, 1 otherwise
    fast_link: np.ndarray  # (M,) bool
    nodes: np.ndarray  # (M,)
    devices_per_node: np.ndarray  # (M,) devices, or sockets on CPU pools
    cpus_per_node: np.ndarray  # (M,)
    memory_gb_per_node: np.ndarray  # (M,)
    unit_hour_cny: np.ndarray  # (M,) price per device-hour (socket-equivalent on CPU pools); NaN if by node
    node_hour_cny: np.ndarray  # (M,) NaN if by device
    host_power_w: np.ndarray  # (M,)
    # (M,) bool: pools of sites that cannot be reached now. They keep their shape (a job that fits one is not
    # rejected) but offer no capacity, so their jobs wait or go elsewhere. None: all online.
    offline: np.ndarray | None = None

    @property
    def size(self) -> int:
        return len(self.key)

    @property
    def accelerator(self) -> np.ndarray:
        return self.kind != CPU_KIND

    @property
    def capacity(self) -> np.ndarray:
        """(M, 3) total devices, CPUs and memory GB. CPU pools offer no devices: their jobs ask for cores."""
        devices = np.where(self.accelerator, self.nodes * self.devices_per_node, 0)
        return np.stack(
            [devices, self.nodes * self.cpus_per_node, self.nodes * self.memory_gb_per_node], axis=1
        ).astype(np.float64)


@dataclass(frozen=True)
class SiteTable:
    key: list[str]
    pue: np.ndarray  # (S,)
    green_share: np.ndarray  # (S,)
    price_cum: np.ndarray  # (S, K+1) ∫ tariff dt from now, CNY per kW, at slot boundaries
    carbon_cum: np.ndarray  # (S, K+1) ∫ grid intensity dt from now, kg per kW
    latency_ms: np.ndarray  # (S, S)
    bandwidth_gbps: np.ndarray  # (S, S)
    egress_cny_per_gb: np.ndarray  # (S, S)

    @property
    def size(self) -> int:
        return len(self.key)


@dataclass(frozen=True)
class JobTable:
    key: list[str]  # job ids
    tenant: np.ndarray  # (N,) int
    priority: np.ndarray  # (N,) int
    submit_s: np.ndarray  # (N,) relative to now (<= 0 for jobs already waiting)
    workload: np.ndarray  # (N,) index into WORKLOADS
    objective: np.ndarray  # (N,) index into OBJECTIVES
    devices: np.ndarray  # (N,) total
    cpus: np.ndarray  # (N,) total
    memory_gb: np.ndarray  # (N,) total
    nodes: np.ndarray  # (N,)
    device_memory_gb: np.ndarray  # (N,) 0 when not asked
    mix: np.ndarray  # (N, P) share of work per precision, rows sum to 1
    declares_precision: np.ndarray  # (N,) bool: precision paths are checked only when declared
    work_tflops: np.ndarray  # (N,) total work in 1e12 operations; NaN when walltime is given
    walltime_s: np.ndarray  # (N,) NaN unless given
    memory_traffic_gb: np.ndarray  # (N,) 0 when not declared
    deadline_s: np.ndarray  # (N,) relative to now; inf when none
    budget_cny: np.ndarray  # (N,) inf when none
    preemptible: np.ndarray  # (N,) bool
    checkpoint_s: np.ndarray  # (N,) inf when none
    data_site: np.ndarray  # (N, D) site index, -1 for none
    data_gb: np.ndarray  # (N, D)
    allowed_site: np.ndarray | None = None  # (N, S) bool: constraints and data residency; None = all
    allowed_pool: np.ndarray | None = None  # (N, M) bool: hardware allow/deny lists; None = all
    # (N, M) measured runtime on each pool (a throughput matrix in the simulator), overriding the model; NaN = model
    pool_runtime_s: np.ndarray | None = None

    @property
    def size(self) -> int:
        return len(self.key)

    @property
    def demand(self) -> np.ndarray:
        return np.stack([self.devices, self.cpus, self.memory_gb], axis=1).astype(np.float64)

    def take(self, rows: np.ndarray) -> JobTable:
        """The jobs at `rows`, every per-job field picked alike (arrays by index, lists by position)."""
        picked = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                picked[f.name] = value[rows]
            elif isinstance(value, list):
                picked[f.name] = [value[i] for i in rows]
        return replace(self, **picked)


@dataclass(frozen=True)
class RunningTable:
    """Work that holds capacity now: running jobs (and accepted plans the shell keeps)."""

    key: list[str]
    pool: np.ndarray  # (R,) int
    demand: np.ndarray  # (R, 3)
    start_s: np.ndarray  # (R,) relative to now (<= 0 when running)
    end_s: np.ndarray  # (R,) expected end, relative to now
    priority: np.ndarray  # (R,)
    preemptible: np.ndarray  # (R,) bool
    checkpoint_s: np.ndarray  # (R,) inf when none
    tenant: np.ndarray  # (R,)

    @classmethod
    def empty(cls) -> RunningTable:
        z = np.zeros(0)
        return cls([], z.astype(int), np.zeros((0, 3)), z, z, z.astype(int), z.astype(bool), z, z.astype(int))

    @property
    def size(self) -> int:
        return len(self.key)


@dataclass(frozen=True)
class Snapshot:
    jobs: JobTable
    pools: PoolTable
    sites: SiteTable
    efficiencies: Efficiencies
    running: RunningTable = field(default_factory=RunningTable.empty)
    slot_s: float = 600.0
    tenants: list[str] = field(default_factory=lambda: ["default"])

    @property
    def horizon_slots(self) -> int:
        return self.sites.price_cum.shape[1] - 1
