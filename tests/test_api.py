"""The REST API end to end, on SQLite and on PostgreSQL: a real store, the embedded local network with real local
processes, and the broker driven tick by tick (or as its thread where a test needs it to run by itself)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

import suanli.api.submissions as submissions
from suanli.api.app import create_app
from suanli.backends.base import LaunchSpec
from suanli.cli.spec_cmds import network_and_catalog
from suanli.client import ApiError, Client
from suanli.service import Service, build_service
from suanli.spec.job import JobSpec
from suanli.store.db import Store
from suanli.store.models import Attempt, Event, Job, Tenant

LOCAL_SITES = {"local-hpc": {"cpu"}, "local-ai": {"a100", "ascend-910b"}, "local-west": {"h20"}}
TERMINAL = {"succeeded", "failed", "cancelled", "rejected"}


def spec(name: str = "echo", run: str = "echo hello", **extra: Any) -> dict[str, Any]:
    """A tiny job: runs `run` at once, declared as 36 s of work so every estimate is a small number."""
    return {"name": name, "run": run, "compute": {"walltime_h": 0.01}, **extra}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is in the process group."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


@dataclass
class Api:
    service: Service
    app: FastAPI
    http: TestClient
    token: str
    db: str
    broker_started: bool = field(default=False)

    @property
    def admin(self) -> dict[str, str]:
        return bearer(self.token)

    def tick(self) -> None:
        self.service.state.broker.tick()

    def start_broker(self) -> None:
        self.service.state.broker.start()
        self.broker_started = True

    def submit(self, body: dict[str, Any], token: str | None = None, **headers: str) -> httpx.Response:
        return self.http.post("/v1/jobs", json=body, headers={**bearer(token or self.token), **headers})

    def job(self, job_id: str, token: str | None = None) -> dict[str, Any]:
        r = self.http.get(f"/v1/jobs/{job_id}", headers=bearer(token or self.token))
        assert r.status_code == 200, r.text
        return r.json()

    def until(self, job_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        """Tick the broker until the job satisfies the predicate; the job as last read."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.broker_started:
                self.tick()
            job = self.job(job_id)
            if predicate(job):
                return job
            assert time.monotonic() < deadline, f"timed out: job {job_id} is {job['state']} ({job['reason']})"
            time.sleep(0.02)

    def until_state(self, job_id: str, *states: str, timeout: float = 15.0) -> dict[str, Any]:
        return self.until(job_id, lambda j: j["state"] in states or j["state"] in TERMINAL, timeout)

    def tenant(self, name: str, **quotas: int) -> str:
        r = self.http.post("/v1/tenants", json={"name": name, **quotas}, headers=self.admin)
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def rows(self) -> dict[str, int]:
        """Rows in the store: what a request that was refused must not have written."""
        with self.service.state.store.tx() as s:
            return {
                "jobs": s.scalar(select(func.count()).select_from(Job)) or 0,
                "attempts": s.scalar(select(func.count()).select_from(Attempt)) or 0,
                "events": s.scalar(select(func.count()).select_from(Event)) or 0,
            }


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    db_url = None if request.param == "sqlite" else request.getfixturevalue("fresh_postgres")
    network, catalog = network_and_catalog(None, [])
    service = build_service(network, catalog, db_url, home=tmp_path, poll_s=0.05)
    app = create_app(service.state)
    http = TestClient(app)
    a = Api(service, app, http, service.admin_token_file.read_text().strip(), request.param)
    try:
        yield a
    finally:
        if a.broker_started:
            service.state.broker.stop()
        for backend in service.state.backends.values():  # a test that failed half-way leaves no process behind
            for attempt_id in backend.attempts():
                backend.cancel(attempt_id)
        http.close()
        service.state.store.close()


# -- submit, run, inspect ------------------------------------------------------------------------------------


def test_submit_runs_to_success_with_placement_decision_attempt_and_usage(api: Api) -> None:
    r = api.submit(spec("hello", "echo first; echo last"))
    assert r.status_code == 201, r.text
    assert r.headers["Idempotent-Replayed"] == "false"
    created = r.json()
    assert created["state"] == "queued"
    assert created["name"] == "hello"
    assert r.headers["Location"] == f"/v1/jobs/{created['id']}"

    job = api.until_state(created["id"])
    assert job["state"] == "succeeded", job
    assert job["exit_code"] == 0
    assert job["reason"] is None
    assert job["placement"] == {"site": "local-hpc", "pool": "cpu"}  # the only CPU pool of the local network
    assert (job["site"], job["pool"]) == ("local-hpc", "cpu")
    decision = job["decision"]
    assert decision["action"] == "place"
    assert decision["pool"] == "local-hpc/cpu"
    assert isinstance(decision["why"], str) and decision["why"]
    assert isinstance(decision["runners_up"], list)
    assert job["attempts"] == 1
    [attempt] = job["attempt_list"]
    assert attempt["number"] == 1
    assert (attempt["site"], attempt["pool"], attempt["state"], attempt["exit_code"]) == (
        "local-hpc",
        "cpu",
        "succeeded",
        0,
    )
    assert attempt["started_at"] is not None and attempt["finished_at"] is not None
    usage = job["usage"]
    for key in ("runtime_s", "energy_kwh", "cost_cny", "carbon_kg"):
        assert isinstance(usage[key], int | float) and usage[key] >= 0, (key, usage)
    assert usage["runtime_s"] < 30
    assert job["spec"]["run"] == "echo first; echo last"

    logs = api.http.get(f"/v1/jobs/{created['id']}/logs", headers=api.admin)
    assert logs.status_code == 200
    assert logs.text == "first\nlast\n"
    tail = api.http.get(f"/v1/jobs/{created['id']}/logs", params={"tail": 1}, headers=api.admin)
    assert tail.text == "last\n"


