"""Trace readers on small real extracts (tests/data/traces) and hand-made files: counts, units, errors."""

from __future__ import annotations

import csv
import gzip
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from suanli.errors import SpecError
from suanli.sim.traces import (
    CSV_COLUMNS,
    Trace,
    read_alibaba,
    read_alibaba_nodes,
    read_csv,
    read_swf,
    read_throughputs,
    read_trace,
)

DATA = Path(__file__).parent / "data" / "traces"
KTH = DATA / "kth-sp2-head.swf.gz"
PODS = DATA / "openb-gpuspec33-head.csv"
NODES = DATA / "openb-nodes-sample.csv"
GAVEL = DATA / "gavel-throughputs-small.json"
EXAMPLE = DATA / "example.csv"
KTH_FULL = Path("/work/shared/data/traces/swf/KTH-SP2-1996-2.1-cln.swf.gz")


def _swf_record_lines(path: Path) -> list[list[str]]:
    text = gzip.decompress(path.read_bytes()).decode()
    return [line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith(";")]


def _check_lengths(trace: Trace) -> None:
    n = len(trace)
    for name in ("submit_s", "duration_s", "cpus", "devices", "memory_gb", "workload", "tenant", "allowed_hardware"):
        assert len(getattr(trace, name)) == n


# ---------------------------------------------------------------------------------------------------- SWF


def test_swf_extract_header_counts_and_units():
    trace = read_swf(KTH)
    records = _swf_record_lines(KTH)
    assert len(records) == 300
    assert len(trace) + len(trace.skipped) == len(records) == trace.meta["records"]
    _check_lengths(trace)
    assert trace.meta["MaxNodes"] == 100 and trace.meta["MaxProcs"] == 100
    assert trace.meta["UnixStartTime"] == 843480031
    assert trace.meta["TimeZoneString"] == "Europe/Stockholm"
    assert "cs.huji.ac.il" in trace.meta["Information"]  # continuation line kept, not read as key 'http'
    assert "http" not in trace.meta
    assert trace.submit_s[0] == 0.0 and np.all(np.diff(trace.submit_s) >= 0)
    first = records[0]
    assert trace.job_id[0] == first[0] == "15"
    assert trace.meta["submit_offset_s"] == float(first[1])
    assert trace.duration_s[0] == float(first[3]) == 3477
    assert trace.cpus[0] == 4 and trace.nodes[0] == 4 and trace.devices[0] == 0
    assert trace.requested_s[0] == 53940
    assert trace.tenant[0] == "user-12" and trace.workload[0] == "hpc"
    assert np.all(np.isnan(trace.memory_gb))  # KTH records no memory
    assert trace.allowed_hardware[0] == () and trace.flops == {}
    assert np.all(np.isinf(trace.deadline_s))


def test_swf_skips_with_line_and_reason(tmp_path):
    swf = tmp_path / "tiny.swf"
    swf.write_text(
        "; MaxNodes: 4\n"
        "; MaxProcs: 16\n"
        "; Note: tiny\n"
        ";\n"
        "1 0 5 100 8 -1 2048 8 200 -1 1 3 1 -1 -1 -1 -1 -1\n"  # line 5: kept, 2 nodes, 16 MB used
        "2 10 0 50 4 -1 -1 4 -1 -1 5 3 1 -1 -1 -1 -1 -1\n"  # line 6: cancelled
        "3 20 0 0 4 -1 -1 4 60 -1 1 4 1 -1 -1 -1 -1 -1\n"  # line 7: zero run time
        "4 30 0 10 4\n"  # line 8: malformed
        "5 40 0 10 x -1 -1 4 60 -1 1 4 1 -1 -1 -1 -1 -1\n"  # line 9: not a number
        "6 50 0 10 -1 -1 -1 -1 60 -1 1 4 1 -1 -1 -1 -1 -1\n"  # line 10: no processors
        "7 60 0 30 -1 -1 -1 3 -1 1024 0 -1 1 -1 -1 -1 -1 -1\n"  # line 11: kept, requested processors used
    )
    trace = read_swf(swf)
    assert len(trace) == 2 and trace.job_id == ["1", "7"]
    lines = [line for line, _ in trace.skipped]
    assert lines == [6, 7, 8, 9, 10]
    reasons = dict(trace.skipped)
    assert "cancelled" in reasons[6]
    assert "run time" in reasons[7]
    assert "18 fields" in reasons[8]
    assert "not a number" in reasons[9] and "'x'" in reasons[9]
    assert "processors" in reasons[10]
    assert trace.meta["records"] == 7
    assert list(trace.nodes) == [2, 1] and list(trace.cpus) == [8, 3]
    assert trace.memory_gb[0] == pytest.approx(2048 * 8 / 1024**2)
    assert trace.memory_gb[1] == pytest.approx(1024 * 3 / 1024**2)
    assert math.isnan(trace.requested_s[1])
    assert trace.tenant == ["user-3", "user-unknown"]
    assert list(trace.submit_s) == [0.0, 60.0]


