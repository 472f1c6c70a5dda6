"""The network spec: sites, their pools of hardware, their energy, and the links between them."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from suanli.spec.common import SiteKind, Slug, StrictModel

PERIOD_NAMES = ("critical", "peak", "flat", "valley", "deep-valley")
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


def parse_span(text: str) -> tuple[int, int]:
    """'07:00-10:30' -> minutes of day (420, 630). '23:00-24:00' is allowed; a span may not wrap midnight."""
    m = _SPAN.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a span of hours; write 'HH:MM-HH:MM', e.g. '08:00-11:30'")
    h0, m0, h1, m1 = (int(g) for g in m.groups())
    start, end = h0 * 60 + m0, h1 * 60 + m1
    if m0 >= 60 or m1 >= 60 or start >= 1440 or end > 1440:
        raise ValueError(f"{text!r} is outside 00:00-24:00")
    if end <= start:
        raise ValueError(
            f"{text!r} ends before it starts; split a span over midnight in two, e.g. '23:00-24:00' and '00:00-07:00'"
        )
    return start, end


class TariffPeriod(StrictModel):
    name: Literal["critical", "peak", "flat", "valley", "deep-valley"]
    price_cny_per_kwh: float = Field(ge=0, le=100, allow_inf_nan=False)
    hours: list[str] = Field(min_length=1)

    @field_validator("hours")
    @classmethod
    def _spans(cls, hours: list[str]) -> list[str]:
        for h in hours:
            parse_span(h)
        return hours


def _check_day(periods: list[TariffPeriod]) -> None:
    covered = [""] * 1440
    for p in periods:
        for h in p.hours:
            start, end = parse_span(h)
            for minute in range(start, end):
                if covered[minute]:
                    at = f"{minute // 60:02d}:{minute % 60:02d}"
                    raise ValueError(f"{h} of period {p.name!r} overlaps period {covered[minute]!r} at {at}")
                covered[minute] = p.name
    gaps = [i for i, c in enumerate(covered) if not c]
    if gaps:
        i = gaps[0]
        raise ValueError(
            f"the periods leave {len(gaps)} minutes of the day uncovered, from {i // 60:02d}:{i % 60:02d}; "
            "every minute of 00:00-24:00 needs exactly one period"
        )


class SeasonalDay(StrictModel):
    months: list[Annotated[int, Field(ge=1, le=12)]] = Field(min_length=1)
    periods: list[TariffPeriod] = Field(min_length=1)

    @model_validator(mode="after")
    def _covers_day(self) -> SeasonalDay:
        _check_day(self.periods)
        return self


class Tariff(StrictModel):
    """A time-of-use electricity tariff in local time; seasonal days replace the default day in their months."""

    description: str = ""
    source: str = ""
    timezone: str = "Asia/Shanghai"
    periods: list[TariffPeriod] = Field(min_length=1)
    seasonal: list[SeasonalDay] = Field(default_factory=list)

    @model_validator(mode="after")
    def _covers_day(self) -> Tariff:
        _check_day(self.periods)
        months = [m for s in self.seasonal for m in s.months]
        dupes = sorted({m for m in months if months.count(m) > 1})
        if dupes:
            raise ValueError(f"month(s) {dupes} appear in more than one seasonal day")
        _check_timezone(self.timezone)
        return self


def _check_timezone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r}; accepted: an IANA name such as 'Asia/Shanghai'") from None


class Carbon(StrictModel):
    """Grid carbon intensity: a constant, or a 24-value daily profile in local hours (index 0 = 00:00-01:00)."""

    kg_per_kwh: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    hourly_kg_per_kwh: list[Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)]] | None = None
    source: str = ""

    @model_validator(mode="after")
    def _one(self) -> Carbon:
        if (self.kg_per_kwh is None) == (self.hourly_kg_per_kwh is None):
            raise ValueError("give exactly one of kg_per_kwh (a constant) or hourly_kg_per_kwh (24 values)")
        if self.hourly_kg_per_kwh is not None and len(self.hourly_kg_per_kwh) != 24:
            raise ValueError(f"hourly_kg_per_kwh has {len(self.hourly_kg_per_kwh)} values; accepted: exactly 24")
        return self


class SiteEnergy(StrictModel):
    pue: float = Field(1.4, ge=1.0, le=3.0, allow_inf_nan=False, description="power usage effectiveness")
    tariff: Slug = Field(description="id of a tariff in this network's tariffs or in the built-in library")
    carbon: Carbon
    green_share: float = Field(0.0, ge=0, le=1, description="share of the site's power bought as green (zero-carbon)")


class PoolPrice(StrictModel):
    """Hardware-hour price, before energy (energy is billed from the site's tariff)."""

    device_hour_cny: float | None = Field(None, ge=0, le=10_000, allow_inf_nan=False)
    node_hour_cny: float | None = Field(None, ge=0, le=100_000, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one(self) -> PoolPrice:
        if (self.device_hour_cny is None) == (self.node_hour_cny is None):
            raise ValueError("give exactly one of device_hour_cny or node_hour_cny")
        return self


class Pool(StrictModel):
    """Identical nodes at one site. For CPU pools, hardware is a CPU socket id and devices_per_node counts sockets."""

    id: Slug
    hardware: Slug = Field(description="catalog hardware id")
    nodes: int = Field(ge=1, le=1_000_000)
    devices_per_node: int = Field(ge=1, le=1024)
    cpus_per_node: int = Field(ge=1, le=100_000)
    memory_gb_per_node: float = Field(gt=0, le=1_000_000, allow_inf_nan=False)
    price: PoolPrice
    host_power_w: float | None = Field(
        None, ge=0, le=100_000, description="per-node power besides the devices (CPUs, fans, NICs); a default by kind"
    )
    inter_node_gbps: float = Field(100, gt=0, le=100_000, description="network bandwidth per node")


class LocalBackend(StrictModel):
    type: Literal["local"]
    workdir: str | None = None
    keep_days: float = Field(
        7.0, gt=0, le=3650, description="how long a finished attempt's directory, with its logs, is kept"
    )


# A partition or gres type name as Slurm writes them (no spaces, commas or colons: they would split a --gres).
SlurmName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", examples=["gpu", "a100"])]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SlurmBackend(StrictModel):
    """A site run by Slurm: jobs go in through slurmrestd (mode rest) or sbatch/squeue/scancel/sinfo (mode cli)."""

    type: Literal["slurm"]
    partition: SlurmName | None = Field(
        None, description="partition for pools not named in `partitions`; none: the cluster's default partition"
    )
    mode: Literal["cli", "rest"] = Field(
        "cli", description="rest: slurmrestd at `url` (openapi v0.0.38); cli: the Slurm commands; rest when url is set"
    )
    url: str | None = Field(None, description="slurmrestd base URL for mode rest, e.g. http://127.0.0.1:6820")
    conf: str | None = Field(
        None, description="slurm.conf path the CLI commands read (their SLURM_CONF); none: the commands' own default"
    )
    user: str | None = Field(
        None, min_length=1, description="Slurm user the REST calls act as (X-SLURM-USER-NAME); jobs run as this user"
    )
    token_env: str = Field("SUANLI_SLURM_TOKEN", description="environment variable holding the user's JWT (mode rest)")
    token_file: str | None = Field(
        None, description="file holding the JWT, re-read when it changes (for rotated tokens); wins over token_env"
    )
    partitions: dict[Slug, SlurmName] = Field(default_factory=dict, description="pool id -> Slurm partition")
    gres_types: dict[Slug, SlurmName] = Field(
        default_factory=dict,
        description="pool id -> GPU gres type, e.g. a100 for --gres=gpu:a100:N; pools not named ask for untyped gpus",
    )
    workdir: str | None = Field(
        None,
        description="directory for batch scripts and job output, seen alike by suanli and the compute nodes "
        "(a shared filesystem); none: <suanli home>/sites/<site id>",
    )
    jobcomp: str | None = Field(
        None, description="the jobcomp/filetxt file (JobCompLoc), read for finished jobs the controller has forgotten"
    )
    timeout_s: float = Field(
        5.0, gt=0, le=120, allow_inf_nan=False, description="longest wait for one Slurm command or REST call"
    )

    @model_validator(mode="before")
    @classmethod
    def _rest_when_url(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("url") and "mode" not in data:
            return {**data, "mode": "rest"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> SlurmBackend:
        if self.mode == "rest":
            if not self.url:
                raise ValueError("mode rest needs url, the slurmrestd base URL, e.g. http://127.0.0.1:6820")
            if not self.user:
                raise ValueError("mode rest needs user, the Slurm user named in X-SLURM-USER-NAME")
        elif self.url:
            raise ValueError("url is only used with mode rest; drop mode: cli, or drop url")
        if self.url and not re.match(r"^https?://[^/\s]+", self.url):
            raise ValueError(f"url {self.url!r} is not an http(s) URL; accepted: e.g. http://127.0.0.1:6820")
        if not _ENV_NAME.match(self.token_env):
            raise ValueError(f"token_env {self.token_env!r} is not an environment variable name, e.g. SLURM_JWT")
        return self


# A Ray resource name as `ray start --resources` takes it; the names Ray keeps for itself are refused below.
RayResourceName = Annotated[
    str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.:-]{0,127}$", examples=["GPU_A100", "GPU_910B", "NPU"])
]
_RAY_BUILTIN_RESOURCES = {"CPU", "GPU", "memory", "object_store_memory"}


class RayBackend(StrictModel):
    """A site run by a Ray cluster: each attempt is one Ray job, submitted through the Jobs API at `address`."""

    type: Literal["ray"]
    address: str = Field(
        "http://127.0.0.1:8265", description="the Ray dashboard's URL, which serves the Jobs API (not the GCS port)"
    )
    accelerator_resources: dict[Slug, RayResourceName] = Field(
        default_factory=dict,
        description="pool id -> custom Ray resource that counts that pool's devices (e.g. GPU_A100, from `ray start "
        "--resources`); a job asks for `devices` of it as well as that many GPUs, so it lands on the pool's nodes "
        "and Ray still sets CUDA_VISIBLE_DEVICES. Pools not named ask for plain GPUs and count every node's GPUs",
    )
    timeout_s: float = Field(
        5.0, gt=0, le=120, allow_inf_nan=False, description="longest wait for one call to the Ray dashboard"
    )
    infeasible_after_s: float = Field(
        0.0,
        ge=0,
        le=86_400,
        allow_inf_nan=False,
        description="how long a job may wait for a request no live node could ever hold before it is stopped and "
        "reported lost (so the broker places it elsewhere); raise it for autoscaling clusters that add nodes",
    )

    @field_validator("address")
    @classmethod
    def _http_address(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+/?$", v):
            raise ValueError(
                f"address {v!r} is not the dashboard's http(s) URL; accepted: e.g. http://127.0.0.1:8265 "
                "(not a ray:// or GCS host:port address)"
            )
        return v.rstrip("/")

    @field_validator("accelerator_resources")
    @classmethod
    def _custom_resources(cls, v: dict[str, str]) -> dict[str, str]:
        builtin = sorted({name for name in v.values() if name in _RAY_BUILTIN_RESOURCES or name.startswith("node:")})
        if builtin:
            raise ValueError(
                f"accelerator_resources names Ray's own resource(s) {builtin}; name the custom resource that "
                "counts the pool's devices, e.g. GPU_A100 (GPUs are asked for anyway)"
            )
        return v


class SimBackend(StrictModel):
    type: Literal["sim"]


Backend = Annotated[LocalBackend | SlurmBackend | RayBackend | SimBackend, Field(discriminator="type")]


class Coordinates(StrictModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Site(StrictModel):
    id: Slug
    name: str = Field(min_length=1)
    kind: SiteKind
    province: Slug = Field(description="province slug, e.g. henan, gansu, ningxia")
    city: Slug
    hub: Slug | None = Field(None, description="national hub cluster, e.g. gansu-qingyang (东数西算)")
    coordinates: Coordinates | None = None
    backend: Backend = Field(default_factory=lambda: SimBackend(type="sim"))
    energy: SiteEnergy
    pools: list[Pool] = Field(min_length=1)

    @property
    def regions(self) -> set[str]:
        """What a job's `regions` constraint can name to select this site."""
        return {self.province, self.city} | ({self.hub} if self.hub else set())

    @model_validator(mode="after")
    def _unique_pools(self) -> Site:
        ids = [p.id for p in self.pools]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"pool id(s) {dupes} appear more than once in site {self.id!r}")
        return self


class Link(StrictModel):
    """Between two sites, both directions."""

    between: tuple[Slug, Slug]
    latency_ms: float = Field(ge=0, le=10_000)
    bandwidth_gbps: float = Field(gt=0, le=100_000)
    egress_cny_per_gb: float = Field(0.0, ge=0, le=100)


class Circle(StrictModel):
    latency_ms: float = Field(ge=0, le=10_000)
    bandwidth_gbps: float = Field(gt=0, le=100_000)
    egress_cny_per_gb: float = Field(0.0, ge=0, le=100)


class Circles(StrictModel):
    """Defaults for site pairs without an explicit link, by how far apart they are (the national compute
    network's latency circles: about 1 ms in a city, 5 ms in a province, 20 ms between hub clusters)."""

    city: Circle = Circle(latency_ms=1, bandwidth_gbps=100, egress_cny_per_gb=0.0)
    province: Circle = Circle(latency_ms=5, bandwidth_gbps=40, egress_cny_per_gb=0.02)
    national: Circle = Circle(latency_ms=20, bandwidth_gbps=10, egress_cny_per_gb=0.05)


class NetworkSpec(StrictModel):
    name: str = Field(min_length=1)
    description: str = ""
    catalog: list[str] = Field(
        default_factory=list, description="extra hardware catalog CSV files, relative to this file"
    )
    tariffs: dict[Slug, Tariff] = Field(default_factory=dict)
    sites: list[Site] = Field(min_length=1)
    links: list[Link] = Field(default_factory=list)
    circles: Circles = Field(default_factory=Circles)

    @model_validator(mode="after")
    def _references(self) -> NetworkSpec:
        ids = [s.id for s in self.sites]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"site id(s) {dupes} appear more than once")
        known = set(ids)
        for link in self.links:
            for end in link.between:
                if end not in known:
                    raise ValueError(f"link {link.between} names unknown site {end!r}; known: {', '.join(ids)}")
            if link.between[0] == link.between[1]:
                raise ValueError(f"link {link.between} joins a site to itself")
        return self

    def site(self, site_id: str) -> Site:
        for s in self.sites:
            if s.id == site_id:
                return s
        from suanli.errors import UnknownIdError

        raise UnknownIdError("site", site_id, [s.id for s in self.sites])

    def link(self, a: str, b: str) -> Circle:
        """The link between two sites: an explicit one, else the latency circle they share."""
        if a == b:
            return Circle(latency_ms=0, bandwidth_gbps=1e5, egress_cny_per_gb=0)
        for link in self.links:
            if set(link.between) == {a, b}:
                return Circle(
                    latency_ms=link.latency_ms,
                    bandwidth_gbps=link.bandwidth_gbps,
                    egress_cny_per_gb=link.egress_cny_per_gb,
                )
        sa, sb = self.site(a), self.site(b)
        if sa.city == sb.city and sa.province == sb.province:
            return self.circles.city
        if sa.province == sb.province:
            return self.circles.province
        return self.circles.national
