"""Run attempts as Ray jobs through the Jobs API of a Ray cluster's dashboard.

Each attempt is one Ray job whose submission id is the attempt id, so a second submit is refused by Ray ("already
exists") and counts as done: an attempt never runs twice, also across broker restarts. The job asks Ray for the
attempt's CPUs, memory and `devices` GPUs, plus as many units of the pool's accelerator resource (a custom
resource such as GPU_A100, from the site spec's `accelerator_resources`), so it lands on that pool's nodes and
Ray sets CUDA_VISIBLE_DEVICES. A time limit runs the command under `timeout` (exit code 124 when it is reached).

Ray has two gaps the broker cannot live with, filled here:
- a job whose request no node can ever hold stays PENDING for good (until the Jobs API's start timeout, 15 min);
  `status` compares the request (kept in the job's metadata) with every live node's totals and reports LOST,
  naming the resource, so the broker places the job elsewhere;
- `stop_job` cannot stop a PENDING job (it queues a call on a supervisor actor that was never scheduled), so
  such a job would start later. Both cases submit a small "stopper" job, `<attempt id>.stop`, that kills the
  job's supervisor actor; its metadata records why (cancel or infeasible), which is how `status` later tells a
  cancelled job from a lost one, from Ray's state alone.

Only the dashboard's HTTP API is used (no driver connects from the broker), every request with a timeout, so an
unreachable head raises BackendError(retryable=True) within `timeout_s`."""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
import time
from typing import Any

import httpx

from suanli.backends.base import AttemptState, AttemptStatus, BackendError, LaunchSpec, PoolCapacity, pool_of, tail
from suanli.spec.network import Pool
from suanli.spec.network import RayBackend as RayConfig

GIB = 2**30
STOPPER_SUFFIX = ".stop"
ROLE_ATTEMPT = "attempt"
ROLE_STOPPER = "stopper"

# Kills the supervisor actor of job $1 (a pending one cannot be stopped any other way); run as a Ray job, so its
# driver finds the cluster through RAY_ADDRESS, which Ray sets for job entrypoints. The actor's name and
# namespace come from the cluster's own Ray, not from this process's.
_STOPPER = (
    "python -c 'import sys, ray\n"
    "from ray.dashboard.modules.job.common import JOB_ACTOR_NAME_TEMPLATE as NAME\n"
    "from ray.dashboard.modules.job.common import SUPERVISOR_ACTOR_RAY_NAMESPACE as NS\n"
    "ray.init(log_to_driver=False)\n"
    "try:\n"
    "    actor = ray.get_actor(NAME.format(job_id=sys.argv[1]), namespace=NS)\n"
    "except ValueError:\n"
    '    print("no supervisor actor: the job has ended"); sys.exit(0)\n'
    'ray.kill(actor, no_restart=True); print("killed the supervisor of", sys.argv[1])\' '
)

# Lines Ray itself writes into a job's log, around the job's own output.
_RAY_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\tINFO job_manager\.py:\d+ -- .*\n", re.MULTILINE)
_EXIT_CODE_IN_MESSAGE = re.compile(r"command failed with exit code (-?\d+)")
_COMMAND_FAILED = (None, "JOB_ENTRYPOINT_COMMAND_ERROR")  # error_type of a job whose command exited non-zero
_STATUS_CODE = re.compile(r"status code (\d{3})")


class _HttpError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"HTTP {code}: {text}")
        self.code = code
        self.text = text