def test_swf_gzip_detected_by_magic_not_name(tmp_path):
    renamed = tmp_path / "log.txt"
    renamed.write_bytes(KTH.read_bytes())
    assert len(read_swf(renamed)) == len(read_swf(KTH))


@pytest.mark.skipif(not KTH_FULL.exists(), reason=f"optional shared data {KTH_FULL} is not present")
def test_swf_full_kth_all_records_accounted_and_fast():
    start = time.perf_counter()
    trace = read_swf(KTH_FULL)
    elapsed = time.perf_counter() - start
    assert len(trace) + len(trace.skipped) == 28476 == trace.meta["MaxRecords"]
    assert len(trace) > 28000
    assert all(reason for _, reason in trace.skipped)
    assert elapsed < 2.0


# ------------------------------------------------------------------------------------------------ Alibaba


def test_alibaba_pods_units_fractions_constraints():
    with PODS.open() as f:
        rows = list(csv.DictReader(f))
    trace = read_alibaba(PODS)
    assert len(rows) == 300
    assert len(trace) + len(trace.skipped) == len(rows)
    _check_lengths(trace)
    never = [k + 2 for k, r in enumerate(rows) if not r["scheduled_time"]]  # header is line 1
    assert [line for line, _ in trace.skipped] == never and never
    assert all("scheduled_time" in reason for _, reason in trace.skipped)
    kept = [r for r in rows if r["scheduled_time"]]
    assert trace.job_id == [r["name"] for r in kept]
    assert trace.submit_s[0] == 0.0
    assert list(trace.submit_s) == [float(r["creation_time"]) - float(kept[0]["creation_time"]) for r in kept]
    for k, r in enumerate(kept):
        assert trace.cpus[k] == math.ceil(int(r["cpu_milli"]) / 1000)
        assert trace.memory_gb[k] == pytest.approx(int(r["memory_mib"]) / 1024)
        assert trace.devices[k] == int(r["num_gpu"])
        assert trace.duration_s[k] == float(r["deletion_time"]) - float(r["scheduled_time"])
        assert trace.tenant[k] == r["qos"]
        assert trace.preemptible[k] == (r["qos"] in ("BE", "Burstable"))
    assert trace.device_fraction[1] == pytest.approx(0.46)  # openb-pod-0001: 1 GPU, gpu_milli 460
    assert trace.device_fraction[0] == 1.0
    assert trace.workload[0] == "ai-training"
    assert any(w == "general" for w, d in zip(trace.workload, trace.devices, strict=True) if d == 0)
    specs = {r["name"]: r["gpu_spec"] for r in kept}
    constrained = [k for k, j in enumerate(trace.job_id) if specs[j]]
    assert constrained
    for k in constrained:
        assert trace.allowed_hardware[k] == tuple(dict.fromkeys(specs[trace.job_id[k]].split("|")))
    assert ("V100M16", "V100M32") in trace.allowed_hardware
    assert trace.allowed_hardware[0] == ()


def test_alibaba_skips_bad_duration_and_non_numbers(tmp_path):
    path = tmp_path / "openb_pod_list_tiny.csv"
    path.write_text(
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"
        "p0,2500,2048,0,0,,LS,Running,10,100,10\n"
        "p1,1000,1024,1,250,T4|P100,BE,Running,20,20,20\n"
        "p2,lots,1024,1,1000,,BE,Running,30,90,30\n"
        "p3,1000,1024,1,1000,,LS,Failed,40,,40\n"
    )
    trace = read_trace(path)  # dispatch on openb_pod_list*
    assert trace.job_id == ["p0"] and trace.cpus[0] == 3 and trace.workload == ["general"]
    assert [line for line, _ in trace.skipped] == [3, 4, 5]
    reasons = dict(trace.skipped)
    assert "<= 0" in reasons[3] and "cpu_milli" in reasons[4] and "deletion_time" in reasons[5]


