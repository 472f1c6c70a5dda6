"""Bearer-token tenants. A tenant sees and touches only its own jobs; the admin tenant sees all."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from suanli.api.errors import ApiError
from suanli.api.state import AUTH_TTL_S
from suanli.store.tenants import authenticate


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    name: str
    is_admin: bool

    @property
    def scope(self) -> str | None:
        """The tenant whose jobs this caller may see; None for the admin (all)."""
        return None if self.is_admin else self.tenant_id


async def caller(request: Request) -> Caller:
    """The tenant behind the bearer token. A cached answer is used on the event loop; a store lookup runs in a
    worker thread so it never blocks other requests."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "missing bearer token: send 'Authorization: Bearer <token>'")
    state = request.app.state.suanli
    key = hashlib.sha256(token.strip().encode()).hexdigest()
    hit = state.auth_cache.get(key)
    if hit is not None and time.monotonic() - hit[1] < AUTH_TTL_S:
        return hit[0]
    who = await asyncio.to_thread(_lookup, state, token.strip())
    if len(state.auth_cache) > 10_000:
        state.auth_cache.clear()
    state.auth_cache[key] = (who, time.monotonic())
    return who


def _lookup(state: Any, token: str) -> Caller:
    with state.store.read() as s:
        tenant = authenticate(s, token)
        if tenant is None:
            raise ApiError(401, "unauthorized", "unknown or revoked token")
        return Caller(tenant.id, tenant.name, tenant.is_admin)


async def admin(request: Request) -> Caller:
    c = await caller(request)
    if not c.is_admin:
        raise ApiError(403, "forbidden", "only the admin tenant may do this")
    return c
