"""Bearer-token tenants. A tenant sees and touches only its own jobs; the admin tenant sees all."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

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


def caller(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "missing bearer token: send 'Authorization: Bearer <token>'")
    state = request.app.state.suanli
    key = hashlib.sha256(token.strip().encode()).hexdigest()
    hit = state.auth_cache.get(key)
    if hit is not None and time.monotonic() - hit[1] < AUTH_TTL_S:
        return hit[0]
    with state.store.read() as s:
        tenant = authenticate(s, token.strip())
        if tenant is None:
            raise ApiError(401, "unauthorized", "unknown or revoked token")
        who = Caller(tenant.id, tenant.name, tenant.is_admin)
    if len(state.auth_cache) > 10_000:
        state.auth_cache.clear()
    state.auth_cache[key] = (who, time.monotonic())
    return who


def admin(request: Request) -> Caller:
    c = caller(request)
    if not c.is_admin:
        raise ApiError(403, "forbidden", "only the admin tenant may do this")
    return c
