"""The simulator's laws: hand-computed FIFO on one machine, capacity never exceeded, work conserved, the same
input giving the same result, and every job accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from suanli.cli.app import app
from suanli.hardware import builtin_catalog
from suanli.sim.engine import simulate
from suanli.sim.metrics import metrics
from suanli.sim.networks import cpu_cluster, swf_cluster
from suanli.sim.traces import read_csv, read_swf
from suanli.spec import NetworkSpec

DATA = Path(__file__).parent / "data" / "traces"
CATALOG = builtin_catalog()


def one_machine(cpus: int) -> NetworkSpec:
    return cpu_cluster("one-machine", 1, cpus, site_id="m", memory_gb_per_node=1000)


def csv_trace(tmp_path: Path, rows: list[tuple[float, int, float]]) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(
        "job_id,submit_s,cpus,duration_s\n" + "".join(f"j{k},{s},{c},{d}\n" for k, (s, c, d) in enumerate(rows))
    )
    return path


def test_fifo_on_one_machine_matches_hand_computed_times(tmp_path: Path) -> None:
    # A takes the whole machine 0-100; B (2 cpus, 50 s) and C (2 cpus, 30 s) wait for it, then run side by side
    trace = read_csv(csv_trace(tmp_path, [(0, 4, 100), (10, 2, 50), (20, 2, 30)]))
    r = simulate(trace, one_machine(4), CATALOG, "fifo")
    assert list(r.start_s) == [0, 100, 100]
    assert list(r.end_s) == [100, 150, 130]
    m = metrics(r)
    assert m["completed"] == 3 and m["avg_wait_s"] == pytest.approx((0 + 90 + 80) / 3)
    assert m["makespan_s"] == 150


def test_fifo_head_blocks_but_backfill_does_not(tmp_path: Path) -> None:
    # B needs the whole machine while A runs; C is small and short: FIFO makes C wait behind B, EASY lets it go
    rows = [(0, 2, 100), (1, 4, 100), (2, 2, 50)]
    trace = read_csv(csv_trace(tmp_path, rows))
    fifo = simulate(trace, one_machine(4), CATALOG, "fifo")
    easy = simulate(trace, one_machine(4), CATALOG, "easy-backfill")
    assert fifo.start_s[2] >= fifo.start_s[1]  # C waited behind B
    assert easy.start_s[2] == 2  # backfilled at once: it ends (52 s) before B could start (100 s)
    assert easy.start_s[1] == 100  # and B still starts when A ends


jobs = st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 8), st.integers(1, 900)), min_size=1, max_size=40)


@given(rows=jobs, policy=st.sampled_from(["fifo", "easy-backfill", "hetero", "agnostic"]))
@settings(max_examples=25, deadline=None)
def test_capacity_never_exceeded_and_work_conserved(tmp_path_factory: pytest.TempPathFactory, rows, policy) -> None:
    path = csv_trace(tmp_path_factory.mktemp("t"), [(float(s), c, float(d)) for s, c, d in rows])
    trace = read_csv(path)
    r = simulate(trace, one_machine(8), CATALOG, policy)
    assert np.all(r.peak_use <= r.capacity_units + 1e-9)
    # at every start instant, what runs fits the machine
    starts, ends, units = r.start_s, r.end_s, r.units
    for t in starts[np.isfinite(starts)]:
        live = (starts <= t) & (ends > t)
        assert units[live].sum() <= 8 + 1e-9
    done = np.isfinite(r.end_s)
    assert done.sum() + r.rejected.sum() == len(rows)  # every job accounted for
    assert np.all(done)  # everything fits the machine, so everything finishes
    assert (r.units[done] * r.runtime_s[done]).sum() == pytest.approx(
        sum(c * d for _, c, d in rows)
    )  # work conserved: cpu-seconds used = cpu-seconds asked
    again = simulate(trace, one_machine(8), CATALOG, policy)
    assert np.array_equal(again.start_s, r.start_s, equal_nan=True)  # same input, same result


def test_kth_extract_backfill_waits_less_than_fifo_and_accounts_for_every_job() -> None:
    trace = read_swf(DATA / "kth-sp2-head.swf.gz")
    network = swf_cluster(trace)
    fifo = metrics(simulate(trace, network, CATALOG, "fifo"))
    easy = metrics(simulate(trace, network, CATALOG, "easy-backfill"))
    assert easy["avg_wait_s"] < 0.6 * fifo["avg_wait_s"]
    for m in (fifo, easy):
        assert m["completed"] + m["rejected"] == len(trace)
        assert 0 < m["utilization"] <= 1


def test_simulate_command_writes_the_metrics_contract(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--trace",
            str(DATA / "kth-sp2-head.swf.gz"),
            "--policy",
            "fifo",
            "--policy",
            "easy-backfill",
            "--json",
            str(out),
            "--report",
            str(tmp_path / "report"),
        ],
    )
    assert result.exit_code == 0, result.stderr
    index = (tmp_path / "report" / "index.html").read_text()
    assert "easy-backfill" in index and "fifo" in index and "<img" in index
    rows = json.loads(out.read_text())
    assert [r["policy"] for r in rows] == ["fifo", "easy-backfill"]
    keys = {
        "policy",
        "jobs",
        "completed",
        "rejected",
        "avg_jct_s",
        "p50_jct_s",
        "p99_jct_s",
        "avg_wait_s",
        "avg_bounded_slowdown",
        "makespan_s",
        "utilization",
        "cost_cny",
        "energy_kwh",
        "carbon_kg",
        "deadline_misses",
        "sim_wall_s",
    }
    assert keys <= set(rows[0])
    bad = CliRunner().invoke(app, ["simulate", "--trace", str(DATA / "kth-sp2-head.swf.gz"), "--policy", "nope"])
    assert bad.exit_code == 2 and "unknown policy 'nope'" in bad.stderr
    missing = CliRunner().invoke(app, ["simulate", "--trace", str(tmp_path / "none.swf")])
    assert missing.exit_code == 2


def test_per_site_breakdown_and_finish_time_fairness(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    # two tenants; a runs alone first (no wait), b's two jobs must queue behind each other
    path.write_text("job_id,submit_s,cpus,duration_s,tenant\na1,0,4,100,a\nb1,200,4,100,b\nb2,200,4,100,b\n")
    r = simulate(read_csv(path), one_machine(4), CATALOG, "fifo")
    m = metrics(r)
    site = m["per_site"]["m"]
    assert site["jobs"] == 3 and site["unit_hours"] == pytest.approx(3 * 4 * 100 / 3600)
    rho = m["fairness"]["per_tenant_rho"]
    # with 2 tenants each owns 2 of 4 cores: a 4-core job of 100 s takes 200 s on that share
    assert rho["a"] == pytest.approx(100 / 200)
    assert rho["b"] == pytest.approx(((100 + 200) / 2) / 200)  # b2 waited 100 s behind b1
    assert m["fairness"]["max_rho"] == rho["b"] > rho["a"] == m["fairness"]["min_rho"]


def test_allowed_hardware_from_the_trace_is_respected(tmp_path: Path) -> None:
    two_pools = NetworkSpec.model_validate(
        {
            "name": "two",
            "sites": [
                {
                    "id": "m",
                    "name": "machine",
                    "kind": "general",
                    "province": "henan",
                    "city": "zhengzhou",
                    "backend": {"type": "sim"},
                    "energy": {"pue": 1.2, "tariff": "henan-ci-single-part-2026-01", "carbon": {"kg_per_kwh": 0.6}},
                    "pools": [
                        {
                            "id": p,
                            "hardware": hw,
                            "nodes": 1,
                            "devices_per_node": 1,
                            "cpus_per_node": 8,
                            "memory_gb_per_node": 100,
                            "price": {"node_hour_cny": 1},
                        }
                        for p, hw in (("epyc", "amd-epyc-7763"), ("xeon", "intel-xeon-platinum-8380"))
                    ],
                }
            ],
        }
    )
    path = tmp_path / "t.csv"
    path.write_text(
        "job_id,submit_s,cpus,duration_s,hardware\n"
        "x1,0,8,100,intel-xeon-platinum-8380\nx2,0,8,100,intel-xeon-platinum-8380\nany,0,8,100,\n"
    )
    r = simulate(read_csv(path), two_pools, CATALOG, "hetero")
    xeon = r.pool_keys.index("m/xeon")
    assert r.pool[0] == xeon and r.pool[1] == xeon  # both wait for the xeon rather than take the free epyc
    assert sorted(r.start_s[:2]) == [0, 100]


def test_scheduling_beat_batches_events_into_rounds(tmp_path: Path) -> None:
    trace = read_csv(csv_trace(tmp_path, [(0, 4, 100), (10, 2, 50), (20, 2, 30)]))
    r = simulate(trace, one_machine(4), CATALOG, "fifo", round_s=60)
    # rounds at 0, 60, 120, ...: A starts at 0 and ends at 100; B and C are decided at the round after (120)
    assert list(r.start_s) == [0, 120, 120]
    assert list(r.end_s) == [100, 170, 150]
    every_event = simulate(trace, one_machine(4), CATALOG, "fifo")
    assert r.rounds < every_event.rounds + 1


def test_a_job_larger_than_every_pool_is_rejected_at_arrival(tmp_path: Path) -> None:
    trace = read_csv(csv_trace(tmp_path, [(0, 16, 100), (5, 2, 10)]))
    r = simulate(trace, one_machine(4), CATALOG, "easy-backfill")
    assert r.rejected[0] and "more devices, CPUs or memory than any pool" in r.reason[0]
    assert r.start_s[1] == 5 and not r.rejected[1]
    m = metrics(r)
    assert m["completed"] + m["rejected"] == 2
