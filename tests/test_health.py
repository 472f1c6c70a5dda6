"""Site health and failover with real back-ends: a local site, and a Ray site whose head is not there (a closed
port on this machine: what a dead head looks like to the broker). The clock of the health tracker is the test's,
so that 'no good answer for 8 s' takes no 8 s."""

from __future__ import annotations

import copy
import json
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from suanli.backends.local import LocalBackend
from suanli.backends.ray import RayBackend
from suanli.broker.health import Health, HealthTracker
from suanli.cli.spec_cmds import network_and_catalog
from suanli.service import build_service
from suanli.spec.job import JobSpec
from suanli.spec.network import NetworkSpec
from suanli.spec.network import RayBackend as RayConfig
from suanli.store.jobs import attempts_of, events_of, get_job, submit_job
from suanli.store.models import Event, Tenant


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def settle(tracker: HealthTracker) -> list:
    """Probe, let the answers arrive, and collect them."""
    changes = tracker.probe()
    deadline = time.monotonic() + 10
    while tracker._inflight and time.monotonic() < deadline:
        time.sleep(0.02)
        changes += tracker.probe()
    return changes


def test_a_dead_site_goes_degraded_then_unreachable_and_back(tmp_path: Path) -> None:
    network, catalog = network_and_catalog(None, [])
    site = network.sites[0]
    local = LocalBackend(site.id, site.pools, tmp_path, catalog)
    dead = RayBackend("ray-site", site.pools, RayConfig(type="ray", address=f"http://127.0.0.1:{closed_port()}"))
    clock = Clock()
    tracker = HealthTracker({"local": local, "ray-site": dead}, clock=clock, probe_s=1.0, unreachable_after_s=8.0)
    changes = settle(tracker)
    assert [(c.site, c.after) for c in changes] == [("ray-site", Health.DEGRADED)]
    assert "unreachable" in tracker.sites["ray-site"].message.lower()
    assert tracker.sites["local"].state == Health.HEALTHY and tracker.sites["local"].capacity
    clock.now += 5
    assert settle(tracker) == []  # still degraded: silent for 5 s
    clock.now += 4
    changes = settle(tracker)
    assert [(c.site, c.before, c.after) for c in changes] == [("ray-site", Health.DEGRADED, Health.UNREACHABLE)]
    assert tracker.unreachable == frozenset({"ray-site"})
    assert "no good answer for 9 s" in changes[0].message
    # the site answers again (the same back-end object pointed at a live site stands for a head that is back)
    tracker.backends["ray-site"] = LocalBackend("ray-site", site.pools, tmp_path / "second", catalog)
    clock.now += 1
    changes = settle(tracker)
    assert [(c.before, c.after) for c in changes] == [(Health.UNREACHABLE, Health.HEALTHY)]
    assert tracker.unreachable == frozenset()
    tracker.close()


def test_jobs_placed_on_a_dead_site_end_up_running_elsewhere(tmp_path: Path) -> None:
    """A network whose cheapest site is a Ray site with no head: its job fails to launch there, the site turns
    unreachable, its pools go offline, and the job runs at the local site, with the events to show it."""
    local_net, catalog = network_and_catalog(None, [])
    doc = local_net.model_dump(mode="json", exclude_none=True)
    dead = {"type": "ray", "address": f"http://127.0.0.1:{closed_port()}", "timeout_s": 1}
    ray_site = {**copy.deepcopy(doc["sites"][1]), "id": "ray-site", "backend": dead}
    for p in ray_site["pools"]:
        p["price"] = {"device_hour_cny": 0.5}  # the cheapest by far: the scheduler's first choice
    doc["sites"].append(ray_site)
    network = NetworkSpec.model_validate(doc)
    service = build_service(network, catalog, None, home=tmp_path, poll_s=0.05)
    broker = service.state.broker
    clock = Clock()
    broker._health = HealthTracker(broker.backends, clock=clock, probe_s=0.0, unreachable_after_s=8.0)
    spec = JobSpec.model_validate(
        {
            "name": "moved",
            "run": "echo ran",
            "resources": {"devices": 1},
            "compute": {"walltime_h": 0.01},
            "objective": "cheapest",
        }
    )
    store = service.state.store
    with store.tx() as s:
        tenant = s.scalar(select(Tenant.id).where(Tenant.is_admin.is_(True)))
        job, _ = submit_job(s, tenant, spec, None, datetime.now(UTC))
        job_id = job.id
    deadline = time.monotonic() + 30
    state = None
    while time.monotonic() < deadline:
        broker.tick()
        clock.now += 1.0  # a second of the tracker's time per tick
        with store.read() as s:
            state = get_job(s, job_id, None).state
        if state == "succeeded":
            break
        time.sleep(0.05)
    assert state == "succeeded"
    with store.read() as s:
        job = get_job(s, job_id, None)
        attempts = attempts_of(s, job_id)
        assert job.site not in (None, "ray-site")
        assert attempts[-1].site == job.site and attempts[-1].state == "succeeded"
        assert attempts[0].site == "ray-site" and attempts[0].state == "lost", job.decision
        health = [json.loads(e.data) for e in s.scalars(select(Event).where(Event.kind == "site-health"))]
        assert {"site": "ray-site", "to": "unreachable"}.items() <= health[-1].items(), health
        assert any(e.kind == "state" and e.to_state == "queued" for e in events_of(s, job_id)[1:])
    broker.health.close()
