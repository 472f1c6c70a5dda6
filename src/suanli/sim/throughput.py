"""A measured throughput matrix as the replay's speed model (`suanli simulate --throughputs FILE`).

Gavel (Narayanan et al., "Heterogeneity-Aware Cluster Scheduling Policies for Deep Learning Workloads", OSDI 2020;
stanford-futuredata/gavel, MIT) measured how many training steps per second each of 26 job types makes on K80,
P100 and V100 GPUs, alone and with 1, 2, 4 or 8 workers (`simulation_throughputs.json`, read by
`suanli.sim.traces.read_throughputs`). With such a matrix, a job that names its `job_type` and the
`reference_hardware` its `duration_s` was measured on runs on hardware h for

    duration_s x throughput[job_type][reference] / throughput[job_type][h]

taken at the job's own worker count (its devices) where the matrix has it, else at one worker. Hardware the
matrix has no entry for (an A100, a CPU) keeps the estimator's model; hardware on which the matrix has no
throughput for the job type is ruled out for that job. The scheduler plans with these runtimes (Gavel's
policies assume measured throughputs are known) and jobs run for exactly them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from suanli.errors import SpecError
from suanli.sim.traces import Trace, read_throughputs

__all__ = ["GAVEL_HARDWARE", "Throughputs", "load_throughputs", "pool_runtimes"]

# Gavel's hardware types as catalog ids. Gavel's K80 is one GK210 GPU (how AWS and GCP count a K80), its P100 the
# PCIe card GCP offers, its V100 the SXM2 16 GB module of AWS p3 instances; the 32 GB V100 runs the same silicon at
# the same clocks (NVIDIA V100 datasheet), so it shares the V100 column. The '_unconsolidated' variants differ only
# for multi-worker jobs spread over servers and are not used.
GAVEL_HARDWARE: dict[str, tuple[str, ...]] = {
    "k80": ("nvidia-k80",),
    "p100": ("nvidia-p100-pcie-16gb",),
    "v100": ("nvidia-v100-sxm2-16gb", "nvidia-v100-sxm2-32gb"),
}
SCALE_FACTORS = (1, 2, 4, 8)  # worker counts Gavel measured


@dataclass(frozen=True)
class Throughputs:
    """Relative speeds: speeds[workers][job type][catalog hardware id] (only ratios between hardware matter)."""

    speeds: dict[int, dict[str, dict[str, float]]]
    source: str

    @property
    def job_types(self) -> set[str]:
        return set(self.speeds.get(1, {}))

    def speed(self, job_type: str, workers: int) -> dict[str, float] | None:
        """The job type's speeds at `workers` workers where measured, else at one worker; None if unknown."""
        by_type = self.speeds.get(workers, {}).get(job_type)
        return by_type if by_type is not None else self.speeds.get(1, {}).get(job_type)


def load_throughputs(path: str | Path, hardware: dict[str, tuple[str, ...]] = GAVEL_HARDWARE) -> Throughputs:
    """Read a Gavel throughput file as is, for every worker count it has, keyed by catalog hardware ids."""
    speeds: dict[int, dict[str, dict[str, float]]] = {}
    for workers in SCALE_FACTORS:
        try:
            by_type = read_throughputs(path, scale_factor=workers)
        except SpecError:
            if workers == 1:
                raise
            continue  # a file without multi-worker entries is fine: one worker's ratios stand in
        speeds[workers] = {
            job: {hw_id: v for hw, v in by_hw.items() for hw_id in hardware.get(hw, ())}
            for job, by_hw in by_type.items()
        }
    return Throughputs(speeds, str(path))


def pool_runtimes(trace: Trace, pool_hardware: list[str], tp: Throughputs) -> tuple[np.ndarray, np.ndarray, int]:
    """(runtime (N, M), runs (N, M), jobs matched) for a trace on pools of the given catalog hardware.

    runtime is NaN where the matrix does not apply (no job_type, a type or reference the matrix lacks, a pool whose
    hardware it does not cover); runs is False where the matrix covers the pool's hardware but has no throughput
    for the job type there. Jobs are grouped by (type, workers, reference) so the work is per group, not per job."""
    n, m = len(trace), len(pool_hardware)
    runtime = np.full((n, m), np.nan)
    runs = np.ones((n, m), dtype=bool)
    covered = {h for by_type in tp.speeds.values() for by_hw in by_type.values() for h in by_hw}
    in_matrix = np.array([h in covered for h in pool_hardware], dtype=bool)
    groups: dict[tuple[str, int, str], list[int]] = {}
    for i, (jt, ref) in enumerate(zip(trace.job_type, trace.reference_hardware, strict=True)):
        if jt and ref:
            groups.setdefault((jt, int(trace.devices[i]), ref), []).append(i)
    matched = 0
    duration = np.asarray(trace.duration_s, dtype=np.float64)
    for (jt, workers, ref), members in groups.items():
        speed = tp.speed(jt, workers)
        if speed is None or ref not in speed:
            continue
        rows = np.array(members)
        ok = np.isfinite(duration[rows]) & (duration[rows] > 0)
        rows = rows[ok]
        if rows.size == 0:
            continue
        matched += rows.size
        ratio = np.array([speed[ref] / speed[h] if h in speed else np.nan for h in pool_hardware])
        runtime[rows] = duration[rows][:, None] * ratio[None, :]
        runs[np.ix_(rows, np.flatnonzero(in_matrix & np.isnan(ratio)))] = False
    return runtime, runs, matched
