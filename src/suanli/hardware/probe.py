"""Measure this machine (算力度量 from probes): sustained matrix-multiply rates per precision and memory
bandwidth, set beside the catalog's figures for the closest device, and written as a catalog entry on request."""

from __future__ import annotations

import os
import platform
import re
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np

from suanli.hardware.catalog import COLUMNS, PEAK_COLUMNS, Catalog, Device
from suanli.spec.common import Precision


@dataclass(frozen=True)
class Measurement:
    target: str  # "cpu" or "cuda:0"
    precision: str  # a Precision, or "triad" for memory bandwidth
    value: float  # GFLOP/s (GOP/s for int8), or GB/s for triad
    unit: str
    method: str
    catalog_value: float | None = None  # the closest device's figure in the same unit, scaled to what was used
    catalog_device: str | None = None


@dataclass
class ProbeReport:
    host: str
    cpu_model: str
    cores: int
    memory_gb: float
    measured_at: str
    measurements: list[Measurement] = field(default_factory=list)
    gpus: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


Progress = Callable[[str], None]


def _best_rate(fn: Callable[[], object], ops: float, budget_s: float, min_reps: int = 3) -> float:
    """Best ops/s over repetitions of fn until the time budget is spent (the first call is a warm-up)."""
    fn()
    best, spent, reps = 0.0, 0.0, 0
    while reps < min_reps or spent < budget_s:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        spent += dt
        reps += 1
        best = max(best, ops / dt)
        if reps >= 50:
            break
    return best


def numpy_matmul_gflops(dtype: type, n: int = 2048, budget_s: float = 1.0) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    out = np.empty((n, n), dtype=dtype)
    return _best_rate(lambda: np.matmul(a, b, out=out), 2.0 * n**3, budget_s) / 1e9


def numpy_triad_gbs(elements: int = 1 << 24, budget_s: float = 1.0) -> float:
    """STREAM-like triad a = b + s*c in two numpy passes; counts the 40 bytes per element those passes really
    move (read c, write a; read a and b, write a), so the figure is bandwidth, not a flattering ratio."""
    b = np.ones(elements)
    c = np.full(elements, 2.0)
    a = np.empty(elements)

    def triad() -> None:
        np.multiply(c, 3.0, out=a)
        np.add(a, b, out=a)

    return _best_rate(triad, 40.0 * elements, budget_s) / 1e9


def torch_rates(device: str, budget_s: float, progress: Progress) -> dict[Precision, tuple[float, str]]:
    """Matmul GFLOP/s per precision with PyTorch on `device` ('cpu' or 'cuda:N'); absent paths are skipped."""
    import torch

    out: dict[Precision, tuple[float, str]] = {}
    cuda = device.startswith("cuda")
    n = 8192 if cuda else 1024

    def timed(fn: Callable[[], object], ops: float) -> float:
        def run() -> None:
            fn()
            if cuda:
                torch.cuda.synchronize()

        return _best_rate(run, ops, budget_s) / 1e9

    plan: list[tuple[Precision, object]] = [(Precision.BF16, torch.bfloat16), (Precision.FP16, torch.float16)]
    if cuda:
        plan = [
            (Precision.FP64, torch.float64),
            (Precision.FP32, torch.float32),
            (Precision.TF32, torch.float32),
            *plan,
        ]
    for precision, dtype in plan:
        progress(f"torch {precision.value} matmul on {device}")
        try:
            torch.backends.cuda.matmul.allow_tf32 = precision is Precision.TF32
            a = torch.randn(n, n, device=device).to(dtype)
            b = torch.randn(n, n, device=device).to(dtype)
            out[precision] = (timed(lambda a=a, b=b: a @ b, 2.0 * n**3), f"torch.matmul {n}x{n} {dtype}")
        except (RuntimeError, TypeError) as exc:  # no kernel for this dtype on this device
            progress(f"  {precision.value}: no path ({str(exc).splitlines()[0][:80]})")
    torch.backends.cuda.matmul.allow_tf32 = False
    if cuda:
        try:
            progress(f"torch fp8 scaled matmul on {device}")
            a = torch.randn(n, n, device=device).to(torch.float8_e4m3fn)
            b = torch.randn(n, n, device=device).to(torch.float8_e4m3fn).t()
            one = torch.tensor(1.0, device=device)
            out[Precision.FP8] = (
                timed(lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16), 2.0 * n**3),
                f"torch._scaled_mm {n}x{n} e4m3",
            )
        except (RuntimeError, AttributeError, TypeError) as exc:
            progress(f"  fp8: no path ({str(exc).splitlines()[0][:80]})")
        try:
            progress(f"torch int8 matmul on {device}")
            a8 = torch.randint(-8, 8, (n, n), device=device, dtype=torch.int8)
            b8 = torch.randint(-8, 8, (n, n), device=device, dtype=torch.int8)
            out[Precision.INT8] = (timed(lambda: torch._int_mm(a8, b8), 2.0 * n**3), f"torch._int_mm {n}x{n}")
        except (RuntimeError, AttributeError, TypeError) as exc:
            progress(f"  int8: no path ({str(exc).splitlines()[0][:80]})")
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def memory_gb() -> float:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return 0.0


