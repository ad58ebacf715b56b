"""The results store: every run and every result sample in a SQL database, with history across runs.

perf.csv (madengine v2's 29-column export) keeps one row per model and run; the store keeps what a performance team
needs on top of it: which run a row belongs to (command line, target, context hash, hub commit, madengine version,
label), every sample of a ``--repeat N`` run (``repeat_index``), the node rank of a multi-node job, the row's
``reason``, the metric direction decided when the row was written, and provenance (build fingerprint).

Where: an SQLite file next to perf.csv (:data:`DEFAULT_FILE`) unless ``--results-db URL`` or the context key
``results_db`` says otherwise (:func:`resolve_url`); ``postgresql+psycopg://user:pass@host/db`` for a team server
(the ``postgres`` extra). The SQL is SQLAlchemy Core, so one code path serves both; the schema is created and
upgraded by Alembic migrations (``madengine/results/migrations``), run only when the database's revision is not
:data:`SCHEMA_REVISION`.

Writes are idempotent: every result row has a ``row_key`` (a SHA-256 of what identifies it: run, model, image,
metric, node, repeat) and inserts skip keys already stored, so collecting a job twice or ingesting a perf.csv twice
adds nothing; ingesting the perf.csv a recorded run wrote skips that run's rows (matched by ``csv_key``). Concurrent writers are safe: SQLite runs in WAL mode with a 60 s busy timeout and takes its write lock
at ``BEGIN IMMEDIATE``; PostgreSQL serialises the migrations with an advisory lock.

Tables (columns beyond perf.csv's)::

    runs(run_id PK, started_at, ended_at [seconds since the epoch, UTC], command, target, label, context_hash,
         hub_git_commit, madengine_version, host, output, source ["run" | "ingest"])
    results(id PK, row_key UNIQUE, csv_key [SHA-256 of the row's perf.csv cells: "" on the 2nd.. sample of a row],
            run_id -> runs, recorded_at, <the 29 perf.csv columns as text>, value [float
            performance, NULL when not a finite number], repeat_index, node_rank, reason, metric_direction
            ["higher" | "lower" | ""], build_fingerprint, extra [JSON object text])
"""

from __future__ import annotations

import hashlib
import json
import operator
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from madengine.errors import ConfigError, StoreError
from madengine.results.db_engine import (
    arg_errors,
    create_engine,
    db_errors,
    first_line,
    insert_ignore,
    store_error,
    writer,
)
from madengine.results.db_url import DEFAULT_FILE, redact, redact_urls, resolve_url  # noqa: F401 - the store's API
from madengine.results.perf_csv import PERF_CSV_HEADER

if TYPE_CHECKING:
    import sqlalchemy as sa

    from madengine.results.perf_csv import PerfRow

#: The Alembic revision this code reads and writes (a test checks it is the head of the migrations).
SCHEMA_REVISION = "0001"
#: Columns a result row has besides perf.csv's, in table order (the migration and :func:`tables` share it).
EXTRA_COLUMNS = ("value", "repeat_index", "node_rank", "reason", "metric_direction", "build_fingerprint", "extra")
_PG_LOCK = 0x6D6164656E67  # pg_advisory_xact_lock key while migrating ("madeng")
_BATCH = 20000


#: How a run ended: still ``running`` (or killed without a chance to say), ``done`` (every model ran; rows may still
#: be FAILURE), ``interrupted`` (Ctrl-C or a stop signal: the models that finished are stored, the one running is
#: not), ``failed`` (madengine itself stopped with an error). An ingested file is ``done``.
RUN_STATUSES = ("running", "done", "interrupted", "failed")


@dataclass
class RunInfo:
    """One ``runs`` row: ``started_at``/``ended_at`` in seconds since the epoch (UTC; ``None`` = still running),
    ``command`` the command line, ``target`` local/slurm/k8s/a plugin or ``ingest``, ``context_hash`` SHA-256 of
    the run context (canonical JSON), ``source`` ``run`` or ``ingest``, ``status`` one of :data:`RUN_STATUSES`."""

    run_id: str
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    command: str = ""
    target: str = ""
    label: str = ""
    context_hash: str = ""
    hub_git_commit: str = ""
    madengine_version: str = ""
    host: str = ""
    output: str = ""
    source: str = "run"
    status: str = "running"


