"""Benchmark: sustained submissions/s through the REST API, and submit -> running latency on a local site.

Starts a real `suanli up` (embedded local network, SQLite, or PostgreSQL with --db) in a fresh home, then
1. submits N trivial jobs from C concurrent clients and reports submissions/s (the broker schedules and runs
   them meanwhile, as it would in production);
2. submits jobs one at a time on an otherwise idle broker; each job writes the time it started, and the
   latency is that time minus the time the submit request was sent (same machine, same clock).
Results go to benchmarks/results/api.json and the table in docs/benchmarks.md.

    python benchmarks/bench_api.py [--jobs 2000] [--concurrency 16] [--latency-jobs 50] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_up(home: Path, port: int, db: str | None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "suanli", "up", "--port", str(port)]
    if db:
        cmd += ["--db", db]
    log = (home / "up.log").open("ab")
    proc = subprocess.Popen(
        cmd, env={**os.environ, "SUANLI_HOME": str(home)}, stdout=log, stderr=log, start_new_session=True
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("suanli up did not start: " + (home / "up.log").read_text()[-2000:])


async def submit_many(url: str, token: str, n: int, concurrency: int) -> float:
    spec = {
        "name": "bench",
        "workload": "general",
        "run": "true",
        "resources": {"cpus": 1, "memory_gb": 1},
        "compute": {"walltime_h": 0.001},
    }
    queue: asyncio.Queue[int] = asyncio.Queue()
    for k in range(n):
        queue.put_nowait(k)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=60
    ) as client:

        async def worker() -> None:
            while True:
                try:
                    k = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                r = await client.post("/v1/jobs", json={**spec, "name": f"bench-{k}"})
                if r.status_code != 201:
                    raise SystemExit(f"submit failed: {r.status_code} {r.text}")

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0


def wait_idle(api: httpx.Client, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = api.get("/v1/jobs", params={"state": ["queued", "placed", "starting", "running"], "limit": 1}).json()
        if not jobs["jobs"]:
            return
        time.sleep(0.5)


def latency(api: httpx.Client, n: int, scratch: Path) -> list[float]:
    out = []
    for k in range(n):
        stamp = scratch / f"started-{k}"
        spec = {
            "name": f"latency-{k}",
            "workload": "general",
            "resources": {"cpus": 1, "memory_gb": 1},
            "compute": {"walltime_h": 0.001},
            "run": f"date +%s.%N > {stamp}",
        }
        sent = time.time()
        r = api.post("/v1/jobs", json=spec)
        r.raise_for_status()
        deadline = time.monotonic() + 30
        while not (stamp.exists() and stamp.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.002)
        out.append(float(stamp.read_text()) - sent)
        time.sleep(0.05)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-jobs", type=int, default=50)
    parser.add_argument("--db", default=None, help="store URL (default: SQLite in the fresh home)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "api.json")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="suanli-bench-"))
    port = free_port()
    proc = start_up(home, port, args.db)
    try:
        url = f"http://127.0.0.1:{port}"
        token = (home / "admin.token").read_text().strip()
        wall = asyncio.run(submit_many(url, token, args.jobs, args.concurrency))
        rate = args.jobs / wall
        print(f"submissions: {args.jobs} in {wall:.2f} s = {rate:,.0f}/s ({args.concurrency} concurrent clients)")
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        wait_idle(api)
        lat = sorted(latency(api, args.latency_jobs, home))
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        print(f"submit -> running: p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms over {len(lat)} jobs")
        result = {
            "benchmark": "REST API (suanli up, local network)",
            "store": "postgresql" if args.db else "sqlite",
            "jobs": args.jobs,
            "concurrency": args.concurrency,
            "submit_wall_s": round(wall, 3),
            "submissions_per_s": round(rate, 1),
            "latency_jobs": len(lat),
            "submit_to_running_p50_ms": round(p50 * 1e3, 1),
            "submit_to_running_p99_ms": round(p99 * 1e3, 1),
            "machine": f"{platform.machine()}, Python {platform.python_version()}",
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        existing = json.loads(args.out.read_text()) if args.out.exists() else {}
        existing[result["store"]] = result
        args.out.write_text(json.dumps(existing, indent=2) + "\n")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


if __name__ == "__main__":
    main()
