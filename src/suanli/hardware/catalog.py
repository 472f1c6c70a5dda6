"""The hardware catalog (算力度量): every device per precision, from a cited data file.

Peaks are dense (no structured sparsity) in TFLOPS (TOPS for int8). An empty cell means the device has no path
for that precision, which is different from a slow one: FP64 work cannot be placed on a device without FP64."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from suanli.errors import Problem, SpecError, UnknownIdError
from suanli.spec.common import PRECISIONS, Precision

KINDS = ("gpu", "npu", "dcu", "cpu")
UNITS = ("device", "socket", "node")
PEAK_COLUMNS: dict[Precision, str] = {
    Precision.FP64: "fp64_tflops",
    Precision.FP32: "fp32_tflops",
    Precision.TF32: "tf32_tflops",
    Precision.BF16: "bf16_tflops",
    Precision.FP16: "fp16_tflops",
    Precision.FP8: "fp8_tflops",
    Precision.INT8: "int8_tops",
}
COLUMNS = (
    "id",
    "name",
    "vendor",
    "kind",
    "unit",
    *PEAK_COLUMNS.values(),
    "memory_gb",
    "memory_bw_gbs",
    "tdp_w",
    "intra_node_link",
    "release_year",
    "source",
    "notes",
)
OPTIONAL_COLUMNS = ("cores",)

# Which precisions can carry work declared in a given precision without losing accuracy: the same precision, or
# a wider one (BF16 work runs in FP32 on a V100, which has no BF16 path, at FP32 speed). Never narrower: FP64
# work has no substitute, which is what keeps an FP64 simulation off an NPU without an FP64 path.
CARRIERS: dict[Precision, tuple[Precision, ...]] = {
    Precision.FP64: (Precision.FP64,),
    Precision.FP32: (Precision.FP32, Precision.FP64),
    Precision.TF32: (Precision.TF32, Precision.FP32, Precision.FP64),
    Precision.BF16: (Precision.BF16, Precision.FP32, Precision.FP64),
    Precision.FP16: (Precision.FP16, Precision.FP32, Precision.FP64),
    Precision.FP8: (Precision.FP8, Precision.FP16, Precision.BF16, Precision.FP32, Precision.FP64),
    Precision.INT8: (Precision.INT8, Precision.FP16, Precision.BF16, Precision.FP32, Precision.FP64),
}


@dataclass(frozen=True)
class Device:
    id: str
    name: str
    vendor: str
    kind: str  # gpu | npu | dcu | cpu
    unit: str  # device | socket | node: what one catalog entry counts
    peak_tflops: dict[Precision, float]  # only precisions with a path
    memory_gb: float | None
    memory_bw_gbs: float
    tdp_w: float
    intra_node_link: str
    release_year: int | None
    source: str
    notes: str = ""
    cores: int | None = None  # CPU cores per unit (CPU entries only)
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def is_accelerator(self) -> bool:
        return self.kind != "cpu"

    def has_path(self, precision: Precision) -> bool:
        return precision in self.peak_tflops

    def carrier(self, precision: Precision) -> Precision | None:
        """The precision this device would run `precision` work in: the fastest accurate carrier it has."""
        options = [q for q in CARRIERS[precision] if q in self.peak_tflops]
        return max(options, key=lambda q: self.peak_tflops[q]) if options else None

    def capacity(self, precision: Precision) -> float | None:
        """Peak TFLOPS for work in `precision` (through its carrier), or None when there is no path."""
        q = self.carrier(precision)
        return None if q is None else self.peak_tflops[q]

    # The two national reporting conventions, kept apart and never summed across precisions:
    @property
    def fp32_equivalent_tflops(self) -> float | None:
        """Total-compute convention (通用算力, FP32): the FP32 peak; where a device lists only FP64, twice that
        (one FP64 FMA lane carries two FP32 lanes on the architectures in the catalog)."""
        if Precision.FP32 in self.peak_tflops:
            return self.peak_tflops[Precision.FP32]
        if Precision.FP64 in self.peak_tflops:
            return 2 * self.peak_tflops[Precision.FP64]
        return None

    @property
    def ai_fp16_tflops(self) -> float | None:
        """AI-compute convention (智能算力, FP16): the dense FP16 peak; None for a device without FP16."""
        return self.peak_tflops.get(Precision.FP16)

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "vendor": self.vendor,
            "kind": self.kind,
            "unit": self.unit,
            "peak_tflops": {p.value: self.peak_tflops.get(p) for p in PRECISIONS},
            "fp32_equivalent_tflops": self.fp32_equivalent_tflops,
            "ai_fp16_tflops": self.ai_fp16_tflops,
            "memory_gb": self.memory_gb,
            "memory_bw_gbs": self.memory_bw_gbs,
            "tdp_w": self.tdp_w,
            "intra_node_link": self.intra_node_link,
            "release_year": self.release_year,
            "cores": self.cores,
            "source": self.source,
            "notes": self.notes,
        }


class Catalog:
    """Devices by id; the built-in file plus any catalog files a user adds (a probe's measured node)."""

    def __init__(self, devices: Iterable[Device]) -> None:
        self._by_id: dict[str, Device] = {}
        for d in devices:
            self._by_id[d.id] = d

    def __iter__(self) -> Iterator[Device]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._by_id

    def get(self, device_id: str) -> Device:
        try:
            return self._by_id[device_id]
        except KeyError:
            raise UnknownIdError("hardware", device_id, sorted(self._by_id)) from None

    @property
    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def extended(self, paths: Iterable[str | Path]) -> Catalog:
        """This catalog plus devices from more CSV files; an id already present is an error, not an override."""
        devices = list(self)
        for path in paths:
            for d in read_catalog_file(Path(path)):
                if d.id in self._by_id:
                    raise SpecError(
                        [Problem(f"hardware id {d.id!r} is already in the catalog; choose another id", "id")],
                        str(path),
                        "catalog",
                    )
                devices.append(d)
        return Catalog(devices)


def builtin_catalog_path() -> Path:
    return Path(str(resources.files("suanli.hardware") / "data" / "devices.csv"))


@cache
def builtin_catalog() -> Catalog:
    return Catalog(read_catalog_file(builtin_catalog_path()))


def load_catalog(extra: Iterable[str | Path] = ()) -> Catalog:
    extra = list(extra)
    return builtin_catalog().extended(extra) if extra else builtin_catalog()


def read_catalog_file(path: Path) -> list[Device]:
    """Parse and check a catalog CSV; every bad cell is reported with its line and column."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem("file not found")], source, "catalog") from None
    rows = list(csv.DictReader(text.splitlines()))
    header = next(csv.reader(text.splitlines()), [])
    missing = [c for c in COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS and c not in OPTIONAL_COLUMNS]
    if missing or unknown:
        msg = (f"missing column(s) {missing}" if missing else "") + (
            ("; " if missing else "") + f"unknown column(s) {unknown}" if unknown else ""
        )
        raise SpecError([Problem(msg, line=1, accepted=", ".join(COLUMNS + OPTIONAL_COLUMNS))], source, "catalog")
    devices, problems, seen = [], [], {}
    for line, row in enumerate(rows, start=2):
        try:
            d = _device_from_row(row)
        except ValueError as exc:
            problems.append(Problem(str(exc), line=line))
            continue
        if d.id in seen:
            problems.append(Problem(f"id {d.id!r} repeats line {seen[d.id]}", "id", line))
        seen[d.id] = line
        devices.append(d)
    if problems:
        raise SpecError(problems, source, "catalog")
    return devices


def _number(row: dict[str, str], col: str, required: bool = False) -> float | None:
    text = (row.get(col) or "").strip()
    if not text:
        if required:
            raise ValueError(f"{col}: required, got an empty cell")
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{col}: {text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{col}: {text!r} must be a positive number (leave the cell empty for 'no such path')")
    return value


def _device_from_row(row: dict[str, str]) -> Device:
    import re

    device_id = (row.get("id") or "").strip()
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,62}", device_id):
        raise ValueError(f"id: {device_id!r} is not a lowercase slug (letters, digits, '-', '.', '_')")
    kind = (row.get("kind") or "").strip()
    if kind not in KINDS:
        raise ValueError(f"kind: {kind!r}; accepted: {', '.join(KINDS)}")
    unit = (row.get("unit") or "").strip()
    if unit not in UNITS:
        raise ValueError(f"unit: {unit!r}; accepted: {', '.join(UNITS)}")
    peaks = {p: v for p, col in PEAK_COLUMNS.items() if (v := _number(row, col)) is not None}
    if not peaks:
        raise ValueError("no precision has a peak; at least one of " + ", ".join(PEAK_COLUMNS.values()))
    if not (row.get("source") or "").strip():
        raise ValueError("source: every entry needs a source for its numbers")
    cores = _number(row, "cores", required=kind == "cpu")
    year = _number(row, "release_year")
    return Device(
        id=device_id,
        name=row["name"].strip(),
        vendor=row["vendor"].strip(),
        kind=kind,
        unit=unit,
        peak_tflops=peaks,
        memory_gb=_number(row, "memory_gb"),
        memory_bw_gbs=_number(row, "memory_bw_gbs", required=True) or 0.0,
        tdp_w=_number(row, "tdp_w", required=True) or 0.0,
        intra_node_link=(row.get("intra_node_link") or "none").strip() or "none",
        release_year=int(year) if year else None,
        source=row["source"].strip(),
        notes=(row.get("notes") or "").strip(),
        cores=int(cores) if cores else None,
    )