def test_logs_prefix_stderr_lines(api: Api) -> None:
    job_id = api.submit(spec("both", "echo out; echo err >&2")).json()["id"]
    assert api.until_state(job_id)["state"] == "succeeded"
    text = api.http.get(f"/v1/jobs/{job_id}/logs", headers=api.admin).text
    assert text == "out\n[stderr] err\n"
    assert api.http.get(f"/v1/jobs/{job_id}/logs?tail=1", headers=api.admin).text == "[stderr] err\n"


def follow(api: Api, job_id: str, **params: Any) -> str:
    with api.http.stream("GET", f"/v1/jobs/{job_id}/logs", params={"follow": "true", **params}, headers=api.admin) as r:
        assert r.status_code == 200
        return "".join(r.iter_text())


def test_logs_follow_streams_a_running_job_until_it_ends(api: Api) -> None:
    job_id = api.submit(spec("follow", "echo a; sleep 0.5; echo b")).json()["id"]
    assert api.until_state(job_id, "running")["state"] == "running"
    api.start_broker()  # the stream ends when the broker records the end
    assert follow(api, job_id) == "a\nb\n"
    assert api.job(job_id)["state"] == "succeeded"
    assert follow(api, job_id, tail=1) == "b\n"


def test_logs_follow_of_a_queued_job_waits_for_its_output(api: Api) -> None:
    job_id = api.submit(spec("follow-early", "echo a; echo b")).json()["id"]
    starter = threading.Timer(1.0, api.start_broker)  # the job is still queued when the stream begins
    starter.start()
    try:
        t0 = time.monotonic()
        text = follow(api, job_id)
        assert time.monotonic() - t0 < 15
    finally:
        starter.join()
    assert text == "a\nb\n"


def test_logs_of_a_queued_job_are_empty(api: Api) -> None:
    job_id = api.submit(spec()).json()["id"]
    r = api.http.get(f"/v1/jobs/{job_id}/logs", headers=api.admin)
    assert (r.status_code, r.text) == (200, "")


def test_yaml_body_with_yaml_content_type(api: Api) -> None:
    body = "name: from-yaml\nrun: echo yaml\ncompute:\n  walltime_h: 0.01\nresources: {cpus: 2}\ndeadline: '+2h'\n"
    r = api.http.post("/v1/jobs", content=body, headers={**api.admin, "Content-Type": "application/yaml"})
    assert r.status_code == 201, r.text
    job = api.until_state(r.json()["id"])
    assert job["state"] == "succeeded"
    assert job["spec"]["resources"]["cpus"] == 2
    submitted, deadline = (datetime.fromisoformat(job[k]) for k in ("submitted_at", "deadline_at"))
    assert deadline - submitted == timedelta(hours=2)
    assert api.http.get(f"/v1/jobs/{job['id']}/logs", headers=api.admin).text == "yaml\n"


def test_job_that_exits_3_fails_with_its_exit_code(api: Api) -> None:
    job_id = api.submit(spec("bad", "exit 3")).json()["id"]
    job = api.until_state(job_id)
    assert job["state"] == "failed"
    assert job["exit_code"] == 3
    assert "exit code 3" in job["reason"]
    assert job["attempt_list"][0]["state"] == "failed"
    assert job["attempt_list"][0]["exit_code"] == 3
    assert job["usage"]["runtime_s"] >= 0


# -- idempotency ---------------------------------------------------------------------------------------------


def test_idempotency_key_replays_the_same_job(api: Api) -> None:
    first = api.submit(spec("idem"), **{"Idempotency-Key": "k-1"})
    assert first.status_code == 201
    assert first.headers["Idempotent-Replayed"] == "false"
    again = api.submit(spec("idem"), **{"Idempotency-Key": "k-1"})
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    listed = api.http.get("/v1/jobs", params={"name": "idem"}, headers=api.admin).json()["jobs"]
    assert [j["id"] for j in listed] == [first.json()["id"]]
    assert api.rows()["jobs"] == 1

    other = api.tenant("other")
    theirs = api.submit(spec("idem"), token=other, **{"Idempotency-Key": "k-1"})
    assert theirs.status_code == 201
    assert theirs.json()["id"] != first.json()["id"]
    assert api.rows()["jobs"] == 2
    # a different key of the same tenant is a different job
    assert api.submit(spec("idem"), **{"Idempotency-Key": "k-2"}).status_code == 201
    assert api.rows()["jobs"] == 3


