"""Trace readers for the what-if simulator: recorded job arrivals as one columnar, numpy-backed `Trace`.

Formats: the Standard Workload Format of the Parallel Workloads Archive (`read_swf`), the Alibaba GPU cluster
trace of 2023 (`read_alibaba`, `read_alibaba_nodes`), a generic CSV schema (`read_csv`) and Gavel's measured
throughput matrix (`read_throughputs`). `read_trace` picks the reader from a format name or the file name.

Every record a reader does not use is listed in `Trace.skipped` with its line number and the reason; nothing is
dropped silently. Bad user input (a generic CSV, a throughput file) raises `SpecError` naming the file, line,
column, the value given and what is accepted.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from suanli.errors import Problem, SpecError
from suanli.spec.common import PRECISIONS, Workload

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "Trace",
    "read_alibaba",
    "read_alibaba_nodes",
    "read_csv",
    "read_swf",
    "read_throughputs",
    "read_trace",
]

FORMATS = ("swf", "alibaba", "csv")
WORKLOADS = tuple(w.value for w in Workload)


@dataclass
class Trace:
    """Job arrivals, one entry per job in every per-job field (arrays or lists of length N).

    Times are seconds. `submit_s` is relative to the trace's first submit (0); `deadline_s` is on the same clock
    (inf when none). `duration_s` is the true runtime on the trace's reference hardware (NaN where the job is given
    as `flops` instead); `requested_s` the user's runtime estimate (NaN if none). `allowed_hardware` is an empty
    tuple when any hardware will do. `flops` maps a precision ('fp64', 'bf16', ...) to per-job FLOP counts (NaN
    where a job has none at that precision); it may be empty. `meta` holds header facts and the source path;
    `skipped` lists (line number, reason) for every record not used."""

    job_id: list[str]
    submit_s: np.ndarray
    duration_s: np.ndarray
    requested_s: np.ndarray
    cpus: np.ndarray
    devices: np.ndarray
    device_fraction: np.ndarray
    memory_gb: np.ndarray
    nodes: np.ndarray
    allowed_hardware: list[tuple[str, ...]]
    reference_hardware: list[str | None]
    workload: list[str]
    tenant: list[str]
    priority: np.ndarray
    preemptible: np.ndarray
    deadline_s: np.ndarray
    data_site: list[str | None]
    data_gb: np.ndarray
    job_type: list[str | None]
    flops: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    checkpoint_s: np.ndarray | None = None  # seconds between a job's checkpoints (inf: none); None: no such column

    def __len__(self) -> int:
        return len(self.job_id)

    def __post_init__(self) -> None:
        n = len(self.job_id)
        for name in _PER_JOB:
            value = getattr(self, name)
            if len(value) != n:
                raise ValueError(f"Trace.{name} has {len(value)} entries, job_id has {n}")
        for precision, values in self.flops.items():
            if len(values) != n:
                raise ValueError(f"Trace.flops[{precision!r}] has {len(values)} entries, job_id has {n}")
        if self.checkpoint_s is not None and len(self.checkpoint_s) != n:
            raise ValueError(f"Trace.checkpoint_s has {len(self.checkpoint_s)} entries, job_id has {n}")


_FLOAT = ("submit_s", "duration_s", "requested_s", "device_fraction", "memory_gb", "deadline_s", "data_gb")
_INT = ("cpus", "devices", "nodes", "priority")
_LISTS = ("job_id", "allowed_hardware", "reference_hardware", "workload", "tenant", "data_site", "job_type")
_PER_JOB = _FLOAT + _INT + ("preemptible",) + _LISTS


def _make_trace(cols: dict[str, Any], flops: dict[str, Any], meta: dict[str, Any], skipped: list) -> Trace:
    """Turn per-column lists or arrays into a Trace; submit times are shifted so that the first is 0."""
    out: dict[str, Any] = {}
    for name in _FLOAT:
        out[name] = np.asarray(cols[name], dtype=np.float64)
    for name in _INT:
        out[name] = np.asarray(cols[name], dtype=np.int64)
    out["preemptible"] = np.asarray(cols["preemptible"], dtype=bool)
    for name in _LISTS:
        out[name] = list(cols[name])
    offset = float(out["submit_s"].min()) if len(out["submit_s"]) else 0.0
    out["submit_s"] = out["submit_s"] - offset
    out["deadline_s"] = out["deadline_s"] - offset
    meta["submit_offset_s"] = offset
    skipped.sort()
    return Trace(
        **out,
        flops={p: np.asarray(v, dtype=np.float64) for p, v in flops.items()},
        meta=meta,
        skipped=skipped,
    )


def _read_text(path: str | Path) -> str:
    """The file's text; gzip is detected by its magic bytes, not by the name. A UTF-8 BOM is dropped."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8-sig", errors="replace")


