"""Benchmark: the results store's goals (not a test; asserts nothing, always exits 0).

1. ingest a ``--rows`` (default 1,000,000) perf.csv (29 columns, ~rows/500 models x 500 runs) with
   ``results.ingest.ingest_csv``: rows/s, goal >= 50,000. Baselines: csv.reader alone, and the driver's plain
   ``executemany`` of the same cells into a 29-column table without indexes (reading included).
2. ``report.verdicts.history`` of one model over those rows: seconds, goal < 0.2 s. Baseline: the raw
   ``SELECT * FROM results WHERE model = ?`` through the driver.
3. ``report.compare`` of two runs of rows/10 result rows each (20,000 models x 5 samples at full size):
   ``compare_store(store, "run:A", "run:B")`` + ``render_verdicts``, goal < 2 s (scaled linearly when --rows is
   smaller). Baseline: the raw select of both runs' samples.
4. peak RSS of ``results.recording.append`` of one model's row (5 samples) to the rows-long perf.csv with an SQLite
   store, in a fresh interpreter, first append (no relative_change index) and the next (indexed): goal <= 100 MB.
   Baseline: a fresh interpreter that only imports the modules the append had loaded.

``--pg URL`` runs goals 1-3 on PostgreSQL too, in scratch databases created and dropped here.

Usage: ``.venv/bin/python benchmarks/bench_results.py [--rows N | --quick] [--pg postgresql+psycopg://U:P@H:PORT/DB]``
"""

from __future__ import annotations

import argparse
import csv
import random
import subprocess
import sys
import tempfile
import time
import uuid
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from timing import median_time  # benchmarks/timing.py (scripts run from their folder)

from madengine.report.verdicts import compare_store, history, render_verdicts  # noqa: E402
from madengine.results.ingest import ingest_csv  # noqa: E402
from madengine.results.perf_csv import PERF_CSV_HEADER, PerfRow  # noqa: E402
from madengine.results.store import RunInfo, open_store  # noqa: E402

METRICS = ("samples_per_second", "tokens_per_second", "images_per_second", "latency_ms")
RUNS_PER_MODEL = 500
CHILD = """
import importlib, resource, sys, time
mode, csv_path, db, modules = sys.argv[1:5]
if mode == "imports":
    for name in open(modules).read().split():
        try:
            importlib.import_module(name)
        except Exception:
            pass
    took = 0.0
else:
    from madengine.results import recording
    from madengine.results.perf_csv import PerfRow
    rec = recording.start(output=csv_path, hub=None, manifest=None, ctx={}, target="local", results_db=db)
    row = PerfRow(model="pyt_model_0007", status="SUCCESS", performance="1001.5", metric="samples_per_second",
                  docker_file="docker/pyt_model_7.ubuntu.amd.Dockerfile", deployment_type="local",
                  gpu_architecture="gfx942", samples=[1000.0, 1001.5, 999.0, 1003.0, 1002.0])
    start = time.perf_counter()
    recording.append(csv_path, [row], rec)
    rec.finish()
    took = time.perf_counter() - start
    open(modules, "w").write("\\n".join(m for m in sorted(sys.modules) if not m.startswith("__")))
try:  # VmHWM: this process image's own peak (Linux ru_maxrss keeps the parent's peak across fork + exec)
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(took, peak)
"""


def write_perf_csv(path: Path, rows: int) -> int:
    """A MAD-like perf.csv of ``rows`` rows: models x runs, 3 % FAILURE; returns the number of models."""
    models = max(1, rows // RUNS_PER_MODEL)
    rnd = random.Random(0)
    level = [rnd.uniform(50, 5000) for _ in range(models)]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(PERF_CSV_HEADER)
        for i in range(rows):
            run, m = divmod(i, models)
            ok = rnd.random() > 0.03
            commit = f"{run * 2654435761 % 16**40:040x}"
            writer.writerow((
                f"pyt_model_{m:04d}", "8", "1", "8", "fp16", "", f"--batch-size {32 << m % 3}", "pyt,inference",
                f"docker/pyt_model_{m % 50}.ubuntu.amd.Dockerfile", "rocm/pytorch:latest", f"sha256:{commit}{commit[:24]}",
                f"ci-pyt_model_{m:04d}", commit, f"node{(run + m) % 16:02d}", "local", "torchrun", "gfx942",
                f"{level[m] * rnd.gauss(1, 0.02):.2f}" if ok else "", METRICS[m % 4], f"{rnd.gauss(0, 2):+.2f}%" if run else "",
                "SUCCESS" if ok else "FAILURE", f"{rnd.uniform(5, 300):.1f}", f"{rnd.uniform(30, 900):.1f}",
                "", "", "", "", str(run), ""))
    return models


def raw(url: str) -> tuple[object, str]:
    """A DB-API connection to ``url`` (sqlite3 or psycopg) and its parameter mark."""
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.split(":///", 1)[1])
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn, "?"
    import psycopg
    from sqlalchemy.engine import make_url

    return psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)), "%s"


