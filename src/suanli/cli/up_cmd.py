"""`suanli up`: the broker and the API on one machine (the embedded network and SQLite by default)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from suanli.cli.output import err, reports_errors
from suanli.schedule.policies import DEFAULT_POLICY, get_policy
from suanli.service import DEFAULT_PORT


@reports_errors
def up(
    network_file: Path | None = typer.Option(None, "--network", help="network spec (default: the embedded local one)"),
    db: str | None = typer.Option(
        None,
        "--db",
        help="store URL: sqlite:///PATH or postgresql://USER@HOST/DB (default: SQLite in $SUANLI_HOME or ./.suanli)",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, help="port to listen on"),
    policy: str = typer.Option(DEFAULT_POLICY, help="scheduling policy"),
    poll_s: float = typer.Option(0.5, "--poll", min=0.05, max=60, help="seconds between broker ticks when idle"),
) -> None:
    """Start the broker loop and the REST API. Ctrl-C stops them; local jobs keep running and
    are picked up again at the next start."""
    import uvicorn

    from suanli.api.app import create_app
    from suanli.cli.spec_cmds import network_and_catalog
    from suanli.service import build_service

    get_policy(policy)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    network, catalog = network_and_catalog(network_file, [])
    source = str(network_file) if network_file else "the embedded network"
    service = build_service(network, catalog, db, policy=policy, poll_s=poll_s, network_source=source)
    url = f"http://{host}:{port}"
    (service.home / "url").write_text(url + "\n")
    app = create_app(service.state)
    broker = service.state.broker

    @app.on_event("startup")
    def _start() -> None:
        broker.start()

    @app.on_event("shutdown")
    def _stop() -> None:
        service.state.submissions.stop()
        broker.stop()
        for backend in service.state.backends.values():
            close = getattr(backend, "close", None)
            if close is not None:
                close()
        service.state.store.close()

    err.print(
        f"suanli is up at [bold]{url}[/bold] with network {network.name!r} "
        f"({len(network.sites)} sites), policy {policy}, store {service.state.store.url.split('@')[-1]}"
    )
    err.print(
        f"admin token: {service.admin_token_file}   (export SUANLI_URL={url} "
        f"SUANLI_TOKEN=$(cat {service.admin_token_file}))"
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
