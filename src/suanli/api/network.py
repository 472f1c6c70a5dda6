"""/v1/sites and /v1/quotes: what the network has now, and what a job would cost where, before committing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from suanli.api.auth import Caller, caller
from suanli.api.jobs import read_spec, validate_for_network
from suanli.backends.base import BackendError

router = APIRouter(prefix="/v1", tags=["network"])


@router.get("/sites")
def sites(who: Annotated[Caller, Depends(caller)], request: Request) -> dict[str, Any]:
    """Every site: kind, place, back-end, pools with capacity and load, and the current price and carbon."""
    st = request.app.state.suanli
    now = datetime.now(UTC)
    out = []
    for site in st.network.sites:
        curves = st.broker.curves(site.id)
        backend = st.backends.get(site.id)
        # Health as the broker tracks it. Capacity is asked of the site now (bounded by its back-end's timeout),
        # except of a site whose last call failed, whose capacity is shown as its last good probe saw it.
        tracked = st.broker.health.sites.get(site.id)
        health = tracked.view() if tracked is not None else {"state": "unreachable", "message": "no back-end"}
        capacity: dict[str, Any] = {c.pool: c for c in tracked.capacity} if tracked is not None else {}
        if backend is not None and site.id not in st.broker.health.suspect:
            try:
                capacity = {c.pool: c for c in backend.capacity()}
            except BackendError as exc:
                health = {**health, "state": "degraded", "message": str(exc)}
        pools = []
        for pool in site.pools:
            c = capacity.get(pool.id)
            accelerator = st.catalog.get(pool.hardware).is_accelerator  # CPU pools offer cores, not devices
            total = pool.nodes * pool.devices_per_node if accelerator else 0
            pools.append(
                {
                    "id": pool.id,
                    "hardware": pool.hardware,
                    "nodes": pool.nodes,
                    "devices_total": (c.devices_total if c else total) if accelerator else 0,
                    "devices_free": (c.devices_free if c else None) if accelerator else 0,
                    "cpus_total": c.cpus_total if c else pool.nodes * pool.cpus_per_node,
                    "cpus_free": c.cpus_free if c else None,
                    "memory_gb_free": c.memory_gb_free if c else None,
                    "price": pool.price.model_dump(exclude_none=True),
                }
            )
        out.append(
            {
                "id": site.id,
                "name": site.name,
                "kind": site.kind.value,
                "province": site.province,
                "city": site.city,
                "hub": site.hub,
                "backend": site.backend.type,
                "health": health["state"],
                "health_detail": health,
                "pools": pools,
                "pue": site.energy.pue,
                "green_share": site.energy.green_share,
                "price_cny_per_kwh_now": curves.price.at(now),
                "carbon_kg_per_kwh_now": curves.carbon.at(now),
            }
        )
    return {"sites": out}


@router.post("/quotes")
async def quote(request: Request, who: Annotated[Caller, Depends(caller)]) -> dict[str, Any]:
    """A job spec in; every candidate (site, pool) out with runtime, cost, energy and carbon, plus what the
    scheduler would decide for it now, given what runs and waits (nothing is stored)."""
    from suanli.estimate.candidates import estimate_candidates
    from suanli.schedule.core import schedule
    from suanli.schedule.explain import explain
    from suanli.schedule.from_specs import PendingJob, build_snapshot

    spec = await read_spec(request)
    now = datetime.now(UTC)
    validate_for_network(request, spec, now)
    st = request.app.state.suanli
    candidates = [c.as_dict() for c in estimate_candidates(spec, st.network, st.catalog, now)]
    with st.store.read() as s:
        pending, running = st.broker.snapshot_inputs(s, now)
    pending = [PendingJob("quote", spec, now, who.tenant_id), *pending]
    snap = build_snapshot(st.network, st.catalog, pending, now, running)
    decision = explain(snap, schedule(snap, st.broker.policy), 0)
    return {"candidates": candidates, "decision": decision}
