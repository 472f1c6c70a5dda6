"""Typed specs of jobs and networks, loaded from YAML or JSON with errors a person can act on."""

from suanli.spec.common import PRECISIONS, Objective, Precision, SiteKind, Workload
from suanli.spec.job import JobSpec
from suanli.spec.loader import load_model, parse_model, read_document
from suanli.spec.network import NetworkSpec, Pool, Site, Tariff

__all__ = [
    "PRECISIONS",
    "JobSpec",
    "NetworkSpec",
    "Objective",
    "Pool",
    "Precision",
    "Site",
    "SiteKind",
    "Tariff",
    "Workload",
    "load_job",
    "load_model",
    "load_network",
    "parse_model",
    "read_document",
]


def load_job(path: str) -> JobSpec:
    return load_model(JobSpec, path, kind="job spec")


def load_network(path: str) -> NetworkSpec:
    return load_model(NetworkSpec, path, kind="network spec")