# ---------------------------------------------------------------------------------------------------- SWF

_SWF_HEADER = re.compile(r"^;\s*([A-Za-z][A-Za-z0-9_]*)\s*:(?!//)\s*(.*)$")
_INT_TEXT = re.compile(r"^[+-]?\d+$")
_FLOAT_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _header_value(text: str) -> Any:
    if _INT_TEXT.match(text):
        return int(text)
    if _FLOAT_TEXT.match(text):
        return float(text)
    return text


def read_swf(path: str | Path) -> Trace:
    """Read a Standard Workload Format log (Parallel Workloads Archive), gzipped or plain.

    Header lines `; Key: value` go into `meta` (MaxNodes, MaxProcs, UnixStartTime, TimeZoneString, ...; numbers as
    int or float; a repeated key or a continuation line is appended on a new line). Each record has 18
    whitespace-separated fields: 1 job number, 2 submit time (s), 3 wait time (s), 4 run time (s), 5 allocated
    processors, 6 average CPU time (s), 7 used memory (KB per processor), 8 requested processors, 9 requested
    time (s), 10 requested memory (KB per processor), 11 status (1 done, 0 failed, 5 cancelled), 12 user id,
    13 group id, 14 executable, 15 queue, 16 partition, 17 preceding job, 18 think time; -1 means unknown.

    Used: job_id = field 1; submit_s = field 2; duration_s = field 4; requested_s = field 9 (NaN when -1);
    processors = field 5, or field 8 when 5 is -1; cpus = processors; devices = 0; nodes = processors divided by
    MaxProcs/MaxNodes (rounded up; = processors when the header lacks them); memory_gb = requested memory
    (field 10), else used memory (field 7), times processors, KB -> GB (/1024**2), NaN when neither is known;
    workload 'hpc'; tenant 'user-<field 12>' ('user-unknown' for -1). Skipped, with line and reason: records
    with status 5 (cancelled), run time <= 0, processors <= 0, a field count other than 18, or a non-number.
    `meta['records']` counts record lines (used + skipped)."""
    text = _read_text(path)
    meta: dict[str, Any] = {"source": str(path), "format": "swf"}
    skipped: list[tuple[int, str]] = []
    rows: list[list[float]] = []
    lines: list[int] = []
    last_key: str | None = None
    records = 0
    for no, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        if s.startswith(";"):
            m = _SWF_HEADER.match(s)
            body = s[1:].strip()
            if m:
                key, value = m.group(1), m.group(2).strip()
                meta[key] = f"{meta[key]}\n{value}" if key in meta and key not in ("source", "format") else value
                last_key = key
            elif body and last_key is not None:
                meta[last_key] = f"{meta[last_key]}\n{body}"
            else:
                last_key = None
            continue
        records += 1
        parts = s.split()
        if len(parts) != 18:
            skipped.append((no, f"expected 18 fields, found {len(parts)}"))
            continue
        try:
            rows.append([float(x) for x in parts])
        except ValueError:
            bad = next(k for k, x in enumerate(parts, 1) if _float_or_none(x) is None)
            skipped.append((no, f"field {bad} is not a number: {parts[bad - 1]!r}"))
            continue
        lines.append(no)
    for key, value in list(meta.items()):
        if key not in ("source", "format") and isinstance(value, str):
            meta[key] = _header_value(value)
    meta["records"] = records

    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 18)
    line_no = np.asarray(lines, dtype=np.int64)
    procs = np.where(arr[:, 4] > 0, arr[:, 4], arr[:, 7])
    cancelled = arr[:, 10] == 5
    no_run = ~cancelled & ~(arr[:, 3] > 0)
    no_procs = ~cancelled & ~no_run & ~(procs > 0)
    for k in np.flatnonzero(cancelled):
        skipped.append((int(line_no[k]), "cancelled (status 5)"))
    for k in np.flatnonzero(no_run):
        skipped.append((int(line_no[k]), f"run time {arr[k, 3]:g} <= 0"))
    for k in np.flatnonzero(no_procs):
        skipped.append((int(line_no[k]), f"processors <= 0 (allocated {arr[k, 4]:g}, requested {arr[k, 7]:g})"))
    keep = ~(cancelled | no_run | no_procs)
    arr, procs = arr[keep], procs[keep]
    n = len(arr)

    max_nodes, max_procs = meta.get("MaxNodes"), meta.get("MaxProcs")
    per_node = 1.0
    if isinstance(max_nodes, int | float) and isinstance(max_procs, int | float) and max_nodes > 0 and max_procs > 0:
        per_node = max(1.0, max_procs / max_nodes)
    mem_kb = np.where(arr[:, 9] > 0, arr[:, 9], np.where(arr[:, 6] > 0, arr[:, 6], np.nan))
    users = arr[:, 11].astype(np.int64)
    cols = {
        "job_id": [str(int(x)) if x == int(x) else f"{x:g}" for x in arr[:, 0].tolist()],
        "submit_s": arr[:, 1],
        "duration_s": arr[:, 3],
        "requested_s": np.where(arr[:, 8] > 0, arr[:, 8], np.nan),
        "cpus": procs,
        "devices": np.zeros(n),
        "device_fraction": np.ones(n),
        "memory_gb": mem_kb * procs / 1024**2,
        "nodes": np.ceil(procs / per_node - 1e-9),
        "allowed_hardware": [()] * n,
        "reference_hardware": [None] * n,
        "workload": [Workload.HPC.value] * n,
        "tenant": [f"user-{u}" if u >= 0 else "user-unknown" for u in users.tolist()],
        "priority": np.zeros(n),
        "preemptible": np.zeros(n, dtype=bool),
        "deadline_s": np.full(n, np.inf),
        "data_site": [None] * n,
        "data_gb": np.zeros(n),
        "job_type": [None] * n,
    }
    return _make_trace(cols, {}, meta, skipped)


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------------ Alibaba

