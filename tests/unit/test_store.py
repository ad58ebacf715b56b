"""The results store on a real SQLite file and a real PostgreSQL server: schema from the migrations, idempotent
writes, concurrent writers, ingest of perf.csv files of every generation, bad URLs and dead servers."""

from __future__ import annotations

import json
import multiprocessing
import socket
from pathlib import Path

import pytest
import sqlalchemy as sa

from madengine.errors import ConfigError, PerfCsvError, StoreError
from madengine.results.ingest import ingest_csv
from madengine.results.perf_csv import PERF_CSV_HEADER, PerfRow, append_rows
from madengine.results.store import SCHEMA_REVISION, RunInfo, context_hash, open_store, resolve_url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store: an SQLite file, or a fresh database on the private PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    return str(request.getfixturevalue("pg_db_url"))


def _rows(store, run_id: str = "") -> list[dict]:
    query = sa.select(store.results).order_by(store.results.c.id)
    if run_id:
        query = query.where(store.results.c.run_id == run_id)
    return store.query(query)


def test_schema_is_the_migrations_head_and_matches_the_tables(store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    import madengine.results.store as store_mod

    config = Config()
    config.set_main_option("script_location", str(Path(store_mod.__file__).with_name("migrations")))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_REVISION
    store = open_store(store_url)
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), store.metadata) == []
    store.close()


def test_rows_with_samples_are_stored_once_each(store_url: str) -> None:
    store = open_store(store_url)
    store.begin_run(RunInfo("run-a", command="inv run.local", target="local", label="base"))
    rows = [PerfRow(model="bert", status="SUCCESS", performance="10", metric="samples_per_second",
                    samples=[9.0, 10.0, 11.5], docker_image="ci-bert", git_commit="abc"),
            PerfRow(model="gpt", status="FAILURE", reason="timed out after 60 s", metric="ms"),
            PerfRow(model="lat", status="SUCCESS", performance="3.5", metric="latency_ms")]
    assert store.add_rows("run-a", rows, directions={"bert": "lower"}, fingerprints={"ci-bert": "f" * 64}) == 5
    assert store.add_rows("run-a", rows) == 0  # collected twice: nothing added
    stored = _rows(store, "run-a")
    bert = [r for r in stored if r["model"] == "bert"]
    assert [(r["repeat_index"], r["value"], r["performance"]) for r in bert] == \
        [(0, 9.0, "9.0"), (1, 10.0, "10.0"), (2, 11.5, "11.5")]
    assert {r["metric_direction"] for r in bert} == {"lower"}  # declared in models.json wins over the name
    assert bert[0]["build_fingerprint"] == "f" * 64 and bert[0]["git_commit"] == "abc"
    assert bert[0]["csv_key"] and not bert[1]["csv_key"]  # the perf.csv row is the first sample's
    failed = next(r for r in stored if r["model"] == "gpt")
    assert (failed["value"], failed["reason"], failed["status"]) == (None, "timed out after 60 s", "FAILURE")
    assert next(r for r in stored if r["model"] == "lat")["metric_direction"] == "lower"
    store.end_run("run-a")
    assert store.query(sa.select(store.runs.c.ended_at))[0]["ended_at"] is not None
    store.close()


def _writer(url: str, worker: int, count: int) -> None:
    store = open_store(url)  # every writer also races to create the schema of a fresh database
    store.begin_run(RunInfo(f"run-{worker}"))
    for i in range(count):
        store.add_rows(f"run-{worker}", [PerfRow(model=f"m{i}", status="SUCCESS", performance=str(i), metric="x/s")])
    store.close()


def test_concurrent_writers_lose_no_rows(store_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(store_url, w, 40)) for w in range(6)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
    assert [p.exitcode for p in workers] == [0] * 6
    store = open_store(store_url)
    counts = store.query(sa.select(store.results.c.run_id, sa.func.count().label("n"))
                         .group_by(store.results.c.run_id))
    assert sorted((c["run_id"], c["n"]) for c in counts) == [(f"run-{w}", 40) for w in range(6)]
    store.close()


