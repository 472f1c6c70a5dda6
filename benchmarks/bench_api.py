"""Benchmark: sustained submissions/s through the REST API, and submit -> running latency on a local site.

Starts a real `suanli up` (embedded local network, SQLite, or PostgreSQL with --db) in a fresh home, then
1. submits trivial jobs from C concurrent connections for --seconds and reports the accepted submissions/s (the
   broker schedules and runs them meanwhile, as it would in production), then how long the broker takes to run
   them all (jobs completed/s end to end);
2. submits jobs one at a time on an otherwise idle broker; each job writes the time it started, and the
   latency is that time minus the time the submit request was sent (same machine, same clock).
The load comes from wrk (Debian package `wrk`: a load generator in C, so that the client does not take the
2-core machine's CPU from the server) when it is installed, else from Python's httpx (about 2 ms of CPU per
request here, which then bounds the figure). Results go to benchmarks/results/api.json and the table in
docs/benchmarks.md.

    python benchmarks/bench_api.py [--seconds 20] [--concurrency 16] [--latency-jobs 50] [--db URL] [--load wrk|httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
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
    spec = SPEC
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


SPEC = {
    "name": "bench",
    "workload": "general",
    "run": "true",
    "resources": {"cpus": 1, "memory_gb": 1},
    "compute": {"walltime_h": 0.001},
}
WRK_SCRIPT = """wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


def submit_wrk(url: str, token: str, seconds: int, concurrency: int, scratch: Path) -> tuple[int, float]:
    """Accepted submissions and wall time, wrk posting the same small job for `seconds`."""
    script = scratch / "post.lua"
    script.write_text(WRK_SCRIPT % (json.dumps(SPEC), token))
    t0 = time.perf_counter()
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "-s", str(script), f"{url}/v1/jobs"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wall = time.perf_counter() - t0
    sent = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return sent - (int(refused.group(1)) if refused else 0), wall


def jobs_in_store(url: str) -> int:
    """All jobs, from the server's own gauge (counted in the store at scrape time)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return int(sum(float(v) for v in re.findall(r'^suanli_jobs\{state="[^"]+"\} (\S+)$', text, re.M)))


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
    parser.add_argument("--seconds", type=int, default=20, help="how long wrk submits")
    parser.add_argument("--jobs", type=int, default=2000, help="submissions with --load httpx")
    parser.add_argument("--load", choices=["wrk", "httpx"], default="wrk" if shutil.which("wrk") else "httpx")
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
        if args.load == "wrk":
            jobs, wall = submit_wrk(url, token, args.seconds, args.concurrency, home)
        else:
            jobs, wall = args.jobs, asyncio.run(submit_many(url, token, args.jobs, args.concurrency))
        stored = jobs_in_store(url)  # wrk does not count the requests still in flight when it stops
        assert stored >= jobs, f"{jobs} submissions accepted, {stored} jobs in the store"
        jobs, rate = stored, stored / wall
        print(f"submissions: {jobs} in {wall:.2f} s = {rate:,.0f}/s ({args.concurrency} connections, {args.load})")
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        t0 = time.perf_counter()
        wait_idle(api)
        drain = time.perf_counter() - t0
        done_rate = jobs / (wall + drain)
        print(f"all {jobs} run {drain:.1f} s after the last submission: {done_rate:,.0f} jobs/s end to end")
        lat = sorted(latency(api, args.latency_jobs, home))
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        print(f"submit -> running: p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms over {len(lat)} jobs")
        result = {
            "benchmark": "REST API (suanli up, local network)",
            "store": "postgresql" if args.db else "sqlite",
            "load": args.load,
            "jobs": jobs,
            "concurrency": args.concurrency,
            "submit_wall_s": round(wall, 3),
            "submissions_per_s": round(rate, 1),
            "drain_s": round(drain, 1),
            "jobs_completed_per_s": round(done_rate, 1),
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
