"""The `suanli` command."""

from __future__ import annotations

import typer

from suanli import __version__
from suanli.cli import client_cmds
from suanli.cli.bench_cmds import bench_app
from suanli.cli.hardware_cmds import hardware, probe
from suanli.cli.plan_cmd import plan
from suanli.cli.simulate_cmd import simulate
from suanli.cli.spec_cmds import estimate, schema
from suanli.cli.trace_cmds import trace_app
from suanli.cli.up_cmd import up

app = typer.Typer(
    name="suanli",
    help="suanli (算力): the scheduling brain of a city compute network.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"suanli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version"),
) -> None:
    """suanli (算力): places, runs, meters and bills jobs across a city's compute centres."""


app.command()(up)
app.command()(estimate)
app.command()(hardware)
app.command()(probe)
app.command()(plan)
app.command()(simulate)
app.command()(schema)
app.add_typer(bench_app, name="bench")
for _command in (
    client_cmds.submit,
    client_cmds.jobs,
    client_cmds.job,
    client_cmds.logs,
    client_cmds.cancel,
    client_cmds.sites,
    client_cmds.quote,
):
    app.command()(_command)
app.add_typer(client_cmds.tenants_app, name="tenants")
app.add_typer(trace_app, name="trace")


def main() -> None:
    app()
