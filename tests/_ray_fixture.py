"""Session fixture for the real Ray head of scripts/services.sh (one node: 4 CPUs, 4 fake GPUs, counted again by
the custom resource GPU_A100). The head is started if `status` says it is down, and then stopped at the end of
the session; one that was already up is left running. A head that cannot be had fails the tests that need it,
saying why (they are never skipped)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["RayCluster", "ray_cluster"]

_REPO = Path(__file__).resolve().parent.parent
_SERVICES = _REPO / "scripts" / "services.sh"


@dataclass(frozen=True)
class RayCluster:
    """How to reach the test head (from $SUANLI_SERVICES_DIR/ray.env)."""

    address: str  # the dashboard's URL, which serves the Jobs API: RayBackend's `address`
    accelerator_resource: str  # custom resource counting the GPUs by type, e.g. GPU_A100
    gpus: int  # GPUs of the one node (as many units of accelerator_resource)
    cpus: int
    env: dict[str, str] = field(default_factory=dict)  # every variable of ray.env


def _services_dir() -> Path:
    return Path(os.environ.get("SUANLI_SERVICES_DIR", "/tmp/suanli-services"))


def _services(action: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(_SERVICES), action, "ray"], capture_output=True, text=True, timeout=timeout_s, cwd=_REPO
    )


def _read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            values[key.strip()] = value.strip()
    return values


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    started = False
    try:
        if _services("status", 30).returncode != 0:
            started = True  # from here on, whatever `up` started is stopped at the end (also when it failed)
            up = _services("up", 600)  # a fresh machine installs ray[default] into the venv first
            if up.returncode != 0:
                pytest.fail(
                    f"service ray: `scripts/services.sh up ray` failed (exit {up.returncode}):\n"
                    f"{(up.stdout + up.stderr).strip()[-3000:]}",
                    pytrace=False,
                )
        env_file = _services_dir() / "ray.env"
        try:
            env = _read_env(env_file)
        except OSError as exc:
            pytest.fail(f"service ray: cannot read {env_file} ({exc}); run `scripts/services.sh up ray` again")
        keys = ("SUANLI_RAY_ADDRESS", "SUANLI_RAY_ACCEL_RESOURCE", "SUANLI_RAY_GPUS", "SUANLI_RAY_CPUS")
        missing = [k for k in keys if k not in env]
        if missing:
            pytest.fail(f"service ray: {env_file} lacks {missing}; run `scripts/services.sh up ray` again")
        yield RayCluster(
            address=env["SUANLI_RAY_ADDRESS"],
            accelerator_resource=env["SUANLI_RAY_ACCEL_RESOURCE"],
            gpus=int(env["SUANLI_RAY_GPUS"]),
            cpus=int(env["SUANLI_RAY_CPUS"]),
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"service ray: `scripts/services.sh {exc.cmd[2]} ray` timed out after {exc.timeout:g} s")
    finally:
        if started:
            _services("down", 120)