ALIBABA_POD_COLUMNS = (
    "name",
    "cpu_milli",
    "memory_mib",
    "num_gpu",
    "gpu_milli",
    "gpu_spec",
    "qos",
    "creation_time",
    "deletion_time",
    "scheduled_time",
)
ALIBABA_NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
# QoS classes of the Alibaba trace: LS latency-sensitive, BE best-effort, plus the Kubernetes Burstable/Guaranteed.
ALIBABA_PRIORITY = {"Guaranteed": 3, "LS": 2, "Burstable": 1, "BE": 0}
ALIBABA_PREEMPTIBLE = frozenset({"BE", "Burstable"})


def _csv_rows(path: str | Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (stripped names) and (line number, fields) for each non-blank row."""
    reader = csv.reader(io.StringIO(_read_text(path)))
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    for fields in reader:
        if not fields or all(not f.strip() for f in fields):
            continue
        if header is None:
            header = [f.strip() for f in fields]
            continue
        rows.append((reader.line_num, fields))
    if header is None:
        raise SpecError([Problem("the file is empty: no header row")], source=str(path), kind="trace")
    return header, rows


def _require(header: list[str], required: tuple[str, ...], path: str | Path, accepted: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        raise SpecError(
            [Problem(f"missing required column {c!r}", field=c, line=1, accepted=", ".join(accepted)) for c in missing],
            source=str(path),
            kind="trace",
        )


def read_alibaba(path: str | Path) -> Trace:
    """Read a pod list of Alibaba's GPU cluster trace 2023 (`openb_pod_list_*.csv`, clusterdata
    cluster-trace-gpu-v2023).

    Columns: name, cpu_milli (1/1000 CPU), memory_mib (MiB), num_gpu, gpu_milli (1/1000 of one GPU, per GPU),
    gpu_spec ('|'-separated allowed GPU models, empty = any), qos (LS, BE, Burstable, Guaranteed), pod_phase,
    creation_time, deletion_time, scheduled_time (seconds on the trace's clock).

    Used: job_id = name; submit_s = creation_time; duration_s = deletion_time - scheduled_time (for pods still
    Running at the end of the trace this is a lower bound: their deletion_time is the trace's end); cpus =
    ceil(cpu_milli/1000); memory_gb = memory_mib/1024; devices = num_gpu; device_fraction = gpu_milli/1000 when
    num_gpu == 1 and gpu_milli < 1000, else 1.0; allowed_hardware = gpu_spec split on '|' (duplicates dropped);
    nodes = 1; workload 'ai-training' when num_gpu > 0 else 'general'; tenant = qos; priority Guaranteed 3,
    LS 2, Burstable 1, BE 0 (others 0); preemptible when qos is BE or Burstable (the classes Kubernetes evicts
    first). Skipped with line and reason: no scheduled_time (never scheduled, e.g. Pending), no deletion_time,
    duration <= 0, or a non-number in a numeric column. pod_phase is counted in `meta['pod_phase']`."""
    header, rows = _csv_rows(path)
    _require(header, ALIBABA_POD_COLUMNS, path, ALIBABA_POD_COLUMNS)
    idx = {c: header.index(c) for c in header}
    i_name, i_cpu, i_mem, i_ngpu, i_milli = (idx[c] for c in ALIBABA_POD_COLUMNS[:5])
    i_spec, i_qos, i_create, i_delete, i_sched = (idx[c] for c in ALIBABA_POD_COLUMNS[5:])
    i_phase = idx.get("pod_phase")
    width = len(header)
    cols: dict[str, list[Any]] = {name: [] for name in _PER_JOB}
    skipped: list[tuple[int, str]] = []
    phases: dict[str, int] = {}
    for no, f in rows:
        if len(f) != width:
            skipped.append((no, f"expected {width} fields, found {len(f)}"))
            continue
        try:
            cpu_milli, mem_mib = float(f[i_cpu]), float(f[i_mem])
            num_gpu, gpu_milli = int(float(f[i_ngpu])), float(f[i_milli] or 0)
            created = float(f[i_create])
        except (ValueError, OverflowError):
            numeric = ("cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "creation_time")
            bad = next((c for c in numeric if _bad_num(f[idx[c]])), "num_gpu")
            skipped.append((no, f"{bad} is not a finite number: {f[idx[bad]]!r}"))
            continue
        sched_text, del_text = f[i_sched].strip(), f[i_delete].strip()
        phase = f[i_phase].strip() if i_phase is not None else ""
        if not sched_text:
            skipped.append((no, f"no scheduled_time (never scheduled; pod_phase {phase or '?'})"))
            continue
        if not del_text:
            skipped.append((no, "no deletion_time"))
            continue
        scheduled, deleted = _float_or_none(sched_text), _float_or_none(del_text)
        if scheduled is None or deleted is None:
            skipped.append((no, f"times are not numbers (scheduled_time {sched_text!r}, deletion_time {del_text!r})"))
            continue
        if deleted - scheduled <= 0:
            skipped.append((no, f"duration deletion_time - scheduled_time = {deleted - scheduled:g} <= 0"))
            continue
        phases[phase] = phases.get(phase, 0) + 1
        qos = f[i_qos].strip()
        spec = tuple(dict.fromkeys(s.strip() for s in f[i_spec].split("|") if s.strip()))
        cols["job_id"].append(f[i_name])
        cols["submit_s"].append(created)
        cols["duration_s"].append(deleted - scheduled)
        cols["requested_s"].append(math.nan)
        cols["cpus"].append(math.ceil(cpu_milli / 1000 - 1e-9))
        cols["devices"].append(num_gpu)
        cols["device_fraction"].append(gpu_milli / 1000 if num_gpu == 1 and 0 < gpu_milli < 1000 else 1.0)
        cols["memory_gb"].append(mem_mib / 1024)
        cols["nodes"].append(1)
        cols["allowed_hardware"].append(spec)
        cols["reference_hardware"].append(None)
        cols["workload"].append(Workload.AI_TRAINING.value if num_gpu > 0 else Workload.GENERAL.value)
        cols["tenant"].append(qos)
        cols["priority"].append(ALIBABA_PRIORITY.get(qos, 0))
        cols["preemptible"].append(qos in ALIBABA_PREEMPTIBLE)
        cols["deadline_s"].append(math.inf)
        cols["data_site"].append(None)
        cols["data_gb"].append(0.0)
        cols["job_type"].append(None)
    meta = {"source": str(path), "format": "alibaba", "records": len(rows), "pod_phase": phases}
    return _make_trace(cols, {}, meta, skipped)


def _bad_num(text: str) -> bool:
    value = _float_or_none(text)
    return value is None or not math.isfinite(value)


def read_alibaba_nodes(path: str | Path) -> list[dict[str, Any]]:
    """Read `openb_node_list_all_node.csv` of Alibaba's GPU cluster trace 2023: columns sn (node name),
    cpu_milli (1/1000 CPU), memory_mib (MiB), gpu (count), model (GPU model, empty for CPU-only nodes).

    Returns one dict per node: name, cpus (= ceil(cpu_milli/1000)), memory_gb (= memory_mib/1024), gpus,
    gpu_model (None when empty). A malformed row is a SpecError naming its line and column."""
    header, rows = _csv_rows(path)
    _require(header, ALIBABA_NODE_COLUMNS, path, ALIBABA_NODE_COLUMNS)
    idx = {c: header.index(c) for c in ALIBABA_NODE_COLUMNS}
    nodes: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for no, f in rows:
        f = f + [""] * (len(header) - len(f))
        values: dict[str, float] = {}
        for c in ("cpu_milli", "memory_mib", "gpu"):
            v = _float_or_none(f[idx[c]])
            if v is None or v < 0 or not math.isfinite(v):
                problems.append(
                    Problem("not a number >= 0", field=c, line=no, given=f[idx[c]], accepted="a number >= 0")
                )
            else:
                values[c] = v
        if len(values) < 3:
            continue
        model = f[idx["model"]].strip()
        nodes.append(
            {
                "name": f[idx["sn"]].strip(),
                "cpus": math.ceil(values["cpu_milli"] / 1000 - 1e-9),
                "memory_gb": values["memory_mib"] / 1024,
                "gpus": int(values["gpu"]),
                "gpu_model": model or None,
            }
        )
    if problems:
        raise SpecError(problems, source=str(path), kind="node list")
    return nodes


# --------------------------------------------------------------------------------------------- generic CSV

FLOPS_COLUMNS = tuple(f"flops_{p.value}" for p in PRECISIONS)
CSV_COLUMNS = (
    "submit_s",
    "duration_s",
    *FLOPS_COLUMNS,
    "job_id",
    "cpus",
    "devices",
    "device_fraction",
    "device_memory_gb",
    "nodes",
    "memory_gb",
    "hardware",
    "reference_hardware",
    "workload",
    "deadline_s",
    "tenant",
    "priority",
    "preemptible",
    "data_site",
    "data_gb",
    "job_type",
    "requested_s",
    "checkpoint_s",
)
_TRUE, _FALSE = ("true", "1"), ("false", "0")


def _number(
    text: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
    integer: bool = False,
) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError
    if integer and value != int(value):
        raise ValueError
    if (positive and value <= 0) or (minimum is not None and value < minimum):
        raise ValueError
    if maximum is not None and value > maximum:
        raise ValueError
    return value


# column -> (parse(text) -> value, accepted, default when blank)
_PARSERS: dict[str, tuple[Any, str, Any]] = {
    "submit_s": (lambda t: _number(t), "a number of seconds", None),
    "duration_s": (lambda t: _number(t, positive=True), "a number of seconds > 0", math.nan),
    "requested_s": (lambda t: _number(t, positive=True), "a number of seconds > 0, or blank", math.nan),
    "checkpoint_s": (lambda t: _number(t, positive=True), "a number of seconds > 0, or blank", math.inf),
    "deadline_s": (lambda t: _number(t), "a number of seconds (same clock as submit_s), or blank", math.inf),
    "cpus": (lambda t: int(_number(t, minimum=0, integer=True)), "an integer >= 0", None),
    "devices": (lambda t: int(_number(t, minimum=0, integer=True)), "an integer >= 0", 0),
    "nodes": (lambda t: int(_number(t, minimum=1, integer=True)), "an integer >= 1", 1),
    "priority": (lambda t: int(_number(t, integer=True)), "an integer", 0),
    "memory_gb": (lambda t: _number(t, minimum=0), "a number >= 0, or blank", math.nan),
    "data_gb": (lambda t: _number(t, minimum=0), "a number >= 0", 0.0),
    "device_fraction": (lambda t: _number(t, positive=True, maximum=1.0), "a number in (0, 1]", 1.0),
    "preemptible": (lambda t: _bool(t), "true, false, 1 or 0", False),
    "workload": (lambda t: _workload(t), ", ".join(WORKLOADS), None),
    **{c: (lambda t: _number(t, minimum=0), "a number of FLOPs >= 0, or blank", math.nan) for c in FLOPS_COLUMNS},
}


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError


def _workload(text: str) -> str:
    t = text.strip()
    if t not in WORKLOADS:
        raise ValueError
    return t


def read_csv(path: str | Path, *, skip_bad: bool = False) -> Trace:
    """Read the generic trace CSV: one header row, then one job per row (blank lines ignored; gzip accepted).

    Required: submit_s (seconds, any origin; shifted so the first submit is 0), and duration_s (seconds > 0 on
    the reference hardware) or at least one flops_<precision> column (FLOPs; precisions fp64 fp32 tf32 bf16 fp16
    fp8 int8). Each row needs a duration_s or a flops value; a flops-only row has duration_s NaN.
    Optional, with the default when blank or absent: job_id ('job-<k>', k counting used rows from 0); cpus
    (integer; 1); devices (integer; 0); device_fraction ((0, 1]; 1.0); device_memory_gb (accepted, not used
    yet); nodes (integer >= 1; 1); memory_gb (NaN); hardware ('|'-separated allowed hardware ids; any);
    reference_hardware (None); workload (ai-training, ai-inference, hpc or general; ai-training when devices > 0
    else general); deadline_s (seconds on the same clock as submit_s and after it; inf); tenant ('default');
    priority (integer; 0); preemptible (true/false/1/0; false); data_site (None); data_gb (>= 0; 0); job_type
    (None); requested_s (the user's runtime estimate, > 0; NaN); checkpoint_s (seconds between the job's
    checkpoints, > 0: a preempted job keeps its work up to its last one; inf, i.e. it restarts from scratch).

    Unknown columns are ignored with one warning naming them. A missing required column raises SpecError
    listing the accepted columns. Bad rows raise one SpecError listing every bad value with its line, column,
    the value given and what is accepted; with `skip_bad=True` they go to `Trace.skipped` instead."""
    header, rows = _csv_rows(path)
    problems: list[Problem] = []
    accepted_cols = ", ".join(CSV_COLUMNS)
    if "submit_s" not in header:
        problems.append(Problem("missing required column 'submit_s'", field="submit_s", line=1, accepted=accepted_cols))
    flops_cols = [c for c in FLOPS_COLUMNS if c in header]
    if "duration_s" not in header and not flops_cols:
        problems.append(
            Problem(
                "missing required column 'duration_s' (or at least one flops_<precision> column)",
                field="duration_s",
                line=1,
                accepted=accepted_cols,
            )
        )
    dupes = sorted({c for c in header if header.count(c) > 1})
    problems += [Problem(f"column {c!r} appears more than once", field=c, line=1) for c in dupes]
    if problems:
        raise SpecError(problems, source=str(path), kind="trace")
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if unknown:
        warnings.warn(
            f"{path}: ignoring unknown column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"accepted: {accepted_cols}",
            UserWarning,
            stacklevel=2,
        )
    idx = {c: k for k, c in enumerate(header) if c in CSV_COLUMNS}
    width = len(header)
    cols: dict[str, list[Any]] = {name: [] for name in _PER_JOB}
    flops: dict[str, list[float]] = {c[len("flops_") :]: [] for c in flops_cols}
    skipped: list[tuple[int, str]] = []
    checkpoints: list[float] = []
    for no, f in rows:
        row_problems: list[Problem] = []
        if len(f) > width:
            row_problems.append(
                Problem(f"{len(f)} fields but the header has {width}", line=no, given=f[width:], accepted=f"{width}")
            )
        f = f + [""] * (width - len(f))
        v: dict[str, Any] = {}
        for c, k in idx.items():
            text = f[k].strip()
            if c not in _PARSERS:
                v[c] = text or None
                continue
            parse, accepted, default = _PARSERS[c]
            if not text:
                if c == "submit_s":
                    row_problems.append(Problem("is blank", field=c, line=no, given=text, accepted=accepted))
                v[c] = default
                continue
            try:
                v[c] = parse(text)
            except (ValueError, OverflowError):
                row_problems.append(Problem("invalid value", field=c, line=no, given=text, accepted=accepted))
        duration = v.get("duration_s", math.nan)
        flops_row = {c[len("flops_") :]: v.get(c, math.nan) for c in flops_cols}
        if not row_problems and math.isnan(duration) and all(math.isnan(x) for x in flops_row.values()):
            row_problems.append(
                Problem(
                    "no duration_s and no flops value",
                    field="duration_s",
                    line=no,
                    given="",
                    accepted="a duration_s > 0 or a flops_<precision> value",
                )
            )
        deadline = v.get("deadline_s", math.inf)
        if not row_problems and deadline <= v["submit_s"]:
            row_problems.append(
                Problem(
                    "deadline is not after submit_s",
                    field="deadline_s",
                    line=no,
                    given=f[idx["deadline_s"]].strip(),
                    accepted=f"a time after submit_s ({v['submit_s']:g})",
                )
            )
        if row_problems:
            if skip_bad:
                skipped.append((no, "; ".join(p.render(None) for p in row_problems)))
            else:
                problems += row_problems
            continue
        devices = v.get("devices", 0)
        cpus = v.get("cpus")
        hardware = v.get("hardware")
        cols["job_id"].append(v.get("job_id") or f"job-{len(cols['job_id'])}")
        cols["submit_s"].append(v["submit_s"])
        cols["duration_s"].append(duration)
        cols["requested_s"].append(v.get("requested_s", math.nan))
        cols["cpus"].append(1 if cpus is None else cpus)
        cols["devices"].append(devices)
        cols["device_fraction"].append(v.get("device_fraction", 1.0))
        cols["memory_gb"].append(v.get("memory_gb", math.nan))
        cols["nodes"].append(v.get("nodes", 1))
        cols["allowed_hardware"].append(
            tuple(dict.fromkeys(h.strip() for h in hardware.split("|") if h.strip())) if hardware else ()
        )
        cols["reference_hardware"].append(v.get("reference_hardware"))
        workload = v.get("workload") or (Workload.AI_TRAINING.value if devices > 0 else Workload.GENERAL.value)
        cols["workload"].append(workload)
        cols["tenant"].append(v.get("tenant") or "default")
        cols["priority"].append(v.get("priority", 0))
        cols["preemptible"].append(v.get("preemptible", False))
        cols["deadline_s"].append(deadline)
        cols["data_site"].append(v.get("data_site"))
        cols["data_gb"].append(v.get("data_gb", 0.0))
        cols["job_type"].append(v.get("job_type"))
        checkpoints.append(v.get("checkpoint_s", math.inf))
        for p, x in flops_row.items():
            flops[p].append(x)
    if problems:
        raise SpecError(problems, source=str(path), kind="trace")
    meta = {"source": str(path), "format": "csv", "records": len(rows), "ignored_columns": unknown}
    trace = _make_trace(cols, flops, meta, skipped)
    if "checkpoint_s" in header:
        trace.checkpoint_s = np.asarray(checkpoints, dtype=np.float64)
    return trace


# ------------------------------------------------------------------------------------------------ Gavel


def read_throughputs(path: str | Path, *, scale_factor: int = 1) -> dict[str, dict[str, float]]:
    """Read Gavel's `simulation_throughputs.json` (stanford-futuredata/gavel, MIT) into relative speeds.

    The file is {hardware_type: {"('<job type>', <scale factor>)": {"null": <isolated throughput, steps/s>,
    "('<other job>', <scale>)": [<this job's>, <other's throughput when co-located>], ...}}}. Read here: the
    "null" entry (the job running alone) for keys whose scale factor (number of workers) is `scale_factor`
    (1 by default). A zero or missing-positive throughput means the job does not run on that hardware and is left
    out. Returns {job type: {hardware type: throughput / the job type's throughput on its slowest hardware}}, so
    the slowest hardware of each job type is 1.0. Hardware types are kept as named in the file (k80, p100, v100
    and their '_unconsolidated' variants, which differ only for scale factors > 1). Any other structure is a
    SpecError naming the entry."""
    source = str(path)
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise SpecError([Problem(f"not JSON: {e.msg}", line=e.lineno)], source=source, kind="throughput file") from None
    shape = '{hardware: {"(\'<job type>\', <workers>)": {"null": <throughput>, ...}}}'
    if not isinstance(data, dict) or not data:
        raise SpecError(
            [Problem("not a non-empty JSON object", given=type(data).__name__, accepted=shape)],
            source=source,
            kind="throughput file",
        )
    problems: list[Problem] = []
    speeds: dict[str, dict[str, float]] = {}
    for hw, jobs in data.items():
        if not isinstance(jobs, dict):
            problems.append(Problem("not an object of job types", field=hw, given=type(jobs).__name__, accepted=shape))
            continue
        for key, entry in jobs.items():
            try:
                name, scale = ast.literal_eval(key)
                if not isinstance(name, str) or not isinstance(scale, int) or isinstance(scale, bool):
                    raise ValueError
            except (ValueError, SyntaxError, TypeError):
                problems.append(
                    Problem("job key is not ('<job type>', <workers>)", field=hw, given=key, accepted=shape)
                )
                continue
            alone = entry.get("null") if isinstance(entry, dict) else None
            if isinstance(alone, bool) or not isinstance(alone, int | float) or not math.isfinite(alone):
                problems.append(
                    Problem("no numeric 'null' (isolated) throughput", field=f"{hw}.{key}", given=entry, accepted=shape)
                )
                continue
            if scale == scale_factor and alone > 0:
                speeds.setdefault(name, {})[hw] = float(alone)
    if problems:
        raise SpecError(problems, source=source, kind="throughput file")
    if not speeds:
        raise SpecError(
            [Problem(f"no job type with scale factor {scale_factor}", field="scale_factor", given=scale_factor)],
            source=source,
            kind="throughput file",
        )
    return {job: {hw: t / min(by_hw.values()) for hw, t in by_hw.items()} for job, by_hw in speeds.items()}


# ------------------------------------------------------------------------------------------------ dispatch


def read_trace(path: str | Path, fmt: str | None = None) -> Trace:
    """Read a trace with the reader for `fmt` ('swf', 'alibaba' or 'csv'), or, when `fmt` is None, the one the file
    name implies: *.swf or *.swf.gz -> swf, openb_pod_list* -> alibaba, *.csv (or *.csv.gz) -> csv."""
    if not Path(path).is_file():
        what = "is a directory; expected a trace file" if Path(path).is_dir() else "file not found"
        raise SpecError([Problem(what)], str(path), "trace")
    name = Path(path).name.lower()
    if fmt is None:
        if name.endswith((".swf", ".swf.gz")):
            fmt = "swf"
        elif name.startswith("openb_pod_list"):
            fmt = "alibaba"
        elif name.endswith((".csv", ".csv.gz")):
            fmt = "csv"
        else:
            raise SpecError(
                [
                    Problem(
                        "cannot tell the trace format from the file name; name it",
                        field="format",
                        given=Path(path).name,
                        accepted=", ".join(FORMATS) + " (or a name ending .swf, .swf.gz, .csv, or openb_pod_list*)",
                    )
                ],
                source=str(path),
                kind="trace",
            )
    readers = {"swf": read_swf, "alibaba": read_alibaba, "csv": read_csv}
    if fmt not in readers:
        raise SpecError(
            [Problem("unknown trace format", field="format", given=fmt, accepted=", ".join(FORMATS))],
            source=str(path),
            kind="trace",
        )
    return readers[fmt](path)
