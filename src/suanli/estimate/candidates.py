"""Every (site, pool) of a network as a candidate for a job: feasible or why not, and if feasible its runtime,
data staging, energy, carbon and cost. This is what `suanli estimate` prints and what a quote is made of."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from suanli.energy.run import SiteEnergyCurves, run_energy
from suanli.errors import Problem, SpecError
from suanli.estimate.efficiency import Efficiency, default_efficiency
from suanli.estimate.runtime import estimate_runtime
from suanli.hardware.catalog import Catalog
from suanli.spec.job import JobSpec
from suanli.spec.network import NetworkSpec, Site
from suanli.text import duration


@dataclass(frozen=True)
class Candidate:
    site: str
    pool: str
    hardware: str
    feasible: bool
    reasons: list[str]
    runtime_s: float | None = None
    staging_s: float | None = None
    finish_s: float | None = None  # staging + runtime, from the start asked for
    cost_cny: float | None = None
    compute_cost_cny: float | None = None
    energy_cost_cny: float | None = None
    egress_cost_cny: float | None = None
    energy_kwh: float | None = None
    carbon_kg: float | None = None
    bound: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def check_references(job: JobSpec, network: NetworkSpec, catalog: Catalog, source: str | None = None) -> None:
    """Ids in the job that must exist in the network or catalog; a typo is an error, not 'no candidates'."""
    sites = [s.id for s in network.sites]
    problems = []
    for i, d in enumerate(job.data):
        if d.site not in sites:
            problems.append(Problem(f"unknown site {d.site!r}", f"data[{i}].site", accepted=", ".join(sites)))
    c = job.constraints
    for name in ("sites", "exclude_sites"):
        for i, s in enumerate(getattr(c, name) or []):
            if s not in sites:
                problems.append(Problem(f"unknown site {s!r}", f"constraints.{name}[{i}]", accepted=", ".join(sites)))
    for name in ("hardware", "exclude_hardware"):
        for i, h in enumerate(getattr(c, name) or []):
            if h not in catalog:
                from suanli.errors import suggest

                problems.append(
                    Problem(f"unknown hardware {h!r}; {suggest(h, catalog.ids)}", f"constraints.{name}[{i}]")
                )
    if job.compute.reference and job.compute.reference.hardware not in catalog:
        from suanli.errors import suggest

        h = job.compute.reference.hardware
        problems.append(Problem(f"unknown hardware {h!r}; {suggest(h, catalog.ids)}", "compute.reference.hardware"))
    if problems:
        raise SpecError(problems, source, kind="job spec")


def check_network(network: NetworkSpec, catalog: Catalog, source: str | None = None) -> None:
    """Hardware and tariff ids a network names must exist."""
    from suanli.energy.tariffs import builtin_tariffs
    from suanli.errors import suggest

    problems = []
    tariffs = set(network.tariffs) | set(builtin_tariffs())
    for i, site in enumerate(network.sites):
        for j, pool in enumerate(site.pools):
            if pool.hardware not in catalog:
                problems.append(
                    Problem(
                        f"unknown hardware {pool.hardware!r}; {suggest(pool.hardware, catalog.ids)}",
                        f"sites[{i}].pools[{j}].hardware",
                    )
                )
            elif not catalog.get(pool.hardware).is_accelerator and catalog.get(pool.hardware).cores is None:
                problems.append(Problem(f"CPU {pool.hardware!r} has no core count", f"sites[{i}].pools[{j}].hardware"))
        if site.energy.tariff not in tariffs:
            problems.append(
                Problem(
                    f"unknown tariff {site.energy.tariff!r}; {suggest(site.energy.tariff, sorted(tariffs))}",
                    f"sites[{i}].energy.tariff",
                )
            )
    if problems:
        raise SpecError(problems, source, kind="network spec")


def site_reasons(job: JobSpec, site: Site) -> list[str]:
    """Why the job's constraints or data residency rule a whole site out."""
    c, out = job.constraints, []
    if c.sites and site.id not in c.sites:
        out.append(f"site {site.id} is not in constraints.sites")
    if c.exclude_sites and site.id in c.exclude_sites:
        out.append(f"site {site.id} is in constraints.exclude_sites")
    if c.regions and not (site.regions & set(c.regions)):
        out.append(f"site {site.id} ({site.province}) is outside constraints.regions {c.regions}")
    if c.kinds and site.kind not in c.kinds:
        out.append(f"site {site.id} is {site.kind.value}, not one of constraints.kinds")
    for d in job.data:
        if d.residency and not (site.regions & set(d.residency)) and d.site != site.id:
            out.append(f"data {d.name!r} may not leave {d.residency}; site {site.id} is in {site.province}")
    return out


