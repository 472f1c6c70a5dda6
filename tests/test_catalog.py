"""The hardware catalog's integrity: the built-in data, the carrier rules, the two national conventions, and the
errors a bad catalog file gives."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suanli.errors import SpecError, UnknownIdError
from suanli.hardware.catalog import (
    CARRIERS,
    COLUMNS,
    KINDS,
    OPTIONAL_COLUMNS,
    PEAK_COLUMNS,
    Catalog,
    Device,
    builtin_catalog,
    builtin_catalog_path,
    read_catalog_file,
)
from suanli.spec.common import PRECISIONS, Precision

HEADER = [*COLUMNS, *OPTIONAL_COLUMNS]

CATALOG = builtin_catalog()
DEVICES = list(CATALOG)
ASCEND = [d for d in DEVICES if "ascend" in d.id or "ascend" in d.name.lower()]


# --------------------------------------------------------------------------------------------------------------
# the built-in catalog


def test_builtin_catalog_loads_with_enough_devices() -> None:
    assert len(CATALOG) >= 30
    assert len(CATALOG.ids) == len(CATALOG)


def test_builtin_file_has_unique_ids() -> None:
    raw = read_catalog_file(builtin_catalog_path())
    ids = [d.id for d in raw]
    assert len(ids) == len(set(ids))
    assert len(raw) == len(CATALOG)


@pytest.mark.parametrize("device", DEVICES, ids=lambda d: d.id)
def test_every_device_is_sane(device: Device) -> None:
    assert device.source.strip(), f"{device.id} has no source"
    assert device.kind in KINDS
    assert device.kind in ("gpu", "npu", "dcu", "cpu")
    if device.kind == "cpu":
        assert device.cores is not None and device.cores > 0
        assert not device.is_accelerator
    else:
        assert device.is_accelerator
    assert device.peak_tflops, f"{device.id} has no precision at all"
    for p, v in device.peak_tflops.items():
        assert isinstance(p, Precision)
        assert 0 < v <= 20000, f"{device.id} {p.value} peak {v}"
    if device.memory_gb is not None:
        assert 0 < device.memory_gb <= 1024
    assert 0 < device.memory_bw_gbs <= 20000
    assert 1 < device.tdp_w <= 2000


REQUIRED = [
    "v100",
    "a100",
    "h100",
    "h800",
    "h20",
    "l40s",
    "l20",
    "rtx-4090",
    "mi250x",
    "mi300x",
    "ascend-910b",
    "ascend-310p",
    "hygon-dcu",
    "mlu370",
    "kunlunxin",
    "kunpeng",
    "hygon-c86",
    "epyc",
    "xeon",
]


@pytest.mark.parametrize("fragment", REQUIRED)
def test_covers_required_devices(fragment: str) -> None:
    assert any(fragment in i for i in CATALOG.ids), f"no device id contains {fragment!r}"


# --------------------------------------------------------------------------------------------------------------
# paths and carriers


def test_there_are_ascend_devices() -> None:
    assert len(ASCEND) >= 3


@pytest.mark.parametrize("device", ASCEND, ids=lambda d: d.id)
def test_ascend_has_no_fp64_path(device: Device) -> None:
    assert not device.has_path(Precision.FP64)
    assert device.carrier(Precision.FP64) is None
    assert device.capacity(Precision.FP64) is None


def test_v100_carries_bf16_in_fp32() -> None:
    v100 = CATALOG.get("nvidia-v100-sxm2-32gb")
    assert not v100.has_path(Precision.BF16)
    assert v100.carrier(Precision.BF16) == Precision.FP32
    assert v100.capacity(Precision.BF16) == v100.peak_tflops[Precision.FP32]


def test_a100_runs_bf16_natively() -> None:
    a100 = CATALOG.get("nvidia-a100-sxm4-80gb")
    assert a100.carrier(Precision.BF16) == Precision.BF16
    assert a100.capacity(Precision.BF16) == 312


def test_fp64_only_carried_by_fp64() -> None:
    assert CARRIERS[Precision.FP64] == (Precision.FP64,)
    for d in DEVICES:
        assert d.carrier(Precision.FP64) in (None, Precision.FP64)
        assert (d.capacity(Precision.FP64) is None) == (not d.has_path(Precision.FP64))


@settings(max_examples=100, deadline=None)
@given(device=st.sampled_from(DEVICES), precision=st.sampled_from(PRECISIONS))
def test_carrier_is_an_allowed_one(device: Device, precision: Precision) -> None:
    q = device.carrier(precision)
    if q is None:
        assert not any(device.has_path(c) for c in CARRIERS[precision])
        assert device.capacity(precision) is None
    else:
        assert q in CARRIERS[precision]
        assert device.has_path(q)
        assert device.capacity(precision) == device.peak_tflops[q]
        # the fastest accurate carrier the device has
        assert all(device.peak_tflops[q] >= device.peak_tflops[c] for c in CARRIERS[precision] if device.has_path(c))
    if device.has_path(precision):
        assert q is not None


def test_every_precision_carries_itself() -> None:
    for p in PRECISIONS:
        assert CARRIERS[p][0] == p


# --------------------------------------------------------------------------------------------------------------
# the two national conventions


@pytest.mark.parametrize("device", DEVICES, ids=lambda d: d.id)
def test_conventions_kept_apart(device: Device) -> None:
    total = sum(device.peak_tflops.values())
    fp32 = device.peak_tflops.get(Precision.FP32)
    if fp32 is not None:
        assert device.fp32_equivalent_tflops == fp32
    fp16 = device.peak_tflops.get(Precision.FP16)
    assert device.ai_fp16_tflops == fp16
    if len(device.peak_tflops) > 1:
        assert device.fp32_equivalent_tflops != pytest.approx(total)
        assert device.ai_fp16_tflops != pytest.approx(total)
    d = device.as_dict()
    assert d["fp32_equivalent_tflops"] == device.fp32_equivalent_tflops
    assert d["ai_fp16_tflops"] == device.ai_fp16_tflops


def test_h100_conventions_by_number() -> None:
    h100 = CATALOG.get("nvidia-h100-sxm5-80gb")
    assert h100.fp32_equivalent_tflops == pytest.approx(66.91)
    assert h100.ai_fp16_tflops == pytest.approx(989.4)


def test_ascend_910b_has_no_fp32_equivalent_but_has_ai_compute() -> None:
    d = CATALOG.get("huawei-ascend-910b")
    assert d.fp32_equivalent_tflops is None
    assert d.ai_fp16_tflops == pytest.approx(376)


# --------------------------------------------------------------------------------------------------------------
# bad catalog files


def _row(**overrides: str) -> dict[str, str]:
    row = dict.fromkeys(HEADER, "")
    row.update(
        id="acme-x1",
        name="Acme X1",
        vendor="Acme",
        kind="gpu",
        unit="device",
        fp32_tflops="10",
        fp16_tflops="100",
        memory_gb="32",
        memory_bw_gbs="1000",
        tdp_w="300",
        intra_node_link="pcie",
        release_year="2024",
        source="https://example.com/acme-x1",
        notes="",
    )
    row.update(overrides)
    return row


def _write(tmp_path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> Path:
    header = header or HEADER
    path = tmp_path / "catalog.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


def test_good_file_reads(tmp_path: Path) -> None:
    cpu = _row(id="acme-c1", kind="cpu", unit="socket", fp16_tflops="", fp64_tflops="1", memory_gb="", cores="64")
    devices = read_catalog_file(_write(tmp_path, [_row(), cpu]))
    assert [d.id for d in devices] == ["acme-x1", "acme-c1"]
    assert devices[0].peak_tflops == {Precision.FP32: 10.0, Precision.FP16: 100.0}
    assert devices[1].cores == 64


def _problem(path: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        read_catalog_file(path)
    return info.value


def test_missing_column(tmp_path: Path) -> None:
    header = [c for c in HEADER if c != "tdp_w"]
    path = _write(tmp_path, [_row()], header=header)
    err = _problem(path)
    assert err.problems[0].line == 1
    assert "tdp_w" in str(err)
    assert "missing column" in str(err)
    assert f"{path}:1" in str(err)


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"fp32_tflops": "fast"}, ["fp32_tflops", "not a number"]),
        ({"fp16_tflops": "0"}, ["fp16_tflops", "positive"]),
        ({"fp16_tflops": "-3"}, ["fp16_tflops", "positive"]),
        ({"kind": "tpu"}, ["kind", "tpu"]),
        ({"kind": "cpu", "unit": "socket", "cores": ""}, ["cores", "required"]),
        ({"source": ""}, ["source"]),
        ({"source": "   "}, ["source"]),
        ({"fp32_tflops": "", "fp16_tflops": ""}, ["no precision"]),
        ({"memory_bw_gbs": ""}, ["memory_bw_gbs", "required"]),
        ({"id": "Acme X1"}, ["id", "slug"]),
    ],
)
def test_bad_row_names_its_line(tmp_path: Path, bad: dict[str, str], words: list[str]) -> None:
    rows = [_row(id="acme-ok"), _row(id="acme-bad", **{k: v for k, v in bad.items() if k != "id"})]
    if "id" in bad:
        rows[1]["id"] = bad["id"]
    path = _write(tmp_path, rows)
    err = _problem(path)
    assert [p.line for p in err.problems] == [3]  # header is line 1, the good row line 2
    text = str(err)
    assert f"{path}:3" in text
    for w in words:
        assert w in text, f"{w!r} not in {text!r}"


def test_duplicate_id(tmp_path: Path) -> None:
    path = _write(tmp_path, [_row(), _row(name="Acme X1 again")])
    err = _problem(path)
    assert len(err.problems) == 1
    assert err.problems[0].line == 3
    assert "acme-x1" in str(err)
    assert "repeats line 2" in str(err)


def test_every_bad_row_reported(tmp_path: Path) -> None:
    path = _write(tmp_path, [_row(id="a1", kind="tpu"), _row(id="a2"), _row(id="a3", tdp_w="x")])
    err = _problem(path)
    assert [p.line for p in err.problems] == [2, 4]


def test_missing_file(tmp_path: Path) -> None:
    err = _problem(tmp_path / "nope.csv")
    assert "not found" in str(err)


# --------------------------------------------------------------------------------------------------------------
# extending and looking up


def test_extended_adds_new_devices(tmp_path: Path) -> None:
    path = _write(tmp_path, [_row()])
    bigger = CATALOG.extended([path])
    assert "acme-x1" in bigger
    assert len(bigger) == len(CATALOG) + 1
    assert "acme-x1" not in CATALOG  # the built-in catalog is not changed


def test_extended_refuses_existing_id(tmp_path: Path) -> None:
    path = _write(tmp_path, [_row(id="nvidia-h100-sxm5-80gb")])
    with pytest.raises(SpecError) as info:
        CATALOG.extended([path])
    assert "nvidia-h100-sxm5-80gb" in str(info.value)
    assert "already" in str(info.value)
    # and the original device is untouched
    assert CATALOG.get("nvidia-h100-sxm5-80gb").name != "Acme X1"


def test_get_unknown_id_suggests_near_miss() -> None:
    with pytest.raises(UnknownIdError) as info:
        CATALOG.get("nvidia-h100-sxm5-80g")
    text = str(info.value)
    assert "did you mean" in text
    assert "nvidia-h100-sxm5-80gb" in text
    assert info.value.given == "nvidia-h100-sxm5-80g"
    assert "nvidia-h100-sxm5-80gb" in info.value.known


def test_get_far_miss_lists_known() -> None:
    with pytest.raises(UnknownIdError) as info:
        CATALOG.get("qqqqqqqq")
    assert "known:" in str(info.value)


def test_fp32_equivalent_from_fp64_only() -> None:
    d = Device(
        id="x",
        name="x",
        vendor="x",
        kind="gpu",
        unit="device",
        peak_tflops={Precision.FP64: 5.0},
        memory_gb=None,
        memory_bw_gbs=1.0,
        tdp_w=10.0,
        intra_node_link="none",
        release_year=None,
        source="s",
    )
    assert d.fp32_equivalent_tflops == 10.0
    assert d.ai_fp16_tflops is None


def test_catalog_constructor_and_peak_columns_agree() -> None:
    assert set(PEAK_COLUMNS) == set(PRECISIONS)
    assert all(c in COLUMNS for c in PEAK_COLUMNS.values())
    assert len(Catalog([])) == 0