def test_idempotency_key_replays_after_the_job_finished(api: Api) -> None:
    first = api.submit(spec("idem-done"), **{"Idempotency-Key": "k"}).json()
    api.until_state(first["id"])
    again = api.submit(spec("idem-done"), **{"Idempotency-Key": "k"})
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["state"] == "succeeded"


def test_concurrent_retries_with_one_key_make_one_job(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries racing each other through the API: exactly one job, every answer names it."""
    real = submissions.submit_job

    def slow_submit(*args: Any, **kw: Any) -> Any:
        time.sleep(0.1)
        return real(*args, **kw)

    monkeypatch.setattr(submissions, "submit_job", slow_submit)
    results: list[httpx.Response] = []
    barrier = threading.Barrier(4)

    def retry() -> None:
        with TestClient(api.app) as client:
            barrier.wait()
            results.append(client.post("/v1/jobs", json=spec("race"), headers={**api.admin, "Idempotency-Key": "r"}))

    threads = [threading.Thread(target=retry) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.status_code for r in results) == [200, 200, 200, 201], [r.text for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    assert api.rows()["jobs"] == 1


def test_two_writers_racing_on_one_key_make_one_job(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two submission writers on one store (two API processes in production), each with retries of one key,
    the window between the key check and the commit widened: one job, and every answer names it."""
    real = submissions.submit_job

    def slow_submit(*args: Any, **kw: Any) -> Any:
        time.sleep(0.2)
        return real(*args, **kw)

    monkeypatch.setattr(submissions, "submit_job", slow_submit)
    store = api.service.state.store
    other = Store(store.url)
    writers = [submissions.SubmissionWriter(store), submissions.SubmissionWriter(other)]
    with store.read() as s:
        tenant = s.scalar(select(Tenant.id).where(Tenant.is_admin.is_(True)))
    job = JobSpec.model_validate(spec("race2"))

    async def race() -> list[tuple[dict[str, Any], bool]]:
        now = datetime.now(UTC)
        return await asyncio.gather(*(w.submit(tenant, job, "r2", now) for w in writers for _ in range(2)))

    try:
        answers = asyncio.run(race())
    finally:
        for w in writers:
            w.stop()
        other.close()
    assert sorted(created for _, created in answers) == [False, False, False, True]
    assert len({view["id"] for view, _ in answers}) == 1
    assert api.rows()["jobs"] == 1


# -- tenants and isolation -----------------------------------------------------------------------------------


def test_tenants_see_only_their_own_jobs(api: Api) -> None:
    r = api.http.post("/v1/tenants", json={"name": "alpha"}, headers=api.admin)
    assert r.status_code == 201
    a = r.json()
    assert a["name"] == "alpha" and a["token"].startswith("sl_")
    dup = api.http.post("/v1/tenants", json={"name": "alpha"}, headers=api.admin)
    assert dup.status_code == 409
    assert dup.json()["error"]["code"] == "exists"
    b = api.tenant("beta")

    a_job = api.submit(spec("a-job"), token=a["token"]).json()
    b_job = api.submit(spec("b-job"), token=b).json()
    assert a_job["tenant"] == a["id"]

    for method, path in (
        ("GET", f"/v1/jobs/{a_job['id']}"),
        ("DELETE", f"/v1/jobs/{a_job['id']}"),
        ("GET", f"/v1/jobs/{a_job['id']}/logs"),
    ):
        r = api.http.request(method, path, headers=bearer(b))
        assert r.status_code == 404, (method, path, r.text)  # not 403: another tenant's job does not exist for B
        assert r.json()["error"]["code"] == "not_found"
    assert api.job(a_job["id"], a["token"])["state"] == "queued"  # B's DELETE did not cancel it

    b_list = api.http.get("/v1/jobs", headers=bearer(b)).json()["jobs"]
    assert [j["id"] for j in b_list] == [b_job["id"]]
    a_list = api.http.get("/v1/jobs", headers=bearer(a["token"])).json()["jobs"]
    assert [j["id"] for j in a_list] == [a_job["id"]]
    admin_list = api.http.get("/v1/jobs", headers=api.admin).json()["jobs"]
    assert {j["id"] for j in admin_list} == {a_job["id"], b_job["id"]}
    assert api.job(a_job["id"])["name"] == "a-job"  # the admin sees any job

    # only the admin creates tenants
    r = api.http.post("/v1/tenants", json={"name": "gamma"}, headers=bearer(b))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"


def test_tenant_body_is_validated(api: Api) -> None:
    for body, where in (({"name": "has space"}, "name"), ({"name": "q", "max_devices": -1}, "max_devices")):
        r = api.http.post("/v1/tenants", json=body, headers=api.admin)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == where


BAD_AUTH = {
    "none": {},
    "empty": {"Authorization": "Bearer"},
    "garbage": {"Authorization": "Bearer garbage"},
    "unknown": {"Authorization": "Bearer sl_abcdef_not-the-secret"},
    "basic": {"Authorization": "Basic YWRtaW46YWRtaW4="},
}


def test_missing_or_bad_token_is_401(api: Api) -> None:
    # one service for all cases (a loop, not parameters): a fresh PostgreSQL database per case costs ~0.4 s
    for case, headers in BAD_AUTH.items():
        for method, path, body in (
            ("GET", "/v1/jobs", None),
            ("POST", "/v1/jobs", spec()),
            ("GET", "/v1/jobs/j_any", None),
            ("GET", "/v1/sites", None),
            ("POST", "/v1/quotes", spec()),
            ("POST", "/v1/tenants", {"name": "intruder"}),
        ):
            r = api.http.request(method, path, json=body, headers=headers)
            assert r.status_code == 401, (case, method, path, r.text)
            assert r.json()["error"]["code"] == "unauthorized", (case, method, path)
    assert api.rows()["jobs"] == 0


def test_a_forged_token_with_a_real_id_is_401(api: Api) -> None:
    _, token_id, _ = api.token.split("_", 2)
    r = api.http.get("/v1/jobs", headers=bearer(f"sl_{token_id}_forged-secret"))
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"


# -- bad input -----------------------------------------------------------------------------------------------

JSON = "application/json"
YAML = "application/yaml"


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


BAD_INPUT: list[tuple[str, bytes, str | None, int, str, str | None]] = [
    # id, body, content type, status, error code, field (None: not checked)
    ("malformed-json", b'{"name": "x", "compute": {', JSON, 422, "invalid_spec", None),
    ("malformed-yaml", b"name: [unclosed\ncompute: {walltime_h: 1}\n", YAML, 422, "invalid_spec", None),
    ("wrong-type", _json(spec(resources={"cpus": "many"})), JSON, 422, "invalid_spec", "resources.cpus"),
    ("unknown-key", _json(spec(colour="blue")), JSON, 422, "invalid_spec", "colour"),
    ("unknown-nested-key", _json(spec(resources={"gpus": 1})), JSON, 422, "invalid_spec", "resources.gpus"),
    ("negative-size", _json(spec(resources={"devices": -1})), JSON, 422, "invalid_spec", "resources.devices"),
    ("absurd-size", _json(spec(resources={"devices": 10_000_000})), JSON, 422, "invalid_spec", "resources.devices"),
    ("past-deadline", _json(spec(deadline="2020-01-01T00:00:00+00:00")), JSON, 422, "invalid_spec", "deadline"),
    (
        "unknown-data-site",
        _json(spec(data=[{"name": "d", "site": "nowhere", "size_gb": 1}])),
        JSON,
        422,
        "invalid_spec",
        "data[0].site",
    ),
    (
        "unknown-hardware",
        _json(spec(constraints={"hardware": ["nvidia-a999"]})),
        JSON,
        422,
        "invalid_spec",
        "constraints.hardware[0]",
    ),
    ("missing-compute", _json({"name": "x"}), JSON, 422, "invalid_spec", "compute"),
    ("not-a-mapping", b"[1, 2]", JSON, 422, "invalid_spec", None),
    ("empty-body", b"", None, 422, "invalid_spec", None),
    ("empty-json-body", b"", JSON, 422, "invalid_spec", None),
    ("not-utf8", b"name: \xff\xfe\ncompute: {walltime_h: 1}\n", YAML, 400, "invalid_body", None),
    ("too-large", b"#" * (1024 * 1024 + 1), YAML, 413, "too_large", None),
]


def test_bad_input_is_refused_and_writes_nothing(api: Api) -> None:
    # one service for all cases (a loop, not parameters): a fresh PostgreSQL database per case costs ~0.4 s
    before = api.rows()
    for case, body, ctype, status, code, where in BAD_INPUT:
        headers = {**api.admin, **({"Content-Type": ctype} if ctype else {})}
        for path in ("/v1/jobs", "/v1/quotes"):
            r = api.http.post(path, content=body, headers=headers)
            assert r.status_code == status, (case, path, r.text)
            err = r.json()["error"]
            assert err["code"] == code, (case, path, err)
            assert isinstance(err["message"], str) and err["message"], (case, path)
            if where is not None:
                assert err.get("field") == where, (case, path, err)
        assert api.rows() == before, case
    assert api.http.get("/v1/jobs", headers=api.admin).json()["jobs"] == []


def test_oversized_body_without_content_length_is_413(api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(1100):
            yield b"#" * 1024

    r = api.http.post("/v1/jobs", content=chunks(), headers={**api.admin, "Content-Type": YAML})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "too_large"
    assert api.rows()["jobs"] == 0


def test_problems_list_every_error_with_field_and_line(api: Api) -> None:
    body = "name: x\ncompute: {walltime_h: 1}\nresources:\n  cpus: many\n  devices: -1\n"
    r = api.http.post("/v1/jobs", content=body, headers={**api.admin, "Content-Type": YAML})
    assert r.status_code == 422
    problems = {p["field"]: p for p in r.json()["error"]["problems"]}
    assert set(problems) == {"resources.cpus", "resources.devices"}
    assert problems["resources.cpus"]["line"] == 4
    assert problems["resources.devices"]["line"] == 5


@pytest.mark.parametrize("ctype", [JSON, YAML])
def test_deeply_nested_body_is_a_client_error(api: Api, ctype: str) -> None:
    body = b"[" * 100_000 + b"]" * 100_000  # 200 KB, well under the body limit
    with TestClient(api.app, raise_server_exceptions=False) as client:
        r = client.post("/v1/jobs", content=body, headers={**api.admin, "Content-Type": ctype})
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])
    assert r.json()["error"]["code"]
    assert api.rows()["jobs"] == 0


