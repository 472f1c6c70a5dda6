"""Session fixture for the real Slurm cluster of scripts/services.sh (four slurmd nodes with fake a100 GPUs and
slurmrestd). The cluster is started if `status` says it is down, and then stopped at the end of the session; one
that was already up is left running. A cluster that cannot be had fails the tests that need it, saying why."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from _services import service

__all__ = ["SlurmCluster", "slurm_cluster"]


@dataclass(frozen=True)
class SlurmCluster:
    """How to reach the test cluster (from $SUANLI_SERVICES_DIR/slurm.env, plus a fresh token)."""

    conf: str  # slurm.conf path: SLURM_CONF for the CLI commands
    rest_url: str  # slurmrestd, openapi v0.0.38, JWT auth
    user: str  # the Slurm user REST calls act as (jobs submitted over REST run as it)
    token: str  # a JWT for `user`, valid for the session
    partition: str  # the one partition, holding every node
    gres_type: str  # GPU gres type of every node, e.g. a100
    nodes: int
    gpus_per_node: int
    workdir: Path  # world-writable directory for test workdirs (REST jobs run as `user`, not root)
    jobcomp: str  # the jobcomp/filetxt file
    env: dict[str, str] = field(default_factory=dict)  # every variable of slurm.env


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    keys = ("SLURM_CONF", "SUANLI_SLURM_REST_URL", "SUANLI_SLURM_USER", "SUANLI_SLURM_WORKDIR")
    with service("slurm", keys) as env:
        # The env file's token may be old (an earlier `up`): take a fresh one for this session.
        token = subprocess.run(
            ["scontrol", "token", f"username={env['SUANLI_SLURM_USER']}", "lifespan=7200"],
            capture_output=True,
            text=True,
            timeout=15,
            env={**os.environ, "SLURM_CONF": env["SLURM_CONF"]},
        )
        jwt = token.stdout.strip().removeprefix("SLURM_JWT=")
        if token.returncode != 0 or not jwt:
            pytest.fail(f"service slurm: `scontrol token` failed: {(token.stderr or token.stdout).strip()}")
        yield SlurmCluster(
            conf=env["SLURM_CONF"],
            rest_url=env["SUANLI_SLURM_REST_URL"],
            user=env["SUANLI_SLURM_USER"],
            token=jwt,
            partition=env.get("SUANLI_SLURM_PARTITION", "gpu"),
            gres_type=env.get("SUANLI_SLURM_GRES_TYPE", "a100"),
            nodes=int(env.get("SUANLI_SLURM_NODES", "4")),
            gpus_per_node=int(env.get("SUANLI_SLURM_GPUS_PER_NODE", "2")),
            workdir=Path(env["SUANLI_SLURM_WORKDIR"]),
            jobcomp=env.get("SUANLI_SLURM_JOBCOMP", ""),
            env=env,
        )