class RayBackend:
    def __init__(self, site_id: str, pools: list[Pool], config: RayConfig, *, cache_s: float = 1.0) -> None:
        unknown = sorted(set(config.accelerator_resources) - {p.id for p in pools})
        if unknown:
            raise ValueError(f"site {site_id!r}: accelerator_resources names pools it does not have: {unknown}")
        self.site = site_id
        self.pools = {p.id: p for p in pools}
        self.config = config
        self.address = config.address.rstrip("/")
        self._cache_s = cache_s
        self._client: Any = None  # JobSubmissionClient, made on first use: its constructor calls the head
        self._lock = threading.Lock()
        self._nodes: tuple[float, list[dict[str, Any]]] | None = None  # (fetched at, live nodes)
        self._stoppers: set[str] = set()  # attempts whose stopper this process has already submitted

    # -- Backend protocol --------------------------------------------------------------------------------------

    def submit(self, spec: LaunchSpec) -> None:
        pool = pool_of(self.pools, self.site, spec.pool)
        request = self._request(pool, spec)
        env = {
            **spec.env,
            "SUANLI_JOB_ID": spec.job_id,
            "SUANLI_ATTEMPT_ID": spec.attempt_id,
            "SUANLI_POOL": spec.pool,
            "OMP_NUM_THREADS": str(spec.cpus),
        }
        metadata = {
            "suanli_role": ROLE_ATTEMPT,
            "suanli_site": self.site,
            "suanli_pool": spec.pool,
            "suanli_job_id": spec.job_id,
            "suanli_attempt_id": spec.attempt_id,
            "suanli_request": json.dumps(request, sort_keys=True),  # the Jobs API does not give it back
        }
        custom = {k: v for k, v in request.items() if k not in ("CPU", "GPU", "memory")}
        try:
            self._jobs(
                "submit_job",
                entrypoint=_entrypoint(spec),
                submission_id=spec.attempt_id,
                entrypoint_num_cpus=request.get("CPU", 0),
                entrypoint_num_gpus=request.get("GPU", 0),
                entrypoint_memory=int(request.get("memory", 0)),  # the client takes bytes as an int only
                entrypoint_resources=custom or None,
                runtime_env={"env_vars": env},
                metadata=metadata,
            )
        except _HttpError as exc:
            if "already exists" in exc.text:
                return  # submitted before (by us, or by a broker that died after sending it): never again
            raise BackendError(
                f"Ray refused attempt {spec.attempt_id}: {_first_line(exc.text)}", retryable=exc.code >= 500
            ) from exc

    def status(self, attempt_id: str) -> AttemptStatus:
        info = self._info(attempt_id)
        if info is None:
            return AttemptStatus(AttemptState.LOST, message="unknown to the Ray cluster")
        started = info.start_time / 1000 if info.start_time else None
        finished = info.end_time / 1000 if info.end_time else None
        state = str(info.status.value if hasattr(info.status, "value") else info.status)
        if state == "SUCCEEDED":
            return AttemptStatus(AttemptState.SUCCEEDED, exit_code=0, started_at=started, finished_at=finished)
        if state == "RUNNING":
            return AttemptStatus(AttemptState.RUNNING, started_at=started)
        if state == "PENDING":
            why = self._infeasible(info)
            if why is None:
                return AttemptStatus(AttemptState.PENDING, started_at=started)
            self._stop_pending(attempt_id, "infeasible", why)
            return AttemptStatus(AttemptState.LOST, message=why)
        code = _exit_code(info)
        # Only the entrypoint's own failure carries its exit code; a supervisor that died (our stopper) does not.
        if state == "FAILED" and code is not None and getattr(info, "error_type", None) in _COMMAND_FAILED:
            return AttemptStatus(AttemptState.FAILED, exit_code=code, started_at=started, finished_at=finished)
        # STOPPED, or FAILED without an exit code (the supervisor died or could not start): our stopper says why.
        stopper = self._info(attempt_id + STOPPER_SUFFIX)
        meta = (stopper.metadata or {}) if stopper is not None else {}
        if meta.get("suanli_reason") == "infeasible":
            return AttemptStatus(AttemptState.LOST, finished_at=finished, message=meta.get("suanli_message", ""))
        if state == "STOPPED" or meta.get("suanli_reason") == "cancel":
            return AttemptStatus(AttemptState.CANCELLED, exit_code=code, started_at=started, finished_at=finished)
        return AttemptStatus(
            AttemptState.LOST,
            started_at=started,
            finished_at=finished,
            message=f"Ray: {info.error_type or 'FAILED'}: {_first_line(info.message or '')}",
        )

    def cancel(self, attempt_id: str) -> None:
        info = self._info(attempt_id)
        if info is None:
            return
        state = str(info.status.value if hasattr(info.status, "value") else info.status)
        if state in ("SUCCEEDED", "FAILED", "STOPPED"):
            return
        try:
            self._jobs("stop_job", attempt_id)
        except _HttpError as exc:
            if exc.code != 404:
                raise BackendError(f"Ray could not stop {attempt_id}: {_first_line(exc.text)}") from exc
        if state == "PENDING":  # stop_job alone would let it start once resources free up
            self._stop_pending(attempt_id, "cancel", "cancelled while pending")

    def logs(self, attempt_id: str, tail_lines: int | None = None) -> str:
        info = self._info(attempt_id)
        if info is None:
            raise BackendError(f"unknown attempt {attempt_id!r}", retryable=False)
        try:
            text = self._jobs("get_job_logs", attempt_id)
        except _HttpError as exc:
            raise BackendError(f"Ray has no logs for {attempt_id}: {_first_line(exc.text)}", exc.code >= 500) from exc
        # Ray's own lines ("Runtime env is setting up.", "Running entrypoint for job ...") are not the job's.
        text = _RAY_LOG_LINE.sub("", text)
        text = text.replace(f"Running entrypoint for job {attempt_id}: {info.entrypoint}\n", "", 1)
        return tail(text, tail_lines)

    def capacity(self) -> list[PoolCapacity]:
        nodes = self._live_nodes(fresh=True)
        used = self._usage_by_node()
        result = []
        for pool in self.pools.values():
            resource = self.config.accelerator_resources.get(pool.id)
            total = {"dev": 0.0, "cpu": 0.0, "mem": 0.0}
            free = dict(total)
            for node in nodes:
                res = node.get("resources_total") or {}
                if resource is not None and not res.get(resource):
                    continue  # not one of this pool's nodes
                node_used = used.get(node.get("node_id", ""), {})
                if resource is None:
                    total["dev"] += res.get("GPU", 0.0)
                    free["dev"] += _free(res, node_used, "GPU")
                else:  # a job takes both the pool's resource and GPUs: the scarcer of the two bounds it
                    total["dev"] += min(res.get(resource, 0.0), res.get("GPU", 0.0))
                    free["dev"] += min(_free(res, node_used, resource), _free(res, node_used, "GPU"))
                total["cpu"] += res.get("CPU", 0.0)
                free["cpu"] += _free(res, node_used, "CPU")
                total["mem"] += res.get("memory", 0.0) / GIB
                free["mem"] += _free(res, node_used, "memory") / GIB
            result.append(
                PoolCapacity(
                    pool=pool.id,
                    devices_total=int(total["dev"]),
                    devices_free=int(free["dev"]),
                    cpus_total=int(total["cpu"]),
                    cpus_free=int(free["cpu"]),
                    memory_gb_total=round(total["mem"], 3),
                    memory_gb_free=round(free["mem"], 3),
                )
            )
        return result

    def attempts(self) -> list[str]:
        jobs = self._jobs("list_jobs")
        out = []
        for job in jobs:
            meta = job.metadata or {}
            state = str(job.status.value if hasattr(job.status, "value") else job.status)
            if (
                meta.get("suanli_role") == ROLE_ATTEMPT
                and meta.get("suanli_site") == self.site
                and state in ("PENDING", "RUNNING")
                and job.submission_id
            ):
                out.append(job.submission_id)
        return sorted(out)

    # -- internals ---------------------------------------------------------------------------------------------

    def _request(self, pool: Pool, spec: LaunchSpec) -> dict[str, float]:
        """Ray resources for one attempt: CPU, memory (bytes), GPU and the pool's accelerator resource."""
        request: dict[str, float] = {"CPU": float(spec.cpus)}
        if spec.memory_gb > 0:
            request["memory"] = float(int(spec.memory_gb * GIB))
        if spec.devices > 0:
            request["GPU"] = float(spec.devices)
            resource = self.config.accelerator_resources.get(pool.id)
            if resource is not None:
                request[resource] = float(spec.devices)
        return request

    def _infeasible(self, info: Any) -> str | None:
        """Why no live node can ever hold the job's request, or None if one can (or we cannot tell)."""
        if info.start_time and time.time() - info.start_time / 1000 < self.config.infeasible_after_s:
            return None
        try:
            request = json.loads((info.metadata or {}).get("suanli_request", "{}"))
        except ValueError:
            return None
        request = {k: float(v) for k, v in request.items() if float(v) > 0}
        nodes = self._live_nodes()
        if not request or not nodes:
            return None  # no nodes at all: the head is restarting, not a verdict on the job
        totals = [n.get("resources_total") or {} for n in nodes]
        if any(all(t.get(k, 0.0) >= v for k, v in request.items()) for t in totals):
            return None
        short = []
        for name, amount in sorted(request.items()):
            most = max(t.get(name, 0.0) for t in totals)
            if amount > most:
                have = "no node has any" if most == 0 else f"the largest node has {_amount(name, most)}"
                short.append(f"{_amount(name, amount)} {name} asked, {have}")
        if not short:
            short.append("no single node has all of " + ", ".join(f"{_amount(k, v)} {k}" for k, v in request.items()))
        return f"the Ray cluster can never hold this request: {'; '.join(short)}"

    def _stop_pending(self, attempt_id: str, reason: str, message: str) -> None:
        """Submit the stopper job that kills a pending job's supervisor actor (idempotent, by its id)."""
        if attempt_id in self._stoppers:
            return
        with contextlib.suppress(_HttpError):  # harmless, and enough should the supervisor start meanwhile
            self._jobs("stop_job", attempt_id)
        try:
            self._jobs(
                "submit_job",
                entrypoint=_STOPPER + _shell_quote(attempt_id),
                submission_id=attempt_id + STOPPER_SUFFIX,
                entrypoint_num_cpus=0,  # must run on a full cluster too
                metadata={
                    "suanli_role": ROLE_STOPPER,
                    "suanli_site": self.site,
                    "suanli_attempt_id": attempt_id,
                    "suanli_reason": reason,
                    "suanli_message": message,
                },
            )
        except _HttpError as exc:
            if "already exists" not in exc.text:
                raise BackendError(f"Ray could not stop pending {attempt_id}: {_first_line(exc.text)}") from exc
        self._stoppers.add(attempt_id)

    def _info(self, submission_id: str) -> Any:
        """The job's JobDetails, or None when Ray has no such job."""
        try:
            return self._jobs("get_job_info", submission_id)
        except _HttpError as exc:
            if exc.code == 404:
                return None
            raise BackendError(f"Ray: job {submission_id}: {_first_line(exc.text)}", exc.code >= 500) from exc

    def _jobs(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a JobSubmissionClient method; HTTP errors come back as _HttpError, unreachable as BackendError."""
        try:
            return getattr(self._jobs_client(), method)(*args, **kwargs)
        except RuntimeError as exc:  # the client's "Request failed with status code N: ..."
            m = _STATUS_CODE.search(str(exc))
            if m is None:
                raise BackendError(f"Ray at {self.address}: {exc}", retryable=True) from exc
            raise _HttpError(int(m.group(1)), str(exc).split(": ", 1)[-1]) from exc
        except OSError as exc:  # requests' errors (RequestException is an OSError) and the client's ConnectionError
            raise BackendError(f"Ray at {self.address} unreachable: {exc}", retryable=True) from exc
        except (TypeError, ValueError) as exc:  # the client's own checks of what we pass it
            raise BackendError(f"Ray client refused {method}: {exc}", retryable=False) from exc

    def _jobs_client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    self._client = _timed_client(self.address, self.config.timeout_s)  # may raise: retried next call
                except ImportError as exc:
                    raise BackendError(
                        f"site {self.site!r} runs on Ray, but Ray's job client is not installed ({exc}); install "
                        "suanli[ray] (ray[default])",
                        retryable=False,
                    ) from exc
            return self._client

    def _get(self, path: str) -> Any:
        try:
            r = httpx.get(self.address + path, timeout=self.config.timeout_s)
        except httpx.HTTPError as exc:
            raise BackendError(f"Ray at {self.address} unreachable: {exc}", retryable=True) from exc
        if r.status_code != 200:
            raise BackendError(f"Ray dashboard {path}: HTTP {r.status_code}: {_first_line(r.text)}", retryable=True)
        try:
            return r.json()
        except ValueError as exc:
            raise BackendError(f"Ray dashboard {path}: not JSON: {_first_line(r.text)}", retryable=True) from exc

    def _live_nodes(self, fresh: bool = False) -> list[dict[str, Any]]:
        """Alive nodes with their total resources (the state API), cached for `cache_s`."""
        now = time.monotonic()
        if not fresh and self._nodes is not None and now - self._nodes[0] < self._cache_s:
            return self._nodes[1]
        body = self._get("/api/v0/nodes?limit=10000&detail=false")
        rows = ((body.get("data") or {}).get("result") or {}).get("result") or []
        nodes = [n for n in rows if n.get("state") == "ALIVE"]
        self._nodes = (now, nodes)
        return nodes

    def _usage_by_node(self) -> dict[str, dict[str, float]]:
        """Resources in use per node id, from the autoscaler's report (refreshed by Ray every few seconds).

        The dashboard camel-cases the report's keys, resource names included (GPU_A100 -> GPUA100); they are
        mapped back through the names the nodes report."""
        body = self._get("/api/cluster_status")
        report = (((body.get("data") or {}).get("clusterStatus") or {}).get("loadMetricsReport")) or {}
        by_node = report.get("usageByNode") or {}
        names = {_camel(k): k for n in self._live_nodes() for k in (n.get("resources_total") or {})}
        out: dict[str, dict[str, float]] = {}
        for node_id, usage in by_node.items():
            out[node_id] = {names.get(k, k): float(v[0]) for k, v in usage.items() if isinstance(v, list) and v}
        return out


def _timed_client(address: str, timeout_s: float) -> Any:
    """A JobSubmissionClient whose every request (its constructor's version check too) has a timeout: the stock
    client sends them without one, so a head that accepts connections but never answers would hang the broker."""
    from ray.job_submission import JobSubmissionClient

    class _TimedClient(JobSubmissionClient):  # type: ignore[misc]
        def __init__(self, address: str, timeout_s: float) -> None:
            self._suanli_timeout_s = timeout_s
            super().__init__(address)

        def _do_request(self, method: str, endpoint: str, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", self._suanli_timeout_s)
            return super()._do_request(method, endpoint, **kwargs)

    return _TimedClient(address, timeout_s)


def _entrypoint(spec: LaunchSpec) -> str:
    """The job's command, watched (see _WATCH); with a time limit, under coreutils `timeout` (Ray has none): exit
    124 when it ran out, SIGKILL 30 s after the SIGTERM if it ignores that."""
    command = spec.run
    if spec.time_limit_s is not None:
        seconds = max(1, math.ceil(spec.time_limit_s))  # never cut a job short
        command = f"exec timeout --kill-after=30 {seconds} /bin/sh -c {_shell_quote(spec.run)}"
    return _WATCH + f"exec /bin/sh -c {_shell_quote(command)}"


# When the Ray head or the node's raylet dies, the job's supervisor dies with it, but the entrypoint it started
# lives on, orphaned, and would finish its work while the broker runs the job again elsewhere. A small watch
# beside the entrypoint (same process group, which the entrypoint leads) kills the group once the entrypoint's
# parent, the supervisor, is gone: the job stops within a second, long before the broker fails it over.
_WATCH = """me=$$; boss=$PPID
( while kill -0 "$me" 2>/dev/null; do
    [ "$(cut -d' ' -f4 /proc/$me/stat 2>/dev/null)" = "$boss" ] || { /bin/kill -KILL -- "-$me"; exit; }
    sleep 0.5
  done ) >/dev/null 2>&1 &
"""


def _exit_code(info: Any) -> int | None:
    """The entrypoint's exit code: JobDetails.driver_exit_code (newer Ray), else Ray's failure message."""
    code = getattr(info, "driver_exit_code", None)
    if code is None and (m := _EXIT_CODE_IN_MESSAGE.search(info.message or "")):
        code = int(m.group(1))
    if code is not None and code < 0:
        code = 128 - code  # killed by signal N (Python's -N), written as a shell would: 128 + N
    return code


def _free(total: dict[str, float], used: dict[str, float], name: str) -> float:
    return max(0.0, total.get(name, 0.0) - used.get(name, 0.0))


def _camel(name: str) -> str:
    """The dashboard's key conversion (ray.dashboard.utils.to_camel_case), to find resource names in its reports."""
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def _amount(name: str, value: float) -> str:
    if name == "memory":
        return f"{value / GIB:g} GiB"
    return f"{value:g}"


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    # Ray's 500s carry a traceback: its last line says what went wrong.
    if lines and lines[0].startswith("Traceback"):
        return lines[-1].strip()[:500]
    return (lines[0] if lines else "").strip()[:500]


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
