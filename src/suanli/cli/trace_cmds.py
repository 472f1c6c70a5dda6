"""`suanli trace synth`: write a synthetic job trace in the generic CSV schema that `suanli simulate` reads."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from suanli.cli.output import err, reports_errors
from suanli.errors import Problem, SpecError

trace_app = typer.Typer(help="Traces for `suanli simulate`.", no_args_is_help=True)


@trace_app.callback()
def _trace() -> None:
    """Traces for `suanli simulate`."""


@trace_app.command("synth")
@reports_errors
def trace_synth(
    jobs: int = typer.Option(..., "--jobs", help="number of jobs (>= 1)"),
    kind: str = typer.Option(..., "--kind", help="philly (Gavel-style GPU training), hpc (CPU batch) or mixed"),
    seed: int = typer.Option(0, "--seed", help="random seed; the same seed gives the same trace"),
    out_file: Path | None = typer.Option(None, "--out", help="write the CSV here instead of to stdout"),
    interarrival_s: float | None = typer.Option(
        None,
        "--interarrival",
        help="mean seconds between arrivals, the load knob (default per kind: philly 360, hpc 120, mixed 180)",
    ),
) -> None:
    """Generate a synthetic trace of JOBS jobs of KIND and write it as CSV (to stdout, or to --out FILE).

    The distributions and their sources are documented in `suanli.sim.synth`."""
    from suanli.sim.synth import synthesize, write_csv

    rows = synthesize(jobs, kind, seed, mean_interarrival_s=interarrival_s)
    if out_file is None:
        write_csv(rows, sys.stdout)
        sys.stdout.flush()
        return
    try:
        with out_file.open("w", newline="", encoding="utf-8") as stream:
            write_csv(rows, stream)
    except OSError as exc:
        raise SpecError(
            [Problem(f"cannot write the trace: {exc.strerror or exc}", field="out", given=str(out_file))],
            kind="output file",
        ) from None
    err.print(f"wrote {len(rows):,} {kind} jobs (seed {seed}) to {out_file}", highlight=False)