def test_alibaba_nodes():
    nodes = read_alibaba_nodes(NODES)
    with NODES.open() as f:
        rows = list(csv.DictReader(f))
    assert len(nodes) == len(rows) == 75
    assert set(nodes[0]) == {"name", "cpus", "memory_gb", "gpus", "gpu_model"}
    first = rows[0]
    assert nodes[0]["name"] == first["sn"]
    assert nodes[0]["cpus"] == int(first["cpu_milli"]) // 1000
    assert nodes[0]["memory_gb"] == int(first["memory_mib"]) / 1024
    assert nodes[0]["gpus"] == 0 and nodes[0]["gpu_model"] is None
    models = {n["gpu_model"] for n in nodes if n["gpus"]}
    assert {"P100", "T4", "V100M16", "V100M32", "A10", "G2", "G3"} <= models


# --------------------------------------------------------------------------------------------- generic CSV


def test_csv_example():
    trace = read_csv(EXAMPLE)
    assert len(trace) == 5 and trace.skipped == []
    _check_lengths(trace)
    assert trace.job_id[0] == "train-a" and trace.submit_s[0] == 0.0
    assert list(trace.submit_s) == [0, 60, 150, 300, 900]
    assert trace.deadline_s[0] == 90000 - 100 and math.isinf(trace.deadline_s[1])
    assert trace.allowed_hardware[0] == ("nvidia-h800-sxm5-80gb", "nvidia-a800-sxm4-80gb")
    assert trace.allowed_hardware[1] == ()
    assert trace.reference_hardware[:3] == ["nvidia-a100-sxm4-80gb", "nvidia-l20", None]
    assert trace.workload == ["ai-training", "ai-inference", "hpc", "ai-training", "general"]  # llm-d by default
    assert list(trace.preemptible) == [False, True, False, True, False]
    assert list(trace.nodes) == [1, 1, 4, 4, 1] and list(trace.devices) == [8, 1, 0, 32, 0]
    assert trace.data_site[0] == "zz-ai" and trace.data_site[1] is None
    assert trace.job_type[0] == "ResNet-50 (batch size 64)"
    assert trace.requested_s[0] == 7200 and math.isnan(trace.requested_s[1])
    # flops-only rows: NaN duration and flops arrays per precision, NaN where a job has none at that precision
    assert set(trace.flops) == {"bf16", "fp64"}
    assert math.isnan(trace.duration_s[2]) and math.isnan(trace.duration_s[3])
    assert trace.flops["fp64"][2] == 3.5e18 and trace.flops["bf16"][3] == 2.0e20
    assert math.isnan(trace.flops["bf16"][2]) and math.isnan(trace.flops["fp64"][0])


