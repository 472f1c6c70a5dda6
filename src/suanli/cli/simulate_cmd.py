"""`suanli simulate`: replay a trace against a network under one or more policies and compare them."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import Progress
from rich.table import Table

from suanli.cli.output import err, fmt, fmt_duration, out, reports_errors
from suanli.schedule.policies import POLICIES, get_policy


@reports_errors
def simulate(
    trace_file: Path = typer.Option(..., "--trace", help="trace file: SWF (.swf, .swf.gz), Alibaba pod list, or CSV"),
    network_file: Path | None = typer.Option(
        None, "--network", help="network spec (default for SWF: a homogeneous cluster sized from the trace's header)"
    ),
    fmt_name: str | None = typer.Option(None, "--format", help="swf, alibaba or csv (default: from the file name)"),
    policy: list[str] = typer.Option(
        ["easy-backfill"], "--policy", help="policy to replay (repeatable): " + ", ".join(POLICIES)
    ),
    json_out: Path | None = typer.Option(None, "--json", help="write one metrics object per policy to this file"),
    report: Path | None = typer.Option(None, "--report", help="write an HTML report with figures to this folder"),
    slot_s: float = typer.Option(60.0, "--slot", min=60, max=3600, help="seconds per planning slot"),
    round_s: float = typer.Option(
        0.0, "--round", min=0, max=3600, help="schedule every N seconds instead of at every event (0: every event)"
    ),
) -> None:
    """Replay a trace with the scheduler the broker runs, once per policy, and compare the metrics."""
    from suanli.cli.spec_cmds import network_and_catalog
    from suanli.hardware.catalog import load_catalog
    from suanli.sim.engine import simulate as run_sim
    from suanli.sim.metrics import metrics
    from suanli.sim.networks import swf_cluster
    from suanli.sim.traces import read_trace

    for name in policy:
        get_policy(name)
    trace = read_trace(trace_file, fmt_name)
    if trace.skipped:
        err.print(
            f"{len(trace.skipped):,} of {len(trace) + len(trace.skipped):,} records skipped "
            f"(first: line {trace.skipped[0][0]}: {trace.skipped[0][1]})",
            highlight=False,
        )
    if network_file is not None:
        network, catalog = network_and_catalog(network_file, [])
    elif trace.meta.get("format") == "swf":
        network, catalog = swf_cluster(trace), load_catalog()
    else:
        network, catalog = network_and_catalog(None, [])
    results, runs = [], []
    with Progress(console=err, transient=True) as bar:
        for name in policy:
            task = bar.add_task(f"{name}: {len(trace):,} jobs on {network.name}", total=1.0)
            r = run_sim(
                trace,
                network,
                catalog,
                name,
                slot_s=slot_s,
                progress=lambda f, task=task: bar.update(task, completed=f),
            )
            results.append(metrics(r))
            runs.append(r)
    if json_out is not None:
        json_out.write_text(json.dumps(results, indent=2) + "\n")
        err.print(f"wrote {json_out}")
    if report is not None:
        from suanli.sim.report import write_report

        index = write_report(runs, network, report, trace_file.name)
        err.print(f"wrote the report to {index}")
    t = Table(title=f"{trace_file.name}: {len(trace):,} jobs on {network.name}")
    for col in (
        "policy",
        "completed",
        "rejected",
        "avg wait",
        "avg JCT",
        "p99 JCT",
        "bounded slowdown",
        "utilisation",
        "CNY",
        "kg CO2",
        "deadline misses",
        "sim s",
    ):
        t.add_column(col, justify="left" if col == "policy" else "right")
    for m in results:
        t.add_row(
            m["policy"],
            f"{m['completed']:,}",
            f"{m['rejected']:,}",
            fmt_duration(m["avg_wait_s"]),
            fmt_duration(m["avg_jct_s"]),
            fmt_duration(m["p99_jct_s"]),
            fmt(m["avg_bounded_slowdown"]),
            f"{m['utilization']:.1%}",
            fmt(m["cost_cny"]),
            fmt(m["carbon_kg"]),
            str(m["deadline_misses"]),
            f"{m['sim_wall_s']:.1f}",
        )
    out.print(t)
