"""/v1/tenants: the admin creates tenants and their tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from suanli.api.auth import Caller, admin
from suanli.api.errors import ApiError
from suanli.store.tenants import DuplicateTenant, create_tenant, issue_token

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])


class NewTenant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    max_devices: int | None = Field(None, ge=0, le=1_000_000)
    max_queued_jobs: int | None = Field(None, ge=0, le=10_000_000)


@router.post("", status_code=201)
def create(body: NewTenant, who: Annotated[Caller, Depends(admin)], request: Request) -> JSONResponse:
    """Create a tenant with optional quotas; the answer holds its token, shown this once."""
    st = request.app.state.suanli
    try:
        with st.store.tx() as s:
            tenant = create_tenant(s, body.name, max_devices=body.max_devices, max_queued_jobs=body.max_queued_jobs)
            token = issue_token(s, tenant)
            out: dict[str, Any] = {
                "id": tenant.id,
                "name": tenant.name,
                "token": token,
                "max_devices": tenant.max_devices,
                "max_queued_jobs": tenant.max_queued_jobs,
            }
    except DuplicateTenant as exc:
        raise ApiError(409, "exists", str(exc), "name") from None
    return JSONResponse(out, status_code=201)
