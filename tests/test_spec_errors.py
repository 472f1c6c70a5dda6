"""Every way a person can get a job or network spec wrong gets an error naming file, line, field and what is
accepted; nothing wrong is silently accepted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suanli.errors import SpecError
from suanli.spec import JobSpec, NetworkSpec, load_job, load_network
from suanli.spec.common import parse_when
from suanli.spec.loader import parse_model, read_document

ROOT = Path(__file__).resolve().parents[1]

GOOD_JOB = """\
name: train
workload: ai-training
resources: {devices: 8, device_memory_gb: 64, nodes: 1}
compute:
  flops: {bf16: 1.0e18}
"""


def job_error(text: str, source: str = "job.yaml") -> SpecError:
    with pytest.raises(SpecError) as info:
        data, lines = read_document(text, source, "job spec")
        parse_model(JobSpec, data, source, lines, "job spec")
    return info.value


def test_good_job_parses() -> None:
    data, lines = read_document(GOOD_JOB, "job.yaml")
    job = parse_model(JobSpec, data, "job.yaml", lines)
    assert job.resources.devices == 8
    assert job.work_mix() == {"bf16": 1.0}


def test_unknown_key_names_key_line_and_accepted_keys() -> None:
    err = job_error(GOOD_JOB + "objectiv: cheapest\n")
    (p,) = err.problems
    assert p.field == "objectiv" and p.line == 6
    assert "did you mean 'objective'" in p.message
    assert "objective" in (p.accepted or "") and "deadline" in (p.accepted or "")
    assert "job.yaml:6: objectiv: unknown key" in str(err)


def test_nested_unknown_key_lists_that_models_keys() -> None:
    err = job_error(GOOD_JOB.replace("nodes: 1}", "nodes: 1, gpus: 8}"))
    (p,) = err.problems
    assert p.field == "resources.gpus" and p.line == 3
    assert p.accepted == "cpus, device_memory_gb, devices, memory_gb, nodes"


def test_all_problems_reported_at_once() -> None:
    text = "name: x\nworkload: quantum\ncompute: {walltime_h: -1}\nbudget_cny: -5\n"
    err = job_error(text)
    fields = {p.field for p in err.problems}
    assert {"workload", "compute.walltime_h", "budget_cny"} <= fields
    workload = next(p for p in err.problems if p.field == "workload")
    assert "ai-training" in workload.message and workload.given == "quantum" and workload.line == 2


@pytest.mark.parametrize(
    ("text", "field", "needle"),
    [
        ("name: x\n", "compute", "required field is missing"),
        ("name: x\ncompute: {walltime_h: 1, flops: {fp64: 1e9}}\n", "compute", "exactly one of flops"),
        ("name: x\ncompute: {flops: {}}\n", "compute", "flops is empty"),
        ("name: x\ncompute: {flops: {fp4: 1e9}}\n", "compute.flops.fp4", "fp64"),
        ("name: x\ncompute: {flops: {fp64: -1}}\n", "compute.flops.fp64", "greater than 0"),
        ("name: x\ncompute: {flops: {fp64: .inf}}\n", "compute.flops.fp64", "finite"),
        ("name: x\ncompute: {flops: {bf16: 1e9}, mix: {bf16: 1}}\n", "compute", "mix is implied by flops"),
        ("name: x\ncompute: {walltime_h: 1}\nresources: {devices: -2}\n", "resources.devices", "greater than or equal"),
        ("name: x\ncompute: {walltime_h: 1}\nresources: {devices: 10000000}\n", "resources.devices", "less than"),
        ("name: x\ncompute: {walltime_h: 1}\nresources: {devices: 6, nodes: 4}\n", "resources", "split evenly"),
        ("name: x\ncompute: {walltime_h: 1}\nresources: {device_memory_gb: 8}\n", "resources", "devices is 0"),
        ("name: x\ncompute: {walltime_h: one}\n", "compute.walltime_h", "valid number"),
        ("name: x\ncompute: {walltime_h: 1}\ndeadline: tomorrow\n", "deadline", "ISO 8601"),
        ("name: x\ncompute: {walltime_h: 1}\ndeadline: '+0h'\n", "deadline", "positive"),
        ("name: x\ncompute: {walltime_h: 1}\ndeadline: '+3 weeks'\n", "deadline", "relative time"),
        ("name: x\ncompute: {walltime_h: 1}\ndeadline: 2026-12-01T08:00:00\n", "deadline", "UTC offset"),
        ("name: x\ncompute: {walltime_h: 1}\nconstraints: {kinds: [quantum]}\n", "constraints.kinds[0]", "intelligent"),
        (
            "name: x\ncompute: {walltime_h: 1}\ndata: [{name: d, site: Bad Site!, size_gb: 1}]\n",
            "data[0].site",
            "not a valid id",
        ),
        ("name: ''\ncompute: {walltime_h: 1}\n", "name", "at least 1"),
        ("name: x\ncompute: {walltime_h: 1}\nenv: {A: [1]}\n", "env.A", "valid string"),
    ],
)
def test_bad_job_fields(text: str, field: str, needle: str) -> None:
    err = job_error(text)
    match = [p for p in err.problems if p.field == field]
    assert match, f"no problem for {field}: {err}"
    assert needle in match[0].message, str(err)
    assert match[0].line is not None


def test_malformed_yaml_has_line() -> None:
    err = job_error("name: x\ncompute: {walltime_h: 1\nrun: y\n")
    (p,) = err.problems
    assert "not valid YAML" in p.message and p.line is not None and p.line >= 2


def test_duplicate_key_is_an_error_with_both_lines() -> None:
    err = job_error("name: a\ncompute: {walltime_h: 1}\nname: b\n")
    (p,) = err.problems
    assert p.field == "name" and p.line == 3 and "first on line 1" in p.message


def test_empty_and_non_mapping_documents() -> None:
    assert "empty" in str(job_error(""))
    assert "expected a mapping" in str(job_error("- a\n- b\n"))
    assert "expected a mapping" in str(job_error("just text\n"))


def test_json_job_and_json_errors(tmp_path: Path) -> None:
    good = tmp_path / "job.json"
    good.write_text(json.dumps({"name": "x", "compute": {"walltime_h": 2}}))
    assert load_job(str(good)).compute.walltime_h == 2
    dup = tmp_path / "dup.json"
    dup.write_text('{"name": "x", "name": "y", "compute": {"walltime_h": 2}}')
    with pytest.raises(SpecError, match="appears twice"):
        load_job(str(dup))
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x",\n "compute": }')
    with pytest.raises(SpecError) as info:
        load_job(str(broken))
    assert info.value.problems[0].line == 2 and "not valid JSON" in info.value.problems[0].message
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"name": "x",\n "compute": {"walltime_h": 2},\n "colour": "red"}')
    with pytest.raises(SpecError) as info:
        load_job(str(unknown))
    assert info.value.problems[0].field == "colour" and info.value.problems[0].line == 3


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_job(str(tmp_path / "missing.yaml"))
    with pytest.raises(SpecError, match="is a directory"):
        load_job(str(tmp_path))
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_job(str(binary))
    huge = tmp_path / "huge.yaml"
    huge.write_text("name: x\n" + "#" * (5 * 1024 * 1024))
    with pytest.raises(SpecError, match="larger than"):
        load_job(str(huge))


def test_deadline_forms() -> None:
    submitted = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    job = JobSpec.model_validate({"name": "x", "compute": {"walltime_h": 1}, "deadline": "+1d12h"})
    assert job.deadline_at(submitted) == submitted + timedelta(hours=36)
    job = JobSpec.model_validate({"name": "x", "compute": {"walltime_h": 1}, "deadline": "2026-12-01T08:00:00+08:00"})
    assert job.deadline_at(submitted) == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    # an unquoted YAML timestamp with an offset is accepted too
    data, _ = read_document("name: x\ncompute: {walltime_h: 1}\ndeadline: 2026-12-01T08:00:00+08:00\n")
    assert parse_model(JobSpec, data).deadline_at(submitted) == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    assert JobSpec.model_validate({"name": "x", "compute": {"walltime_h": 1}}).deadline_at(submitted) is None


@given(
    d=st.integers(0, 30),
    h=st.integers(0, 23),
    m=st.integers(0, 59),
    s=st.integers(0, 59),
)
@settings(max_examples=100, deadline=None)
def test_relative_deadline_parses_exactly(d: int, h: int, m: int, s: int) -> None:
    text = "+" + "".join(f"{v}{u}" for v, u in ((d, "d"), (h, "h"), (m, "m"), (s, "s")) if v)
    expected = timedelta(days=d, hours=h, minutes=m, seconds=s)
    if expected == timedelta(0):
        with pytest.raises(ValueError):
            parse_when(text if text != "+" else "+0h")
    else:
        assert parse_when(text) == expected


job_dicts = st.fixed_dictionaries(
    {
        "name": st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=20),
        "workload": st.sampled_from(["ai-training", "ai-inference", "hpc", "general"]),
        "resources": st.integers(1, 8).flatmap(
            lambda nodes: st.fixed_dictionaries(
                {"nodes": st.just(nodes), "devices": st.integers(0, 8).map(lambda k: k * nodes)}
            )
        ),
        "compute": st.one_of(
            st.fixed_dictionaries({"walltime_h": st.floats(0.01, 1e4)}),
            st.fixed_dictionaries(
                {
                    "flops": st.dictionaries(
                        st.sampled_from(["fp64", "fp32", "bf16", "fp8"]), st.floats(1, 1e24), min_size=1
                    )
                }
            ),
        ),
        "priority": st.integers(-1000, 1000),
        "preemptible": st.booleans(),
    }
)


@given(job_dicts)
@settings(max_examples=100, deadline=None)
def test_job_spec_round_trips_through_json(data: dict) -> None:
    job = JobSpec.model_validate(data)
    again = JobSpec.model_validate(json.loads(job.model_dump_json()))
    assert again == job


# ---- network spec ----

NETWORK = (ROOT / "examples" / "zhengzhou.yaml").read_text()


def network_error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        data, lines = read_document(text, "net.yaml", "network spec")
        parse_model(NetworkSpec, data, "net.yaml", lines, "network spec")
    return info.value


def test_example_networks_load() -> None:
    z = load_network(str(ROOT / "examples" / "zhengzhou.yaml"))
    assert {s.kind.value for s in z.sites} == {"supercomputing", "intelligent", "general"}
    assert {s.province for s in z.sites} >= {"henan", "gansu", "ningxia"}
    local = load_network(str(ROOT / "examples" / "local.yaml"))
    assert all(s.backend.type == "local" for s in local.sites)


def test_network_duplicate_site_and_pool_ids() -> None:
    err = network_error(NETWORK.replace("id: zz-cloud", "id: zz-ai"))
    assert "site id(s) ['zz-ai'] appear more than once" in str(err)
    err = network_error(NETWORK.replace("id: h20\n", "id: a100\n", 1))
    assert "pool id(s) ['a100']" in str(err)


def test_network_link_to_unknown_site() -> None:
    err = network_error(NETWORK.replace("between: [zz-ai, qy-hub]", "between: [zz-ai, nowhere]"))
    assert "unknown site 'nowhere'" in str(err)


def test_network_backend_type_is_checked() -> None:
    err = network_error(NETWORK.replace("backend: {type: slurm, partition: cpu}", "backend: {type: k8s}"))
    assert "local" in str(err) and "slurm" in str(err) and "k8s" in str(err)


def test_network_price_and_carbon_need_exactly_one_form() -> None:
    err = network_error(
        NETWORK.replace("price: {node_hour_cny: 6.4}", "price: {node_hour_cny: 6.4, device_hour_cny: 1}")
    )
    assert "exactly one of device_hour_cny or node_hour_cny" in str(err)
    both = "carbon: {kg_per_kwh: 0.4772, hourly_kg_per_kwh: [" + ", ".join(["0.4"] * 24) + "],"
    err = network_error(NETWORK.replace("carbon: {kg_per_kwh: 0.4772,", both))
    assert "exactly one of kg_per_kwh" in str(err)
    err = network_error(NETWORK.replace("carbon: {kg_per_kwh: 0.4772,", "carbon: {hourly_kg_per_kwh: [0.4, 0.5],"))
    assert "has 2 values; accepted: exactly 24" in str(err)


def test_network_pue_out_of_range_names_field() -> None:
    err = network_error(NETWORK.replace("pue: 1.35", "pue: 0.9"))
    (p,) = err.problems
    assert p.field == "sites[0].energy.pue" and "greater than or equal to 1" in p.message


def test_unknown_hardware_and_tariff_in_network() -> None:
    from suanli.estimate.candidates import check_network
    from suanli.hardware import builtin_catalog

    data, lines = read_document(
        NETWORK.replace("hardware: nvidia-h20-96gb", "hardware: nvidia-h20-96g", 1).replace(
            "tariff: ningxia-ci-illustrative", "tariff: ningxia-typo"
        )
    )
    net = parse_model(NetworkSpec, data, "net.yaml", lines)
    with pytest.raises(SpecError) as info:
        check_network(net, builtin_catalog())
    text = str(info.value)
    assert "did you mean 'nvidia-h20-96gb'" in text and "unknown tariff 'ningxia-typo'" in text


def test_job_references_checked_against_network() -> None:
    from suanli.estimate.candidates import check_references
    from suanli.hardware import builtin_catalog

    net = load_network(str(ROOT / "examples" / "zhengzhou.yaml"))
    job = JobSpec.model_validate(
        {
            "name": "x",
            "compute": {"walltime_h": 1},
            "data": [{"name": "d", "site": "zz-nowhere", "size_gb": 1}],
            "constraints": {"hardware": ["nvidia-h800-sxm5-80g"], "sites": ["mars"]},
        }
    )
    with pytest.raises(SpecError) as info:
        check_references(job, net, builtin_catalog())
    fields = {p.field for p in info.value.problems}
    assert fields == {"data[0].site", "constraints.hardware[0]", "constraints.sites[0]"}


def test_json_schemas_export() -> None:
    job = JobSpec.model_json_schema()
    assert job["additionalProperties"] is False
    assert {"name", "workload", "compute", "resources", "deadline", "objective"} <= set(job["properties"])
    net = NetworkSpec.model_json_schema()
    assert {"sites", "tariffs", "links", "circles"} <= set(net["properties"])


def test_every_example_job_loads() -> None:
    jobs = sorted((ROOT / "examples" / "jobs").glob("*.yaml"))
    assert len(jobs) >= 4
    workloads = {load_job(str(p)).workload.value for p in jobs}
    assert workloads == {"ai-training", "ai-inference", "hpc", "general"}
