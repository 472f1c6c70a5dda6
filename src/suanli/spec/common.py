"""Vocabulary shared by the job spec, the network spec and the catalog."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    """Unknown keys are errors that name the key; values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class Precision(StrEnum):
    FP64 = "fp64"
    FP32 = "fp32"
    TF32 = "tf32"
    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"
    INT8 = "int8"


PRECISIONS: tuple[Precision, ...] = tuple(Precision)


class Workload(StrEnum):
    AI_TRAINING = "ai-training"
    AI_INFERENCE = "ai-inference"
    HPC = "hpc"
    GENERAL = "general"


class SiteKind(StrEnum):
    SUPERCOMPUTING = "supercomputing"
    INTELLIGENT = "intelligent"
    GENERAL = "general"


class Objective(StrEnum):
    FASTEST = "fastest"
    CHEAPEST = "cheapest"
    GREENEST = "greenest"
    BALANCED = "balanced"


# An id: lowercase letters, digits and dashes, as used for sites, pools, hardware and tariffs.
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$", examples=["zz-ai", "nvidia-h800-sxm5-80gb"])]

_RELATIVE = re.compile(
    r"^\+\s*(?:(?P<d>\d+(?:\.\d+)?)d)?\s*(?:(?P<h>\d+(?:\.\d+)?)h)?\s*"
    r"(?:(?P<m>\d+(?:\.\d+)?)m(?:in)?)?\s*(?:(?P<s>\d+(?:\.\d+)?)s)?$"
)


def parse_when(text: str) -> datetime | timedelta:
    """A deadline: an ISO 8601 time with a UTC offset, or a relative '+48h', '+2d', '+1d12h', '+90m', '+30s'."""
    t = text.strip()
    if t.startswith("+"):
        m = _RELATIVE.match(t)
        if not m or not any(m.groupdict().values()):
            raise ValueError(f"{text!r} is not a relative time; write e.g. '+48h', '+2d', '+1d12h', '+90m'")
        parts = {k: float(v) for k, v in m.groupdict().items() if v}
        delta = timedelta(
            days=parts.get("d", 0), hours=parts.get("h", 0), minutes=parts.get("m", 0), seconds=parts.get("s", 0)
        )
        if delta <= timedelta(0):
            raise ValueError(f"{text!r} is not after now; a relative deadline must be positive")
        return delta
    try:
        when = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO 8601 time (e.g. '2026-12-01T08:00:00+08:00') nor relative (e.g. '+48h')"
        ) from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset; add one, e.g. '{t}+08:00' for China Standard Time")
    return when
