"""The client commands: submit, jobs, job, logs, cancel, sites, quote, tenants. They talk to the API like any
client (SUANLI_URL, SUANLI_TOKEN; by default the local `suanli up` and its admin token)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.table import Table

from suanli.cli.output import EXIT_BAD_INPUT, EXIT_NOT_FOUND, err, fmt, fmt_duration, out, print_json, reports_errors

P = ParamSpec("P")
R = TypeVar("R")


def api_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Server errors as a message and an exit code: 2 for what the caller sent, 3 for not found, 1 otherwise."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from suanli.client import ApiError, ConnectError

        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            err.print(
                f"[red]error:[/red] {exc.message}" + (f" [dim](field: {exc.field})[/dim]" if exc.field else ""),
                highlight=False,
            )
            for p in exc.body.get("error", {}).get("problems", [])[1:]:
                err.print(f"  {p.get('field', '')}: {p['message']}", highlight=False)
            code = EXIT_NOT_FOUND if exc.status == 404 else EXIT_BAD_INPUT if 400 <= exc.status < 500 else 1
            raise typer.Exit(code) from None
        except ConnectError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None

    return reports_errors(wrapper)


def _client():  # type: ignore[no-untyped-def]
    from suanli.client import Client

    return Client()


JSON = typer.Option(False, "--json", help="machine-readable output on stdout")


@api_errors
def submit(
    job_file: Path = typer.Argument(..., metavar="JOB.yaml", help="job spec, YAML or JSON"),
    wait: bool = typer.Option(False, "--wait", help="wait for the job to end, with a live status line"),
    idempotency_key: str | None = typer.Option(None, "--idempotency-key", help="retry-safe submission key"),
    as_json: bool = JSON,
) -> None:
    """Submit a job; with --wait, follow it to the end (exit code 1 if it did not succeed)."""
    c = _client()
    job = c.submit(job_file, idempotency_key)
    if not wait:
        if as_json:
            print_json(job)
        else:
            out.print(f"submitted [bold]{job['id']}[/bold] ({job['name']}): {job['state']}")
        return
    if as_json:
        job = c.wait(job["id"])
    else:
        with err.status(f"{job['id']}: {job['state']}") as status:

            def update(j: dict[str, Any]) -> None:
                where = f" on {j['site']}/{j['pool']}" if j.get("site") else ""
                why = f" — {j['reason']}" if j.get("reason") and j["state"] == "queued" else ""
                status.update(f"{j['id']}: {j['state']}{where}{why}")

            job = c.wait(job["id"], on_update=update)
    if as_json:
        print_json(job)
    else:
        _show_job(c.job(job["id"]))
    if job["state"] != "succeeded":
        raise typer.Exit(1)


@api_errors
def jobs(
    state: list[str] = typer.Option([], "--state", help="only jobs in this state (repeatable)"),
    site: str | None = typer.Option(None, help="only jobs placed at this site"),
    name: str | None = typer.Option(None, help="only jobs with this name"),
    limit: int = typer.Option(50, min=1, max=1000),
    as_json: bool = JSON,
) -> None:
    """Your jobs, newest first."""
    page = _client().jobs(state or None, site, name, limit)
    if as_json:
        print_json(page)
        return
    t = Table(title=f"{len(page['jobs'])} jobs")
    for col in ("id", "name", "state", "site/pool", "submitted", "CNY", "reason"):
        t.add_column(col, overflow="fold")
    for j in page["jobs"]:
        usage = j.get("usage") or {}
        t.add_row(
            j["id"],
            j["name"],
            j["state"],
            f"{j['site']}/{j['pool']}" if j.get("site") else "—",
            j["submitted_at"][:19],
            fmt(usage.get("cost_cny")),
            (j.get("reason") or "")[:80],
        )
    out.print(t)


@api_errors
def job(job_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JSON) -> None:
    """One job: state, placement and why, attempts, and its bill."""
    j = _client().job(job_id)
    if as_json:
        print_json(j)
    else:
        _show_job(j)


def _show_job(j: dict[str, Any]) -> None:
    out.print(
        f"[bold]{j['id']}[/bold] {j['name']}: [bold]{j['state']}[/bold]"
        + (f" on {j['site']}/{j['pool']}" if j.get("site") else "")
        + (f" (exit code {j['exit_code']})" if j.get("exit_code") not in (None, 0) else ""),
        highlight=False,
    )
    if j.get("reason"):
        out.print(f"  reason: {j['reason']}", highlight=False)
    d = j.get("decision") or {}
    if d.get("why"):
        out.print(f"  why: {d['why']}", highlight=False)
    for r in d.get("runners_up", []):
        out.print(f"  runner-up {r['pool']}: {r.get('compared', '')}", highlight=False)
    for a in j.get("attempt_list", []):
        out.print(
            f"  attempt {a['number']} at {a['site']}/{a['pool']} ({a['hardware']}): {a['state']}"
            + (f", exit {a['exit_code']}" if a.get("exit_code") is not None else ""),
            highlight=False,
        )
    u = j.get("usage")
    if u:
        est = u.get("estimated") or {}
        out.print(
            f"  bill: {u['cost_cny']:.4f} CNY (hardware {u['compute_cost_cny']:.4f}, energy "
            f"{u['energy_cost_cny']:.4f}); {u['energy_kwh']:.6f} kWh; {u['carbon_kg']:.6f} kg CO2; ran "
            f"{fmt_duration(u['runtime_s'])} (estimated {fmt_duration(est.get('runtime_s'))})",
            highlight=False,
        )


@api_errors
def logs(
    job_id: str = typer.Argument(..., metavar="ID"),
    follow: bool = typer.Option(False, "-f", "--follow", help="stream until the job ends"),
    tail: int | None = typer.Option(None, "--tail", min=1, help="only the last N lines"),
) -> None:
    """The job's output; lines from stderr are marked as such."""
    import sys

    c = _client()
    if follow:
        for chunk in c.follow(job_id, tail):
            sys.stdout.write(chunk)
            sys.stdout.flush()
        return
    sys.stdout.write(c.logs(job_id, tail))


