"""The FastAPI application: routes, error format, body limit, health and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select, text

from suanli import __version__
from suanli.api import admin, errors, jobs, network
from suanli.api.errors import error_body
from suanli.api.state import AppState
from suanli.store.models import Job


class _JobStates:
    """Jobs per state, read from the store at scrape time (the store is the truth, not a counter)."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def collect(self):  # type: ignore[no-untyped-def]
        g = GaugeMetricFamily("suanli_jobs", "Jobs in the store by state", labels=["state"])
        with self.state.store.read() as s:
            for st, n in s.execute(select(Job.state, func.count()).group_by(Job.state)):
                g.add_metric([st], n)
        yield g


class _Limits:
    """Pure ASGI middleware (cheaper than the decorator form): refuses bodies over the limit by their declared
    length and counts responses by status for /metrics."""

    def __init__(self, app: Any, state: AppState, requests: Counter) -> None:
        self.app, self.state, self.requests = app, state, requests

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.state.max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                response = JSONResponse(
                    error_body("too_large", f"body of {int(value)} bytes; at most {limit}"), status_code=413
                )
                await response(scope, receive, send)
                self.requests.labels(scope["method"], "413").inc()
                return
        status = {"code": 500}

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, counting_send)
        self.requests.labels(scope["method"], str(status["code"])).inc()


def create_app(state: AppState) -> FastAPI:
    app = FastAPI(
        title="suanli",
        version=__version__,
        description="The scheduling brain of a city compute network: submit jobs once; suanli places, "
        "runs, meters and bills them across the network's sites.",
    )
    app.state.suanli = state
    errors.install(app)
    registry = CollectorRegistry()
    registry.register(_JobStates(state))
    requests = Counter("suanli_http_requests", "HTTP requests", ["method", "status"], registry=registry)
    rounds = Histogram(
        "suanli_schedule_round_seconds",
        "Time of a scheduling round",
        registry=registry,
        buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
    )
    state.broker.on_tick = lambda stats: rounds.observe(stats.schedule_s) if stats.schedule_s else None

    app.add_middleware(_Limits, state=state, requests=requests)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        with state.store.read() as s:
            s.execute(text("SELECT 1"))
        return {
            "status": "ok",
            "version": __version__,
            "network": state.network.name,
            "sites": [s.id for s in state.network.sites],
        }

    @app.get("/metrics", tags=["health"])
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(jobs.router)
    app.include_router(network.router)
    app.include_router(admin.router)
    return app
