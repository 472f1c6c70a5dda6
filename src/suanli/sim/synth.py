"""Synthetic traces for `suanli simulate`, in the generic CSV schema that `suanli.sim.traces.read_csv` reads.

`synthesize(jobs, kind, seed)` returns one dict per job (keys: `SYNTH_COLUMNS`); `write_csv(rows, stream)` writes
them with a header row. Output is deterministic for a seed (numpy `default_rng(seed)`). Jobs are numbered
'synth-0', 'synth-1', ... in submit order; submit_s is sorted and the first job is submitted at 0. Arrivals are a
Poisson process: inter-arrival gaps are exponential with mean `mean_interarrival_s` (default per kind, below).
Times are rounded to milliseconds. Columns a kind does not model are written blank, so `read_csv` applies its
documented default (memory_gb NaN, hardware any, deadline none, data_site none, data_gb 0).

The distributions below are the ones implemented here. Where a paper is named it is the model they follow; where
a choice is marked "assumption" it is this module's own, made to give the simulator a plausible input.

Kinds
-----
`philly` -- GPU training jobs generated the way Gavel does (Narayanan et al., "Heterogeneity-Aware Cluster
Scheduling Policies for Deep Learning Workloads", OSDI 2020, §7 "Workload"; its generator follows the job-size
and duration shape of Microsoft's Philly trace, Jeon et al., USENIX ATC 2019):

- job_type: uniform over Gavel's 26 job types (`GAVEL_JOB_TYPES`, the names in Gavel's
  `simulation_throughputs.json`). Multi-GPU jobs draw only from the 22 types Gavel measured with 2, 4 and 8 workers
  (`GAVEL_DISTRIBUTED_JOB_TYPES`; A3C, CycleGAN and Recommendation are single-worker only), as Gavel resamples
  the job type until it supports the drawn scale factor.
- devices (GPUs): 1 with probability 0.70, 2 with 0.10, 4 with 0.15, 8 with 0.05.
- duration_s: 60 * 10**x seconds (10**x minutes) with x ~ U[1.5, 3] for 80% of jobs and x ~ U[3, 4] for 20%,
  i.e. about 32 min to 16.7 h, and 16.7 h to 6.9 days. The duration is on the reference hardware,
  'nvidia-v100-sxm2-32gb' (Gavel measures job lengths on V100s).
- arrivals: Poisson, mean gap 360 s (10 jobs/hour) by default. Gavel sweeps the arrival rate (λ jobs/hour) as
  the experiment's load knob; the default here is this module's choice, pass `mean_interarrival_s` to change it.
- cpus = devices (one host core per GPU; assumption: Gavel models GPUs only); nodes 1; workload 'ai-training';
  tenant uniform over 'lab-0'..'lab-9'; priority 0; preemptible true (Gavel preempts jobs at round ends).

`hpc` -- CPU batch jobs (assumptions shaped after the rigid-job model of Lublin & Feitelson, "The workload on
parallel supercomputers: modeling the characteristics of rigid jobs", JPDC 2003: sizes are mostly small and powers
of two, runtimes span minutes to a day, users overestimate their runtime):

- cpus: 2**k for k = 0..8 (1 to 256 cores) with probability proportional to 0.7**k (1 core: 32%, 256 cores: 1.8%).
- nodes: ceil(cpus / 32) (assumption: 32 cores per node), so at most 32 cores are asked of one node.
- duration_s: log-uniform between 60 s and 86,400 s (1 min to 24 h).
- requested_s: duration_s * U(1, 3), rounded up to a whole multiple of 900 s (15 min); always >= duration_s.
- arrivals: Poisson, mean gap 120 s by default.
- devices 0; workload 'hpc'; tenant uniform over 'user-0'..'user-49'; priority 0; preemptible false.

`mixed` -- one Poisson arrival stream (mean gap 180 s by default); each job is independently philly-like with
probability 0.5, hpc-like with 0.3 and inference with 0.2 (so each class is itself a Poisson stream; the streams are
merged in submit order). Inference jobs (assumption): devices 1, cpus 1, duration_s uniform in [60, 1800] s
(1-30 min) on 'nvidia-v100-sxm2-32gb', deadline_s = submit_s + 4 * duration_s, workload 'ai-inference', tenant
uniform over 'svc-0'..'svc-4', priority 1, preemptible false.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import numpy as np

from suanli.errors import Problem, SpecError
from suanli.sim.traces import CSV_COLUMNS

__all__ = [
    "DEFAULT_INTERARRIVAL_S",
    "GAVEL_DISTRIBUTED_JOB_TYPES",
    "GAVEL_JOB_TYPES",
    "KINDS",
    "SYNTH_COLUMNS",
    "synthesize",
    "write_csv",
]

KINDS = ("philly", "hpc", "mixed")

# The 26 job-type names of Gavel's simulation_throughputs.json (stanford-futuredata/gavel), in the file's order.
GAVEL_JOB_TYPES = (
    "ResNet-18 (batch size 16)",
    "ResNet-18 (batch size 32)",
    "ResNet-18 (batch size 64)",
    "ResNet-18 (batch size 128)",
    "ResNet-18 (batch size 256)",
    "ResNet-50 (batch size 16)",
    "ResNet-50 (batch size 32)",
    "ResNet-50 (batch size 64)",
    "ResNet-50 (batch size 128)",
    "Transformer (batch size 16)",
    "Transformer (batch size 32)",
    "Transformer (batch size 64)",
    "Transformer (batch size 128)",
    "Transformer (batch size 256)",
    "A3C",
    "LM (batch size 5)",
    "LM (batch size 10)",
    "LM (batch size 20)",
    "LM (batch size 40)",
    "LM (batch size 80)",
    "Recommendation (batch size 512)",
    "Recommendation (batch size 1024)",
    "Recommendation (batch size 2048)",
    "Recommendation (batch size 4096)",
    "Recommendation (batch size 8192)",
    "CycleGAN",
)
# Those the file also has with scale factors 2, 4 and 8.
GAVEL_DISTRIBUTED_JOB_TYPES = tuple(
    t for t in GAVEL_JOB_TYPES if not t.startswith(("A3C", "CycleGAN", "Recommendation"))
)

# The generic CSV schema's columns that generated traces fill, in the reader's order (no flops, fractions or
# per-device memory).
SYNTH_COLUMNS = tuple(
    c for c in CSV_COLUMNS if not c.startswith("flops_") and c not in ("device_fraction", "device_memory_gb")
)

DEFAULT_INTERARRIVAL_S = {"philly": 360.0, "hpc": 120.0, "mixed": 180.0}
REFERENCE_GPU = "nvidia-v100-sxm2-32gb"

_GPU_COUNTS = (1, 2, 4, 8)
_GPU_SHARES = (0.70, 0.10, 0.15, 0.05)
_HPC_CORES = tuple(2**k for k in range(9))
_HPC_WEIGHTS = np.array([0.7**k for k in range(9)]) / sum(0.7**k for k in range(9))
_HPC_CORES_PER_NODE = 32
_MIXED_SHARES = (0.5, 0.3, 0.2)  # philly-like, hpc-like, inference


def synthesize(
    jobs: int, kind: str, seed: int = 0, *, mean_interarrival_s: float | None = None
) -> list[dict[str, object]]:
    """`jobs` synthetic jobs of `kind` ('philly', 'hpc' or 'mixed'; see the module docstring), as rows of the
    generic CSV schema (keys `SYNTH_COLUMNS`; None where blank), sorted by submit_s from 0. Deterministic for
    `seed`. Bad arguments raise SpecError naming what is accepted."""
    problems: list[Problem] = []
    if kind not in KINDS:
        problems.append(Problem("unknown trace kind", field="kind", given=kind, accepted=", ".join(KINDS)))
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        problems.append(Problem("not an integer >= 1", field="jobs", given=jobs, accepted="an integer >= 1"))
    if mean_interarrival_s is not None and not (math.isfinite(mean_interarrival_s) and mean_interarrival_s > 0):
        problems.append(
            Problem(
                "not a number of seconds > 0",
                field="mean_interarrival_s",
                given=mean_interarrival_s,
                accepted="a number of seconds > 0",
            )
        )
    if problems:
        raise SpecError(problems, kind="synthetic trace request")
    rng = np.random.default_rng(seed)
    gap = DEFAULT_INTERARRIVAL_S[kind] if mean_interarrival_s is None else float(mean_interarrival_s)
    submit = np.round(np.concatenate(([0.0], np.cumsum(rng.exponential(gap, jobs - 1)))), 3)
    if kind == "philly":
        rows = _philly(rng, submit)
    elif kind == "hpc":
        rows = _hpc(rng, submit)
    else:
        cls = rng.choice(3, size=jobs, p=_MIXED_SHARES)
        parts = [_philly, _hpc, _inference]
        rows = [{} for _ in range(jobs)]
        for c, make in enumerate(parts):
            idx = np.flatnonzero(cls == c)
            for i, row in zip(idx.tolist(), make(rng, submit[idx]), strict=True):
                rows[i] = row
    for k, row in enumerate(rows):
        row["job_id"] = f"synth-{k}"
    return [{c: row.get(c) for c in SYNTH_COLUMNS} for row in rows]


def _philly(rng: np.random.Generator, submit: np.ndarray) -> list[dict[str, Any]]:
    n = len(submit)
    devices = rng.choice(_GPU_COUNTS, size=n, p=_GPU_SHARES)
    single = rng.integers(len(GAVEL_JOB_TYPES), size=n)
    multi = rng.integers(len(GAVEL_DISTRIBUTED_JOB_TYPES), size=n)
    long = rng.random(n) < 0.2
    x = np.where(long, rng.uniform(3.0, 4.0, n), rng.uniform(1.5, 3.0, n))
    duration = np.round(60.0 * 10.0**x, 3)
    tenant = rng.integers(10, size=n)
    return [
        {
            "submit_s": float(submit[i]),
            "duration_s": float(duration[i]),
            "cpus": int(devices[i]),
            "devices": int(devices[i]),
            "nodes": 1,
            "reference_hardware": REFERENCE_GPU,
            "workload": "ai-training",
            "tenant": f"lab-{tenant[i]}",
            "priority": 0,
            "preemptible": True,
            "job_type": GAVEL_JOB_TYPES[single[i]] if devices[i] == 1 else GAVEL_DISTRIBUTED_JOB_TYPES[multi[i]],
        }
        for i in range(n)
    ]


def _hpc(rng: np.random.Generator, submit: np.ndarray) -> list[dict[str, Any]]:
    n = len(submit)
    cores = rng.choice(_HPC_CORES, size=n, p=_HPC_WEIGHTS)
    duration = np.round(np.exp(rng.uniform(math.log(60.0), math.log(86_400.0), n)), 3)
    requested = np.ceil(duration * rng.uniform(1.0, 3.0, n) / 900.0) * 900.0
    requested = np.maximum(requested, np.ceil(duration / 900.0) * 900.0)
    tenant = rng.integers(50, size=n)
    return [
        {
            "submit_s": float(submit[i]),
            "duration_s": float(duration[i]),
            "requested_s": float(requested[i]),
            "cpus": int(cores[i]),
            "devices": 0,
            "nodes": math.ceil(int(cores[i]) / _HPC_CORES_PER_NODE),
            "workload": "hpc",
            "tenant": f"user-{tenant[i]}",
            "priority": 0,
            "preemptible": False,
        }
        for i in range(n)
    ]


def _inference(rng: np.random.Generator, submit: np.ndarray) -> list[dict[str, Any]]:
    n = len(submit)
    duration = np.round(rng.uniform(60.0, 1800.0, n), 3)
    deadline = np.round(submit + 4.0 * duration, 3)
    tenant = rng.integers(5, size=n)
    return [
        {
            "submit_s": float(submit[i]),
            "duration_s": float(duration[i]),
            "cpus": 1,
            "devices": 1,
            "nodes": 1,
            "reference_hardware": REFERENCE_GPU,
            "workload": "ai-inference",
            "deadline_s": float(deadline[i]),
            "tenant": f"svc-{tenant[i]}",
            "priority": 1,
            "preemptible": False,
        }
        for i in range(n)
    ]


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return repr(value) if value != int(value) else str(int(value))
    return value


def write_csv(rows: Iterable[Mapping[str, object]], stream: TextIO) -> None:
    """Write `rows` (from `synthesize`) to `stream` as the generic trace CSV: a header of `SYNTH_COLUMNS`, then one
    line per job; None, NaN and inf are written blank, booleans as true/false."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(SYNTH_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in SYNTH_COLUMNS])
