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

__all__ = ["SlurmCluster", "slurm_cluster"]

_REPO = Path(__file__).resolve().parent.parent
_SERVICES = _REPO / "scripts" / "services.sh"


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


def _services_dir() -> Path:
    return Path(os.environ.get("SUANLI_SERVICES_DIR", "/tmp/suanli-services"))


def _services(action: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(_SERVICES), action, "slurm"], capture_output=True, text=True, timeout=timeout_s, cwd=_REPO
    )


def _read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            values[key.strip()] = value.strip()
    return values


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    started = False
    try:
        if _services("status", 30).returncode != 0:
            started = True  # from here on, whatever `up` started is stopped at the end (also when it failed)
            up = _services("up", 600)  # a fresh machine installs the Debian packages first
            if up.returncode != 0:
                pytest.fail(
                    f"service slurm: `scripts/services.sh up slurm` failed (exit {up.returncode}):\n"
                    f"{(up.stdout + up.stderr).strip()[-3000:]}",
                    pytrace=False,
                )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"service slurm: `scripts/services.sh {exc.cmd[2]} slurm` timed out after {exc.timeout:g} s")
    env_file = _services_dir() / "slurm.env"
    try:
        env = _read_env(env_file)
        keys = ("SLURM_CONF", "SUANLI_SLURM_REST_URL", "SUANLI_SLURM_USER", "SUANLI_SLURM_WORKDIR")
        missing = [k for k in keys if k not in env]
        if missing:
            pytest.fail(f"service slurm: {env_file} lacks {missing}; run `scripts/services.sh up slurm` again")
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
    finally:
        if started:
            _services("down", 120)
