"""The what-if report: one HTML page with PNG figures that says which policy did best on a trace, and why.

The series behind the figures (utilisation, queue length, JCT CDF, work per site) are pure functions of a
`SimResult`, kept apart from the drawing so they can be tested without images. Matplotlib is imported only
inside `write_report`, with the Agg backend, so importing this module never needs a display."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from suanli.sim.engine import SimResult
from suanli.sim.metrics import compare_to, metrics
from suanli.spec.network import NetworkSpec

GRID_POINTS = 300

# (metric key, what it is called in the headline); lower is better for all of them
CRITERIA = (
    ("avg_jct_s", "avg JCT"),
    ("avg_wait_s", "avg wait"),
    ("cost_cny", "cost"),
    ("carbon_kg", "carbon"),
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; vertical-align: top; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
.headline li { margin: 0.2em 0; }
figure { margin: 1.5em 0; }
figcaption { color: #555; font-size: 0.9em; }
img { max-width: 100%; }
"""


# ---------------------------------------------------------------------------------------------- series


def site_of(pool_key: str) -> str:
    """'site/pool' -> 'site'."""
    return pool_key.split("/", 1)[0]


def site_ids(result: SimResult, network: NetworkSpec) -> list[str]:
    """The network's sites in order, then any site only the result's pool keys name."""
    ids = [s.id for s in network.sites]
    for key in result.pool_keys:
        if site_of(key) not in ids:
            ids.append(site_of(key))
    return ids


def time_grid(results: list[SimResult], points: int = GRID_POINTS) -> np.ndarray:
    """Evenly spaced times from the first submission to the last end over all results."""
    lo, hi = math.inf, -math.inf
    for r in results:
        if r.submit_s.size:
            lo = min(lo, float(np.min(r.submit_s)))
            hi = max(hi, float(np.max(r.submit_s)))
        ends = r.end_s[np.isfinite(r.end_s)]
        if ends.size:
            hi = max(hi, float(np.max(ends)))
    if not math.isfinite(lo):
        lo, hi = 0.0, 1.0
    return np.linspace(lo, max(hi, lo + 1.0), points)