def yaml_alias_bomb(levels: int, width: int = 10) -> bytes:
    """A few hundred bytes of YAML whose aliases expand to width**levels nodes."""
    doc = "name: bomb\ncompute: {walltime_h: 1}\nl0: &l0 [" + ",".join(["a"] * width) + "]\n"
    for i in range(1, levels):
        doc += f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * width) + "]\n"
    return doc.encode()


def test_yaml_alias_bomb_is_refused_quickly(api: Api) -> None:
    body = yaml_alias_bomb(6)  # 313 bytes, 10**6 nodes when expanded
    assert len(body) < 400
    t0 = time.perf_counter()
    r = api.http.post("/v1/jobs", content=body, headers={**api.admin, "Content-Type": YAML})
    elapsed = time.perf_counter() - t0
    assert r.status_code == 422  # unknown keys l0..l5: refused either way; the question is how fast
    assert elapsed < 0.25, f"{len(body)} bytes of YAML took {elapsed:.2f} s"


# -- quotas --------------------------------------------------------------------------------------------------


def test_max_queued_jobs(api: Api) -> None:
    token = api.tenant("queue-one", max_queued_jobs=1)
    first = api.submit(spec("q1"), token=token, **{"Idempotency-Key": "q1"})
    assert first.status_code == 201
    second = api.submit(spec("q2"), token=token)
    assert second.status_code == 429
    err = second.json()["error"]
    assert (err["code"], err["field"]) == ("quota_exceeded", "max_queued_jobs")
    # a retry of the first is a replay, whatever the quota says now
    replay = api.submit(spec("q1"), token=token, **{"Idempotency-Key": "q1"})
    assert (replay.status_code, replay.json()["id"]) == (200, first.json()["id"])
    assert api.rows()["jobs"] == 1
    # another tenant is not affected
    assert api.submit(spec("admin-job")).status_code == 201
    # once the queued job has left the queue, the tenant may queue again
    api.until_state(first.json()["id"])
    assert api.submit(spec("q3"), token=token).status_code == 201


