"""The what-if report: its series on hand-computed cases, and a page whose figures exist, whose headline names the
best policy, and whose text is escaped."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from suanli.hardware import builtin_catalog
from suanli.sim.engine import SimResult, simulate
from suanli.sim.metrics import metrics
from suanli.sim.report import jct_cdf, queue_series, utilisation_series, work_by_site, write_report
from suanli.sim.traces import read_csv
from suanli.spec import NetworkSpec

PNG = b"\x89PNG\r\n\x1a\n"


def _site(sid: str, name: str, pool: str, cpus: int, coords: dict | None) -> dict:
    site = {
        "id": sid,
        "name": name,
        "kind": "general",
        "province": "henan",
        "city": "zhengzhou",
        "backend": {"type": "sim"},
        "energy": {"pue": 1.2, "tariff": "henan-ci-single-part-2026-01", "carbon": {"kg_per_kwh": 0.6}},
        "pools": [
            {
                "id": pool,
                "hardware": "amd-epyc-7763",
                "nodes": 1,
                "devices_per_node": 1,
                "cpus_per_node": cpus,
                "memory_gb_per_node": 1000,
                "price": {"node_hour_cny": 1},
            }
        ],
    }
    if coords:
        site["coordinates"] = coords
    return site


def two_sites(coords: bool = True, name: str = "Zhengzhou") -> NetworkSpec:
    return NetworkSpec.model_validate(
        {
            "name": "two <sites>",
            "sites": [
                _site("a", name, "cpu", 4, {"lat": 34.7, "lon": 113.6} if coords else None),
                _site("b", "Qingyang", "cpu", 4, {"lat": 35.7, "lon": 107.6} if coords else None),
            ],
        }
    )


def result(policy: str, start: list[float], end: list[float], pool: list[int], units: list[float]) -> SimResult:
    """Jobs submitted at 0, 0, 10, ... on pools a/cpu (0) and b/cpu (1), 4 units each."""
    n = len(start)
    s, e = np.array(start, float), np.array(end, float)
    return SimResult(
        policy=policy,
        trace_jobs=n,
        submit_s=np.array([0.0, 0.0, 10.0, 20.0][:n]),
        start_s=s,
        end_s=e,
        pool=np.array(pool),
        rejected=np.zeros(n, bool),
        reason=[""] * n,
        runtime_s=e - s,
        cost_cny=np.ones(n) * (2.0 if policy == "fifo" else 1.0),
        energy_kwh=np.ones(n),
        carbon_kg=np.ones(n) * (3.0 if policy == "fifo" else 1.0),
        deadline_s=np.full(n, np.inf),
        units=np.array(units, float),
        capacity_units=np.array([4.0, 4.0]),
        pool_keys=["a/cpu", "b/cpu"],
    )


def slow_and_fast() -> list[SimResult]:
    fifo = result("fifo", [0, 100, 200, 300], [100, 200, 300, 400], [0, 0, 1, 1], [2, 2, 4, 1])
    easy = result("easy-backfill", [0, 0, 10, 20], [100, 100, 110, 120], [0, 0, 1, 1], [2, 2, 4, 1])
    return [fifo, easy]


def test_queue_length_steps() -> None:
    fifo = slow_and_fast()[0]  # submitted at 0, 0, 10, 20; started at 0, 100, 200, 300
    grid = np.array([0.0, 5.0, 10.0, 20.0, 99.0, 100.0, 250.0, 300.0, 500.0])
    assert list(queue_series(fifo, grid)) == [1, 1, 2, 3, 3, 2, 1, 0, 0]


def test_rejected_jobs_leave_the_queue() -> None:
    r = result("fifo", [0, np.nan], [10, np.nan], [0, -1], [1, 0])
    r.rejected[1] = True
    assert list(queue_series(r, np.array([0.0, 50.0]))) == [0, 0]


def test_pool_half_busy_is_half_utilised() -> None:
    # one job of 2 units on pool a/cpu (4 units) over [0, 100); site b idle
    r = result("fifo", [0], [100], [0], [2])
    u = utilisation_series(r, two_sites(), np.array([0.0, 50.0, 99.0, 100.0, 150.0]))
    assert list(u["a"]) == [0.5, 0.5, 0.5, 0.0, 0.0]
    assert list(u["b"]) == [0.0] * 5


def test_unit_hours_per_site() -> None:
    fifo = slow_and_fast()[0]  # a: 2 jobs x 2 units x 100 s; b: 4 units x 100 s and 1 unit x 100 s
    w = work_by_site(fifo, two_sites())
    assert w["a"].jobs == 2 and w["b"].jobs == 2
    assert w["a"].unit_hours == pytest.approx(400 / 3600)
    assert w["b"].unit_hours == pytest.approx(500 / 3600)
    assert w["a"].share + w["b"].share == pytest.approx(1.0)
    assert w["a"].cost_cny == 4.0 and w["b"].carbon_kg == 6.0


def test_jct_cdf_is_monotone_and_ends_at_one() -> None:
    x, y = jct_cdf(slow_and_fast()[0])
    assert list(x) == [100, 200, 290, 380]
    assert np.all(np.diff(x) >= 0) and np.all(np.diff(y) > 0) and y[-1] == 1.0


def _images(index: Path) -> list[Path]:
    srcs = re.findall(r"<img src='([^']+)'", index.read_text())
    assert srcs
    return [index.parent / s for s in srcs]


def test_report_writes_page_and_figures_and_names_the_best(tmp_path: Path) -> None:
    index = write_report(slow_and_fast(), two_sites(name="<b>Zheng</b>"), tmp_path / "out", "tiny<trace>")
    assert index == tmp_path / "out" / "index.html"
    images = _images(index)
    assert len(images) == 5
    for img in images:
        assert img.exists() and img.read_bytes()[:8] == PNG
    html = index.read_text()
    assert "easy-backfill: avg JCT" in html and "easy-backfill: avg wait" in html
    assert "lower than fifo" in html
    assert all(f"<th>{key}</th>" in html for key in metrics(slow_and_fast()[0]))  # every metric is shown
    # names from the trace, the network and the sites are escaped
    assert "<b>Zheng" not in html and "&lt;b&gt;Zheng&lt;/b&gt;" in html
    assert "tiny&lt;trace&gt;" in html and "two &lt;sites&gt;" in html


def test_network_without_coordinates_still_shows_where_the_work_went(tmp_path: Path) -> None:
    index = write_report(slow_and_fast(), two_sites(coords=False), tmp_path, "t")
    where = [p for p in _images(index) if p.name == "where.png"]
    assert where and where[0].read_bytes()[:8] == PNG
    assert "Where the work went" in index.read_text()


def test_report_from_the_engine(tmp_path: Path) -> None:
    csv = tmp_path / "trace.csv"
    csv.write_text("job_id,submit_s,cpus,duration_s\nj0,0,2,100\nj1,1,4,100\nj2,2,2,50\n")
    trace = read_csv(csv)
    net = NetworkSpec.model_validate({"name": "one", "sites": [_site("m", "machine", "cpu", 4, None)]})
    runs = [simulate(trace, net, builtin_catalog(), p) for p in ("fifo", "easy-backfill")]
    index = write_report(runs, net, tmp_path / "r", "trace.csv")
    assert all(p.read_bytes()[:8] == PNG for p in _images(index))
    # EASY lets the small job j2 run beside j0: it waits less than FIFO
    assert "easy-backfill: avg wait" in index.read_text()