def _count_at(times: np.ndarray, weights: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Sum of weights of the events at or before each grid time."""
    order = np.argsort(times, kind="stable")
    cum = np.concatenate([[0.0], np.cumsum(weights[order])])
    return cum[np.searchsorted(times[order], grid, side="right")]


def utilisation_series(result: SimResult, network: NetworkSpec, grid: np.ndarray) -> dict[str, np.ndarray]:
    """Per site, the share of its units busy at each grid time (a job holds its units on [start, end)).

    A site's capacity is the sum of its pools' units (devices, or cores on CPU pools). Each run of a job counts
    where it ran (a preempted job's runs too) when the result records its runs."""
    if result.seg_job.size:
        start, end, pool, units_all = result.seg_start, result.seg_end, result.seg_pool, result.seg_units
    else:  # a result without run records: one run per job
        start, end, pool, units_all = result.start_s, result.end_s, result.pool, result.units
    ran = np.isfinite(start) & np.isfinite(end) & (pool >= 0)
    sites = site_ids(result, network)
    pool_site = np.array([sites.index(site_of(k)) for k in result.pool_keys], dtype=np.int64)
    out: dict[str, np.ndarray] = {}
    for s, sid in enumerate(sites):
        cap = float(result.capacity_units[pool_site == s].sum()) if pool_site.size else 0.0
        here = ran.copy()
        here[ran] = pool_site[pool[ran].astype(np.int64)] == s
        units = units_all[here].astype(np.float64)
        busy = _count_at(start[here], units, grid) - _count_at(end[here], units, grid)
        out[sid] = busy / cap if cap > 0 else np.zeros_like(grid)
    return out


def queue_series(result: SimResult, grid: np.ndarray) -> np.ndarray:
    """Jobs submitted and not yet started at each grid time (rejected jobs leave the queue: they never wait)."""
    kept = ~result.rejected
    started = kept & np.isfinite(result.start_s)
    ones = np.ones(result.submit_s.size)
    return _count_at(result.submit_s[kept], ones[kept], grid) - _count_at(result.start_s[started], ones[started], grid)


def jct_cdf(result: SimResult) -> tuple[np.ndarray, np.ndarray]:
    """Sorted job completion times (submit to end) of the jobs that finished, and the share done by each."""
    done = np.isfinite(result.start_s) & np.isfinite(result.end_s)
    jct = np.sort(result.end_s[done] - result.submit_s[done])
    return jct, np.arange(1, jct.size + 1) / max(jct.size, 1)


@dataclass
class SiteWork:
    jobs: int
    unit_hours: float
    share: float  # of all unit-hours done in this result
    cost_cny: float
    carbon_kg: float


def work_by_site(result: SimResult, network: NetworkSpec) -> dict[str, SiteWork]:
    """What each site ran: jobs, unit-hours (units x true runtime), its share of the work, cost and carbon."""
    sites = site_ids(result, network)
    ran = np.isfinite(result.start_s) & (result.pool >= 0)
    site_idx = np.full(result.pool.size, -1, dtype=np.int64)
    pool_site = np.array([sites.index(site_of(k)) for k in result.pool_keys], dtype=np.int64)
    site_idx[ran] = pool_site[result.pool[ran].astype(np.int64)]
    unit_h = np.where(ran, result.units * np.nan_to_num(result.runtime_s) / 3600.0, 0.0)
    total = float(unit_h.sum())
    out = {}
    for s, sid in enumerate(sites):
        here = site_idx == s
        uh = float(unit_h[here].sum())
        out[sid] = SiteWork(
            jobs=int(here.sum()),
            unit_hours=uh,
            share=uh / total if total > 0 else 0.0,
            cost_cny=float(result.cost_cny[here].sum()),
            carbon_kg=float(result.carbon_kg[here].sum()),
        )
    return out


# ---------------------------------------------------------------------------------------------- words


def human_duration(seconds: float) -> str:
    """120 -> '2.0 min'; 7200 -> '2.0 h'."""
    if not math.isfinite(seconds):
        return "-"
    a = abs(seconds)
    if a < 60:
        return f"{seconds:.1f} s" if a < 10 else f"{seconds:.0f} s"
    if a < 3600:
        return f"{seconds / 60:.1f} min" if a < 600 else f"{seconds / 60:.0f} min"
    if a < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _fmt(key: str, value: Any) -> str:
    if isinstance(value, dict):  # nested metrics (per pool, per site, fairness): keys and values inline
        sep = "; " if any(isinstance(v, dict) for v in value.values()) else ", "
        return sep.join(f"{k}: {_fmt(key if key.startswith('utilization') else str(k), v)}" for k, v in value.items())
    if isinstance(value, bool | int | str) or value is None:
        return str(value)
    if not isinstance(value, float | np.floating):
        return str(value)
    if key.endswith("_s"):
        return human_duration(float(value))
    if key.startswith("utilization"):
        return f"{value:.1%}"
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.3g}"


def _ratio(best: float, other: float) -> str:
    """How much lower `best` is than `other`: '3.5x lower than', '4.2% lower than', or 'tied with'."""
    if math.isclose(best, other, rel_tol=1e-4, abs_tol=1e-9):
        return "tied with"
    if best <= 0:
        return f"against {other:,.3g} for"
    if other / best >= 1.1:
        return f"{other / best:.1f}x lower than"
    return f"{(other - best) / other:.1%} lower than"


def _value(key: str, value: float) -> str:
    if key == "cost_cny":
        return f"{value:,.2f} CNY"
    if key == "carbon_kg":
        return f"{value:,.2f} kg CO2"
    return _fmt(key, value)


def jct_change(ratio: float) -> str:
    """A policy's average JCT over the baseline's, in words: '0.42x (58% shorter)'."""
    if ratio <= 1.0:
        return f"{ratio:.2f}x ({1.0 - ratio:.0%} shorter)"
    return f"{ratio:.2f}x ({ratio - 1.0:.0%} longer)"


def headline(rows: list[dict[str, Any]]) -> list[str]:
    """One sentence per criterion: the best policy, its value and its margin over the next best (and worst)."""
    lines = []
    for key, label in CRITERIA:
        ranked = sorted(rows, key=lambda m: m[key])
        best = ranked[0]
        text = f"{best['policy']}: {label} {_value(key, best[key])}"
        if len(ranked) > 1:
            nxt = ranked[1]
            text += f", {_ratio(best[key], nxt[key])} {nxt['policy']}"
            if len(ranked) > 2:
                worst = ranked[-1]
                text += f" and {_ratio(best[key], worst[key])} {worst['policy']}"
        lines.append(text)
    if len(rows) > 1:  # the why: how busy each policy kept the machines, and how long the whole trace took
        util = ", ".join(f"{m['policy']} {m['utilization']:.1%}" for m in rows)
        span = ", ".join(f"{m['policy']} {human_duration(m['makespan_s'])}" for m in rows)
        slow = ", ".join(f"{m['policy']} {m['avg_bounded_slowdown']:.1f}" for m in rows)
        lines.append(f"Why: utilisation {util}; makespan {span}; avg bounded slowdown {slow}.")
    vs = compare_to(rows)
    if len(vs) > 1:  # the heterogeneity-agnostic baseline, as the literature compares against it
        parts = [f"{p} {jct_change(x)}" for p, x in vs.items() if p != "agnostic"]
        lines.append("Average JCT against agnostic (every pool as fast as any other): " + "; ".join(parts) + ".")
    if len({m["completed"] for m in rows}) > 1:
        done = ", ".join(f"{m['policy']} {m['completed']}/{m['jobs']}" for m in rows)
        lines.append(f"Caution: the policies completed different numbers of jobs ({done}); averages cover those done.")
    return lines


def _html_table(header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><tr>{head}</tr>{rows}</table>"


# ---------------------------------------------------------------------------------------------- drawing


def _draw(
    results: list[SimResult], network: NetworkSpec, out_dir: Path, grid: np.ndarray
) -> list[tuple[str, str, str]]:
    """Write the figures; return (file name, title, caption) for each."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    names = {s.id: s.id for s in network.sites}  # short ASCII ids in figures: names overlap and may lack glyphs
    hours = (grid - grid[0]) / 3600.0
    n = len(results)
    figs: list[tuple[str, str, str]] = []

    def save(fig: Figure, name: str, title: str, caption: str) -> None:
        fig.tight_layout()
        with warnings.catch_warnings():  # site names in Chinese may lack glyphs in the default font
            warnings.simplefilter("ignore", UserWarning)
            fig.savefig(out_dir / name, dpi=100, format="png")
        figs.append((name, title, caption))

    # 1. utilisation per site, small multiples per policy
    fig = Figure(figsize=(10, 2.4 * n))
    axes = fig.subplots(n, 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    for ax, r in zip(axes, results, strict=True):
        for sid, u in utilisation_series(r, network, grid).items():
            ax.plot(hours, u, label=names.get(sid, sid), lw=1.2)
        ax.set_title(r.policy, fontsize=10)
        ax.set_ylabel("busy share")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("hours since first submission")
    save(
        fig,
        "utilisation.png",
        "Utilisation per site over time",
        "Look for sites left idle while others are full, and for the policy that keeps the busy share high longest.",
    )

    # 2. JCT CDF
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    for r in results:
        x, y = jct_cdf(r)
        if x.size:
            ax.step(np.maximum(x, 1.0), y, where="post", label=r.policy)
    ax.set_xscale("log")
    ax.set_xlabel("job completion time, s (log)")
    ax.set_ylabel("share of jobs done")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    save(
        fig,
        "jct_cdf.png",
        "Job completion time distribution",
        "The curve further up and to the left finishes more jobs sooner; a long right tail means some jobs starve.",
    )

    # 3. queue length over time
    fig = Figure(figsize=(10, 4))
    ax = fig.subplots()
    for r in results:
        ax.plot(hours, queue_series(r, grid), label=r.policy, lw=1.2)
    ax.set_xlabel("hours since first submission")
    ax.set_ylabel("jobs waiting")
    ax.legend(fontsize=8)
    save(
        fig,
        "queue.png",
        "Queue length over time",
        "A lower, quickly draining queue means jobs wait less; a queue that keeps growing means the policy falls "
        "behind.",
    )

    # 4. cost against carbon
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    for r in results:
        cost, carbon = float(r.cost_cny.sum()), float(r.carbon_kg.sum())
        ax.scatter([cost], [carbon], s=40)
        ax.annotate(r.policy, (cost, carbon), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlabel("cost, CNY")
    ax.set_ylabel("carbon, kg CO2")
    ax.margins(0.2)
    save(
        fig,
        "cost_carbon.png",
        "Cost against carbon",
        "Points nearer the bottom left are cheaper and cleaner; a policy beaten on both axes by another is dominated.",
    )

    # 5. where the work went: a map when every site has coordinates, else bars
    works = [work_by_site(r, network) for r in results]
    coords = {s.id: s.coordinates for s in network.sites if s.coordinates is not None}
    on_map = all(sid in coords for sid in site_ids(results[0], network)) if results else False
    peak = max((w.unit_hours for ws in works for w in ws.values()), default=0.0) or 1.0
    fig = Figure(figsize=(min(4.2 * n, 16), 4))
    axes = fig.subplots(1, n, squeeze=False, sharey=True)[0]
    for ax, r, ws in zip(axes, results, works, strict=True):
        sids = list(ws)
        if on_map:
            lon = [coords[s].lon for s in sids]
            lat = [coords[s].lat for s in sids]
            size = [20 + 800 * ws[s].unit_hours / peak for s in sids]
            ax.scatter(lon, lat, s=size, alpha=0.6)
            for s, x, y in zip(sids, lon, lat, strict=True):
                label = f"{names.get(s, s)}\n{ws[s].unit_hours:,.3g} unit-h"
                ax.annotate(label, (x, y), textcoords="offset points", xytext=(0, 14), fontsize=7, ha="center")
            ax.set_xlabel("longitude")
            ax.set_ylabel("latitude")
            ax.margins(0.25)
        else:
            ax.bar(range(len(sids)), [ws[s].unit_hours for s in sids])
            ax.set_xticks(range(len(sids)), [names.get(s, s) for s in sids], rotation=30, ha="right", fontsize=8)
            ax.set_ylabel("unit-hours")
        ax.set_title(r.policy, fontsize=10)
    save(
        fig,
        "where.png",
        "Where the work went",
        "Bigger markers (or bars) are more unit-hours done at a site; compare how each policy spreads work "
        "towards cheap, clean or idle sites.",
    )
    return figs


# ---------------------------------------------------------------------------------------------- page


def write_report(results: list[SimResult], network: NetworkSpec, out_dir: Path, trace_name: str) -> Path:
    """Write out_dir/index.html and its PNG figures; return the index path."""
    if not results:
        raise ValueError("no simulation results to report")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [metrics(r) for r in results]
    grid = time_grid(results)
    figs = _draw(results, network, out_dir, grid)
    names = {s.id: s.name for s in network.sites}

    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>suanli what-if: {escape(trace_name)} on {escape(network.name)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>What-if: {escape(trace_name)} on {escape(network.name)}</h1>",
        f"<p>{rows[0]['jobs']} jobs replayed against {len(network.sites)} site(s) with "
        f"{len(results)} polic{'y' if len(results) == 1 else 'ies'}: "
        f"{escape(', '.join(r.policy for r in results))}. Lower is better for every line below.</p>",
        "<h2>Headline</h2><ul class='headline'>",
        *(f"<li>{escape(line)}</li>" for line in headline(rows)),
        "</ul>",
    ]

    # metrics table, one row per policy; nested metrics (per pool, per site, fairness) fold away below it
    flat = [k for k in rows[0] if not isinstance(rows[0][k], dict)]
    nested = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    parts += ["<h2>Metrics</h2>", _html_table(flat, [[_fmt(k, m[k]) for k in flat] for m in rows])]
    if nested:
        parts += [
            "<details><summary>Nested metrics</summary>",
            _html_table(["policy", *nested], [[str(m["policy"]), *(_fmt(k, m[k]) for k in nested)] for m in rows]),
            "</details>",
        ]

    parts.append("<h2>Figures</h2>")
    for name, title, caption in figs:
        parts.append(
            f"<figure><h3>{escape(title)}</h3><img src='{escape(name)}' alt='{escape(title)}'>"
            f"<figcaption>{escape(caption)}</figcaption></figure>"
        )

    # per-site breakdown per policy
    parts.append("<h2>Per site</h2>")
    for r in results:
        body = [
            [names.get(sid, sid), str(w.jobs), f"{w.unit_hours:,.1f}", f"{w.share:.1%}", f"{w.cost_cny:,.2f}",
             f"{w.carbon_kg:,.2f}"]
            for sid, w in work_by_site(r, network).items()
        ]  # fmt: skip
        parts += [
            f"<h3>{escape(r.policy)}</h3>",
            _html_table(["site", "jobs run", "unit-hours", "share of work", "cost, CNY", "carbon, kg"], body),
        ]
    parts.append("</body></html>")

    index = out_dir / "index.html"
    index.write_text("\n".join(parts), encoding="utf-8")
    return index
