"""The part the service fixtures share: make sure a service of scripts/services.sh is up (starting it if `status`
says it is down, and stopping at the end only what was started here), and read the variables it wrote. A service
that cannot be had fails the tests that need it, saying which and why; they are never skipped."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SERVICES = REPO / "scripts" / "services.sh"


def services_dir() -> Path:
    return Path(os.environ.get("SUANLI_SERVICES_DIR", "/tmp/suanli-services"))


def _run(action: str, name: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SERVICES), action, name], capture_output=True, text=True, timeout=timeout_s, cwd=REPO
    )


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            values[key.strip()] = value.strip()
    return values


@contextmanager
def service(name: str, required: tuple[str, ...]) -> Iterator[dict[str, str]]:
    """The variables of $SUANLI_SERVICES_DIR/<name>.env, with the service up for the duration."""
    started = False
    try:
        if _run("status", name, 30).returncode != 0:
            started = True  # from here on, whatever `up` started is stopped at the end (also when it failed)
            up = _run("up", name, 600)  # a fresh machine installs the packages first
            if up.returncode != 0:
                pytest.fail(
                    f"service {name}: `scripts/services.sh up {name}` failed (exit {up.returncode}):\n"
                    f"{(up.stdout + up.stderr).strip()[-3000:]}",
                    pytrace=False,
                )
        env_file = services_dir() / f"{name}.env"
        try:
            env = read_env(env_file)
        except OSError as exc:
            pytest.fail(f"service {name}: cannot read {env_file} ({exc}); run `scripts/services.sh up {name}` again")
        missing = [k for k in required if k not in env]
        if missing:
            pytest.fail(f"service {name}: {env_file} lacks {missing}; run `scripts/services.sh up {name}` again")
        yield env
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"service {name}: `scripts/services.sh {exc.cmd[2]} {name}` timed out after {exc.timeout:g} s")
    finally:
        if started:
            _run("down", name, 120)
