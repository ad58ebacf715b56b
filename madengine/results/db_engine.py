"""The database side of the results store: the SQLAlchemy engine (SQLite tuned for concurrent writers, PostgreSQL),
write connections, the insert that skips stored keys, and database errors as one-line :class:`StoreError`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from madengine.errors import StoreError
from madengine.results.db_url import redact

if TYPE_CHECKING:
    import sqlalchemy as sa

#: Execution option of a connection that writes (on SQLite its transactions begin with ``BEGIN IMMEDIATE``).
WRITE_OPTION = "madengine_write"


def writer(engine: Any) -> Any:
    """A connection whose transactions write (on SQLite they begin with ``BEGIN IMMEDIATE``)."""
    return engine.connect().execution_options(**{WRITE_OPTION: True})


def create_engine(url: str) -> Any:
    """The SQLAlchemy engine of ``url``: SQLite in WAL mode (60 s busy timeout, 256 MiB page cache, foreign keys,
    ``BEGIN IMMEDIATE`` for :func:`writer` connections only), PostgreSQL with pre-ping and a 10 s connect timeout."""
    import sqlalchemy as sa

    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # SQLAlchemy's pysqlite recipe: we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA cache_size=-262144")  # up to 256 MiB of page cache: big ingests stay fast
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # a writer takes the write lock now (no lock-upgrade deadlock later); a reader never takes it
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})


def insert_ignore(dialect: str, table: sa.Table, key: str) -> Any:
    """An INSERT of ``table`` that skips rows whose ``key`` is stored already (``ON CONFLICT DO NOTHING``)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=[key])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=[key])


def db_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a database that refuses or does not answer raises."""
    import sqlalchemy.exc

    return (sqlalchemy.exc.SQLAlchemyError, OSError)


def arg_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a malformed URL raises."""
    import sqlalchemy.exc

    return (sqlalchemy.exc.ArgumentError, ValueError)


def first_line(e: BaseException) -> str:
    """The first line of the driver's own message of ``e`` (its type name when empty)."""
    text = str(getattr(e, "orig", None) or e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def store_error(url: str, e: BaseException) -> StoreError:
    """``e`` as a one-line :class:`StoreError` naming the store without its password."""
    return StoreError(f"results store {redact(url)}: {first_line(e)}")
