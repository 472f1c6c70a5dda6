"""Alembic environment: run by suanli.store.db.migrate() with the connection it opened."""

from __future__ import annotations

from alembic import context

from suanli.store.models import Base

config = context.config
connection = config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
