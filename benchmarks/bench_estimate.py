"""Benchmark: candidate estimates per second with the scalar (per job x pool) estimator.

This is the baseline the vectorised scheduling core is measured against: it runs estimate_candidates for the
example jobs over the Zhengzhou network, repeatedly, and reports candidates/s. Results go to
benchmarks/results/estimate.json and a table in docs/benchmarks.md.

    python benchmarks/bench_estimate.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from suanli.estimate.candidates import estimate_candidates
from suanli.hardware import builtin_catalog
from suanli.spec import load_job, load_network

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time budget")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "estimate.json")
    args = parser.parse_args()
    network = load_network(str(ROOT / "examples" / "zhengzhou.yaml"))
    jobs = [load_job(str(p)) for p in sorted((ROOT / "examples" / "jobs").glob("*.yaml"))]
    catalog = builtin_catalog()
    start = datetime(2026, 12, 1, tzinfo=UTC)
    estimate_candidates(jobs[0], network, catalog, start)  # warm caches
    candidates, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        for job in jobs:
            candidates += len(estimate_candidates(job, network, catalog, start))
    wall = time.perf_counter() - t0
    result = {
        "benchmark": "estimate_candidates (scalar)",
        "network": network.name,
        "pools": sum(len(s.pools) for s in network.sites),
        "jobs": len(jobs),
        "candidates": candidates,
        "wall_s": round(wall, 3),
        "candidates_per_s": round(candidates / wall, 1),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
