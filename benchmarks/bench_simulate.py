"""Benchmark: simulated jobs per second of `suanli simulate` as traces grow.

Replays generated CSV traces (Poisson arrivals, log-uniform runtimes from a minute to 10 hours, 1-64 cores) on
a 128-node cluster, and the KTH-SP2 trace of the Parallel Workloads Archive when ../shared/data is present
(the project does not need it otherwise). Results: benchmarks/results/simulate.json and docs/benchmarks.md.

    python benchmarks/bench_simulate.py [--sizes 10000 100000 1000000] [--policy hetero] [--round 60]

The issue's targets are for `hetero`: 100,000 jobs under 60 s and 1,000,000 under 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from suanli.hardware import builtin_catalog
from suanli.sim.engine import simulate
from suanli.sim.metrics import metrics
from suanli.sim.networks import cpu_cluster, swf_cluster
from suanli.sim.traces import read_csv, read_swf
from suanli.spec import NetworkSpec

ROOT = Path(__file__).resolve().parents[1]
KTH = ROOT.parent / "shared" / "data" / "traces" / "swf" / "KTH-SP2-1996-2.1-cln.swf.gz"


def cluster(nodes: int = 128, cores: int = 64) -> NetworkSpec:
    return cpu_cluster(f"cluster-{nodes}x{cores}", nodes, cores, memory_gb_per_node=512, node_hour_cny=6)


def synthetic_csv(n: int, seed: int, path: Path) -> Path:
    rng = np.random.default_rng(seed)
    duration = np.exp(rng.uniform(np.log(60), np.log(36000), n)).round()
    cpus = rng.choice([1, 2, 4, 8, 16, 32, 64], n)
    load = 0.8  # offered load against 128 x 64 cores
    mean_gap = (duration * cpus).mean() / (128 * 64 * load)
    submit = np.cumsum(rng.exponential(mean_gap, n)).round()
    requested = (duration * rng.uniform(1.0, 3.0, n)).round()
    path.write_text(
        "job_id,submit_s,cpus,duration_s,requested_s\n"
        + "".join(f"j{k},{submit[k]:.0f},{cpus[k]},{duration[k]:.0f},{requested[k]:.0f}\n" for k in range(n))
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000, 1000000])
    parser.add_argument("--policy", default="hetero")
    parser.add_argument(
        "--round",
        type=float,
        default=60.0,
        dest="round_s",
        help="scheduling beat in seconds (0: a round at every event)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "simulate.json")
    args = parser.parse_args()
    catalog = builtin_catalog()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            trace = read_csv(synthetic_csv(n, 0, Path(tmp) / f"synth-{n}.csv"))
            m = metrics(simulate(trace, cluster(), catalog, args.policy, round_s=args.round_s))
            rows.append({"trace": f"synthetic-{n}", **m, "jobs_per_s": round(n / m["sim_wall_s"], 1)})
            print(f"synthetic {n:>7,} jobs: {m['sim_wall_s']:.1f} s = {n / m['sim_wall_s']:,.0f} jobs/s", flush=True)
    if KTH.exists():
        trace = read_swf(KTH)
        m = metrics(simulate(trace, swf_cluster(trace), catalog, args.policy, round_s=args.round_s))
        rows.append({"trace": "KTH-SP2", **m, "jobs_per_s": round(len(trace) / m["sim_wall_s"], 1)})
        print(f"KTH-SP2 {len(trace):,} jobs: {m['sim_wall_s']:.1f} s = {len(trace) / m['sim_wall_s']:,.0f} jobs/s")
    else:
        print(f"{KTH} not found: KTH-SP2 row left out")
    for r in rows:
        r.pop("utilization_per_pool", None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": f"suanli simulate ({args.policy}, rounds every {args.round_s:g} s)",
                "machine": f"{platform.machine()}, Python {platform.python_version()}",
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
