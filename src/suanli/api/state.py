"""What the API handlers share: the store, the network, the catalog, the back-ends and the broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from suanli.api.submissions import SubmissionWriter
from suanli.backends.base import Backend
from suanli.broker.loop import Broker
from suanli.hardware.catalog import Catalog
from suanli.spec.network import NetworkSpec
from suanli.store.db import Store

MAX_BODY_BYTES = 1024 * 1024  # a job spec is a few KB; a megabyte is a mistake or an attack


@dataclass
class AppState:
    store: Store
    network: NetworkSpec
    catalog: Catalog
    backends: dict[str, Backend]
    broker: Broker
    max_body_bytes: int = MAX_BODY_BYTES
    # sha256(token) -> (caller, time looked up): a token is looked up in the store at most every AUTH_TTL_S
    auth_cache: dict[str, tuple[Any, float]] = field(default_factory=dict)
    submissions: SubmissionWriter = field(init=False)

    def __post_init__(self) -> None:
        self.submissions = SubmissionWriter(self.store, on_created=self.broker.wake)


AUTH_TTL_S = 10.0  # how long a revoked token may still work