def closest_device(catalog: Catalog, name: str, kind: str) -> Device | None:
    """The catalog device whose name shares the most words and model numbers with `name`."""
    words = set(re.findall(r"[a-z]+|\d+", name.lower())) - {"r", "tm", "cpu", "processor", "core", "with", "ghz"}
    pool = [d for d in catalog if (d.kind == "cpu") == (kind == "cpu")]
    if not pool:
        return None

    def score(d: Device) -> tuple[int, int]:
        theirs = set(re.findall(r"[a-z]+|\d+", f"{d.name} {d.vendor}".lower()))
        numbers = {w for w in words & theirs if w.isdigit()}
        return (len(numbers), len(words & theirs))

    best = max(pool, key=score)
    return best if score(best) > (0, 0) else pool[0]


def run_probe(
    catalog: Catalog, budget_s: float = 1.0, use_torch: bool = True, progress: Progress = lambda _: None
) -> ProbeReport:
    cores = usable_cores()
    model = cpu_model()
    report = ProbeReport(
        socket.gethostname(), model, cores, round(memory_gb(), 1), datetime.now(UTC).isoformat(timespec="seconds")
    )
    cpu_ref = closest_device(catalog, model, "cpu")

    def cpu_measurement(precision: Precision, value: float, method: str) -> Measurement:
        """A CPU rate beside the catalog socket's peak in GFLOP/s, scaled to the cores this process may use."""
        ref = None
        if cpu_ref is not None and cpu_ref.cores and precision in cpu_ref.peak_tflops:
            ref = cpu_ref.peak_tflops[precision] * 1e3 * cores / cpu_ref.cores
        return Measurement("cpu", precision.value, value, "GFLOP/s", method, ref, cpu_ref.id if cpu_ref else None)

    for precision, dtype in ((Precision.FP64, np.float64), (Precision.FP32, np.float32)):
        progress(f"numpy {precision.value} matmul on {cores} core(s)")
        value = numpy_matmul_gflops(dtype, budget_s=budget_s)
        report.measurements.append(cpu_measurement(precision, value, "numpy.matmul 2048x2048"))
    progress("memory bandwidth (triad)")
    bw = numpy_triad_gbs(budget_s=budget_s)
    bw_ref = cpu_ref.memory_bw_gbs if cpu_ref else None
    report.measurements.append(
        Measurement(
            "cpu", "triad", bw, "GB/s", "numpy two-pass triad, 40 B/element", bw_ref, cpu_ref.id if cpu_ref else None
        )
    )
    if cpu_ref is not None:
        report.notes.append(
            f"catalog figures are {cpu_ref.id} per-socket peaks scaled to {cores} of its "
            f"{cpu_ref.cores} cores; bandwidth is the whole socket's"
        )
    if use_torch:
        _probe_torch(report, catalog, budget_s, progress, cpu_measurement)
    return report


def _probe_torch(
    report: ProbeReport,
    catalog: Catalog,
    budget_s: float,
    progress: Progress,
    cpu_measurement: Callable[[Precision, float, str], Measurement],
) -> None:
    try:
        import torch
    except ImportError:
        report.notes.append(
            "PyTorch is not installed: BF16/FP16 and GPU precisions not measured (pip install 'suanli[torch]')"
        )
        return
    for precision, (value, method) in torch_rates("cpu", budget_s, progress).items():
        report.measurements.append(cpu_measurement(precision, value, method))
    if not torch.cuda.is_available():
        report.notes.append("no CUDA device visible to PyTorch")
        return
    for i in range(torch.cuda.device_count()):
        name = torch.cuda.get_device_name(i)
        report.gpus.append(name)
        ref = closest_device(catalog, name, "gpu")
        for precision, (value, method) in torch_rates(f"cuda:{i}", budget_s, progress).items():
            peak = ref.peak_tflops.get(precision) if ref else None
            report.measurements.append(
                Measurement(
                    f"cuda:{i}",
                    precision.value,
                    value,
                    "GOP/s" if precision is Precision.INT8 else "GFLOP/s",
                    method,
                    peak * 1e3 if peak else None,
                    ref.id if ref else None,
                )
            )


def catalog_row(report: ProbeReport, device_id: str, catalog: Catalog) -> dict[str, str]:
    """A catalog CSV row for the measured CPU node (unit: node); peaks are the measured sustained rates."""
    cpu = {m.precision: m for m in report.measurements if m.target == "cpu"}
    ref = closest_device(catalog, report.cpu_model, "cpu")
    row = dict.fromkeys(COLUMNS, "")
    row.update(
        id=device_id,
        name=f"{report.cpu_model} ({report.cores} cores, measured)",
        vendor=report.cpu_model.split()[0] if report.cpu_model else "unknown",
        kind="cpu",
        unit="node",
        memory_gb=f"{report.memory_gb:g}",
        intra_node_link="none",
        release_year="",
        notes="measured sustained rates, not vendor peaks",
    )
    for precision, col in PEAK_COLUMNS.items():
        if precision.value in cpu:
            row[col] = f"{cpu[precision.value].value / 1e3:.4g}"
    row["memory_bw_gbs"] = f"{cpu['triad'].value:.4g}"
    if ref is not None and ref.cores:
        row["tdp_w"] = f"{ref.tdp_w * report.cores / ref.cores:.4g}"
        row["notes"] += f"; tdp_w scaled from {ref.id} by cores"
    else:
        row["tdp_w"] = f"{10 * report.cores}"
        row["notes"] += "; tdp_w assumed 10 W per core"
    row["source"] = f"suanli probe on {report.host} at {report.measured_at}"
    row["cores"] = str(report.cores)
    return row