def plain_insert(url: str, path: Path) -> float:
    """Seconds to read ``path`` and ``executemany`` its cells (batches of 5,000) into a table without indexes."""
    conn, mark = raw(url)
    conn.execute(f"CREATE TABLE plain ({', '.join(f'{c} TEXT' for c in PERF_CSV_HEADER)})")
    conn.commit()
    sql = f"INSERT INTO plain VALUES ({', '.join([mark] * len(PERF_CSV_HEADER))})"
    start = time.perf_counter()
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        while batch := list(islice(reader, 5000)):
            conn.cursor().executemany(sql, batch)
            conn.commit()
    took = time.perf_counter() - start
    conn.close()
    return took


def raw_select(url: str, sql: str, params: tuple) -> float:
    """Median seconds of fetching all rows of ``sql`` through the driver."""
    conn, mark = raw(url)
    took = median_time(lambda: conn.execute(sql.replace("?", mark), params).fetchall(), 5)
    conn.close()
    return took


def compare_goal(url: str, per_run: int) -> tuple[float, float, int]:
    """(compare + render seconds, raw select seconds, benchmarks judged) for two runs of ``per_run`` rows."""
    store = open_store(url)
    rnd = random.Random(1)
    models = max(1, per_run // 5)
    levels = [rnd.uniform(50, 5000) for _ in range(models)]
    for run_id, shift in (("A", 0.0), ("B", 0.10)):
        store.begin_run(RunInfo(run_id=run_id, started_at=time.time(), target="local", label=f"bench-{run_id}"))
        rows = []
        for m, level in enumerate(levels):
            centre = level * (1 - shift if m % 33 == 0 else 1)  # 3 % of the models regress by 10 % in run B
            samples = [round(centre * rnd.gauss(1, 0.01), 2) for _ in range(5)]
            rows.append(PerfRow(model=f"cmp_model_{m:05d}", status="SUCCESS", metric="samples_per_second",
                                gpu_architecture="gfx942", docker_image=f"ci-cmp_model_{m:05d}",
                                performance=str(sorted(samples)[2]), samples=samples))
        store.add_rows(run_id, rows)
        time.sleep(0.01)
    judged: list = []

    def run() -> None:
        judged[:] = compare_store(store, "run:A", "run:B")
        render_verdicts(judged)

    took = median_time(run, 3)
    base = raw_select(url, "SELECT model, metric, gpu_architecture, value FROM results WHERE run_id IN (?, ?)",
                      ("A", "B"))
    store.close()
    return took, base, len(judged)


def store_goals(urls: tuple[str, str, str], path: Path, rows: int, tag: str, results: list) -> None:
    """Goals 1-3: ``urls`` are the ingest store, the (fresh) compare store and the plain baseline's database."""
    url, compare_url, plain_url = urls
    per_run = max(5, rows // 10)
    took, base, judged = compare_goal(compare_url, per_run)
    goal = 2.0 * per_run / 100_000
    print(f"[{tag}] compare {per_run:,}+{per_run:,} rows ({judged:,} benchmarks) + render: {took:.3f} s; raw select "
          f"of both runs {base:.3f} s")
    results.append((f"[{tag}] compare 2 x {per_run:,} rows", f"{took:.3f} s", f"< {goal:.2f} s", took / base,
                    took < goal))
    start = time.perf_counter()
    with open(path, newline="", encoding="utf-8") as fh:
        for _ in csv.reader(fh):
            pass
    read_only = time.perf_counter() - start
    plain = plain_insert(plain_url, path)
    store = open_store(url)
    start = time.perf_counter()
    done = ingest_csv(store, path)
    took = time.perf_counter() - start
    rate = done.inserted / took
    print(f"[{tag}] ingest_csv {done.inserted:,}/{done.read:,} rows: {took:.2f} s = {rate:,.0f} rows/s; csv.reader "
          f"alone {read_only:.2f} s; csv + plain executemany {plain:.2f} s = {rows / plain:,.0f} rows/s")
    results.append((f"[{tag}] ingest {rows:,} rows", f"{rate:,.0f} rows/s", ">= 50,000 rows/s", took / plain,
                    rate >= 50_000))
    model = "pyt_model_0007"
    took = median_time(lambda: history(store, model), 5)
    base = raw_select(url, "SELECT * FROM results WHERE model = ?", (model,))
    print(f"[{tag}] history {model} over {rows:,} rows: {took * 1000:.1f} ms; raw select of its rows "
          f"{base * 1000:.1f} ms")
    results.append((f"[{tag}] history of one model", f"{took:.3f} s", "< 0.2 s", took / base, took < 0.2))
    store.close()


def child(mode: str, path: Path, db: str, modules: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of the memory child in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(path), db, str(modules)], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[-2]), int(out[-1]) / 1024


def memory_goal(path: Path, tmp: Path, rows: int, results: list) -> None:
    modules, db = tmp / "modules.txt", f"sqlite:///{tmp / 'recording.db'}"
    first = child("append", path, db, modules)
    second = child("append", path, db, modules)
    base = child("imports", path, db, modules)
    peak = max(first[1], second[1])
    print(f"[sqlite] recording.append to a {rows:,}-row perf.csv: first (no index) {first[0] * 1000:.0f} ms "
          f"{first[1]:.1f} MB peak RSS; indexed {second[0] * 1000:.0f} ms {second[1]:.1f} MB; imports only "
          f"{base[1]:.1f} MB")
    results.append(("[sqlite] append peak RSS", f"{peak:.1f} MB", "<= 100 MB", peak / base[1], peak <= 100))


def pg_scratch(url: str, name: str, drop: bool = False) -> str:
    """Create (or drop) the scratch database ``name`` on the server of ``url``; returns its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)" if drop else f"CREATE DATABASE {name}")
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="--rows 100000")
    parser.add_argument("--pg", metavar="URL", help="also run goals 1-3 on this PostgreSQL server")
    opts = parser.parse_args()
    rows = 100_000 if opts.quick else opts.rows
    results: list[tuple[str, str, str, float, bool]] = []
    with tempfile.TemporaryDirectory(prefix="madengine-bench-") as name:
        tmp = Path(name)
        path = tmp / "perf.csv"
        start = time.perf_counter()
        models = write_perf_csv(path, rows)
        print(f"perf.csv: {rows:,} rows ({models:,} models x {rows // models} runs), "
              f"{path.stat().st_size / 2**20:.0f} MiB, written in {time.perf_counter() - start:.1f} s")
        store_goals(tuple(f"sqlite:///{tmp / f}.db" for f in ("ingest", "compare", "plain")), path, rows, "sqlite",
                    results)
        if opts.pg:
            prefix = f"bench_{uuid.uuid4().hex[:8]}"
            names = [f"{prefix}_ingest", f"{prefix}_compare"]
            try:
                urls = [pg_scratch(opts.pg, n) for n in names]
                store_goals((urls[0], urls[1], urls[0]), path, rows, "pg", results)
            finally:
                for n in names:
                    pg_scratch(opts.pg, n, drop=True)
        memory_goal(path, tmp, rows, results)
    print(f"\n{'goal':34} {'measured':>16} {'target':>18} {'x baseline':>10}  verdict")
    for label, measured, target, ratio, ok in results:
        print(f"{label:34} {measured:>16} {target:>18} {ratio:>10.2f}  {'PASS' if ok else 'MISS'}")


if __name__ == "__main__":
    main()
