"""Shared fixtures: a throwaway PostgreSQL server for the store tests (started here, stopped at the end)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Fixtures for the real Slurm and Ray services (scripts/services.sh), one module each.
from _ray_fixture import *  # noqa: F403
from _slurm_fixture import *  # noqa: F403


def _pg_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL: $SUANLI_TEST_PG_URL if set, else a server started for this test session. The tests that
    use it fail (they are not skipped) when no server can be had, saying why."""
    given = os.environ.get("SUANLI_TEST_PG_URL")
    if given:
        yield given
        return
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.fail(
            "PostgreSQL is not installed (no initdb): scripts/test installs Debian's postgresql package; "
            "or set SUANLI_TEST_PG_URL to a server"
        )
    run_as: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        run_as = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="suanli-pg-"))
    data = base / "data"
    if run_as:
        shutil.chown(base, "postgres")
    port = 55432 + os.getpid() % 1000
    subprocess.run(
        [*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"],
        check=True,
        capture_output=True,
    )
    opts = f"-k {base} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
    started = subprocess.run(
        [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(base / "log"), "-o", opts, "start"],
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        pytest.fail(f"could not start PostgreSQL: {started.stderr or started.stdout}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the session's server, dropped afterwards."""
    import psycopg

    name = f"suanli_{os.getpid()}_{int(time.time() * 1e6) % 10**9}"
    admin = postgres_url.replace("postgresql://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
