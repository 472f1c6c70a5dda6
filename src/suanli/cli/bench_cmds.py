"""`suanli bench schedule`: how fast the scheduling core decides, on a generated city-scale workload."""

from __future__ import annotations

import typer
from rich.table import Table

from suanli.cli.output import err, out, print_json, reports_errors

bench_app = typer.Typer(help="Benchmarks of suanli's own machinery.", no_args_is_help=True)


@bench_app.command("schedule")
@reports_errors
def bench_schedule(
    jobs: int = typer.Option(100_000, min=1, max=10_000_000, help="pending jobs"),
    pools: int = typer.Option(200, min=2, max=100_000, help="pools of mixed hardware"),
    policy: str = typer.Option("hetero", help="scheduling policy"),
    load: float = typer.Option(1.0, min=0.01, max=1000, help="pending demand over free capacity"),
    seed: int = typer.Option(0, help="workload seed"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output on stdout"),
) -> None:
    """Generate a mixed workload (AI training and inference, HPC, general; several precisions; data on several
    sites) over a network of mixed hardware, run one scheduling round over all of it, and report placements/s
    and decision latency."""
    from suanli.bench.schedule_bench import run_schedule_bench

    if as_json:
        result = run_schedule_bench(jobs, pools, policy, seed, load)
        print_json(result.as_dict())
        return
    with err.status(f"generating {jobs:,} jobs over {pools} pools and scheduling them with {policy}…"):
        result = run_schedule_bench(jobs, pools, policy, seed, load)
    t = Table(title=f"bench schedule: {policy}", show_header=False)
    for key, value in result.as_dict().items():
        t.add_row(key, f"{value:,}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value))
    out.print(t)
