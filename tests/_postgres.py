"""Helpers of the PostgreSQL fixtures in ``tests/conftest.py``: the private cluster of ``bash dev/postgres.sh up``
(127.0.0.1, port ``MADENGINE_PG_PORT`` or 55432, role and database ``madengine``, password ``madengine``)."""

from __future__ import annotations

import os
import re
import uuid

PORT = int(os.environ.get("MADENGINE_PG_PORT", "55432"))
ROLE = "madengine"


def url(dbname: str = ROLE, driver: str = "postgresql+psycopg") -> str:
    """The URL of ``dbname`` (SQLAlchemy form by default; ``driver="postgresql"`` gives libpq's)."""
    return f"{driver}://{ROLE}:{ROLE}@127.0.0.1:{PORT}/{dbname}"


def libpq_url(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg://...`` -> ``postgresql://...`` (what ``psycopg.connect`` takes)."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", sqlalchemy_url)


def check() -> str | None:
    """None when the ``madengine`` role logs in and may create databases, else why not."""
    import psycopg

    try:
        with psycopg.connect(url(driver="postgresql"), connect_timeout=5) as conn:
            row = conn.execute("SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user").fetchone()
    except psycopg.Error as e:
        return f"{type(e).__name__}: {' '.join(str(e).split())}"
    return None if row and row[0] else f"role {ROLE} lacks CREATEDB"


def _admin(statement: str, dbname: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url(driver="postgresql"), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(dbname)))


def create_database(hint: str) -> str:
    """Create an empty database owned by ``madengine`` with a unique name made from ``hint``; returns the name."""
    slug = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_")[:40]
    name = f"t_{slug}_{uuid.uuid4().hex[:10]}"
    _admin("CREATE DATABASE {}", name)
    return name


def drop_database(name: str) -> None:
    """Drop ``name``, ending any connection a test left open."""
    _admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)