@api_errors
def cancel(job_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JSON) -> None:
    """Cancel a job (a running one is stopped at its site)."""
    j = _client().cancel(job_id)
    if as_json:
        print_json(j)
    else:
        out.print(f"{j['id']}: {'cancelling' if j.get('cancel_requested') else j['state']}")


@api_errors
def sites(as_json: bool = JSON) -> None:
    """The network's sites: pools, free capacity, and the price and carbon of power now."""
    data = _client().sites()
    if as_json:
        print_json(data)
        return
    t = Table(title="sites")
    for col in (
        "site",
        "kind",
        "province",
        "health",
        "pool",
        "hardware",
        "devices free",
        "CPUs free",
        "CNY/kWh now",
        "kg CO2/kWh",
    ):
        t.add_column(col)
    for s in data:
        for k, p in enumerate(s["pools"]):
            t.add_row(
                s["id"] if k == 0 else "",
                s["kind"] if k == 0 else "",
                s["province"] if k == 0 else "",
                _health(s) if k == 0 else "",
                p["id"],
                p["hardware"],
                f"{p['devices_free']}/{p['devices_total']}" if p["devices_free"] is not None else "—",
                f"{p['cpus_free']}/{p['cpus_total']}" if p["cpus_free"] is not None else "—",
                fmt(s["price_cny_per_kwh_now"]) if k == 0 else "",
                fmt(s["carbon_kg_per_kwh_now"]) if k == 0 else "",
            )
    out.print(t)
    for s in data:
        detail = s.get("health_detail") or {}
        if s["health"] != "healthy" and detail.get("message"):
            err.print(f"{s['id']}: {s['health']}: {detail['message']}", highlight=False)


def _health(site: dict[str, Any]) -> str:
    colour = {"healthy": "green", "degraded": "yellow", "unreachable": "red"}.get(site["health"], "")
    return f"[{colour}]{site['health']}[/{colour}]" if colour else site["health"]


@api_errors
def quote(job_file: Path = typer.Argument(..., metavar="JOB.yaml"), as_json: bool = JSON) -> None:
    """Price, ETA and carbon of a job at every candidate, and what the scheduler would do now. Nothing is stored."""
    q = _client().quote(job_file)
    if as_json:
        print_json(q)
        return
    d = q["decision"]
    t = Table(title=f"quote: {d['action']}" + (f" on {d.get('pool')}" if d.get("pool") else ""))
    for col in ("site/pool", "hardware", "runtime", "finish", "CNY", "kg CO2", "why not"):
        t.add_column(col, overflow="fold")
    for c in q["candidates"]:
        t.add_row(
            f"{c['site']}/{c['pool']}",
            c["hardware"],
            fmt_duration(c["runtime_s"]),
            fmt_duration(c["finish_s"]),
            fmt(c["cost_cny"]),
            fmt(c["carbon_kg"]),
            "; ".join(c["reasons"]),
        )
    out.print(t)
    if d.get("why"):
        out.print(f"why: {d['why']}", highlight=False)


tenants_app = typer.Typer(help="Tenants (admin).", no_args_is_help=True)


@tenants_app.command("create")
@api_errors
def tenants_create(
    name: str = typer.Argument(..., help="tenant name"),
    max_devices: int | None = typer.Option(None, help="quota: devices in use at once"),
    max_queued_jobs: int | None = typer.Option(None, help="quota: jobs waiting at once"),
    as_json: bool = JSON,
) -> None:
    """Create a tenant and print its token (shown this once)."""
    t = _client().create_tenant(name, max_devices, max_queued_jobs)
    if as_json:
        print_json(t)
    else:
        out.print(t["token"])
        err.print(f"tenant {t['name']} ({t['id']}) created; keep the token above: it is not shown again")
