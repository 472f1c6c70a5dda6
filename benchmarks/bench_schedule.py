"""Benchmark: the scheduling core's placements/s and decision latency as jobs and pools grow.

Runs `suanli bench schedule`'s measurement (one scheduling round over a generated city-scale workload) for
growing N pending jobs and M pools, and for an overloaded network (load 4: three quarters of the demand must
wait). Results go to benchmarks/results/schedule.json and the table in docs/benchmarks.md.

    python benchmarks/bench_schedule.py            # the full curve (a few minutes; 1M jobs takes about 1.5 min)
    python benchmarks/bench_schedule.py --quick    # up to 100k jobs
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import UTC, datetime
from pathlib import Path

from suanli.bench.schedule_bench import run_schedule_bench

ROOT = Path(__file__).resolve().parents[1]
CURVE = [  # (jobs, pools, load, policy)
    (1_000, 10, 1.0, "hetero"),
    (1_000, 200, 1.0, "hetero"),
    (10_000, 200, 1.0, "hetero"),
    (100_000, 10, 1.0, "hetero"),
    (100_000, 200, 1.0, "hetero"),
    (100_000, 200, 4.0, "hetero"),
    (100_000, 200, 1.0, "objective"),
    (100_000, 200, 1.0, "easy-backfill"),
    (100_000, 1_000, 1.0, "hetero"),
    (1_000_000, 200, 1.0, "hetero"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stop at 100k jobs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "schedule.json")
    args = parser.parse_args()
    rows = []
    for jobs, pools, load, policy in CURVE:
        if args.quick and jobs > 100_000:
            continue
        r = run_schedule_bench(jobs, pools, policy, seed=0, load=load).as_dict()
        rows.append(r)
        print(
            f"{policy:>14} jobs={jobs:>9,} pools={pools:>5} load={load:>4}: "
            f"{r['placements_per_s']:>10,.0f} placements/s, {r['decisions_per_s']:>10,.0f} decisions/s, "
            f"p99 {r['p99_decision_ms']:.3f} ms, placed {r['placements']:,}, wall {r['wall_s']:.2f} s",
            flush=True,
        )
    result = {
        "benchmark": "schedule round (suanli bench schedule)",
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
