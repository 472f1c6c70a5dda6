"""`suanli hardware` and `suanli probe`: the catalog, and measuring this machine."""

from __future__ import annotations

import csv
from pathlib import Path

import typer
from rich.table import Table

from suanli.cli.output import err, fmt, out, print_json, reports_errors
from suanli.hardware.catalog import COLUMNS, OPTIONAL_COLUMNS, PEAK_COLUMNS, load_catalog
from suanli.spec.common import PRECISIONS


@reports_errors
def hardware(
    device_id: str | None = typer.Argument(None, metavar="[ID]", help="one device's id; all devices if omitted"),
    kind: str | None = typer.Option(None, help="only devices of this kind: gpu, npu, dcu or cpu"),
    catalog: list[Path] = typer.Option([], "--catalog", help="extra catalog CSV files (e.g. from suanli probe)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output on stdout"),
) -> None:
    """The hardware catalog (算力度量): peak per precision, memory, bandwidth, power, and the source."""
    cat = load_catalog(catalog)
    if kind is not None and kind not in ("gpu", "npu", "dcu", "cpu"):
        err.print(f"[red]error:[/red] --kind {kind!r}; accepted: gpu, npu, dcu, cpu")
        raise typer.Exit(2)
    if device_id is not None:
        d = cat.get(device_id)
        if as_json:
            print_json(d.as_dict())
            return
        t = Table(title=f"{d.name} ({d.id})", show_header=False)
        for key, value in d.as_dict().items():
            if key == "peak_tflops":
                for p, v in value.items():  # type: ignore[attr-defined]
                    t.add_row(f"peak {p} ({'TOPS' if p == 'int8' else 'TFLOPS'})", "no path" if v is None else fmt(v))
            else:
                t.add_row(key, "—" if value is None else str(value))
        out.print(t)
        return
    devices = [d for d in cat if kind is None or d.kind == kind]
    if as_json:
        print_json([d.as_dict() for d in devices])
        return
    t = Table(title=f"hardware catalog: {len(devices)} devices (dense peaks, TFLOPS; blank = no path)")
    for col in ("id", "kind", "unit", *[p.value for p in PRECISIONS], "mem GB", "GB/s", "TDP W"):
        t.add_column(col, justify="left" if col in ("id", "kind", "unit") else "right")
    for d in devices:
        t.add_row(
            d.id,
            d.kind,
            d.unit,
            *[fmt(d.peak_tflops.get(p)) if p in d.peak_tflops else "" for p in PRECISIONS],
            fmt(d.memory_gb),
            fmt(d.memory_bw_gbs),
            fmt(d.tdp_w),
        )
    out.print(t)
    out.print("FP32-equivalent (通用算力) and FP16 AI compute (智能算力) are kept apart: see `suanli hardware ID`.")


@reports_errors
def probe(
    as_json: bool = typer.Option(False, "--json", help="machine-readable output on stdout"),
    seconds: float = typer.Option(1.0, min=0.05, max=60, help="time budget per measurement"),
    no_torch: bool = typer.Option(False, "--no-torch", help="skip the PyTorch measurements even if installed"),
    write_catalog: Path | None = typer.Option(None, help="write this node as a catalog CSV entry to this file"),
    device_id: str = typer.Option("", "--id", help="catalog id for --write-catalog (default: probe-HOSTNAME)"),
) -> None:
    """Measure this machine: FP64/FP32 matmul GFLOP/s, memory bandwidth, and with PyTorch BF16/FP16 and every
    precision of a CUDA GPU; each beside the catalog's figure for the closest device."""
    from suanli.hardware.probe import catalog_row, run_probe

    cat = load_catalog()
    if as_json:
        report = run_probe(cat, seconds, not no_torch)
    else:
        with err.status("probing…") as status:
            report = run_probe(cat, seconds, not no_torch, progress=lambda m: status.update(f"probing: {m}"))
    if write_catalog is not None:
        import re

        ident = device_id or "probe-" + re.sub(r"[^a-z0-9-]+", "-", report.host.lower()).strip("-")
        row = catalog_row(report, ident, cat)
        new = not write_catalog.exists() or write_catalog.stat().st_size == 0
        with write_catalog.open("a", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=[*COLUMNS, *OPTIONAL_COLUMNS])
            if new:
                w.writeheader()
            w.writerow(row)
        load_catalog([write_catalog])  # the file must read back as a valid catalog
        if not as_json:
            err.print(f"wrote catalog entry {ident!r} to {write_catalog}")
    if as_json:
        print_json(report.as_dict())
        return
    t = Table(title=f"probe: {report.host} — {report.cpu_model}, {report.cores} core(s), {report.memory_gb} GB")
    for col in ("target", "precision", "measured", "catalog", "closest device", "method"):
        t.add_column(col, justify="right" if col in ("measured", "catalog") else "left")
    for m in report.measurements:
        t.add_row(
            m.target,
            m.precision,
            f"{m.value:,.1f} {m.unit}",
            "—" if m.catalog_value is None else f"{m.catalog_value:,.1f}",
            m.catalog_device or "—",
            m.method,
        )
    out.print(t)
    for note in report.notes:
        out.print(f"note: {note}")


__all__ = ["PEAK_COLUMNS", "hardware", "probe"]
