"""Connect to the store (PostGIS or an embedded SpatiaLite file) and migrate its schema."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from geoalchemy2.admin.dialects.sqlite import load_spatialite
from sqlalchemy import Connection, Engine, create_engine, event, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from gis.errors import DatabaseError, NotFound
from gis.settings import get_settings

try:  # PostgreSQL's driver: only PostGIS needs it (pip install 'gridmap[postgis]')
    from psycopg import InterfaceError as PgInterfaceError
    from psycopg import OperationalError as PgOperationalError
    from psycopg.errors import LockNotAvailable as PgLockNotAvailable
    HAS_PSYCOPG = True
except ImportError:  # pragma: no cover - a SpatiaLite-only install
    HAS_PSYCOPG = False

    class PgOperationalError(Exception):  # type: ignore[no-redef]
        """Stands in for psycopg's: never raised where psycopg is not installed."""

    class PgInterfaceError(Exception):  # type: ignore[no-redef]
        """Stands in for psycopg's: never raised where psycopg is not installed."""

    class PgLockNotAvailable(Exception):  # type: ignore[no-redef]
        """Stands in for psycopg's: never raised where psycopg is not installed."""

MIGRATIONS = Path(__file__).with_name("migrations")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _loads_extensions(module: Any) -> bool:
    return hasattr(module.Connection, "enable_load_extension")


def sqlite_driver(choice: str = "auto") -> Any:
    """The DB-API module SQLite is reached through (``GRIDMAP_SQLITE_DRIVER``).

    ``auto``: ``pysqlite3`` where its wheel is installed (x86_64 Linux: a SQLite that loads
    extensions whatever the interpreter was built with), else the interpreter's ``sqlite3``
    (aarch64: Debian's and Ubuntu's python3 load extensions). ``pysqlite3`` or ``sqlite3``
    insists on one. A driver that cannot load SpatiaLite is a :class:`DatabaseError` that
    says what to install.
    """
    module: Any = None
    if choice in ("auto", "pysqlite3"):
        try:
            from pysqlite3 import dbapi2

            module = dbapi2
        except ImportError as exc:
            if choice == "pysqlite3":
                raise DatabaseError(
                    "GRIDMAP_SQLITE_DRIVER=pysqlite3 but pysqlite3 is not installed: pip "
                    "install pysqlite3-binary (x86_64 Linux), or use GRIDMAP_SQLITE_DRIVER="
                    "sqlite3 with a Python whose sqlite3 loads extensions") from exc
    if module is None:
        if choice not in ("auto", "sqlite3"):
            raise DatabaseError(f"GRIDMAP_SQLITE_DRIVER={choice!r}: use auto, pysqlite3 or "
                                "sqlite3")
        import sqlite3

        module = sqlite3
    if not _loads_extensions(module):
        raise DatabaseError(
            f"this Python's {module.__name__} cannot load SQLite extensions, so SpatiaLite "
            "cannot be used: on x86_64 pip install pysqlite3-binary; elsewhere (aarch64) make "
            "the virtual environment with the system's python3 (Debian/Ubuntu build it with "
            "loadable extensions: /usr/bin/python3 -m venv .venv), or use PostGIS")
    return module


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (default ``GRIDMAP_DATABASE_URL``).

    PostgreSQL engines survive the server going away: every pooled connection is pinged
    when taken (a connection of a server that restarted is replaced, and a disconnect
    invalidates the whole pool), a connection attempt gives up after
    ``GRIDMAP_DB_CONNECT_TIMEOUT_S`` and a wait for a pooled connection after
    ``GRIDMAP_DB_POOL_TIMEOUT_S`` (the API answers 503 instead of hanging).

    SQLite URLs get SpatiaLite loaded on every connection (through the driver
    :func:`sqlite_driver` picks), foreign keys on and WAL journalling.
    """
    settings = get_settings()
    url = url or settings.database_url
    if not is_sqlite(url):
        if not HAS_PSYCOPG and make_url(url).get_backend_name() == "postgresql":
            raise DatabaseError("a PostgreSQL/PostGIS database needs the psycopg driver: "
                                "pip install 'gridmap[postgis]' (or psycopg[binary])")
        connect_args = dict(kwargs.pop("connect_args", None) or {})
        connect_args.setdefault("connect_timeout", settings.db_connect_timeout_s)
        if "connect_timeout" in make_url(url).query:  # the URL's own setting wins
            connect_args.pop("connect_timeout")
        if "poolclass" not in kwargs:
            kwargs.setdefault("pool_timeout", settings.db_pool_timeout_s)
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)

    os.environ.setdefault("SPATIALITE_LIBRARY_PATH", settings.spatialite_library_path)
    sqlite_module = sqlite_driver(settings.sqlite_driver)
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    connect_args = dict(kwargs.pop("connect_args", None) or {})
    busy_ms = int(1000 * float(connect_args.pop("timeout", settings.sqlite_busy_timeout_s)))
    engine = create_engine(url, module=sqlite_module, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        try:
            load_spatialite(dbapi_conn, init_mode="WGS84")
        except Exception as exc:
            raise DatabaseError(
                "SpatiaLite could not be loaded: install Debian's libsqlite3-mod-spatialite "
                f"(or set GRIDMAP_SPATIALITE_LIBRARY_PATH); the error was: {exc}"
            ) from exc
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        # How long a write waits for another writer (GRIDMAP_SQLITE_BUSY_TIMEOUT_S); set
        # here, as the driver's own ``timeout`` argument does not reach SQLite through
        # SpatiaLite's loading.
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        cur.close()

    return engine


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with the Alembic migrations."""
    try:
        command.upgrade(alembic_config(engine), revision)
    except OperationalError as exc:
        raise _database_error(engine, "cannot be reached or migrated", exc) from exc


