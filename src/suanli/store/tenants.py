"""Tenants and their bearer tokens. A token is `sl_<id>_<secret>`: the id finds the row, the secret is kept
only as its SHA-256 and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from suanli.store.models import Tenant, Token

ADMIN = "admin"


class DuplicateTenant(ValueError):
    pass


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_tenant(
    session: Session,
    name: str,
    is_admin: bool = False,
    max_devices: int | None = None,
    max_queued_jobs: int | None = None,
) -> Tenant:
    if session.scalar(select(Tenant).where(Tenant.name == name)) is not None:
        raise DuplicateTenant(f"tenant {name!r} exists already")
    tenant = Tenant(
        id="t_" + secrets.token_hex(8),
        name=name,
        is_admin=is_admin,
        max_devices=max_devices,
        max_queued_jobs=max_queued_jobs,
        created_at=datetime.now(UTC),
    )
    session.add(tenant)
    session.flush()
    return tenant


def issue_token(session: Session, tenant: Tenant) -> str:
    """A new token for the tenant; the only time its secret is seen in clear."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(24)
    session.add(Token(id=token_id, tenant_id=tenant.id, secret_sha256=_digest(secret), created_at=datetime.now(UTC)))
    return f"sl_{token_id}_{secret}"


def authenticate(session: Session, bearer: str) -> Tenant | None:
    parts = bearer.split("_", 2)
    if len(parts) != 3 or parts[0] != "sl":
        return None
    token = session.get(Token, parts[1])
    expected = token.secret_sha256 if token is not None and token.revoked_at is None else "0" * 64
    ok = hmac.compare_digest(expected, _digest(parts[2]))  # compared even for unknown ids: no timing oracle
    if not ok or token is None or token.revoked_at is not None:
        return None
    return session.get(Tenant, token.tenant_id)


def ensure_admin(session: Session) -> tuple[Tenant, str | None]:
    """The admin tenant, created on first start with a token (returned once; None when it existed)."""
    admin = session.scalar(select(Tenant).where(Tenant.name == ADMIN))
    if admin is not None:
        return admin, None
    admin = create_tenant(session, ADMIN, is_admin=True)
    return admin, issue_token(session, admin)
