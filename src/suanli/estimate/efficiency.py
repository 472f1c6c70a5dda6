"""Efficiency defaults (data, see data/efficiency.yaml) and the lookups the estimator makes of them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from suanli.spec.common import StrictModel, Workload

Share = float
KINDS = ("gpu", "npu", "dcu", "cpu")


class ByKind(StrictModel):
    gpu: float = Field(gt=0, le=1)
    npu: float = Field(gt=0, le=1)
    dcu: float = Field(gt=0, le=1)
    cpu: float = Field(gt=0, le=1)


class Scaling(StrictModel):
    fast: float = Field(gt=0.5, le=1, description="kept per doubling inside a node on a fast link")
    pcie: float = Field(gt=0.5, le=1)
    inter_node: float = Field(gt=0.5, le=1)


class HostPower(StrictModel):
    gpu: float = Field(ge=0)
    npu: float = Field(ge=0)
    dcu: float = Field(ge=0)
    cpu: float = Field(ge=0)


class EfficiencyTable(StrictModel):
    compute: dict[Workload, ByKind]
    memory_bandwidth: ByKind
    scaling: dict[Workload, Scaling]
    power: dict[Workload, float]
    host_power_w: HostPower
    fast_links: list[str]

    @model_validator(mode="after")
    def _complete(self) -> EfficiencyTable:
        for table in ("compute", "scaling", "power"):
            missing = [w.value for w in Workload if w not in getattr(self, table)]
            if missing:
                raise ValueError(f"{table} lacks workload class(es) {missing}")
        return self


@dataclass(frozen=True)
class Efficiency:
    table: EfficiencyTable

    def compute(self, workload: Workload, kind: str) -> Share:
        return getattr(self.table.compute[workload], kind)

    def bandwidth(self, kind: str) -> Share:
        return getattr(self.table.memory_bandwidth, kind)

    def power(self, workload: Workload) -> Share:
        return self.table.power[workload]

    def host_power_w(self, kind: str) -> float:
        return getattr(self.table.host_power_w, kind)

    def link_class(self, link: str) -> Literal["fast", "pcie"]:
        name = link.lower()  # 'nvlink-h800' is NVLink with a capped bandwidth: still a fast link
        return "fast" if any(name == f or name.startswith(f + "-") for f in self.table.fast_links) else "pcie"

    def scaling(self, workload: Workload, link: str, per_node: float, nodes: int) -> Share:
        """Share of linear speed-up kept with `per_node` devices on each of `nodes` nodes."""
        s = self.table.scaling[workload]
        inside = s.fast if self.link_class(link) == "fast" else s.pcie
        return inside ** max(0.0, math.log2(per_node)) * s.inter_node ** max(0.0, math.log2(nodes))


def default_efficiency_path() -> Path:
    return Path(str(resources.files("suanli.estimate") / "data" / "efficiency.yaml"))


@cache
def default_efficiency() -> Efficiency:
    return load_efficiency(default_efficiency_path())


def load_efficiency(path: Path) -> Efficiency:
    from suanli.spec.loader import parse_model, read_document

    data, lines = read_document(path.read_text(encoding="utf-8"), str(path), "efficiency table")
    return Efficiency(parse_model(EfficiencyTable, data, str(path), lines, "efficiency table"))


__all__ = ["Efficiency", "EfficiencyTable", "default_efficiency", "load_efficiency"]
