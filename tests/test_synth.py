"""`suanli.sim.synth` and `suanli trace synth`: synthetic traces that `read_csv` accepts, with the stated shapes."""

from __future__ import annotations

import csv
import io
import warnings
from collections import Counter

import numpy as np
import pytest
from typer.testing import CliRunner

from suanli.cli.trace_cmds import trace_app
from suanli.errors import SpecError
from suanli.sim.synth import GAVEL_JOB_TYPES, KINDS, SYNTH_COLUMNS, synthesize, write_csv
from suanli.sim.traces import read_csv

runner = CliRunner()


def _read_back(rows, tmp_path, name="t.csv"):
    path = tmp_path / name
    with path.open("w", newline="", encoding="utf-8") as f:
        write_csv(rows, f)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unknown column would warn
        return read_csv(path)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_reads_back(kind, tmp_path):
    n = 400
    rows = synthesize(n, kind, seed=3)
    assert len(rows) == n
    assert all(set(r) == set(SYNTH_COLUMNS) for r in rows)
    trace = _read_back(rows, tmp_path)
    assert len(trace) == n
    assert trace.skipped == []
    assert trace.meta["submit_offset_s"] == 0.0
    assert trace.submit_s[0] == 0.0
    assert np.all(np.diff(trace.submit_s) >= 0)
    assert len(set(trace.job_id)) == n
    assert trace.job_id == [f"synth-{k}" for k in range(n)]
    assert np.all(trace.duration_s > 0)
    assert np.all(np.isfinite(trace.duration_s))
    # the CSV round trip keeps the values
    assert np.allclose(trace.submit_s, [r["submit_s"] for r in rows])
    assert np.allclose(trace.duration_s, [r["duration_s"] for r in rows])
    assert list(trace.devices) == [r["devices"] for r in rows]


def test_philly_shape(tmp_path):
    n = 5000
    rows = synthesize(n, "philly", seed=1)
    trace = _read_back(rows, tmp_path)
    gpus = Counter(trace.devices.tolist())
    assert set(gpus) <= {1, 2, 4, 8}
    for count, share in ((1, 0.70), (2, 0.10), (4, 0.15), (8, 0.05)):
        assert abs(gpus[count] / n - share) < 0.025, (count, gpus[count] / n)
    assert set(trace.workload) == {"ai-training"}
    assert set(trace.reference_hardware) == {"nvidia-v100-sxm2-32gb"}
    assert set(trace.tenant) <= {f"lab-{k}" for k in range(10)}
    assert set(trace.job_type) <= set(GAVEL_JOB_TYPES)
    single_only = {t for t in GAVEL_JOB_TYPES if t.startswith(("A3C", "CycleGAN", "Recommendation"))}
    assert not {t for t, d in zip(trace.job_type, trace.devices, strict=True) if d > 1} & single_only
    minutes = trace.duration_s / 60
    assert minutes.min() >= 10**1.5 * 0.999 and minutes.max() <= 10**4 * 1.001
    assert abs(np.mean(minutes >= 1000) - 0.2) < 0.03
    # Poisson arrivals, one per 360 s on average
    assert abs(trace.submit_s[-1] / (n - 1) - 360) < 360 * 0.06


def test_hpc_shape(tmp_path):
    n = 3000
    trace = _read_back(synthesize(n, "hpc", seed=2), tmp_path)
    assert np.all(trace.requested_s >= trace.duration_s)
    assert np.all(trace.requested_s % 900 == 0)
    assert np.all(trace.duration_s >= 60) and np.all(trace.duration_s <= 86_400)
    cores = Counter(trace.cpus.tolist())
    assert set(cores) <= {2**k for k in range(9)}
    assert cores[1] > cores[16] > cores[256]
    assert np.all(trace.devices == 0)
    assert set(trace.workload) == {"hpc"}
    assert set(trace.tenant) <= {f"user-{k}" for k in range(50)}
    assert np.all(np.ceil(trace.cpus / trace.nodes) <= 32)


def test_mixed_shares(tmp_path):
    n = 5000
    trace = _read_back(synthesize(n, "mixed", seed=4), tmp_path)
    shares = Counter(trace.workload)
    for workload, share in (("ai-training", 0.5), ("hpc", 0.3), ("ai-inference", 0.2)):
        assert abs(shares[workload] / n - share) < 0.03, (workload, shares[workload] / n)
    inference = np.array([w == "ai-inference" for w in trace.workload])
    assert np.all(trace.devices[inference] == 1)
    d = trace.duration_s[inference]
    assert np.all((d >= 60) & (d <= 1800))
    assert np.allclose(trace.deadline_s[inference], trace.submit_s[inference] + 4 * d, atol=0.01)
    assert np.all(np.isinf(trace.deadline_s[~inference]))


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic(kind):
    assert synthesize(200, kind, seed=7) == synthesize(200, kind, seed=7)
    assert synthesize(200, kind, seed=7) != synthesize(200, kind, seed=8)


def test_bad_arguments():
    with pytest.raises(SpecError) as e:
        synthesize(10, "alibaba")
    assert all(k in str(e.value) for k in KINDS)
    with pytest.raises(SpecError, match="jobs"):
        synthesize(0, "philly")
    with pytest.raises(SpecError, match="mean_interarrival_s"):
        synthesize(5, "hpc", mean_interarrival_s=0)


def test_mean_interarrival():
    rows = synthesize(2000, "hpc", seed=0, mean_interarrival_s=10.0)
    assert abs(rows[-1]["submit_s"] / 1999 - 10.0) < 1.0


# ------------------------------------------------------------------------------------------------------ CLI


def test_cli_stdout_is_exactly_the_csv():
    result = runner.invoke(trace_app, ["synth", "--jobs", "50", "--kind", "mixed", "--seed", "5"])
    assert result.exit_code == 0, result.output
    buf = io.StringIO()
    write_csv(synthesize(50, "mixed", 5), buf)
    assert result.stdout == buf.getvalue()
    parsed = list(csv.reader(io.StringIO(result.stdout)))
    assert tuple(parsed[0]) == SYNTH_COLUMNS
    assert len(parsed) == 51
    assert all(len(r) == len(SYNTH_COLUMNS) for r in parsed)


def test_cli_out_file(tmp_path):
    path = tmp_path / "philly.csv"
    result = runner.invoke(trace_app, ["synth", "--jobs", "30", "--kind", "philly", "--out", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    trace = read_csv(path)
    assert len(trace) == 30 and trace.skipped == []


def test_cli_unknown_kind():
    result = runner.invoke(trace_app, ["synth", "--jobs", "5", "--kind", "nope"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert all(k in result.stderr for k in KINDS)


def test_cli_zero_jobs():
    result = runner.invoke(trace_app, ["synth", "--jobs", "0", "--kind", "hpc"])
    assert result.exit_code == 2
    assert result.stdout == ""


def test_cli_interarrival_sets_the_load(tmp_path):
    gaps = {}
    for gap in (60, 3600):
        path = tmp_path / f"g{gap}.csv"
        args = ["synth", "--jobs", "2000", "--kind", "philly", "--seed", "2", "--interarrival", str(gap)]
        assert runner.invoke(trace_app, [*args, "--out", str(path)]).exit_code == 0
        gaps[gap] = float(np.diff(read_csv(path).submit_s).mean())
    assert gaps[60] == pytest.approx(60, rel=0.1) and gaps[3600] == pytest.approx(3600, rel=0.1)
    bad = runner.invoke(trace_app, ["synth", "--jobs", "5", "--kind", "hpc", "--interarrival", "0"])
    assert bad.exit_code != 0 and "mean_interarrival_s" in bad.output
