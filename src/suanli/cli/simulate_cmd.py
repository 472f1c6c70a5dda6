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
        None,
        "--network",
        help="network spec, or an Alibaba openb_node_list_*.csv (default for SWF: a homogeneous cluster sized from "
        "the trace's header; for an Alibaba pod list: the openb_node_list_all_node.csv beside it)",
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
    throughputs_file: Path | None = typer.Option(
        None,
        "--throughputs",
        help="throughput matrix (Gavel's JSON as is): jobs with a job_type run at its measured relative speeds",
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="orders jobs submitted at the same instant; recorded in the metrics (default: trace order)"
    ),
) -> None:
    """Replay a trace with the scheduler the broker runs, once per policy, and compare the metrics."""
    from suanli.cli.spec_cmds import network_and_catalog
    from suanli.hardware.catalog import load_catalog
    from suanli.sim.engine import simulate as run_sim
    from suanli.sim.metrics import compare_to, metrics
    from suanli.sim.networks import ALIBABA_STAND_IN, alibaba_aliases, alibaba_network, swf_cluster
    from suanli.sim.report import jct_change
    from suanli.sim.throughput import load_throughputs
    from suanli.sim.traces import read_alibaba_nodes, read_trace

    for name in policy:
        get_policy(name)
    trace = read_trace(trace_file, fmt_name)
    if trace.skipped:
        err.print(
            f"{len(trace.skipped):,} of {len(trace) + len(trace.skipped):,} records skipped "
            f"(first: line {trace.skipped[0][0]}: {trace.skipped[0][1]})",
            highlight=False,
        )
    pool_names: dict[str, set[str]] | None = None
    node_list = network_file
    if node_list is None and trace.meta.get("format") == "alibaba":
        beside = trace_file.parent / "openb_node_list_all_node.csv"
        node_list = beside if beside.is_file() else None
        if node_list is not None:
            err.print(f"network: the node list beside the trace, {beside}", highlight=False)
    if node_list is not None and node_list.name.lower().endswith((".csv", ".csv.gz")):
        network, pool_names, stand_ins = alibaba_network(read_alibaba_nodes(node_list), node_list.stem)
        catalog = load_catalog()
        if stand_ins:
            err.print(
                f"warning: GPU model{'s' if len(stand_ins) > 1 else ''} {', '.join(stand_ins)} not disclosed by the "
                f"trace: {ALIBABA_STAND_IN} stands in (power and price only; pods keep their recorded durations)",
                highlight=False,
            )
    elif network_file is not None:
        network, catalog = network_and_catalog(network_file, [])
    elif trace.meta.get("format") == "swf":
        network, catalog = swf_cluster(trace), load_catalog()
    else:
        network, catalog = network_and_catalog(None, [])
    if pool_names is None and trace.meta.get("format") == "alibaba":
        pool_names = alibaba_aliases(network)  # a pod's gpu_spec names models ('T4'); pools name catalog ids
    tp = None
    if throughputs_file is not None:
        tp = load_throughputs(throughputs_file)
        typed = sum(1 for x in trace.job_type if x)
        err.print(
            f"throughputs: {len(tp.job_types)} job types from {throughputs_file.name}; "
            f"{typed:,} of {len(trace):,} jobs name a job_type",
            highlight=False,
        )
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
                round_s=round_s,
                throughputs=tp,
                seed=seed,
                pool_names=pool_names,
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
    vs = compare_to(results) if len(results) > 1 else {}
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
        *(["JCT vs agnostic"] if vs else []),
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
            *([("baseline" if m["policy"] == "agnostic" else jct_change(vs[m["policy"]]))] if vs else []),
        )
    out.print(t)
