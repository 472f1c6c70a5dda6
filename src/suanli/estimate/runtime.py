"""How long a job runs on a pool: feasibility with reasons, then work over sustained rate.

runtime = max(compute time, memory time), where
  compute time = sum over precisions of work_p / (peak of p's carrier x compute efficiency x N x scaling)
  memory time  = memory traffic / (bandwidth x bandwidth efficiency x N x scaling)     (roofline bound)
N counts devices for accelerator pools and socket-equivalents (cores / cores per socket) for CPU pools."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from suanli.errors import Problem, SpecError
from suanli.estimate.efficiency import Efficiency, default_efficiency
from suanli.hardware.catalog import Catalog, Device
from suanli.spec.common import Precision
from suanli.spec.job import JobSpec
from suanli.spec.network import Pool

Bound = Literal["compute", "memory", "given"]


@dataclass(frozen=True)
class Shape:
    """How much of a pool a job occupies: units (devices, or socket-equivalents on CPU pools) over nodes."""

    units: float
    nodes: int

    @property
    def per_node(self) -> float:
        return self.units / self.nodes


@dataclass(frozen=True)
class RuntimeEstimate:
    feasible: bool
    reasons: tuple[str, ...] = ()
    runtime_s: float | None = None
    shape: Shape | None = None
    bound: Bound | None = None
    scaling: float | None = None
    carriers: dict[Precision, Precision] = field(default_factory=dict)  # work precision -> precision it runs in


def job_shape(job: JobSpec, device: Device) -> Shape:
    r = job.resources
    if device.is_accelerator:
        return Shape(float(r.devices), r.nodes)
    return Shape(r.cpus / float(device.cores or 1), r.nodes)


def fit_reasons(job: JobSpec, pool: Pool, device: Device) -> list[str]:
    """Why the job cannot run on this pool at all, whatever its load (empty when it can)."""
    r, out = job.resources, []
    if r.devices and not device.is_accelerator:
        out.append(f"needs {r.devices} accelerator(s); pool {pool.id} has only CPUs ({device.id})")
    if not r.devices and device.is_accelerator:
        out.append(f"CPU-only job (devices: 0); pool {pool.id} is an accelerator pool ({device.id})")
    if r.nodes > pool.nodes:
        out.append(f"needs {r.nodes} nodes, pool {pool.id} has {pool.nodes}")
    if r.devices and device.is_accelerator and r.devices_per_node > pool.devices_per_node:
        out.append(f"needs {r.devices_per_node} devices per node, {pool.id} nodes have {pool.devices_per_node}")
    if r.device_memory_gb and device.memory_gb and r.device_memory_gb > device.memory_gb:
        out.append(f"needs {r.device_memory_gb:g} GB per device, {device.id} has {device.memory_gb:g}")
    cpus_per_node = math.ceil(r.cpus / r.nodes)
    if cpus_per_node > pool.cpus_per_node:
        out.append(f"needs {cpus_per_node} CPUs per node, {pool.id} nodes have {pool.cpus_per_node}")
    mem_per_node = r.memory_gb / r.nodes
    if mem_per_node > pool.memory_gb_per_node:
        out.append(f"needs {mem_per_node:g} GB memory per node, {pool.id} nodes have {pool.memory_gb_per_node:g}")
    if job.declares_precision:
        for p in job.work_mix():
            if device.carrier(p) is None:
                out.append(f"{p.value} work but {device.id} has no {p.value} path")
    return out


def sustained_tflops(job: JobSpec, device: Device, eff: Efficiency) -> dict[Precision, float]:
    """Per-unit sustained rate for each precision of the job's work (through its carrier)."""
    share = eff.compute(job.workload, device.kind)
    rates = {}
    for p in job.work_mix():
        peak = device.capacity(p)
        if peak is not None:
            rates[p] = peak * share
    return rates


def seconds_per_tflop(job: JobSpec, device: Device, eff: Efficiency) -> float:
    """Time for one unit of the device to do 1e12 operations of the job's precision mix (harmonic blend)."""
    rates = sustained_tflops(job, device, eff)
    return sum(m / rates[p] for p, m in job.work_mix().items())


def estimate_runtime(
    job: JobSpec, pool: Pool, device: Device, catalog: Catalog | None = None, eff: Efficiency | None = None
) -> RuntimeEstimate:
    eff = eff or default_efficiency()
    reasons = fit_reasons(job, pool, device)
    if reasons:
        return RuntimeEstimate(False, tuple(reasons))
    shape = job_shape(job, device)
    scaling = eff.scaling(job.workload, device.intra_node_link, shape.per_node, shape.nodes)
    effective_units = shape.units * scaling
    carriers = {p: q for p in job.work_mix() if (q := device.carrier(p)) is not None}
    c = job.compute
    if c.walltime_h is not None:
        return RuntimeEstimate(True, (), c.walltime_h * 3600.0, shape, "given", scaling, carriers)
    if c.flops is not None:
        tflops_total = sum(c.flops.values()) / 1e12
    else:
        assert c.reference is not None
        tflops_total = reference_work_tflops(job, catalog, eff)
    compute_s = tflops_total * seconds_per_tflop(job, device, eff) / effective_units
    memory_s = 0.0
    if c.memory_traffic_gb:
        memory_s = c.memory_traffic_gb / (device.memory_bw_gbs * eff.bandwidth(device.kind) * effective_units)
    bound: Bound = "memory" if memory_s > compute_s else "compute"
    return RuntimeEstimate(True, (), max(compute_s, memory_s), shape, bound, scaling, carriers)


def reference_work_tflops(job: JobSpec, catalog: Catalog | None, eff: Efficiency) -> float:
    """Turn 'hours on N reference devices' into operations (in 1e12) of the job's precision mix, so that
    the same job on the same hardware and device count estimates back to the same hours."""
    from suanli.hardware.catalog import load_catalog

    ref = job.compute.reference
    assert ref is not None
    device = (catalog or load_catalog()).get(ref.hardware)
    missing = [p.value for p in job.work_mix() if device.carrier(p) is None]
    if missing:
        msg = (
            f"{ref.hardware} has no {'/'.join(missing)} path, so the job cannot have run there; "
            "give the precision mix it ran in (compute.mix) or another reference"
        )
        raise SpecError([Problem(msg, "compute.reference.hardware")], kind="job spec")
    # The reference is taken to have used the job's own per-node layout, so that the same hardware and unit
    # count estimates back to exactly the reference hours.
    units = float(ref.devices)
    shape = job_shape(job, device)
    per_node = max(1.0, shape.per_node)
    nodes = max(1, math.ceil(units / per_node - 1e-9))
    scaling = eff.scaling(job.workload, device.intra_node_link, units / nodes, nodes)
    return ref.hours * 3600.0 * units * scaling / seconds_per_tflop(job, device, eff)
