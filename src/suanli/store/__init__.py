"""The store of record: tenants, tokens, jobs, attempts and an append-only event log (SQLAlchemy 2, Alembic)."""
