"""The replay on heterogeneous hardware: Gavel's throughput matrix as the speed model, Alibaba's node list as a
network with its GPU-type constraints, the seed, and preemption with its laws (work conserved, capacity never
exceeded at any instant)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from suanli.cli.app import app
from suanli.cli.spec_cmds import network_and_catalog
from suanli.hardware import builtin_catalog
from suanli.sim.engine import SimResult, simulate
from suanli.sim.metrics import compare_to, metrics
from suanli.sim.networks import ALIBABA_STAND_IN, alibaba_network, cpu_cluster
from suanli.sim.report import headline, utilisation_series
from suanli.sim.synth import synthesize as synth
from suanli.sim.synth import write_csv
from suanli.sim.throughput import GAVEL_HARDWARE, load_throughputs, pool_runtimes
from suanli.sim.traces import read_alibaba, read_alibaba_nodes, read_csv

ROOT = Path(__file__).parents[1]
DATA = Path(__file__).parent / "data" / "traces"
GAVEL = DATA / "gavel-throughputs-isolated.json"
CATALOG = builtin_catalog()


def gavel_speed(job_type: str, hardware: str, workers: int) -> float:
    """Isolated throughput read straight from the JSON (independently of the reader), by catalog id."""
    raw = json.loads(GAVEL.read_text())
    gavel_hw = next(g for g, ids in GAVEL_HARDWARE.items() if hardware in ids)
    by_key = {ast.literal_eval(k): v["null"] for k, v in raw[gavel_hw].items()}
    return by_key.get((job_type, workers), by_key[(job_type, 1)])


@pytest.fixture(scope="module")
def philly(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("philly") / "philly.csv"
    with path.open("w", newline="") as f:
        write_csv(synth(120, "philly", seed=1, mean_interarrival_s=1800.0), f)
    return read_csv(path)


@pytest.fixture(scope="module")
def hetero_network():
    return network_and_catalog(ROOT / "examples" / "gavel-hetero.yaml", [])[0]


@pytest.fixture(scope="module")
def gavel_runs(philly, hetero_network) -> dict[str, SimResult]:
    tp = load_throughputs(GAVEL)
    return {p: simulate(philly, hetero_network, CATALOG, p, throughputs=tp) for p in ("agnostic", "hetero", "fair")}


# ------------------------------------------------------------------------------------------ throughput matrix


def test_hetero_and_fair_beat_agnostic_with_the_gavel_matrix(gavel_runs) -> None:
    rows = [metrics(r) for r in gavel_runs.values()]
    by = {m["policy"]: m for m in rows}
    for m in rows:
        assert m["completed"] == m["jobs"] == 120 and m["throughput_jobs"] == 120
    assert by["hetero"]["avg_jct_s"] < 0.8 * by["agnostic"]["avg_jct_s"]
    assert by["fair"]["avg_jct_s"] < 0.8 * by["agnostic"]["avg_jct_s"]
    vs = compare_to(rows)
    assert vs["agnostic"] == 1.0 and vs["hetero"] < 0.8 and vs["fair"] < 0.8
    line = next(x for x in headline(rows) if x.startswith("Average JCT against agnostic"))
    assert f"hetero {vs['hetero']:.2f}x ({1 - vs['hetero']:.0%} shorter)" in line


def test_jobs_run_at_the_matrix_speed_and_work_is_conserved(gavel_runs, philly) -> None:
    """Every job runs for duration x throughput[reference] / throughput[its pool], under every policy (the
    agnostic one plans as if all pools were equal, yet its jobs still run at their pool's speed)."""
    for r in gavel_runs.values():
        hw = [CATALOG.get(h).id for h in _pool_hardware(r)]
        expected = np.array(
            [
                philly.duration_s[i]
                * gavel_speed(philly.job_type[i], philly.reference_hardware[i], int(philly.devices[i]))
                / gavel_speed(philly.job_type[i], hw[r.pool[i]], int(philly.devices[i]))
                for i in range(len(philly))
            ]
        )
        assert r.preemptions == 0
        np.testing.assert_allclose(r.runtime_s, expected, rtol=1e-9)
        # device-seconds used = device-seconds the matrix asks of the pools they ran on
        used = (r.seg_units * (r.seg_end - r.seg_start)).sum()
        assert used == pytest.approx((philly.devices * expected).sum(), rel=1e-9)
    assert len(set(gavel_runs["agnostic"].pool.tolist())) > 1


def _pool_hardware(r: SimResult) -> list[str]:
    network = network_and_catalog(ROOT / "examples" / "gavel-hetero.yaml", [])[0]
    by_key = {f"{s.id}/{p.id}": p.hardware for s in network.sites for p in s.pools}
    return [by_key[k] for k in r.pool_keys]


def test_matrix_applies_only_where_it_knows_the_job_type_and_hardware(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "job_id,submit_s,duration_s,devices,reference_hardware,job_type\n"
        "known,0,100,1,nvidia-v100-sxm2-32gb,A3C\n"
        "unknown-type,0,100,1,nvidia-v100-sxm2-32gb,Nope\n"
        "no-type,0,100,1,nvidia-v100-sxm2-32gb,\n"
        "four-workers,0,100,4,nvidia-k80,ResNet-50 (batch size 64)\n"
    )
    trace = read_csv(path)
    hw = ["nvidia-k80", "nvidia-p100-pcie-16gb", "nvidia-a100-sxm4-80gb"]
    runtime, runs, matched = pool_runtimes(trace, hw, load_throughputs(GAVEL))
    assert matched == 2
    v100 = gavel_speed("A3C", "nvidia-v100-sxm2-32gb", 1)
    assert runtime[0, 0] == pytest.approx(100 * v100 / gavel_speed("A3C", "nvidia-k80", 1))
    assert np.isnan(runtime[0, 2])  # the matrix has no A100: the estimator's model applies there
    assert np.isnan(runtime[1]).all() and np.isnan(runtime[2]).all()
    k80, p100 = (gavel_speed("ResNet-50 (batch size 64)", h, 4) for h in hw[:2])
    assert runtime[3, 1] == pytest.approx(100 * k80 / p100)  # at its own worker count
    assert runs.all()


def test_simulate_command_takes_the_throughput_matrix(tmp_path: Path) -> None:
    trace = tmp_path / "philly.csv"
    assert (
        CliRunner().invoke(app, ["trace", "synth", "--jobs", "40", "--kind", "philly", "--out", str(trace)]).exit_code
        == 0
    )
    out = tmp_path / "m.json"
    args = ["simulate", "--trace", str(trace), "--network", str(ROOT / "examples" / "gavel-hetero.yaml")]
    args += ["--throughputs", str(GAVEL), "--policy", "agnostic", "--policy", "hetero", "--json", str(out)]
    result = CliRunner().invoke(app, [*args, "--report", str(tmp_path / "report")])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(out.read_text())
    assert all(m["throughput_jobs"] == 40 for m in rows)
    assert "JCT vs agnostic" in result.stdout
    ratio = compare_to(rows)["hetero"]
    index = (tmp_path / "report" / "index.html").read_text()
    assert f"Average JCT against agnostic (every pool as fast as any other): hetero {ratio:.2f}x" in index


# ------------------------------------------------------------------------------------------------ Alibaba


def test_alibaba_pods_run_on_their_own_node_list_within_their_gpu_spec() -> None:
    nodes = read_alibaba_nodes(DATA / "openb-nodes-sample.csv")
    network, names, stand_ins = alibaba_network(nodes)
    assert sorted(stand_ins) == ["G2", "G3"]
    hardware = {f"{s.id}/{p.id}": p.hardware for s in network.sites for p in s.pools}
    assert {hardware[k] for k, v in names.items() if v & {"G2", "G3"}} == {ALIBABA_STAND_IN}
    trace = read_alibaba(DATA / "openb-gpuspec33-head.csv")
    r = simulate(trace, network, CATALOG, "hetero", pool_names=names, round_s=600)
    m = metrics(r)
    assert m["completed"] + m["rejected"] == len(trace)
    ran = np.flatnonzero(np.isfinite(r.start_s))
    constrained = [i for i in ran if trace.allowed_hardware[i]]
    assert len(constrained) > 20
    for i in constrained:
        model = names[r.pool_keys[r.pool[i]]]
        assert model & set(trace.allowed_hardware[i]), (trace.job_id[i], model, trace.allowed_hardware[i])
    g2 = [i for i in constrained if trace.allowed_hardware[i] == ("G2",)]
    assert g2 and all(names[r.pool_keys[r.pool[i]]] == {"G2"} for i in g2)  # not the G3 servers of the same stand-in


def test_simulate_command_builds_the_network_from_a_node_list(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    args = ["simulate", "--trace", str(DATA / "openb-gpuspec33-head.csv"), "--format", "alibaba"]
    args += ["--network", str(DATA / "openb-nodes-sample.csv"), "--round", "600", "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("warning: GPU models G2, G3 not disclosed") == 1
    (m,) = json.loads(out.read_text())
    assert m["completed"] + m["rejected"] == m["jobs"] == len(read_alibaba(DATA / "openb-gpuspec33-head.csv"))


# --------------------------------------------------------------------------------------------------- seed


def test_the_same_seed_gives_the_same_result(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    # eight jobs submitted together on a machine that runs one at a time: the seed decides their order
    path.write_text("job_id,submit_s,cpus,duration_s\n" + "".join(f"j{k},0,4,{10 * (k + 1)}\n" for k in range(8)))
    trace = read_csv(path)
    machine = cpu_cluster("m", 1, 4, site_id="m", memory_gb_per_node=100)

    def run(seed: int | None) -> dict:
        m = metrics(simulate(trace, machine, CATALOG, "fifo", seed=seed))
        m.pop("sim_wall_s")
        return m

    assert run(7) == run(7)
    assert run(7)["seed"] == 7 and run(None)["seed"] is None
    orders = {tuple(np.argsort(simulate(trace, machine, CATALOG, "fifo", seed=s).start_s)) for s in range(6)}
    assert len(orders) > 1  # the seed does drive the tie-break
    assert tuple(np.argsort(simulate(trace, machine, CATALOG, "fifo").start_s, kind="stable")) == tuple(range(8))


def test_simulate_command_records_the_seed(tmp_path: Path) -> None:
    outs = []
    for k in range(2):
        out = tmp_path / f"m{k}.json"
        args = ["simulate", "--trace", str(DATA / "kth-sp2-head.swf.gz"), "--seed", "11", "--json", str(out)]
        assert CliRunner().invoke(app, args).exit_code == 0
        rows = json.loads(out.read_text())
        outs.append([{k: v for k, v in m.items() if k != "sim_wall_s"} for m in rows])
    assert outs[0] == outs[1] and outs[0][0]["seed"] == 11


# --------------------------------------------------------------------------------------------- preemption


def test_a_preempted_job_keeps_the_work_up_to_its_last_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    # L fills the machine from 0 for 1000 s, checkpointing every 100 s; H (higher priority) arrives at 250 and must
    # finish by 500, which waiting for L cannot do: L is preempted at 250, keeps 200 s of work and loses 50 s
    path.write_text(
        "job_id,submit_s,cpus,duration_s,priority,preemptible,checkpoint_s,deadline_s\n"
        "L,0,4,1000,0,true,100,\n"
        "H,250,4,100,1,false,,500\n"
    )
    machine = cpu_cluster("m", 1, 4, site_id="m", memory_gb_per_node=100)
    r = simulate(read_csv(path), machine, CATALOG, "hetero")
    assert r.preemptions == 1
    assert list(r.start_s) == [0, 250] and list(r.end_s) == [1150, 350]
    assert list(r.seg_job) == [0, 1, 0]
    np.testing.assert_allclose(r.seg_work, [0.2, 1.0, 0.8])
    np.testing.assert_allclose(r.seg_lost_s, [50, 0, 0])
    assert metrics(r)["lost_unit_hours"] == pytest.approx(4 * 50 / 3600)
    # the report counts each run where and when it ran: at 300 s only H holds the machine
    np.testing.assert_allclose(utilisation_series(r, machine, np.array([100.0, 300.0, 1000.0]))["m"], 1.0)


job_rows = st.lists(
    st.tuples(
        st.integers(0, 1500),  # submit
        st.integers(1, 8),  # cpus
        st.integers(1, 900),  # duration
        st.integers(0, 2),  # priority
        st.booleans(),  # preemptible
        st.sampled_from(["", "30", "200"]),  # checkpoint interval
        st.sampled_from([None, 1.5, 3.0]),  # deadline slack (x duration)
    ),
    min_size=1,
    max_size=30,
)


@given(rows=job_rows, policy=st.sampled_from(["hetero", "fair", "objective"]))
# found by hypothesis: a preemptible job preempted at 30 s of 31, whose deadline is then out of reach
@example(
    rows=[
        (0, 1, 1, 0, False, "", None),
        (0, 1, 1, 0, False, "", None),
        (0, 5, 31, 0, True, "30", 1.5),
        (30, 4, 16, 1, False, "", 1.5),
    ],
    policy="hetero",
)
@settings(max_examples=30, deadline=None)
def test_with_preemption_work_is_conserved_and_capacity_never_exceeded(
    tmp_path_factory: pytest.TempPathFactory, rows, policy
) -> None:
    path = tmp_path_factory.mktemp("p") / "t.csv"
    lines = ["job_id,submit_s,cpus,duration_s,priority,preemptible,checkpoint_s,deadline_s,tenant"]
    for k, (s, c, d, p, pre, cp, slack) in enumerate(rows):
        deadline = "" if slack is None else f"{s + slack * d:g}"
        lines.append(f"j{k},{s},{c},{d},{p},{str(pre).lower()},{cp},{deadline},t{k % 3}")
    path.write_text("\n".join(lines) + "\n")
    trace = read_csv(path)
    r = simulate(trace, cpu_cluster("m", 1, 8, site_id="m", memory_gb_per_node=1000), CATALOG, policy)
    done = np.isfinite(r.end_s)
    assert done.sum() + r.rejected.sum() == len(rows)
    # capacity: at every instant a run starts, the runs live then fit the machine
    for t in r.seg_start:
        live = (r.seg_start <= t) & (r.seg_end > t)
        assert r.seg_units[live].sum() <= 8 + 1e-9
    # work: each finished job did all of its work once, over its runs; every second held was useful or redone
    work = np.bincount(r.seg_job, weights=r.seg_work, minlength=len(rows))
    np.testing.assert_allclose(work[done], 1.0, rtol=1e-9)
    useful = r.seg_work * trace.duration_s[r.seg_job]
    held = r.seg_end - r.seg_start
    np.testing.assert_allclose(held, useful + r.seg_lost_s, atol=1e-6)
    # A job that ran and then could not finish (preempted, then its deadline out of reach) ends rejected, and the
    # work it did counts as done but not as its whole demand.
    stopped = ~done[r.seg_job]
    assert np.all(r.rejected[r.seg_job[stopped]])
    assert (r.seg_units * held).sum() == pytest.approx(
        (trace.cpus[done] * trace.duration_s[done]).sum()
        + (r.seg_units[stopped] * useful[stopped]).sum()
        + (r.seg_units * r.seg_lost_s).sum()
    )
    assert np.all(r.seg_lost_s[~np.isin(r.seg_job, np.flatnonzero(trace.preemptible))] == 0)
