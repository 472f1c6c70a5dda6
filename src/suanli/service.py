"""`suanli up`: one process with the broker loop and the API, on a network file and a store."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from suanli.api.state import AppState
from suanli.backends.base import Backend
from suanli.broker.loop import Broker
from suanli.errors import Problem, SpecError
from suanli.hardware.catalog import Catalog
from suanli.spec.network import NetworkSpec
from suanli.store.db import Store, suanli_home
from suanli.store.tenants import ensure_admin

DEFAULT_PORT = 8470
log = logging.getLogger("suanli")


@dataclass
class Service:
    home: Path
    state: AppState
    admin_token_file: Path


def make_backends(network: NetworkSpec, catalog: Catalog, home: Path, source: str | None = None) -> dict[str, Backend]:
    """One back-end per site, as its `backend` says. Nothing is contacted here: a site that is down at start
    is a site whose health the broker reports, not a broker that cannot start."""
    backends: dict[str, Backend] = {}
    problems = []
    for i, site in enumerate(network.sites):
        cfg = site.backend
        root = home / "sites" / site.id
        try:
            if cfg.type == "local":
                from suanli.backends.local import LocalBackend

                workdir = Path(cfg.workdir) if cfg.workdir else root
                backends[site.id] = LocalBackend(site.id, site.pools, workdir, catalog, cfg.keep_days)
            elif cfg.type == "slurm":
                from suanli.backends.slurm import SlurmBackend

                backends[site.id] = SlurmBackend(site.id, site.pools, cfg, root)
            elif cfg.type == "ray":
                from suanli.backends.ray import RayBackend

                backends[site.id] = RayBackend(site.id, site.pools, cfg)
            else:
                problems.append(
                    Problem(
                        f"site {site.id} has back-end {cfg.type!r}, which only `suanli simulate` can use",
                        f"sites[{i}].backend.type",
                        accepted="local, slurm, ray",
                    )
                )
        except ValueError as exc:
            problems.append(Problem(str(exc), f"sites[{i}].backend"))
    if problems:
        raise SpecError(problems, source, kind="network spec")
    return backends


def build_service(
    network: NetworkSpec,
    catalog: Catalog,
    db_url: str | None,
    home: Path | None = None,
    policy: str = "objective",
    poll_s: float = 0.5,
    network_source: str | None = None,
) -> Service:
    home = home or suanli_home()
    home.mkdir(parents=True, exist_ok=True)
    backends = make_backends(network, catalog, home, network_source)  # a network it cannot drive fails first
    store = Store(db_url or f"sqlite:///{home / 'suanli.db'}")
    token_file = home / "admin.token"
    with store.tx() as s:
        _, token = ensure_admin(s)
    if token is not None:
        token_file.write_text(token + "\n")
        os.chmod(token_file, 0o600)
    elif not token_file.exists():
        log.warning("the admin tenant exists but %s is missing; create tenants with a token you kept", token_file)
    broker = Broker(store, network, catalog, backends, policy=policy, poll_s=poll_s)
    return Service(home, AppState(store, network, catalog, backends, broker), token_file)