V2_ROWS = [
    {**dict.fromkeys(PERF_CSV_HEADER, ""), "model": "bert", "performance": "101.5", "metric": "samples_per_second",
     "status": "SUCCESS", "docker_sha": "sha256:1", "git_commit": "c0ffee"},
    {**dict.fromkeys(PERF_CSV_HEADER, ""), "model": "bert", "performance": "101.5", "metric": "samples_per_second",
     "status": "SUCCESS", "docker_sha": "sha256:1", "git_commit": "c0ffee"},  # the same result twice: both kept
    {**dict.fromkeys(PERF_CSV_HEADER, ""), "model": "llama", "performance": "", "metric": "", "status": "FAILURE"},
]


def _write_csv(path: Path, header: list[str], rows: list[dict], sep: str = ",") -> None:
    lines = [sep.join(header)] + [sep.join(row.get(name, "") for name in header) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def test_ingest_v2_twice_gives_no_duplicates(store_url: str, tmp_path: Path) -> None:
    csv_path = tmp_path / "perf.csv"
    _write_csv(csv_path, list(PERF_CSV_HEADER), V2_ROWS)
    store = open_store(store_url)
    first, second = ingest_csv(store, csv_path, label="history"), ingest_csv(store, csv_path)
    assert (first.read, first.inserted, second.read, second.inserted) == (3, 3, 3, 0)
    with csv_path.open("a") as f:  # the file grows: only the new row is added
        f.write(",".join({**V2_ROWS[0], "performance": "99"}.get(n, "") for n in PERF_CSV_HEADER) + "\n")
    assert ingest_csv(store, csv_path).inserted == 1
    stored = _rows(store)
    assert [r["value"] for r in stored] == [101.5, 101.5, None, 99.0]
    assert {r["metric_direction"] for r in stored if r["metric"]} == {"higher"}
    runs = {r["run_id"]: r for r in store.query(sa.select(store.runs))}
    assert len(runs) == 2  # the relabelled ingest that added nothing left no run; the new row went to its own
    labelled = {runs[r["run_id"]]["label"]: r["value"] for r in stored}
    assert labelled == {"history": None, "": 99.0}
    assert {(r["source"], r["target"]) for r in runs.values()} == {("ingest", "ingest")}
    store.close()


def test_a_malformed_line_stores_nothing_of_the_file(store_url: str, tmp_path: Path) -> None:
    csv_path = tmp_path / "perf.csv"
    _write_csv(csv_path, list(PERF_CSV_HEADER), V2_ROWS * 3000)  # more than one insert batch before the bad line
    with csv_path.open("a") as f:
        f.write('bert,"cut short\n')
    store = open_store(store_url)
    with pytest.raises(PerfCsvError, match=r"perf.csv:9002"):
        ingest_csv(store, csv_path)
    assert _rows(store) == [] and store.query(sa.select(store.runs)) == []
    store.close()


def test_ingest_v1_file_keeps_its_own_columns(tmp_path: Path) -> None:
    header = ["model", "n_gpus", "training_precision", "pipeline", "args", "tags", "docker_file", "base_docker",
              "docker_sha", "docker_image", "git_commit", "machine_name", "gpu_architecture", "performance",
              "metric", "relative_change", "status", "build_duration", "test_duration", "dataname",
              "data_provider_type", "data_size", "data_download_duration", "build_number", "gpu_model"]
    csv_path = tmp_path / "v1.csv"
    _write_csv(csv_path, header, [{"model": "resnet", "performance": "12.5", "metric": "ms", "status": "SUCCESS",
                                   "gpu_model": "MI300X"}], sep=", ")
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    assert ingest_csv(store, csv_path).inserted == 1
    row = _rows(store)[0]
    assert (row["model"], row["value"], row["metric_direction"], row["nnodes"]) == ("resnet", 12.5, "lower", "")
    assert json.loads(row["extra"]) == {"gpu_model": "MI300X"}
    store.close()


def test_ingest_of_a_recorded_runs_perf_csv_adds_only_other_rows(tmp_path: Path) -> None:
    from madengine.results import recording

    csv_path = tmp_path / "perf.csv"
    append_rows(csv_path, [PerfRow(model="old", status="SUCCESS", performance="1", metric="x/s")])  # history
    rec = recording.start(output=csv_path, hub=None, manifest=None, ctx={}, target="local")
    recording.append(csv_path, [PerfRow(model="new", status="SUCCESS", performance="2", metric="x/s",
                                        samples=[1.5, 2.0, 2.5])], rec)
    rec.finish()
    store = open_store(f"sqlite:///{tmp_path / 'madengine-results.db'}")
    done = ingest_csv(store, csv_path)
    assert (done.read, done.inserted) == (2, 1)
    assert sorted((r["model"], r["value"]) for r in _rows(store)) == \
        [("new", 1.5), ("new", 2.0), ("new", 2.5), ("old", 1.0)]
    store.close()


def test_resolve_url() -> None:
    assert resolve_url(None, None, "/x/y/perf.csv") == "sqlite:////x/y/madengine-results.db"
    assert resolve_url(None, "postgresql://u:p@h/db", "perf.csv") == "postgresql+psycopg://u:p@h/db"
    assert resolve_url("none", "postgresql://u:p@h/db", "perf.csv") is None  # the flag wins over the context
    assert resolve_url("/tmp/r.db", None, "perf.csv") == "sqlite:////tmp/r.db"
    with pytest.raises(ConfigError, match="mysql:// is not supported"):
        resolve_url("mysql://h/db", None, "perf.csv")
    with pytest.raises(ConfigError, match="results_db"):
        resolve_url(None, 42, "perf.csv")
    for typo in ("postgresql+psycopg:/me:S3cret@h/db", "me:S3cret@h/db"):  # never a file named after the password
        with pytest.raises(ConfigError, match="not a database URL") as e:
            resolve_url(typo, None, "perf.csv")
        assert "S3cret" not in e.value.message
    with pytest.raises(ConfigError, match="malformed URL") as e:
        resolve_url("postgresql://u:S3cret@[::1/db", None, "perf.csv")
    assert "S3cret" not in e.value.message
    with pytest.raises(ConfigError, match="in-memory database keeps nothing"):
        resolve_url("sqlite://", None, "perf.csv")


def test_the_context_hash_leaves_out_where_results_go() -> None:
    ctx = {"gpu_vendor": "NONE", "docker_env_vars": {"A": "1"}}
    assert context_hash(ctx) == context_hash({**ctx, "results_db": "postgresql://u:pw@h/db"})
    assert context_hash(ctx) != context_hash({**ctx, "gpu_vendor": "AMD"})


def test_two_files_are_two_sources_unless_across_files(tmp_path: Path) -> None:
    night1, night2 = tmp_path / "n1.csv", tmp_path / "n2.csv"
    for path in (night1, night2):  # a deterministic benchmark: the same row on two nights
        _write_csv(path, list(PERF_CSV_HEADER), V2_ROWS[:1])
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    assert [ingest_csv(store, p).inserted for p in (night1, night2, night1)] == [1, 1, 0]
    cumulative = tmp_path / "copy-of-n1.csv"
    _write_csv(cumulative, list(PERF_CSV_HEADER), V2_ROWS[:1] + V2_ROWS[2:])
    across = [ingest_csv(store, p, across_files=True).inserted for p in (night1, cumulative)]
    assert across == [1, 1]  # the first copy under the content key, then only the row it lacks
    store.close()


def test_files_that_are_not_perf_csv(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(PerfCsvError, match="empty, no perf.csv header"):
        ingest_csv(store, tmp_path / "empty.csv")
    latin = tmp_path / "latin1.csv"
    latin.write_bytes(b"model,performance,metric,status\nok,1,x/s,SUCCESS\ncaf\xe9,2,x/s,SUCCESS\n")
    with pytest.raises(PerfCsvError, match=r"latin1.csv:3: not UTF-8"):
        ingest_csv(store, latin)
    odd = tmp_path / "odd.csv"
    odd.write_text("model,performance,metric,status\na,nan,x/s,SUCCESS\nb,1_000,x/s,SUCCESS\nc,5,x/s,SUCCESS\n")
    done = ingest_csv(store, odd)
    assert (done.inserted, done.unnumbered, done.unnumbered_example) == (3, 2, "nan")
    assert store.query(sa.select(store.runs.c.status)) == [{"status": "done"}]
    store.close()


def test_a_dead_server_is_one_line_without_the_password() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StoreError) as e:
        open_store(f"postgresql+psycopg://me:s3cret-pw@127.0.0.1:{port}/db")
    assert "s3cret-pw" not in e.value.message and "\n" not in e.value.message
    assert f"127.0.0.1:{port}" in e.value.message


def test_an_unwritable_sqlite_file_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()  # a directory where the file should be
    with pytest.raises(StoreError, match="results store sqlite"):
        open_store(f"sqlite:///{tmp_path / 'dir.db'}")
