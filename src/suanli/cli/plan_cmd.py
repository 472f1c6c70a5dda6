"""`suanli plan`: a dry-run scheduling round over job files — what the scheduler would do with them now."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from suanli.cli.output import fmt, fmt_duration, out, print_json, reports_errors
from suanli.cli.spec_cmds import network_and_catalog
from suanli.schedule.policies import DEFAULT_POLICY, POLICIES, get_policy


@reports_errors
def plan(
    job_files: list[Path] = typer.Argument(..., metavar="JOB.yaml...", help="job specs, YAML or JSON"),
    network_file: Path | None = typer.Option(None, "--network", help="network spec (default: the embedded one)"),
    policy: str = typer.Option(DEFAULT_POLICY, help="one of: " + ", ".join(POLICIES)),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output on stdout"),
) -> None:
    """Run one scheduling round over these jobs on an idle network and show each decision, why, and the
    runners-up. Nothing is submitted."""
    from suanli.estimate.candidates import check_references
    from suanli.schedule.core import schedule
    from suanli.schedule.explain import explain
    from suanli.schedule.from_specs import PendingJob, build_snapshot
    from suanli.spec import load_job

    get_policy(policy)
    network, catalog = network_and_catalog(network_file, [])
    now = datetime.now(UTC)
    pending = []
    for path in job_files:
        spec = load_job(str(path))
        check_references(spec, network, catalog, str(path))
        pending.append(PendingJob(path.name, spec, now))
    snap = build_snapshot(network, catalog, pending, now)
    dec = schedule(snap, policy)
    accounts = [explain(snap, dec, i) for i in range(len(pending))]
    if as_json:
        print_json(accounts)
        return
    t = Table(title=f"plan with {policy} on {network.name}")
    for col in ("job", "decision", "pool", "start in", "finish in", "CNY", "kg CO2", "why"):
        t.add_column(col, overflow="fold")
    for a in accounts:
        start = a.get("start_s")
        t.add_row(
            str(a["job"]),
            str(a["action"]),
            str(a.get("pool", "—")),
            "now" if start == 0 else fmt_duration(start),  # type: ignore[arg-type]
            fmt_duration(a.get("finish_s")),
            fmt(a.get("cost_cny")),
            fmt(a.get("carbon_kg")),  # type: ignore[arg-type]
            str(a.get("why", "")),
        )
    out.print(t)
    for a in accounts:
        runners = a["runners_up"]
        if runners:
            out.print(
                f"{a['job']}: runners-up: "
                + "; ".join(f"{r['pool']} ({r.get('compared', 'feasible')})" for r in runners),
                highlight=False,
            )  # type: ignore[union-attr]
        if a["action"] == "reject":
            for pool, reasons in a["ruled_out"].items():  # type: ignore[union-attr]
                out.print(f"  {pool}: {'; '.join(reasons)}", highlight=False)
