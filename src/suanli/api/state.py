"""What the API handlers share: the store, the network, the catalog, the back-ends and the broker."""

from __future__ import annotations

from dataclasses import dataclass

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
