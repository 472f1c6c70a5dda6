"""Bearer-token tenants. A tenant sees and touches only its own jobs; the admin tenant sees all."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from suanli.api.errors import ApiError
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
    with state.store.tx() as s:
        tenant = authenticate(s, token.strip())
        if tenant is None:
            raise ApiError(401, "unauthorized", "unknown or revoked token")
        return Caller(tenant.id, tenant.name, tenant.is_admin)


def admin(request: Request) -> Caller:
    c = caller(request)
    if not c.is_admin:
        raise ApiError(403, "forbidden", "only the admin tenant may do this")
    return c
