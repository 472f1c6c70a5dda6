"""`suanli schema` and `suanli estimate`: the spec formats, and every candidate for a job."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import typer
from rich.table import Table

from suanli.cli.output import fmt, fmt_duration, out, print_json, reports_errors
from suanli.errors import Problem, SpecError
from suanli.hardware.catalog import Catalog, load_catalog
from suanli.spec import JobSpec, NetworkSpec, load_job, load_network
from suanli.spec.common import parse_when


class SchemaName(StrEnum):
    job = "job"
    network = "network"


@reports_errors
def schema(name: SchemaName = typer.Argument(..., help="job or network")) -> None:
    """Print the JSON Schema of the job spec or the network spec."""
    model = JobSpec if name is SchemaName.job else NetworkSpec
    print_json(model.model_json_schema())


def default_network_path() -> Path:
    """The embedded network that `suanli up` runs when not told otherwise."""
    from importlib import resources

    return Path(str(resources.files("suanli") / "networks" / "local.yaml"))


def network_and_catalog(network_file: Path | None, extra: list[Path]) -> tuple[NetworkSpec, Catalog]:
    """Load and cross-check a network: its hardware and tariff ids must exist."""
    from suanli.estimate.candidates import check_network

    path = network_file or default_network_path()
    network = load_network(str(path))
    files = [path.parent / c for c in network.catalog] + list(extra)
    catalog = load_catalog(files)
    check_network(network, catalog, str(path))
    return network, catalog


@reports_errors
def estimate(
    job_file: Path = typer.Argument(..., metavar="JOB.yaml", help="job spec, YAML or JSON"),
    network_file: Path | None = typer.Option(
        None, "--network", help="network spec (default: the embedded local network)"
    ),
    start: str | None = typer.Option(
        None, help="when the job would start: ISO 8601 with offset, or '+6h' (default: now)"
    ),
    catalog: list[Path] = typer.Option([], "--catalog", help="extra catalog CSV files"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output on stdout"),
) -> None:
    """Every candidate (site, pool) for a job: feasible or why not, runtime, cost, energy and carbon."""
    from suanli.estimate.candidates import check_references, estimate_candidates

    job = load_job(str(job_file))
    network, cat = network_and_catalog(network_file, catalog)
    check_references(job, network, cat, str(job_file))
    now = datetime.now(UTC)
    when = now
    if start is not None:
        try:
            parsed = parse_when(start)
        except ValueError as exc:
            raise SpecError([Problem(str(exc), "--start", given=start)], kind="option") from None
        when = now + parsed if not isinstance(parsed, datetime) else parsed
    candidates = estimate_candidates(job, network, cat, when, submitted=now)
    if as_json:
        print_json([{**c.as_dict(), "reason": "; ".join(c.reasons) or None} for c in candidates])
        return
    feasible = [c for c in candidates if c.feasible]
    t = Table(
        title=f"{job.name} on {network.name}: {len(feasible)} of {len(candidates)} candidates feasible, "
        f"start {when.astimezone().isoformat(timespec='minutes')}"
    )
    for col in ("site/pool", "hardware", "runtime", "finish", "CNY", "kWh", "kg CO2"):
        t.add_column(col, justify="left" if col in ("site/pool", "hardware") else "right", no_wrap=True)
    for c in feasible:
        t.add_row(
            f"{c.site}/{c.pool}",
            c.hardware,
            fmt_duration(c.runtime_s),
            fmt_duration(c.finish_s),
            fmt(c.cost_cny),
            fmt(c.energy_kwh),
            fmt(c.carbon_kg),
        )
    if feasible:
        out.print(t)
    else:
        out.print(f"[yellow]{job.name}: no feasible candidate among {len(candidates)}[/yellow]")
    ruled_out = [c for c in candidates if not c.feasible]
    if ruled_out:
        out.print("ruled out:")
        for c in ruled_out:
            out.print(f"  {c.site}/{c.pool} ({c.hardware}): " + "; ".join(c.reasons), highlight=False)
