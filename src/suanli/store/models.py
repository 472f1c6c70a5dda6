"""Tables of the store of record. Specs, decisions and usage are JSON text: they are read whole, never queried
inside, and their shape is owned by the spec and schedule packages."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that always reads back timezone-aware in UTC: SQLite hands datetimes back naive, PostgreSQL
    aware; everything the store writes is UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    max_devices: Mapped[int | None] = mapped_column(Integer, nullable=True)  # devices in use at once
    max_queued_jobs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Token(Base):
    """A bearer token: the public id is looked up, the secret is kept only as its SHA-256."""

    __tablename__ = "tokens"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_idempotency"),
        Index("ix_jobs_state_submitted", "state", "submitted_at"),
        Index("ix_jobs_tenant_submitted", "tenant_id", "submitted_at"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(200), index=True)
    state: Mapped[str] = mapped_column(String(20))
    spec: Mapped[str] = mapped_column(Text)  # the job spec as submitted (normalised JSON)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    devices: Mapped[int] = mapped_column(Integer, default=0)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    site: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    pool: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decision: Mapped[str | None] = mapped_column(Text, nullable=True)  # the latest explain() account, JSON
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # why it failed, was rejected or waits
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # retry backoff
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    usage: Mapped[str | None] = mapped_column(Text, nullable=True)  # metered runtime, energy, cost, carbon (JSON)


class Attempt(Base):
    """One hand-over of a job to a site. Its id is the back-end's idempotency key."""

    __tablename__ = "attempts"
    id: Mapped[str] = mapped_column(String(60), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    site: Mapped[str] = mapped_column(String(64))
    pool: Mapped[str] = mapped_column(String(64))
    hardware: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20), index=True)  # starting, running, or a final AttemptState
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    estimate: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: runtime_s, cost_cny, ...
    usage: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON, when finished
    message: Mapped[str | None] = mapped_column(Text, nullable=True)


class Event(Base):
    """Append-only: every state change and every notable fact, in order."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(40))
    from_state: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_state: Mapped[str | None] = mapped_column(String(20), nullable=True)
    data: Mapped[str | None] = mapped_column(Text, nullable=True)


class Meta(Base):
    """Key-value facts about the deployment (e.g. which network file it runs)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


__all__ = ["Attempt", "Base", "Event", "Job", "Meta", "Tenant", "Token"]