def check_label(label: str | None, flag: str = "--label") -> None:
    """Refuse a run label no selection could pick: one with a comma (selections join terms with commas) or with
    leading/trailing blanks.

    Raises:
        ConfigError: names the label and the fix (exit 4).
    """
    if label and ("," in label or label != label.strip()):
        raise ConfigError(f"{flag} {label!r}: a label cannot hold a comma or start/end with blanks (the selection "
                          "label:NAME could not pick it); use e.g. - or _ instead")


def tables(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    """The ``runs`` and ``results`` tables of the current schema, added to ``metadata``."""
    import sqlalchemy as sa

    runs = sa.Table(
        "runs", metadata,
        sa.Column("run_id", sa.String(80), primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        *(sa.Column(name, sa.Text, nullable=False, server_default="")
          for name in ("command", "target", "label", "context_hash", "hub_git_commit", "madengine_version", "host",
                       "output", "source", "status")),
    )
    results = sa.Table(
        "results", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("row_key", sa.String(64), nullable=False, unique=True),
        sa.Column("csv_key", sa.String(64), nullable=False, server_default="", index=True),
        sa.Column("run_id", sa.String(80), sa.ForeignKey("runs.run_id"), nullable=False, index=True),
        sa.Column("recorded_at", sa.Float, nullable=False),
        *(sa.Column(name, sa.Text, nullable=False, server_default="") for name in PERF_CSV_HEADER),
        sa.Column("value", sa.Float),
        sa.Column("repeat_index", sa.Integer, nullable=False, server_default="0"),
        *(sa.Column(name, sa.Text, nullable=False, server_default="") for name in EXTRA_COLUMNS[2:]),
        sa.Index("ix_results_benchmark", "model", "metric", "gpu_architecture"),
    )
    return runs, results


class Store:
    """An open results store (see the module docstring). Use :func:`open_store`; close with :meth:`close`."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.url = url
        self.metadata = sa.MetaData()
        self.runs, self.results = tables(self.metadata)
        self.engine = create_engine(url)
        self._compiled: dict[str, tuple[str, tuple[str, ...]]] = {}

    @property
    def url_shown(self) -> str:
        """The URL without its password, for messages."""
        return redact(self.url)

    # -- writing ------------------------------------------------------------------------------------------------
    def begin_run(self, run: RunInfo, conn: Any = None) -> bool:
        """Record ``run`` (a run already stored under its id is left as it is: returns False)."""
        return self._insert(self.runs, [asdict(run)], "run_id", conn) > 0

    def end_run(self, run_id: str, ended_at: float | None = None, status: str = "done") -> None:
        """Set the run's end time (seconds since the epoch; default now) and how it ended (:data:`RUN_STATUSES`)."""
        import sqlalchemy as sa

        with self._write() as conn:
            conn.execute(sa.update(self.runs).where(self.runs.c.run_id == run_id)
                         .values(ended_at=time.time() if ended_at is None else ended_at, status=status))

    def add_rows(self, run_id: str, rows: Sequence[PerfRow], *, directions: Mapping[str, str] | None = None,
                 fingerprints: Mapping[str, str] | None = None) -> int:
        """Store one run's perf rows: one result row per sample (``row.samples``; one with ``repeat_index`` 0 when
        the row has none). ``directions`` maps a model name to its declared ``metric_direction`` (else it is
        inferred from the metric name); ``fingerprints`` maps an image name to its build fingerprint. Returns the
        number of result rows inserted (rows stored before are skipped).

        Raises:
            StoreError: the database refused or did not answer.
        """
        from madengine.results.stats import infer_direction

        now = time.time()
        records: list[dict[str, Any]] = []
        seen: dict[str, int] = {}
        for row in rows:
            cells = row.to_csv_dict()
            direction = direction_for(row.model, directions or {}) or infer_direction(row.metric)
            base = {**cells, "run_id": run_id, "recorded_at": now, "node_rank": row.node_rank,
                    "reason": row.reason, "metric_direction": direction,
                    "build_fingerprint": (fingerprints or {}).get(row.docker_image, ""), "extra": ""}
            identity = "\x1f".join((run_id, row.model, row.docker_image, row.docker_file, row.metric,
                                    row.machine_name, row.node_rank, row.status))
            samples: Sequence[float | None] = row.samples or [_number(row.performance)]
            csv_key = csv_digest(cells.values())
            for index, sample in enumerate(samples):
                key = f"{identity}\x1f{index}"
                seen[key] = seen.get(key, -1) + 1
                records.append({**base, "repeat_index": index, "value": sample, "csv_key": "" if index else csv_key,
                                "performance": row.performance if not row.samples else _text(sample),
                                "row_key": _digest(f"{key}\x1f{seen[key]}")})
        return self._insert(self.results, records, "row_key")

    def add_result_records(self, records: Iterable[dict[str, Any]], conn: Any = None) -> tuple[int, int]:
        """Insert prepared ``results`` records (``row_key`` set; ingest), in batches (each its own transaction
        unless ``conn`` of :meth:`transaction` is given); a record with ``"skip": True`` is only counted. Returns
        (read, inserted)."""
        read = inserted = 0
        batch: list[dict[str, Any]] = []
        for record in records:
            if record.pop("skip", False):  # already stored by a recorded run: counted as read, not inserted
                read += 1
                continue
            batch.append(record)
            if len(batch) >= _BATCH:
                read, inserted = read + len(batch), inserted + self._insert(self.results, batch, "row_key", conn)
                batch = []
        if batch:
            read, inserted = read + len(batch), inserted + self._insert(self.results, batch, "row_key", conn)
        return read, inserted

    def _insert(self, table: sa.Table, records: list[dict[str, Any]], key: str, conn: Any = None) -> int:
        """Insert ``records`` (dicts with every column but ``id``), skipping those whose ``key`` is stored; returns
        how many went in. The INSERT is compiled once per table and run by the driver's own ``executemany`` with
        tuples (SQLAlchemy's per-row parameter processing costs more than the database's work here); both
        sqlite3 and psycopg 3 count the rows an ``executemany`` inserted."""
        if not records:
            return 0
        if conn is None:
            with self._write() as own:
                return self._insert(table, records, key, own)
        sql, order = self._bulk_insert(table, key)
        try:
            cursor = conn.connection.cursor()
            try:
                cursor.executemany(sql, map(operator.itemgetter(*order), records))
                return max(0, cursor.rowcount or 0)
            finally:
                cursor.close()
        except db_errors() as e:
            raise store_error(self.url, e) from None

    def _bulk_insert(self, table: sa.Table, key: str) -> tuple[str, tuple[str, ...]]:
        """The driver-level SQL of "insert, ignoring rows whose ``key`` is stored" for ``table`` with positional
        parameters, and the column order of its parameters (compiled by SQLAlchemy, once)."""
        import sqlalchemy as sa

        if table.name not in self._compiled:
            dialect = self.engine.dialect
            positional = type(dialect)(paramstyle="qmark" if dialect.name == "sqlite" else "format")
            names = [column.name for column in table.columns if column.name != "id"]
            statement = insert_ignore(dialect.name, table, key).values({n: sa.bindparam(n) for n in names})
            compiled = statement.compile(dialect=positional)
            self._compiled[table.name] = (compiled.string, tuple(compiled.positiontup or ()))
        return self._compiled[table.name]

    def _write(self) -> Any:
        return _Transaction(self)

    def transaction(self) -> Any:
        """``with store.transaction() as conn``: one write transaction, committed when the block ends and rolled
        back (nothing of it stored) when it raises; pass ``conn`` to the methods that take one. Database errors
        become :class:`StoreError`."""
        return self._write()

    # -- reading ------------------------------------------------------------------------------------------------
    def query(self, statement: Any) -> list[dict[str, Any]]:
        """The rows of a SQLAlchemy Core ``select`` as dicts.

        Raises:
            StoreError: the database refused or did not answer.
        """
        try:
            with self.engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(statement)]
        except db_errors() as e:
            raise store_error(self.url, e) from None

    def stream(self, statement: Any, batch: int = 10000) -> Iterator[dict[str, Any]]:
        """Like :meth:`query`, fetched ``batch`` rows at a time (constant memory)."""
        try:
            with self.engine.connect() as conn:
                result = conn.execution_options(stream_results=True, yield_per=batch).execute(statement)
                for r in result:
                    yield dict(r._mapping)
        except db_errors() as e:
            raise store_error(self.url, e) from None

    def stream_rows(self, statement: Any, batch: int = 10000) -> Iterator[tuple[Any, ...]]:
        """Like :meth:`stream`, but the rows as plain tuples in the select's column order, straight from the
        driver's cursor (the select compiled by SQLAlchemy with positional parameters; no result processing per
        row: for the hot loops over many rows of plain numbers and text)."""
        dialect = self.engine.dialect
        positional = type(dialect)(paramstyle="qmark" if dialect.name == "sqlite" else "format")
        compiled = statement.compile(dialect=positional, compile_kwargs={"render_postcompile": True})
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
        try:
            with self.engine.connect() as conn:
                cursor = conn.connection.cursor()
                try:
                    cursor.execute(compiled.string, params)
                    while rows := cursor.fetchmany(batch):
                        yield from rows
                finally:
                    cursor.close()
        except db_errors() as e:
            raise store_error(self.url, e) from None

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()


class _Transaction:
    """``with store._write() as conn``: one write transaction, database errors turned into StoreError."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> Any:
        try:
            self.conn = writer(self.store.engine)
            self.tx = self.conn.begin()
            return self.conn
        except db_errors() as e:
            raise store_error(self.store.url, e) from None

    def __exit__(self, *exc: Any) -> None:
        try:
            if exc[1] is None:
                self.tx.commit()
            else:
                self.tx.rollback()
            self.conn.close()
        except db_errors() as e:
            raise store_error(self.store.url, e) from None
        if exc[1] is not None and isinstance(exc[1], db_errors()):
            raise store_error(self.store.url, exc[1]) from None


def open_store(url: str, *, create: bool = True) -> Store:
    """Open the store at ``url``, creating it or upgrading its schema when needed. With ``create=False`` (the
    tasks that only read) a store that does not exist yet is an error instead, and nothing is created.

    Raises:
        ConfigError: a malformed URL, a driver that is not installed, or (``create=False``) no store at ``url``
            (exit 4, names the fix);
        StoreError: the database does not answer or refuses, or its schema is newer than this madengine's (exit 1,
            names the URL without its password).
    """
    if not create and url.startswith("sqlite") and not _sqlite_exists(url):
        raise ConfigError(f"--results-db {redact(url)}: no results store there yet; runs record into "
                          "madengine-results.db next to perf.csv (or give --results-db URL)")
    try:
        store = Store(url)
    except arg_errors() as e:
        raise ConfigError(f"--results-db {redact(url)}: {first_line(e)}") from None
    except ModuleNotFoundError as e:
        raise ConfigError(f"--results-db {redact(url)}: the driver {e.name!r} is not installed; install "
                          "madengine[postgres]") from None
    try:
        revision = _revision(store)
        if revision is None and not create:
            raise ConfigError(f"--results-db {redact(url)}: that database holds no results store yet; runs record "
                              "into it (or give another --results-db URL)")
        if revision is not None and revision > SCHEMA_REVISION:
            raise StoreError(f"results store {redact(url)}: its schema revision {revision} is newer than this "
                             f"madengine's ({SCHEMA_REVISION}); upgrade madengine to use it")
        if revision != SCHEMA_REVISION:
            _migrate(store)
    except db_errors() as e:
        store.close()
        raise store_error(url, e) from None
    except (ConfigError, StoreError):
        store.close()
        raise
    return store


def _sqlite_exists(url: str) -> bool:
    """Whether the SQLite URL names an existing file (``:memory:`` counts as existing)."""
    from sqlalchemy.engine import make_url

    database = make_url(url).database or ""
    return database in ("", ":memory:") or Path(database).is_file()


def _revision(store: Store) -> str | None:
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _migrate(store: Store) -> None:
    """Run the Alembic migrations up to head, serialised between processes (SQLite: the write lock of ``BEGIN
    IMMEDIATE``; PostgreSQL: an advisory lock)."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    with writer(store.engine) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
        config.attributes["connection"] = conn
        config.attributes["metadata"] = store.metadata
        command.upgrade(config, "head")


def direction_for(model: str, directions: Mapping[str, str]) -> str:
    """The declared direction of ``model``, or of the longest declared model name it extends (a
    ``multiple_results`` row is named ``<model>_<result>``)."""
    if model in directions:
        return directions[model]
    best = max((name for name in directions if model.startswith(f"{name}_")), key=len, default="")
    return directions.get(best, "")


def _number(text: str) -> float | None:
    from madengine.results.record import number

    return number(text)


def _text(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def csv_digest(cells: Iterable[str]) -> str:
    """The ``csv_key`` of a perf.csv row: SHA-256 of its 29 cells as written (:func:`csv_digest_of` their join)."""
    return _digest("\x1f".join(cells))


def csv_digest_of(joined: str) -> str:
    """SHA-256 (hex) of cells already joined with ``\\x1f``."""
    return _digest(joined)


def context_hash(ctx: Mapping[str, Any]) -> str:
    """SHA-256 of the context as canonical JSON (sorted keys), without ``results_db`` (where results are stored
    is not part of the configuration, and may hold a password): equal contexts, equal hashes."""
    ctx = {key: value for key, value in ctx.items() if key != "results_db"}
    return _digest(json.dumps(ctx, sort_keys=True, default=str, separators=(",", ":")))
