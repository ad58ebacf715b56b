"""Results you can trust, end to end on the real engine: the same two trivial models run with ``--repeat 5`` twice
(the second time one of them is slowed down well beyond its noise) into an SQLite file and into PostgreSQL; the
store's verdict is "regression" for the slowed model and "noise" for the unchanged one, ``report.check`` fails,
every row carries its provenance, and ``results.show`` tells how to replay it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import add_model, copy_example_hub, madengine, read_perf, write_script

# 100.00 .. 101.99 (±1 % around 101), divided by the variable its 2nd argument names (default 1): a benchmark with
# a little noise that the test can slow down
RUN_SH = """v=$((10000 + RANDOM % 200))
f=${!2:-1}
awk -v v="$v" -v f="$f" -v m="$1" 'BEGIN { printf "performance: %.2f %s\\n", v / 100 / f, m }'
"""


@pytest.fixture(scope="module")
def store_hub(tmp_path_factory: pytest.TempPathFactory, docker_client) -> Path:
    """A git-tracked copy of the example hub with the models ``steady`` and ``slowed``, built once."""
    hub = copy_example_hub(tmp_path_factory.mktemp("store") / "hub")
    write_script(hub, "scripts/noisy/run.sh", RUN_SH)
    add_model(hub, "steady", scripts="scripts/noisy", args="samples_per_second UNUSED", tags=["trust"],
              n_gpus="1")
    add_model(hub, "slowed", scripts="scripts/noisy", args="samples_per_second SLOWDOWN", tags=["trust"],
              n_gpus="1", metric_direction="higher")
    git = ["git", "-C", str(hub), "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "hub"]):
        subprocess.run(git + command, check=True, capture_output=True)
    res = madengine("build", "--tags", "trust", "--additional-context", '{"gpu_vendor": "NONE"}', cwd=hub)
    assert res.rc == 0, res.text
    return hub


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_repeat_twice_gives_regression_and_noise(backend: str, store_hub: Path, tmp_path: Path,
                                                 request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'team.db'}" if backend == "sqlite" else request.getfixturevalue("pg_db_url")
    out = tmp_path / "perf.csv"
    commit = subprocess.run(["git", "-C", str(store_hub), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    for label, slowdown in (("base", "1"), ("cand", "1.5")):
        ctx = {"gpu_vendor": "NONE", "docker_env_vars": {"SLOWDOWN": slowdown}}
        res = madengine("run.local", "--manifest-file", str(store_hub / "build_manifest.json"), "--output", str(out),
                        "--additional-context", json.dumps(ctx), "--repeat", "5", "--results-db", url,
                        "--label", label, cwd=store_hub)
        assert res.rc == 0, res.text

    rows = read_perf(out)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"SUCCESS"}
    for row in rows:  # provenance in perf.csv itself
        assert row["git_commit"] == commit and row["docker_sha"].startswith("sha256:")

    res = madengine("report.compare", "--results-db", url, "--baseline", "label:base", "--candidate", "label:cand",
                    "--format", "json", cwd=tmp_path)
    assert res.rc == 0, res.text
    verdicts = {v["model"]: v for v in json.loads(res.out)}
    assert verdicts["slowed"]["verdict"] == "regression", verdicts["slowed"]
    assert verdicts["slowed"]["change"] == pytest.approx(-1 / 3, abs=0.03)
    assert verdicts["steady"]["verdict"] == "noise", verdicts["steady"]
    assert verdicts["slowed"]["n_baseline"] == verdicts["slowed"]["n_candidate"] == 5

    check = madengine("report.check", "--results-db", url, "--baseline", "label:base", "--candidate", "label:cand",
                      cwd=tmp_path)
    assert check.rc == 3 and "1 benchmark(s) regressed, failed or missing: slowed samples_per_second: regression" \
        in check.err, check.text

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        stored = [dict(r._mapping) for r in conn.execute(sa.text(
            "SELECT r.id, r.model, r.docker_sha, r.git_commit, r.build_fingerprint, r.repeat_index, u.label, "
            "u.hub_git_commit, u.command FROM results r JOIN runs u ON u.run_id = r.run_id"))]
    engine.dispose()
    assert len(stored) == 20  # 2 runs x 2 models x 5 samples
    assert all(r["docker_sha"].startswith("sha256:") and r["git_commit"] == commit and len(r["build_fingerprint"]) == 64
               for r in stored)
    assert sorted({r["repeat_index"] for r in stored}) == [0, 1, 2, 3, 4]
    assert {r["hub_git_commit"] for r in stored} == {commit}
    password = sa.engine.make_url(url).password
    assert all("--results-db" in r["command"] for r in stored)
    assert not password or all(f":{password}@" not in r["command"] for r in stored)  # the DB password is not kept

    history = madengine("report.history", "slowed", "--results-db", url, cwd=tmp_path)
    assert history.rc == 0 and "regression" in history.out, history.text
    shown = madengine("results.show", str(stored[0]["id"]), "--results-db", url, cwd=tmp_path)
    assert shown.rc == 0, shown.text
    assert f"git_commit         {commit}" in shown.out and "--repeat 5" in shown.out and "steps.sh" in shown.out


def test_a_bad_results_db_stops_before_the_build(store_hub: Path, tmp_path: Path) -> None:
    res = madengine("run.local", "--tags", "steady", "--output", str(tmp_path / "perf.csv"), "--additional-context",
                    '{"gpu_vendor": "NONE"}', "--results-db", "postgresql://me:pw-XYZ@127.0.0.1:9/db", cwd=store_hub)
    assert res.rc == 1 and "results store postgresql+psycopg://me:***@127.0.0.1:9/db" in res.err, res.text
    assert "pw-XYZ" not in res.text and "building" not in res.err and not (tmp_path / "perf.csv").exists()
    res = madengine("run.local", "--tags", "steady", "--additional-context", '{"gpu_vendor": "NONE"}',
                    "--results-db", "mysql://x/y", cwd=store_hub)
    assert res.rc == 4 and "mysql:// is not supported" in res.err, res.text


def _v2_csv(path: Path, rows: list[dict[str, str]]) -> None:
    from madengine.results.perf_csv import PERF_CSV_HEADER

    lines = [",".join(PERF_CSV_HEADER)] + [",".join(r.get(n, "") for n in PERF_CSV_HEADER) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def test_the_cli_over_an_ingested_history(tmp_path: Path) -> None:
    """Readers never create a store; report.check fails on a failed or missing benchmark as on a regression;
    report outputs never replace the store, the manifest or the hub's files."""
    (tmp_path / "models.json").write_text("[]\n")
    res = madengine("results.runs", cwd=tmp_path)
    assert res.rc == 4 and "no results store there yet" in res.err and "Traceback" not in res.text, res.text
    assert not (tmp_path / "madengine-results.db").exists()

    def row(model: str, value: str, build: str, status: str = "SUCCESS") -> dict[str, str]:
        return {"model": model, "performance": value, "metric": "samples_per_second", "status": status,
                "build_number": build}

    base, cand = tmp_path / "base.csv", tmp_path / "cand.csv"
    _v2_csv(base, [row(m, str(100 + i % 3), "7") for i in range(5) for m in ("ok", "crashes", "gone")])
    _v2_csv(cand, [row("ok", str(100 + i % 3), "8") for i in range(5)] + [row("crashes", "", "8", "FAILURE")])
    for path, label, new in ((base, "base", 15), (cand, "cand", 6), (base, "base", 0)):
        res = madengine("results.ingest", "--csv", str(path), "--label", label, cwd=tmp_path)
        assert res.rc == 0 and f"row(s) read, {new} new" in res.out, res.text

    check = madengine("report.check", "--baseline", "label:base", "--candidate", "label:cand", cwd=tmp_path)
    assert check.rc == 3, check.text
    assert "crashes samples_per_second: failed" in check.err and "gone samples_per_second: missing" in check.err
    allowed = madengine("report.check", "--baseline", "label:base", "--candidate", "label:cand", "--allow-missing",
                        cwd=tmp_path)
    assert allowed.rc == 3 and "gone" not in allowed.err.split("failed or missing:")[-1], allowed.text

    db = tmp_path / "madengine-results.db"
    size = db.stat().st_size
    for target in (db, tmp_path / "models.json"):
        res = madengine("report.compare", "--baseline", "label:base", "--candidate", "label:cand", "--output",
                        str(target), cwd=tmp_path)
        assert res.rc == 4 and "nothing was written" in res.err, res.text
    assert db.stat().st_size == size and (tmp_path / "models.json").read_text() == "[]\n"
    res = madengine("results.ingest", "--csv", str(base), "--label", "a,b", cwd=tmp_path)
    assert res.rc == 4 and "cannot hold a comma" in res.err, res.text
    res = madengine("results.runs", "--results-db", "postgresql:/me:Pw-123@h/db", cwd=tmp_path)
    assert res.rc == 4 and "not a database URL" in res.err and "Pw-123" not in res.text, res.text
    for threshold in ("1", "2.5"):
        res = madengine("report.compare", "--baseline", "label:base", "--threshold", threshold, cwd=tmp_path)
        assert res.rc == 4 and "a fraction below 1" in res.err, res.text
