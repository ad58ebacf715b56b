"""The private PostgreSQL of ``bash dev/postgres.sh up`` and the ``pg_db_url`` fixture (a database per test)."""

from __future__ import annotations

import psycopg

from tests._postgres import libpq_url


def test_pg_db_url_is_a_fresh_writable_database(pg_db_url: str) -> None:
    assert pg_db_url.startswith("postgresql+psycopg://madengine:madengine@127.0.0.1:")
    with psycopg.connect(libpq_url(pg_db_url)) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
        conn.execute("CREATE TABLE runs (id serial PRIMARY KEY, model text NOT NULL, perf double precision)")
        conn.execute("INSERT INTO runs (model, perf) VALUES (%s, %s), (%s, %s)", ("dummy", 1.5, "dümmy_2", None))
    with psycopg.connect(libpq_url(pg_db_url)) as conn:  # committed: a new connection sees the rows
        rows = conn.execute("SELECT model, perf FROM runs ORDER BY id").fetchall()
        assert rows == [("dummy", 1.5), ("dümmy_2", None)]
        assert conn.execute("SELECT current_user, current_database() = %s", (pg_db_url.rsplit("/", 1)[1],)
                            ).fetchone() == ("madengine", True)