def test_csv_missing_required_column_lists_accepted(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("job_id,cpus\na,1\n")
    with pytest.raises(SpecError) as err:
        read_csv(path)
    fields = {p.field for p in err.value.problems}
    assert fields == {"submit_s", "duration_s"}
    assert all(p.accepted and "flops_bf16" in p.accepted and "submit_s" in p.accepted for p in err.value.problems)
    assert "missing required column 'submit_s'" in str(err.value)


def test_csv_bad_rows_name_line_column_value(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "submit_s,duration_s,workload,preemptible,cpus\n"
        "0,10,hpc,true,4\n"
        "x,-5,hpc,false,4\n"  # line 3: two bad values
        "\n"
        "5,10,quantum,maybe,2.5\n"  # line 5: three bad values
        "6,,general,0,1\n"  # line 6: neither duration nor flops
    )
    with pytest.raises(SpecError) as err:
        read_csv(path)
    got = {(p.line, p.field, p.given) for p in err.value.problems}
    assert got == {
        (3, "submit_s", "x"),
        (3, "duration_s", "-5"),
        (5, "workload", "quantum"),
        (5, "preemptible", "maybe"),
        (5, "cpus", "2.5"),
        (6, "duration_s", ""),
    }
    by_field = {p.field: p for p in err.value.problems}
    assert "ai-training" in by_field["workload"].accepted
    assert "true" in by_field["preemptible"].accepted
    assert f"{path}:5: workload:" in str(err.value)

    trace = read_csv(path, skip_bad=True)
    assert len(trace) == 1 and [line for line, _ in trace.skipped] == [3, 5, 6]
    assert "quantum" in dict(trace.skipped)[5]


def test_csv_deadline_before_submit_is_bad(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("submit_s,duration_s,deadline_s\n100,10,50\n")
    with pytest.raises(SpecError) as err:
        read_csv(path)
    (problem,) = err.value.problems
    assert (problem.line, problem.field) == (2, "deadline_s")


def test_csv_unknown_columns_one_warning(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("submit_s,duration_s,colour,flavour\n0,10,red,sweet\n1,20,blue,sour\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trace = read_csv(path)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "colour" in message and "flavour" in message
    assert len(trace) == 2 and trace.meta["ignored_columns"] == ["colour", "flavour"]


def test_csv_accepts_every_listed_column(tmp_path):
    path = tmp_path / "t.csv"
    values = {"workload": "hpc", "deadline_s": "100", "hardware": "a|b", "preemptible": "true"}
    path.write_text(",".join(CSV_COLUMNS) + "\n" + ",".join(values.get(c, "1") for c in CSV_COLUMNS) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trace = read_csv(path)
    assert len(trace) == 1 and len(trace.flops) == 7
    assert trace.allowed_hardware == [("a", "b")] and trace.preemptible[0] and trace.deadline_s[0] == 99


# ------------------------------------------------------------------------------------------------ Gavel


def test_gavel_relative_speeds():
    speeds = read_throughputs(GAVEL)
    raw = json.loads(GAVEL.read_text())
    assert set(speeds) == {"ResNet-50 (batch size 64)", "Transformer (batch size 128)", "A3C", "LM (batch size 20)"}
    for job, by_hw in speeds.items():
        assert set(by_hw) == set(raw)  # every hardware type has these job types
        assert min(by_hw.values()) == 1.0
        assert max(by_hw.values()) >= 1.0
        assert by_hw["k80"] == 1.0 and by_hw["v100"] > by_hw["p100"] > 1.0
        key = f"('{job}', 1)"
        assert by_hw["v100"] == pytest.approx(raw["v100"][key]["null"] / raw["k80"][key]["null"])
    two = read_throughputs(GAVEL, scale_factor=2)
    assert set(two) == {"ResNet-50 (batch size 64)"} and "k80_unconsolidated" not in two["ResNet-50 (batch size 64)"]


def test_gavel_zero_throughput_left_out_and_bad_structure(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"k80": {"('X', 1)": {"null": 0.0}}, "v100": {"('X', 1)": {"null": 4.0}}}))
    assert read_throughputs(path) == {"X": {"v100": 1.0}}
    path.write_text(json.dumps({"k80": {"X": {"null": 1.0}}}))
    with pytest.raises(SpecError, match="job key"):
        read_throughputs(path)
    path.write_text(json.dumps({"k80": {"('X', 1)": [1.0]}}))
    with pytest.raises(SpecError, match="isolated"):
        read_throughputs(path)
    path.write_text("[1, 2]")
    with pytest.raises(SpecError):
        read_throughputs(path)


# ------------------------------------------------------------------------------------------------ dispatch


def test_read_trace_dispatch(tmp_path):
    assert len(read_trace(KTH)) == 300
    assert read_trace(EXAMPLE).meta["format"] == "csv"
    assert read_trace(PODS, "alibaba").meta["format"] == "alibaba"
    named = tmp_path / "openb_pod_list_head.csv"
    named.write_bytes(PODS.read_bytes())
    assert read_trace(named).meta["format"] == "alibaba"
    with pytest.raises(SpecError) as err:
        read_trace(KTH, "parquet")
    (problem,) = err.value.problems
    assert problem.field == "format" and problem.given == "parquet"
    assert problem.accepted == "swf, alibaba, csv"
    odd = tmp_path / "trace.dat"
    odd.write_text("x")
    with pytest.raises(SpecError, match="swf, alibaba, csv"):
        read_trace(odd)