def test_max_devices_holds_for_jobs_queued_together(api: Api) -> None:
    token = api.tenant("two-devices", max_devices=2)
    answers = [api.submit(spec(f"d{i}", "sleep 30", resources={"devices": 2}), token=token) for i in range(2)]
    assert answers[0].status_code == 201
    assert answers[1].status_code in (201, 429)  # refusing the second at once would be one way to keep the quota
    first = answers[0].json()["id"]
    api.until_state(first, "running")
    for _ in range(5):  # whatever the broker does next, the tenant never holds more than 2 devices
        api.tick()
        jobs = api.http.get("/v1/jobs", headers=bearer(token)).json()["jobs"]
        in_use = sum(j["devices"] for j in jobs if j["state"] in ("placed", "starting", "running"))
        assert in_use <= 2, [(j["name"], j["state"], j["site"], j["pool"]) for j in jobs]


def test_max_devices(api: Api) -> None:
    token = api.tenant("two-devices", max_devices=2)
    big = api.submit(spec("four", resources={"devices": 4}), token=token)
    assert big.status_code == 429
    err = big.json()["error"]
    assert (err["code"], err["field"]) == ("quota_exceeded", "resources.devices")
    assert api.rows()["jobs"] == 0

    two = api.submit(spec("two", "sleep 30", resources={"devices": 2}), token=token)
    assert two.status_code == 201
    running = api.until_state(two.json()["id"], "running")
    assert running["state"] == "running"
    assert running["site"] in ("local-ai", "local-west")  # a device job goes to an accelerator pool
    decision = running["decision"]
    assert decision["pool"] == f"{running['site']}/{running['pool']}"
    assert decision["runners_up"], decision  # three accelerator pools could take it
    assert decision["pool"] not in {r["pool"] for r in decision["runners_up"]}
    # its two devices are in use: one more is over the quota
    more = api.submit(spec("one", resources={"devices": 1}), token=token)
    assert more.status_code == 429
    assert more.json()["error"]["field"] == "resources.devices"
    assert api.http.delete(f"/v1/jobs/{two.json()['id']}", headers=bearer(token)).status_code == 200
    assert api.until_state(two.json()["id"])["state"] == "cancelled"
    assert api.submit(spec("one", resources={"devices": 1}), token=token).status_code == 201