def check_schema(engine: Engine) -> None:
    """Fail clearly when the schema has not been created yet."""
    if not inspect(engine).has_table("territories"):
        raise DatabaseError(
            "the database has no gridmap tables yet: run `gridmap db upgrade` first"
        )


def ping(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        raise _database_error(engine, "is unreachable", exc) from exc


def _database_error(engine: Engine, says: str, exc: OperationalError) -> DatabaseError:
    """What the driver said, about the database at ``engine``'s URL (password hidden)."""
    return DatabaseError(
        f"the database at {engine.url.render_as_string(hide_password=True)} {says}: {exc.orig}")


def row_by_id(conn: Connection, table: Any, row_id: int, missing: str) -> Any:
    """The row of ``table`` whose id is ``row_id``; :class:`NotFound` (``missing``) when
    there is none."""
    row = conn.execute(select(table).where(table.c.id == row_id)).first()
    if row is None:
        raise NotFound(missing)
    return row


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached or went away (a server restart, a
    crash, a refused or timed-out connection, a full pool), rather than refused a statement:
    such an operation may succeed when tried again once the server is back."""
    if isinstance(exc, SQLAlchemyTimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(exc, DBAPIError):
        return (isinstance(exc, OperationalError | InterfaceError)
                or bool(exc.connection_invalidated))
    # the driver's own errors, from work on its connection (COPY) SQLAlchemy never saw
    return isinstance(exc, PgOperationalError | PgInterfaceError)


#: SQLite's "busy" and "locked" result codes; PostgreSQL's lock_not_available,
#: deadlock_detected and serialization_failure: another writer holds what is needed.
_SQLITE_BUSY = {5, 6}
_PG_BUSY = {"55P03", "40P01", "40001"}


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is there but busy: another writer holds a lock past
    the wait allowed (SQLite's one writer at a time, a PostgreSQL lock or deadlock). Trying
    again shortly succeeds; unlike a server that is away (:func:`is_unavailable`), nothing
    is down."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF in _SQLITE_BUSY
    if getattr(orig, "sqlstate", None) in _PG_BUSY:
        return True
    text = str(orig).lower()
    return "database is locked" in text or "database table is locked" in text


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session whose work commits at the end of the block, or not at all."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory.begin() as session:
        yield session
