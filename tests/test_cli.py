"""The `suanli` command as a person and a script use it: tables for people, pure JSON with --json, and errors
with exit codes instead of tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from suanli.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
ZZ = str(ROOT / "examples" / "zhengzhou.yaml")
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def run_json(*args: str):
    result = run(*args, "--json")
    assert result.exit_code == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def test_help_lists_commands() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in ("estimate", "hardware", "probe", "schema"):
        assert command in result.stdout


def test_hardware_json_lists_the_whole_catalog() -> None:
    devices = run_json("hardware")
    assert len(devices) >= 30
    h100 = next(d for d in devices if d["id"] == "nvidia-h100-sxm5-80gb")
    assert h100["peak_tflops"]["bf16"] == pytest.approx(989.4)
    assert h100["fp32_equivalent_tflops"] == h100["peak_tflops"]["fp32"]
    assert h100["ai_fp16_tflops"] == h100["peak_tflops"]["fp16"]
    ascend = next(d for d in devices if d["id"] == "huawei-ascend-910b")
    assert ascend["peak_tflops"]["fp64"] is None


def test_hardware_one_device_and_kind_filter() -> None:
    d = run_json("hardware", "huawei-ascend-910b")
    assert d["kind"] == "npu" and d["source"]
    cpus = run_json("hardware", "--kind", "cpu")
    assert cpus and all(c["kind"] == "cpu" and c["cores"] for c in cpus)
    table = run("hardware")
    assert table.exit_code == 0 and "nvidia-h800-sxm5-80gb" in table.stdout


def test_hardware_errors() -> None:
    result = run("hardware", "nvidia-h100-sxm5-80g")
    assert result.exit_code == 3
    assert "did you mean 'nvidia-h100-sxm5-80gb'" in result.stderr
    result = run("hardware", "--kind", "xpu")
    assert result.exit_code == 2 and "accepted: gpu, npu, dcu, cpu" in result.stderr


def test_estimate_json_has_every_candidate_with_contract_fields() -> None:
    cands = run_json("estimate", str(ROOT / "examples/jobs/cfd-fp64.yaml"), "--network", ZZ)
    assert len(cands) == 14  # every (site, pool) of the network
    for c in cands:
        assert {"site", "pool", "feasible", "reason", "runtime_s", "cost_cny", "energy_kwh", "carbon_kg"} <= set(c)
        if c["feasible"]:
            assert c["runtime_s"] > 0 and c["cost_cny"] > 0 and c["energy_kwh"] > 0 and c["carbon_kg"] >= 0
            assert c["reason"] is None
        else:
            assert c["reason"]
    ascend = [c for c in cands if "ascend" in c["hardware"]]
    assert ascend and all(not c["feasible"] and "fp64" in c["reason"] for c in ascend)


def test_estimate_table_shows_ruled_out_reasons() -> None:
    result = run("estimate", str(ROOT / "examples/jobs/cfd-fp64.yaml"), "--network", ZZ)
    assert result.exit_code == 0
    assert "ruled out:" in result.stdout
    assert "fp64 work but huawei-ascend-910b has no fp64 path" in result.stdout


def test_estimate_default_network_is_the_embedded_local_one(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("name: x\nworkload: general\nresources: {cpus: 4}\ncompute: {walltime_h: 1}\n")
    cands = run_json("estimate", str(job))
    assert {c["site"] for c in cands} == {"local-hpc", "local-ai", "local-west"}
    assert [c["pool"] for c in cands if c["feasible"]] == ["cpu"]
    # data at a site the local network does not have is an error naming the job file and field
    result = run("estimate", str(ROOT / "examples/jobs/etl-general.yaml"))
    assert result.exit_code == 2
    assert "etl-general.yaml: data[0].site: unknown site 'zz-cloud'" in result.stderr


def test_estimate_start_option() -> None:
    night = run_json(
        "estimate",
        str(ROOT / "examples/jobs/etl-general.yaml"),
        "--network",
        ZZ,
        "--start",
        "2026-12-01T01:00:00+08:00",
    )
    evening = run_json(
        "estimate",
        str(ROOT / "examples/jobs/etl-general.yaml"),
        "--network",
        ZZ,
        "--start",
        "2026-12-01T18:00:00+08:00",
    )
    # the same 2 h run costs less in Henan's valley hours than across its evening peak
    by_key = {(c["site"], c["pool"]): c for c in evening}
    zz = next(c for c in night if c["site"] == "nscc-zz" and c["pool"] == "cpu")
    assert zz["energy_cost_cny"] < by_key[("nscc-zz", "cpu")]["energy_cost_cny"]
    result = run("estimate", str(ROOT / "examples/jobs/etl-general.yaml"), "--network", ZZ, "--start", "soon")
    assert result.exit_code == 2 and "--start" in result.stderr


def test_estimate_bad_job_file_names_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncompute: {walltime_h: 1}\nresources: {gpus: 2}\n")
    result = run("estimate", str(bad), "--network", ZZ)
    assert result.exit_code == 2
    assert f"{bad}:3: resources.gpus: unknown key 'gpus'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    result = run("estimate", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2 and "file not found" in result.stderr


def test_estimate_unknown_site_in_job_data(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("name: x\ncompute: {walltime_h: 1}\ndata: [{name: d, site: zz-mars, size_gb: 1}]\n")
    result = run("estimate", str(job), "--network", ZZ)
    assert result.exit_code == 2 and "data[0].site: unknown site 'zz-mars'" in result.stderr


def test_schema_command() -> None:
    job = json.loads(run("schema", "job").stdout)
    assert "compute" in job["properties"]
    net = json.loads(run("schema", "network").stdout)
    assert "sites" in net["properties"]
    assert run("schema", "tenant").exit_code == 2


def test_json_output_is_pure_json_on_stdout_in_a_real_process() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "suanli",
            "estimate",
            str(ROOT / "examples/jobs/llm-inference.yaml"),
            "--network",
            ZZ,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert isinstance(json.loads(proc.stdout), list)


def _numpy_fp64_gflops() -> float:
    a = np.random.default_rng(1).standard_normal((1024, 1024))
    best = 0.0
    import time

    for _ in range(5):
        t0 = time.perf_counter()
        a @ a
        best = max(best, 2 * 1024**3 / (time.perf_counter() - t0) / 1e9)
    return best


def test_probe_measures_within_a_factor_of_two_of_plain_numpy() -> None:
    report = run_json("probe", "--seconds", "0.2", "--no-torch")
    by = {m["precision"]: m for m in report["measurements"]}
    assert {"fp64", "fp32", "triad"} <= set(by)
    plain = _numpy_fp64_gflops()
    assert plain / 2 <= by["fp64"]["value"] <= plain * 2
    assert by["fp32"]["value"] > by["fp64"]["value"] * 1.2  # single precision is faster on any CPU here
    assert by["triad"]["value"] > 0.5 and by["triad"]["unit"] == "GB/s"
    assert by["fp64"]["catalog_device"]  # set beside the closest catalog device


def test_probe_writes_a_catalog_entry_that_the_catalog_accepts(tmp_path: Path) -> None:
    path = tmp_path / "measured.csv"
    result = run("probe", "--seconds", "0.05", "--no-torch", "--write-catalog", str(path), "--id", "probe-test-node")
    assert result.exit_code == 0, result.stderr
    entry = run_json("hardware", "probe-test-node", "--catalog", str(path))
    assert entry["kind"] == "cpu" and entry["unit"] == "node" and entry["peak_tflops"]["fp64"] > 0
    assert "suanli probe" in entry["source"]
    again = run("probe", "--seconds", "0.05", "--no-torch", "--write-catalog", str(path), "--id", "probe-test-node")
    # the same id twice in one file is refused on reading, not silently shadowed
    assert again.exit_code == 2 and "repeats line" in again.stderr


def test_plan_shows_decisions_and_why() -> None:
    jobs = [str(p) for p in sorted((ROOT / "examples" / "jobs").glob("*.yaml"))]
    accounts = run_json("plan", *jobs, "--network", ZZ, "--policy", "hetero")
    assert len(accounts) == len(jobs)
    by_job = {a["job"]: a for a in accounts}
    cfd = by_job["cfd-fp64.yaml"]
    assert cfd["action"] == "place" and cfd["pool"] == "nscc-zz/dcu" and "completion" in cfd["why"]
    assert cfd["ruled_out"]["zz-ai/ascend-910b"] == ["fp64 work but huawei-ascend-910b has no fp64 path"]
    table = run("plan", *jobs, "--network", ZZ)
    assert table.exit_code == 0 and "runners-up" in table.stdout
    bad = run("plan", jobs[0], "--network", ZZ, "--policy", "random")
    assert bad.exit_code == 2 and "unknown policy 'random'" in bad.stderr and "easy-backfill" in bad.stderr


def test_bench_schedule_json_contract() -> None:
    r = run_json("bench", "schedule", "--jobs", "300", "--pools", "12")
    assert {"jobs", "pools", "placements", "wall_s", "placements_per_s", "p99_decision_ms"} <= set(r)
    assert r["jobs"] == 300 and r["pools"] == 12
    assert 0 < r["placements"] <= 300 and r["placements_per_s"] > 0
    assert r["placements"] + r["deferred"] + r["rejected"] == 300
    assert run("bench", "schedule", "--jobs", "10", "--pools", "4", "--policy", "nope").exit_code == 2


def test_up_refuses_what_it_cannot_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUANLI_HOME", str(tmp_path))
    gavel = str(ROOT / "examples" / "gavel-hetero.yaml")  # sites of the simulator only
    result = run("up", "--network", gavel, "--port", "1")
    assert result.exit_code == 2
    assert "backend.type: site" in result.stderr and "only `suanli simulate` can use" in result.stderr
    assert "accepted: local, slurm, ray" in result.stderr.replace("\n", " ").replace("  ", " ")
    assert not (tmp_path / "suanli.db").exists()  # nothing created for a network it cannot drive
    result = run("up", "--db", "mysql://u@h/d", "--port", "1")
    assert result.exit_code == 2 and "--db: database 'mysql' is not supported" in result.stderr
    result = run("up", "--db", "postgresql://nobody:secret@127.0.0.1:1/x", "--port", "1")
    assert result.exit_code == 1 and "cannot open the store" in result.stderr
    assert "secret" not in result.stderr  # the password is not echoed
    result = run("up", "--policy", "lottery", "--port", "1")
    assert result.exit_code == 2 and "unknown policy 'lottery'" in result.stderr


def test_client_commands_without_a_server_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUANLI_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("SUANLI_TOKEN", "sl_x_y")
    result = run("jobs")
    assert result.exit_code == 1 and "cannot reach suanli at http://127.0.0.1:1" in result.stderr


def test_up_names_a_back_end_that_maps_pools_the_site_does_not_have(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    monkeypatch.setenv("SUANLI_HOME", str(tmp_path))
    net = yaml.safe_load((ROOT / "examples" / "real-backends.yaml").read_text())
    net["sites"][0]["backend"]["gres_types"] = {"h100": "h100"}
    net["sites"][1]["backend"]["accelerator_resources"] = {"b200": "GPU_B200"}
    bad = tmp_path / "net.yaml"
    bad.write_text(yaml.safe_dump(net))
    result = run("up", "--network", str(bad), "--port", "1")
    assert result.exit_code == 2
    text = " ".join(result.stderr.split())
    assert "sites[0].backend:" in text and "'h100'" in text and "known: a100, cpu" in text
    assert "sites[1].backend:" in text and "b200" in text
    assert not (tmp_path / "suanli.db").exists()
