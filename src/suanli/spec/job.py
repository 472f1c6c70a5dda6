"""The job spec: what a tenant submits (YAML or JSON). Field names carry their units."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from suanli.spec.common import Objective, Precision, SiteKind, Slug, StrictModel, Workload, parse_when

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Resources(StrictModel):
    """Totals for the whole job; a multi-node job is split evenly over its nodes."""

    devices: int = Field(0, ge=0, le=100_000, description="accelerators in all (0 = CPU-only job)")
    device_memory_gb: float | None = Field(
        None, gt=0, le=4096, allow_inf_nan=False, description="memory needed on each device"
    )
    cpus: int = Field(1, ge=1, le=10_000_000, description="CPU cores in all")
    memory_gb: float = Field(1.0, gt=0, le=10_000_000, allow_inf_nan=False, description="host memory in all")
    nodes: int = Field(1, ge=1, le=100_000)

    @model_validator(mode="after")
    def _even_split(self) -> Resources:
        if self.devices and self.devices % self.nodes:
            raise ValueError(
                f"devices ({self.devices}) must split evenly over nodes ({self.nodes}); "
                f"accepted: a multiple of {self.nodes}"
            )
        if self.device_memory_gb is not None and self.devices == 0:
            raise ValueError("device_memory_gb is set but devices is 0; set devices, or drop device_memory_gb")
        return self

    @property
    def devices_per_node(self) -> int:
        return self.devices // self.nodes


class Reference(StrictModel):
    """The job took `hours` on `devices` of `hardware` (a catalog id)."""

    hardware: Slug
    devices: int = Field(1, ge=1, le=100_000)
    hours: PositiveFloat


class Compute(StrictModel):
    """How much work the job is. Exactly one of flops, reference, walltime_h."""

    flops: dict[Precision, PositiveFloat] | None = Field(
        None, description="total floating-point (or int8) operations per precision"
    )
    reference: Reference | None = None
    walltime_h: PositiveFloat | None = Field(None, description="runtime taken as given on any feasible pool")
    mix: dict[Precision, PositiveFloat] | None = Field(
        None, description="share of the work in each precision (for reference or walltime_h); normalised to 1"
    )
    memory_traffic_gb: PositiveFloat | None = Field(
        None, description="total device-memory traffic; bounds the runtime by memory bandwidth (roofline)"
    )

    @model_validator(mode="after")
    def _one_measure(self) -> Compute:
        given = [k for k in ("flops", "reference", "walltime_h") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of flops, reference, walltime_h" + (f" (given: {', '.join(given)})" if given else "")
            )
        if self.flops is not None and self.mix is not None:
            raise ValueError("mix is implied by flops; drop mix, or give reference/walltime_h instead of flops")
        if self.flops is not None and not self.flops:
            raise ValueError("flops is empty; give at least one precision, e.g. {bf16: 2.4e18}")
        return self


class DataSet(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    site: Slug = Field(description="site id where the data sits now")
    size_gb: float = Field(ge=0, le=1e9, allow_inf_nan=False)
    residency: list[str] | None = Field(
        None, description="regions (provinces or hubs) the data may not leave; the job must run inside them"
    )


class Constraints(StrictModel):
    sites: list[Slug] | None = None
    exclude_sites: list[Slug] | None = None
    regions: list[str] | None = Field(None, description="provinces or national hubs, e.g. henan, gansu")
    kinds: list[SiteKind] | None = None
    hardware: list[Slug] | None = Field(None, description="allowed catalog hardware ids")
    exclude_hardware: list[Slug] | None = None


class Checkpoint(StrictModel):
    interval_min: PositiveFloat
    path: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="where the job keeps its checkpoints, reachable from every site it may run on; each attempt "
        "gets it as SUANLI_CHECKPOINT_DIR, and one that follows a lost or preempted attempt also gets "
        "SUANLI_RESUME=1 to resume from it",
    )


class JobSpec(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    workload: Workload = Workload.GENERAL
    run: str = Field("true", min_length=1, max_length=100_000, description="the command run at the site")
    env: dict[str, str] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    compute: Compute
    data: list[DataSet] = Field(default_factory=list, max_length=1000)
    constraints: Constraints = Field(default_factory=Constraints)
    objective: Objective = Objective.BALANCED
    deadline: str | None = Field(None, description="ISO 8601 with offset, or relative to submission: '+48h'")
    budget_cny: float | None = Field(None, gt=0, allow_inf_nan=False)
    priority: int = Field(0, ge=-1000, le=1000)
    preemptible: bool = False
    checkpoint: Checkpoint | None = None

    @field_validator("deadline", mode="before")
    @classmethod
    def _deadline_text(cls, value: Any) -> Any:
        if isinstance(value, datetime):  # YAML turns unquoted timestamps into datetimes
            value = value.isoformat()
        if isinstance(value, str):
            parse_when(value)
        return value

    def deadline_at(self, submitted: datetime) -> datetime | None:
        """The absolute deadline for a job submitted at `submitted`."""
        if self.deadline is None:
            return None
        when = parse_when(self.deadline)
        return submitted + when if isinstance(when, timedelta) else when

    def work_mix(self) -> dict[Precision, float]:
        """Share of the work per precision, summing to 1; a default by workload class when not declared."""
        c = self.compute
        raw = c.flops or c.mix or DEFAULT_MIX[self.workload]
        total = sum(raw.values())
        return {p: v / total for p, v in raw.items()}

    @property
    def declares_precision(self) -> bool:
        return self.compute.flops is not None or self.compute.mix is not None or self.compute.reference is not None


# Precision mix assumed when a job declares none: what such jobs typically compute in.
DEFAULT_MIX: dict[Workload, dict[Precision, float]] = {
    Workload.AI_TRAINING: {Precision.BF16: 1.0},
    Workload.AI_INFERENCE: {Precision.FP16: 1.0},
    Workload.HPC: {Precision.FP64: 1.0},
    Workload.GENERAL: {Precision.FP32: 1.0},
}