def estimate_candidates(
    job: JobSpec,
    network: NetworkSpec,
    catalog: Catalog,
    start: datetime,
    eff: Efficiency | None = None,
    submitted: datetime | None = None,
) -> list[Candidate]:
    """All candidates, feasible first by earliest finish; `start` is when the job would start (timezone-aware)."""
    eff = eff or default_efficiency()
    check_network(network, catalog)
    check_references(job, network, catalog)
    deadline = job.deadline_at(submitted or start)
    out: list[Candidate] = []
    for site in network.sites:
        curves = SiteEnergyCurves.of(network, site)
        ruled_out = site_reasons(job, site)
        staging_s, egress_cny = _staging(job, network, site.id)
        for pool in site.pools:
            device = catalog.get(pool.hardware)
            reasons = list(ruled_out)
            c = job.constraints
            if c.hardware and device.id not in c.hardware:
                reasons.append(f"{device.id} is not in constraints.hardware")
            if c.exclude_hardware and device.id in c.exclude_hardware:
                reasons.append(f"{device.id} is in constraints.exclude_hardware")
            est = estimate_runtime(job, pool, device, catalog, eff)
            reasons.extend(est.reasons)
            if reasons or est.runtime_s is None or est.shape is None:
                out.append(Candidate(site.id, pool.id, device.id, False, reasons))
                continue
            run_start = start + timedelta(seconds=staging_s)
            e = run_energy(job.workload, pool, device, est.shape, curves, run_start, est.runtime_s, eff)
            cost = e.cost_cny + egress_cny
            finish_s = staging_s + est.runtime_s
            limits = []
            if deadline is not None and start + timedelta(seconds=finish_s) > deadline:
                late = (start + timedelta(seconds=finish_s) - deadline).total_seconds()
                limits.append(f"would finish {duration(late)} after the deadline")
            if job.budget_cny is not None and cost > job.budget_cny:
                limits.append(f"costs {cost:,.0f} CNY, over budget_cny {job.budget_cny:,.0f}")
            out.append(
                Candidate(
                    site.id,
                    pool.id,
                    device.id,
                    not limits,
                    limits,
                    est.runtime_s,
                    staging_s,
                    finish_s,
                    cost,
                    e.compute_cost_cny,
                    e.energy_cost_cny,
                    egress_cny,
                    e.energy_kwh,
                    e.carbon_kg,
                    est.bound,
                )
            )
    out.sort(key=lambda c: (not c.feasible, c.finish_s if c.finish_s is not None else float("inf")))
    return out


def _staging(job: JobSpec, network: NetworkSpec, site_id: str) -> tuple[float, float]:
    """Seconds and CNY to bring the job's data to a site; data sets move in parallel, the slowest decides."""
    seconds, cny = 0.0, 0.0
    for d in job.data:
        if d.site == site_id or d.size_gb == 0:
            continue
        link = network.link(d.site, site_id)
        seconds = max(seconds, link.latency_ms / 1000.0 + d.size_gb * 8.0 / link.bandwidth_gbps)
        cny += d.size_gb * link.egress_cny_per_gb
    return seconds, cny
