"""Session fixture for the real Ray head of scripts/services.sh (one node: 4 CPUs, 4 fake GPUs, counted again by
the custom resource GPU_A100). The head is started if `status` says it is down, and then stopped at the end of
the session; one that was already up is left running. A head that cannot be had fails the tests that need it,
saying why (they are never skipped)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from _services import service

__all__ = ["RayCluster", "ray_cluster"]


@dataclass(frozen=True)
class RayCluster:
    """How to reach the test head (from $SUANLI_SERVICES_DIR/ray.env)."""

    address: str  # the dashboard's URL, which serves the Jobs API: RayBackend's `address`
    accelerator_resource: str  # custom resource counting the GPUs by type, e.g. GPU_A100
    gpus: int  # GPUs of the one node (as many units of accelerator_resource)
    cpus: int
    env: dict[str, str] = field(default_factory=dict)  # every variable of ray.env


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    keys = ("SUANLI_RAY_ADDRESS", "SUANLI_RAY_ACCEL_RESOURCE", "SUANLI_RAY_GPUS", "SUANLI_RAY_CPUS")
    with service("ray", keys) as env:
        yield RayCluster(
            address=env["SUANLI_RAY_ADDRESS"],
            accelerator_resource=env["SUANLI_RAY_ACCEL_RESOURCE"],
            gpus=int(env["SUANLI_RAY_GPUS"]),
            cpus=int(env["SUANLI_RAY_CPUS"]),
            env=env,
        )