def test_concurrent_submits_respect_max_queued_jobs(
    api: Api, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Submits racing each other under max_queued_jobs=1: one is queued, the others refused. The window between
    the count and the insert is widened here to make the race certain."""
    token = api.tenant("racer", max_queued_jobs=1)
    real = submissions._Usage.__init__

    def slow_count(*args: Any, **kw: Any) -> None:  # widen the window between the count and the insert
        real(*args, **kw)
        time.sleep(0.3)

    monkeypatch.setattr(submissions._Usage, "__init__", slow_count)
    results: list[int] = []
    barrier = threading.Barrier(3)

    def submit() -> None:
        with TestClient(api.app) as client:
            barrier.wait()
            results.append(client.post("/v1/jobs", json=spec("race"), headers=bearer(token)).status_code)

    threads = [threading.Thread(target=submit) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [201, 429, 429]
    assert api.rows()["jobs"] == 1


# -- cancel --------------------------------------------------------------------------------------------------


def test_cancel_a_queued_job_at_once(api: Api) -> None:
    job_id = api.submit(spec("to-cancel")).json()["id"]
    r = api.http.delete(f"/v1/jobs/{job_id}", headers=api.admin)
    assert r.status_code == 200
    assert r.json()["state"] == "cancelled"
    api.tick()
    job = api.job(job_id)
    assert job["state"] == "cancelled"
    assert job["attempt_list"] == []  # never placed
    again = api.http.delete(f"/v1/jobs/{job_id}", headers=api.admin)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_finished"


def test_cancel_a_running_job_stops_its_process(api: Api) -> None:
    job_id = api.submit(spec("sleeper", "sleep 30")).json()["id"]
    job = api.until_state(job_id, "running")
    assert job["state"] == "running"
    attempt = job["attempt_list"][0]
    pid_file = api.service.home / "sites" / attempt["site"] / "attempts" / attempt["id"] / "pid"
    deadline = time.monotonic() + 5
    while not pid_file.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    pgid = int(pid_file.read_text())
    assert group_alive(pgid)

    r = api.http.delete(f"/v1/jobs/{job_id}", headers=api.admin)
    assert r.status_code == 200
    assert r.json()["cancel_requested"] is True
    assert r.json()["state"] == "running"  # stopped by the broker, not by the request
    job = api.until_state(job_id, timeout=10)
    assert job["state"] == "cancelled"
    assert job["attempt_list"][0]["state"] == "cancelled"
    assert not group_alive(pgid)


def test_cancel_a_finished_job_is_409(api: Api) -> None:
    job_id = api.submit(spec()).json()["id"]
    assert api.until_state(job_id)["state"] == "succeeded"
    r = api.http.delete(f"/v1/jobs/{job_id}", headers=api.admin)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "already_finished"
    assert api.job(job_id)["state"] == "succeeded"


def test_unknown_job_is_404(api: Api) -> None:
    for method, path in (("GET", "/v1/jobs/j_nope"), ("DELETE", "/v1/jobs/j_nope"), ("GET", "/v1/jobs/j_nope/logs")):
        r = api.http.request(method, path, headers=api.admin)
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"


# -- list ----------------------------------------------------------------------------------------------------


def test_list_filters_and_pages(api: Api) -> None:
    ok = api.submit(spec("ok")).json()["id"]
    bad = api.submit(spec("bad", "exit 3")).json()["id"]
    assert api.until_state(ok)["state"] == "succeeded"
    assert api.until_state(bad)["state"] == "failed"
    queued = [api.submit(spec("page")).json()["id"] for _ in range(5)]  # no tick: they stay queued
    everything = {ok, bad, *queued}

    def ids(**params: Any) -> list[str]:
        r = api.http.get("/v1/jobs", params=params, headers=api.admin)
        assert r.status_code == 200, r.text
        return [j["id"] for j in r.json()["jobs"]]

    assert set(ids(state=["succeeded", "failed"])) == {ok, bad}
    assert ids(state="failed") == [bad]
    assert set(ids(state="queued")) == set(queued)
    assert set(ids(name="page")) == set(queued)
    assert ids(name="page", state="succeeded") == []
    assert set(ids(site="local-hpc")) == {ok, bad}
    assert ids() == list(reversed([ok, bad, *queued]))  # newest first

    seen: list[str] = []
    pages = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.http.get("/v1/jobs", params=params, headers=api.admin).json()
        pages.append(len(page["jobs"]))
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 10
    assert pages == [3, 3, 1]
    assert len(seen) == len(set(seen)) == len(everything)
    assert set(seen) == everything
    assert seen == ids()  # the pages in order are the whole list in order

    r = api.http.get("/v1/jobs", params={"state": ["queued", "sleeping"]}, headers=api.admin)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "state"
    assert "sleeping" in r.json()["error"]["message"]
    r = api.http.get("/v1/jobs", params={"limit": 0}, headers=api.admin)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "limit")
    r = api.http.get("/v1/jobs", params={"cursor": "j_0000000000000000"}, headers=api.admin)
    assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["field"]) == (400, "invalid_cursor", "cursor")


# -- network and quotes --------------------------------------------------------------------------------------


def test_sites(api: Api) -> None:
    r = api.http.get("/v1/sites", headers=api.admin)
    assert r.status_code == 200
    sites = {s["id"]: s for s in r.json()["sites"]}
    assert set(sites) == set(LOCAL_SITES)
    for site_id, pools in LOCAL_SITES.items():
        site = sites[site_id]
        assert site["health"] == "healthy"
        assert site["backend"] == "local"
        assert {p["id"] for p in site["pools"]} == pools
        assert site["price_cny_per_kwh_now"] > 0
        assert site["carbon_kg_per_kwh_now"] > 0
        for pool in site["pools"]:
            assert pool["devices_free"] == pool["devices_total"]  # nothing runs
            assert pool["cpus_free"] == pool["cpus_total"] > 0
            assert pool["memory_gb_free"] > 0
            assert pool["price"]
    assert sites["local-ai"]["pools"][0]["devices_total"] == 4
    assert sites["local-west"]["green_share"] == 0.5


def test_sites_show_capacity_in_use(api: Api) -> None:
    job_id = api.submit(spec("hold", "sleep 30", resources={"cpus": 8})).json()["id"]
    assert api.until_state(job_id, "running")["state"] == "running"
    sites = {s["id"]: s for s in api.http.get("/v1/sites", headers=api.admin).json()["sites"]}
    [cpu] = sites["local-hpc"]["pools"]
    assert cpu["cpus_free"] == cpu["cpus_total"] - 8
    api.http.delete(f"/v1/jobs/{job_id}", headers=api.admin)
    assert api.until_state(job_id)["state"] == "cancelled"


def test_quote_returns_candidates_and_a_decision_and_stores_nothing(api: Api) -> None:
    before = api.rows()
    r = api.http.post("/v1/quotes", json=spec("quote-me", resources={"devices": 1}), headers=api.admin)
    assert r.status_code == 200, r.text
    out = r.json()
    pools = {(c["site"], c["pool"]) for c in out["candidates"]}
    assert pools == {(s, p) for s, ps in LOCAL_SITES.items() for p in ps}
    for c in out["candidates"]:
        for key in ("site", "pool", "feasible", "runtime_s", "cost_cny", "carbon_kg"):
            assert key in c, (key, c)
        if c["feasible"]:
            assert c["runtime_s"] > 0 and c["cost_cny"] >= 0 and c["carbon_kg"] >= 0
    feasible = {(c["site"], c["pool"]) for c in out["candidates"] if c["feasible"]}
    assert ("local-hpc", "cpu") not in feasible  # a device job cannot run on the CPU pool
    assert feasible
    decision = out["decision"]
    assert decision["action"] == "place"
    assert tuple(decision["pool"].split("/")) in feasible
    assert "why" in decision and "runners_up" in decision
    assert api.rows() == before
    assert api.http.get("/v1/jobs", headers=api.admin).json()["jobs"] == []


# -- health, metrics, schema ---------------------------------------------------------------------------------


def test_healthz_metrics_openapi(api: Api) -> None:
    health = api.http.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert set(health.json()["sites"]) == set(LOCAL_SITES)

    api.submit(spec("counted"))
    metrics = api.http.get("/metrics")
    assert metrics.status_code == 200
    text = metrics.text
    assert "suanli_jobs" in text
    assert 'suanli_jobs{state="queued"} 1.0' in text
    assert "suanli_http_requests" in text
    assert 'suanli_http_requests_total{method="POST",status="201"} 1.0' in text

    schema = api.http.get("/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ("/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/logs", "/v1/sites", "/v1/quotes", "/v1/tenants"):
        assert path in paths, path


def test_unknown_route_and_method_use_the_error_format(api: Api) -> None:
    r = api.http.get("/v1/nothing", headers=api.admin)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    r = api.http.put("/v1/jobs", headers=api.admin)
    assert (r.status_code, r.json()["error"]["code"]) == (405, "method_not_allowed")


# -- the Python client ---------------------------------------------------------------------------------------


def test_python_client(api: Api) -> None:
    client = Client(url="http://testserver", token=api.token)
    client._http.close()
    client._http = TestClient(api.app, headers=bearer(api.token))
    api.start_broker()
    try:
        job = client.submit(spec("via-client", "echo one; echo two"), idempotency_key="c-1")
        assert job["state"] == "queued"
        assert client.submit(spec("via-client", "echo one; echo two"), idempotency_key="c-1")["id"] == job["id"]
        seen: list[str] = []
        done = client.wait(job["id"], timeout=15, poll_s=0.05, on_update=lambda j: seen.append(j["state"]))
        assert done["state"] == "succeeded"
        assert seen[-1] == "succeeded"
        assert client.job(job["id"])["usage"]["runtime_s"] >= 0
        assert client.logs(job["id"]) == "one\ntwo\n"
        assert client.logs(job["id"], tail=1) == "two\n"
        assert [j["id"] for j in client.jobs(state=["succeeded"])["jobs"]] == [job["id"]]

        with pytest.raises(ApiError) as exc:
            client.cancel(job["id"])
        assert (exc.value.status, exc.value.code) == (409, "already_finished")

        with pytest.raises(ApiError) as exc:
            client.submit(spec(resources={"cpus": "many"}))
        assert (exc.value.status, exc.value.code, exc.value.field) == (422, "invalid_spec", "resources.cpus")
        assert "resources.cpus" in str(exc.value)

        with pytest.raises(ApiError) as exc:
            client.job("j_nope")
        assert (exc.value.status, exc.value.code, exc.value.field) == (404, "not_found", None)

        sleeper = client.submit(spec("client-sleeper", "sleep 30"))
        deadline = time.monotonic() + 15
        while client.job(sleeper["id"])["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.cancel(sleeper["id"])["cancel_requested"] is True
        assert client.wait(sleeper["id"], timeout=15, poll_s=0.05)["state"] == "cancelled"

        later = client.submit(spec("later", "sleep 30"))
        with pytest.raises(TimeoutError):
            client.wait(later["id"], timeout=0)
        client.cancel(later["id"])

        assert {s["id"] for s in client.sites()} == set(LOCAL_SITES)
        assert client.quote(spec())["decision"]["action"] == "place"
        assert client.health()["status"] == "ok"
        created = client.create_tenant("from-client", max_devices=1)
        assert created["max_devices"] == 1
        with pytest.raises(ApiError) as exc:
            client.create_tenant("from-client")
        assert (exc.value.status, exc.value.code, exc.value.field) == (409, "exists", "name")
    finally:
        client._http.close()

    stranger = Client(url="http://testserver", token="sl_x_y")
    stranger._http.close()
    stranger._http = TestClient(api.app, headers=bearer("sl_x_y"))
    with pytest.raises(ApiError) as exc:
        stranger.jobs()
    assert (exc.value.status, exc.value.code) == (401, "unauthorized")
    stranger.close()


def test_an_attempt_after_a_lost_one_resumes_from_the_checkpoint(api: Api, tmp_path: Path) -> None:
    """A job that declares checkpoint.path gets it in every attempt, and SUANLI_RESUME=1 in the attempt that follows
    one its site lost (here: killed from outside, as a node failure would)."""
    ckpt = tmp_path / "ckpt"
    run = 'echo "dir=$SUANLI_CHECKPOINT_DIR resume=${SUANLI_RESUME:-0}" >> "$SUANLI_CHECKPOINT_DIR.log"; sleep 30'
    job_id = api.submit(spec("resumes", run, preemptible=True, checkpoint={"interval_min": 5, "path": str(ckpt)}))
    job_id = job_id.json()["id"]
    first = api.until_state(job_id, "running")
    attempt = first["attempts"]
    site = api.job(job_id)["attempt_list"][0]["site"]
    pid_file = api.service.state.backends[site].root / "attempts" / f"{job_id}-a{attempt}" / "pid"
    os.killpg(int(pid_file.read_text()), signal.SIGKILL)
    second = api.until(job_id, lambda j: j["attempts"] == 2 and j["state"] == "running", timeout=20)
    assert second["attempt_list"][0]["state"] == "lost"
    log = Path(f"{ckpt}.log")
    api.until(job_id, lambda j: log.exists() and len(log.read_text().splitlines()) == 2, timeout=10)
    assert log.read_text().splitlines() == [f"dir={ckpt} resume=0", f"dir={ckpt} resume=1"]
    api.http.delete(f"/v1/jobs/{job_id}", headers=api.admin)
    api.until_state(job_id, "cancelled")


def test_a_job_the_site_cancels_on_its_own_is_placed_again(api: Api) -> None:
    """Only the tenant cancels a job; a site that stops one by itself (an operator's scancel, a Slurm controller
    refusing a job id after a crash) has lost it, and it is placed again."""
    job_id = api.submit(spec("site-cancelled", "sleep 30")).json()["id"]
    api.until_state(job_id, "running")
    first = api.job(job_id)["attempt_list"][0]
    api.service.state.backends[first["site"]].cancel(first["id"])
    again = api.until(job_id, lambda j: j["attempts"] == 2 and j["state"] == "running", timeout=20)
    lost = again["attempt_list"][0]
    assert lost["state"] == "lost"
    assert any("cancelled attempt" in ((e["data"] or {}).get("reason") or "") for e in again["events"])
    api.http.delete(f"/v1/jobs/{job_id}", headers=api.admin)
    assert api.until_state(job_id, "cancelled")["state"] == "cancelled"


def test_an_attempt_a_site_runs_that_the_store_does_not_know_is_reported_once(api: Api) -> None:
    backend = api.service.state.backends["local-hpc"]
    backend.submit(LaunchSpec(attempt_id="intruder", job_id="nobody", pool="cpu", hardware="x", run="sleep 30"))
    try:
        for _ in range(3):
            api.service.state.broker._last_stray_check = float("-inf")  # each tick compares, as every 30 s
            api.tick()
        with api.service.state.store.read() as s:
            events = [json.loads(e.data) for e in s.scalars(select(Event).where(Event.kind == "stray-attempt"))]
        assert events == [{"site": "local-hpc", "attempt": "intruder", "store_state": None}]
        assert backend.status("intruder").state.value == "running"  # reported, not touched
    finally:
        backend.cancel("intruder")
