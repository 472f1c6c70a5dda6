"""`suanli.Client`: the Python client for notebooks and scripts (the CLI uses it too).

from suanli import Client
c = Client()                       # SUANLI_URL and SUANLI_TOKEN, else the local `suanli up` and its admin token
job = c.submit("examples/jobs/etl-general.yaml")
c.wait(job["id"])
print(c.logs(job["id"]), c.job(job["id"])["usage"])
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from suanli.errors import SuanliError

DEFAULT_URL = "http://127.0.0.1:8470"
TERMINAL = ("succeeded", "failed", "cancelled", "rejected")


class ApiError(SuanliError):
    """The server answered with an error; `status`, `code`, `field` and `message` say what and where."""

    def __init__(
        self, status: int, code: str, message: str, field: str | None = None, body: dict[str, Any] | None = None
    ) -> None:
        self.status, self.code, self.message, self.field, self.body = status, code, message, field, body or {}
        super().__init__(message + (f" (field: {field})" if field else ""))


class ConnectError(SuanliError):
    pass


def _home() -> Path:
    return Path(os.environ.get("SUANLI_HOME") or Path.cwd() / ".suanli")


def default_url() -> str:
    if os.environ.get("SUANLI_URL"):
        return os.environ["SUANLI_URL"].rstrip("/")
    written = _home() / "url"
    return written.read_text().strip() if written.exists() else DEFAULT_URL


def default_token() -> str | None:
    if os.environ.get("SUANLI_TOKEN"):
        return os.environ["SUANLI_TOKEN"].strip()
    path = _home() / "admin.token"
    return path.read_text().strip() if path.exists() else None


class Client:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = (url or default_url()).rstrip("/")
        self.token = token or default_token()
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = self._http.request(method, path, **kw)
        except httpx.ConnectError:
            raise ConnectError(
                f"cannot reach suanli at {self.url}: is `suanli up` running? (set SUANLI_URL to point elsewhere)"
            ) from None
        if r.status_code >= 400:
            try:
                body = r.json()
                err = body.get("error", {})
            except (json.JSONDecodeError, AttributeError):
                body, err = {}, {}
            raise ApiError(
                r.status_code,
                err.get("code", "error"),
                err.get("message", r.text or r.reason_phrase),
                err.get("field"),
                body,
            )
        return r

    @staticmethod
    def _spec_body(spec: str | Path | dict[str, Any]) -> dict[str, Any]:
        """A job spec as a dict: from a file (validated here first, so errors name the file and line)."""
        if isinstance(spec, dict):
            return spec
        from suanli.spec import load_job

        return json.loads(load_job(str(spec)).model_dump_json(exclude_none=True))

    # -- jobs ----------------------------------------------------------------------------------------------

    def submit(self, spec: str | Path | dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._request("POST", "/v1/jobs", json=self._spec_body(spec), headers=headers).json()

    def jobs(
        self,
        state: list[str] | None = None,
        site: str | None = None,
        name: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        for k, v in (("site", site), ("name", name), ("cursor", cursor)):
            if v:
                params[k] = v
        return self._request("GET", "/v1/jobs", params=params).json()

    def job(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/jobs/{job_id}").json()

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._request("DELETE", f"/v1/jobs/{job_id}").json()

    def logs(self, job_id: str, tail: int | None = None) -> str:
        return self._request("GET", f"/v1/jobs/{job_id}/logs", params={"tail": tail} if tail else None).text

    def follow(self, job_id: str, tail: int | None = None) -> Iterator[str]:
        params: dict[str, Any] = {"follow": "true"}
        if tail:
            params["tail"] = tail
        try:
            with self._http.stream("GET", f"/v1/jobs/{job_id}/logs", params=params, timeout=None) as r:
                if r.status_code >= 400:
                    r.read()
                    self._raise(r)
                yield from r.iter_text()
        except httpx.ConnectError:
            raise ConnectError(f"cannot reach suanli at {self.url}") from None

    def _raise(self, r: httpx.Response) -> None:
        err = r.json().get("error", {})
        raise ApiError(r.status_code, err.get("code", "error"), err.get("message", r.text), err.get("field"))

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        poll_s: float = 0.25,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the job ends (or the timeout passes); on_update sees every state it passes through."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            job = self.job(job_id)
            if on_update and (job["state"], job.get("reason")) != last:
                on_update(job)
                last = (job["state"], job.get("reason"))
            if job["state"] in TERMINAL:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job['state']} after {timeout} s")
            time.sleep(poll_s)

    # -- network and admin ---------------------------------------------------------------------------------

    def sites(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/sites").json()["sites"]

    def quote(self, spec: str | Path | dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "/v1/quotes", json=self._spec_body(spec)).json()

    def create_tenant(
        self, name: str, max_devices: int | None = None, max_queued_jobs: int | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name}
        if max_devices is not None:
            body["max_devices"] = max_devices
        if max_queued_jobs is not None:
            body["max_queued_jobs"] = max_queued_jobs
        return self._request("POST", "/v1/tenants", json=body).json()

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/healthz").json()
