"""Opening the store: SQLite under $SUANLI_HOME by default (WAL, so the API and the broker loop can share it),
PostgreSQL for production; the schema is brought to the latest Alembic revision on open."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from suanli.errors import Problem, SpecError, SuanliError

READ_ONLY = "suanli_read_only"


class StoreUnavailable(SuanliError):
    code = "store_unavailable"


DB_FORMS = "sqlite:///PATH or postgresql://USER@HOST:PORT/DB"


def suanli_home() -> Path:
    return Path(os.environ.get("SUANLI_HOME") or Path.cwd() / ".suanli")


def default_url(home: Path | None = None) -> str:
    return f"sqlite:///{(home or suanli_home()) / 'suanli.db'}"


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// (and postgres://) URLs and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Store:
    def __init__(self, url: str | None = None, migrate: bool = True) -> None:
        url = normalise_url(url or default_url())
        try:
            parsed = make_url(url)
        except ArgumentError:
            problem = Problem(f"{url!r} is not a database URL", "--db", accepted=DB_FORMS)
            raise SpecError([problem], kind="option") from None
        if parsed.get_backend_name() not in ("sqlite", "postgresql"):
            problem = Problem(f"database {parsed.get_backend_name()!r} is not supported", "--db", accepted=DB_FORMS)
            raise SpecError([problem], kind="option")
        self.url = url
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = _engine(url, self.is_sqlite)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = threading.Lock() if self.is_sqlite else None
        if migrate:
            try:
                self.migrate()
            except OperationalError as exc:
                self.engine.dispose()
                reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
                where = parsed.render_as_string(hide_password=True)
                raise StoreUnavailable(f"cannot open the store at {where}: {reason}") from None

    def migrate(self) -> None:
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(resources.files("suanli.store") / "migrations"))
        with self.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")

    @contextmanager
    def tx(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error.

        On SQLite the writers of this process queue on a mutex first: SQLite's own busy handler waits by
        sleeping in growing steps (up to 100 ms), so threads contending for its write lock would spend most of
        their time asleep while the lock is free. Other processes still meet busy_timeout."""
        if self._write_lock is None:
            with self.sessions() as session, session.begin():
                yield session
            return
        with self._write_lock, self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading only. On SQLite its transaction does not take the write lock (a plain deferred
        BEGIN), so readers never queue behind writers; elsewhere it is an ordinary transaction."""
        with self.engine.connect() as conn:
            conn.info[READ_ONLY] = True
            try:
                with Session(bind=conn, expire_on_commit=False) as session, session.begin():
                    yield session
            finally:
                conn.info.pop(READ_ONLY, None)

    def close(self) -> None:
        self.engine.dispose()


def _engine(url: str, sqlite: bool) -> Engine:
    if not sqlite:
        return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:  # type: ignore[no-untyped-def]
        # Take the write lock up front: a deferred transaction that reads and then writes can fail at once with
        # SQLITE_BUSY when another connection wrote in between, instead of waiting for busy_timeout.
        conn.exec_driver_sql("BEGIN" if conn.info.get(READ_ONLY) else "BEGIN IMMEDIATE")

    return engine
