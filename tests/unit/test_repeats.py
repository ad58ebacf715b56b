"""``--repeat N --warmup K``: validation, the step script's sequence (run for real with bash, no container), the
combination of the measured runs (median, samples, the first failing run named), and the samples carried by the
result record, the run summary and Slurm's collection."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from madengine.errors import ConfigError
from madengine.gpu import GpuAssignment
from madengine.hub import Model
from madengine.manifest import BuiltImage
from madengine.results.perf_csv import PERF_CSV_HEADER, PerfRow
from madengine.run_spec import RunOptions, check_supported
from madengine.workflow import script, steps
from madengine.workflow.plan import RunRequest, plan_run

# --- the combination of the measured runs -------------------------------------------------------------------------


def _ok(value: str, model: str = "m", metric: str = "items_per_second") -> PerfRow:
    return PerfRow(model=model, performance=value, metric=metric, status="SUCCESS", test_duration="9.00")


def _failed(reason: str, value: str = "", metric: str = "", model: str = "m") -> PerfRow:
    return PerfRow(model=model, performance=value, metric=metric, status="FAILURE", reason=reason,
                   test_duration="9.00")


def test_median_of_the_samples_in_run_order() -> None:
    [row] = steps.combine_repeats([[_ok("41")], [_ok("43.0")], [_ok("42")]], 3)
    assert (row.status, row.reason, row.performance, row.samples) == ("SUCCESS", "", "42", [41.0, 43.0, 42.0])
    assert (row.model, row.metric, row.test_duration) == ("m", "items_per_second", "9.00")
    [even] = steps.combine_repeats([[_ok("1")], [_ok("2")], [_ok("4")], [_ok("10")]], 4)
    assert (even.performance, even.samples) == ("3", [1.0, 2.0, 4.0, 10.0])
    [half] = steps.combine_repeats([[_ok("1")], [_ok("2")]], 2)
    assert half.performance == "1.5"
    # the median's text is the value as printed when it is one of the values
    [text] = steps.combine_repeats([[_ok("1.50e+01")], [_ok("3")], [_ok("20")]], 3)
    assert (text.performance, text.samples) == ("1.50e+01", [15.0, 3.0, 20.0])


def test_a_failing_repeat_fails_the_row_and_is_named() -> None:
    runs = [[_ok("10")], [_ok("12")], [_failed("run command exited with code 1")]]
    [row] = steps.combine_repeats(runs, 5)
    assert row.status == "FAILURE" and row.reason == "repeat 3 of 5: run command exited with code 1"
    assert (row.performance, row.samples) == ("11", [10.0, 12.0])
    # a failing run that printed a value: the value counts, the run's reason is given
    runs = [[_ok("10")], [_failed("log shows: Traceback", "30", "items_per_second")], [_ok("20")]]
    [row] = steps.combine_repeats(runs, 3)
    assert (row.status, row.reason, row.performance, row.samples) == (
        "FAILURE", "repeat 2 of 3: log shows: Traceback", "20", [10.0, 30.0, 20.0])
    # the first run failed without any result: one row, that run's reason, no value
    [row] = steps.combine_repeats([[_failed("timed out after 60 s")]], 3)
    assert (row.status, row.reason, row.performance, row.samples) == (
        "FAILURE", "repeat 1 of 3: timed out after 60 s", "", [])


def test_runs_that_never_reported() -> None:
    [row] = steps.combine_repeats([[_ok("1")], [_ok("2")]], 3, "the container was stopped")
    assert row.status == "FAILURE" and row.reason == "repeat 3 of 3: the container was stopped"
    assert row.samples == [1.0, 2.0]


def test_multiple_results_are_combined_result_by_result() -> None:
    first = [_ok("1", "m_a"), _ok("100", "m_b", "ms")]
    second = [_ok("3", "m_a"), _ok("300", "m_b", "ms"), _ok("7", "m_c")]
    third = [_ok("2", "m_a"), _failed("multiple_results: performance is blank", model="m_b", metric="ms")]
    rows = steps.combine_repeats([first, second, third], 3)
    assert [(r.model, r.metric, r.status, r.performance, r.samples) for r in rows] == [
        ("m_a", "items_per_second", "SUCCESS", "2", [1.0, 3.0, 2.0]),
        ("m_b", "ms", "FAILURE", "200", [100.0, 300.0]),
        ("m_c", "items_per_second", "FAILURE", "7", [7.0])]
    assert rows[1].reason == "repeat 3 of 3: multiple_results: performance is blank"
    assert rows[2].reason == "repeat 1 of 3: no items_per_second result for m_c"


def test_a_single_measured_run_has_no_samples() -> None:
    [row] = steps.combine_repeats([[_ok("5")]], 1)
    assert (row.status, row.performance, row.samples) == ("SUCCESS", "5", [])


# --- validation ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "flag"), [
    ({"repeat": 0}, "--repeat"), ({"repeat": 1001}, "--repeat"), ({"repeat": True}, "--repeat"),
    ({"warmup": -1}, "--warmup"), ({"warmup": 1001}, "--warmup"), ({"repeat": "3"}, "--repeat"),
])
def test_repeat_and_warmup_are_checked_before_anything_runs(values: dict, flag: str) -> None:
    with pytest.raises(ConfigError) as e:
        check_supported(RunOptions(**values), "local")
    assert e.value.message.startswith(f"{flag}: ") and e.value.exit_code == 4


@pytest.mark.parametrize("task", ["run.local", "run.slurm", "run.k8s"])
def test_the_cli_refuses_a_bad_repeat_before_building(task: str, hub: Path) -> None:
    from tests.conftest import CPU, madengine

    res = madengine(task, "--tags", "dummy", "--additional-context", CPU, "--repeat", "3", "--warmup=-1", cwd=hub)
    assert res.rc == 4 and "--warmup: -1 must be a whole number from 0 to 1000" in res.err, res.text
    assert not (hub / "build_manifest.json").exists() and not (hub / "perf.csv").exists()


def test_sane_values_pass() -> None:
    for target in ("local", "slurm", "k8s"):
        check_supported(RunOptions(repeat=1000, warmup=1000), target)
        check_supported(RunOptions(repeat=1, warmup=0), target)


# --- the step script, run for real -----------------------------------------------------------------------------------

COUNTER_RUN_SH = """#!/bin/bash
# each run prints a different value: 10 x (number of this run, warmups included)
n=$(( $(cat ../count 2>/dev/null || echo 0) + 1 )); echo "$n" > ../count
echo "run $n"
{body}
echo "performance: $(( n * 10 )) items_per_second"
"""


def _request(tmp_path: Path, run_sh: str, *, repeat: int = 1, warmup: int = 0, multiple: str = "",
             timeout: float | None = 60) -> tuple[RunRequest, Path]:
    hub = tmp_path / "hub"
    (hub / "scripts/rep").mkdir(parents=True, exist_ok=True)
    (hub / "scripts/rep/run.sh").write_text(run_sh)
    (hub / "scripts/post.sh").write_text('echo "POST-STEP ran"\n')
    model = Model(name="rep", scripts="scripts/rep", multiple_results=multiple)
    req = RunRequest(model=model, build=BuiltImage(model="rep", docker_image="i", dockerfile="d", log_base="rep_d"),
                     image="i", hub=hub, ctx={"post_scripts": [{"path": "scripts/post.sh"}]},
                     gpus=GpuAssignment("NONE", [], ""), timeout=timeout, log_dir=tmp_path, work_root=tmp_path,
                     run_id="r1", options=RunOptions(repeat=repeat, warmup=warmup), sys_env_details=False)
    workspace = tmp_path / "ws"
    (workspace / "run_directory").mkdir(parents=True)
    (workspace / "run_directory/run.sh").write_text(run_sh)
    (workspace / "scripts").mkdir()
    (workspace / "scripts/post.sh").write_text('echo "POST-STEP ran"\n')
    return req, workspace


def _run(req: RunRequest, workspace: Path) -> tuple[list[PerfRow], str, int]:
    plan = plan_run(req)
    text = script.render(req, plan, workspace=str(workspace))
    path = script.write(workspace, text)
    proc = subprocess.run(["bash", str(path)], cwd=workspace, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "MAD_WORKSPACE": str(workspace),
                               "MAD_OUTPUT_CSV": req.model.multiple_results})
    return steps.rows(req, plan, workspace), proc.stdout, proc.returncode


def _names(workspace: Path) -> list[str]:
    return [s.name for s in script.read_steps(workspace)]


def test_single_run_script_is_unchanged(tmp_path: Path) -> None:
    req, workspace = _request(tmp_path, COUNTER_RUN_SH.format(body=""))
    text = script.render(req, plan_run(req), workspace=str(workspace))
    assert "mad_step model 60 1 " in text and "warmup" not in text and "MAD_OUT" not in text
    assert 'tee "$MAD_STATE/model.out"' in text and "repeat-" not in text
    assert "model.*.out" not in script.render(req, plan_run(req), workspace=str(workspace), bundle=True)
    [row], _out, rc = _run(req, workspace)
    assert rc == 0 and (row.status, row.performance, row.samples) == ("SUCCESS", "10", [])
    assert _names(workspace) == ["model", "post-script scripts/post.sh"]
    assert not list((workspace / ".madengine").glob("model.*.out"))


def test_warmup_then_measured_runs(tmp_path: Path) -> None:
    req, workspace = _request(tmp_path, COUNTER_RUN_SH.format(body=""), repeat=3, warmup=1)
    [row], out, rc = _run(req, workspace)
    assert rc == 0, out
    assert _names(workspace) == ["warmup 1", "model", "model 2", "model 3", "post-script scripts/post.sh"]
    state = workspace / ".madengine"
    assert [(state / n).read_text().splitlines()[-1] for n in ("model.out", "model.2.out", "model.3.out")] == [
        "performance: 20 items_per_second", "performance: 30 items_per_second", "performance: 40 items_per_second"]
    assert (row.status, row.performance, row.samples) == ("SUCCESS", "30", [20.0, 30.0, 40.0])
    durations = [s.duration for s in script.read_steps(workspace) if s.name.startswith("model")]
    assert row.test_duration == f"{sum(durations):.2f}"
    assert "performance: 10 items_per_second" in out and "run 1" in out  # the warmup is in the log, not counted


def test_a_failing_repeat_stops_the_others_and_the_post_steps_run(tmp_path: Path) -> None:
    body = 'if [ "$n" = 2 ]; then echo "performance: 99 items_per_second"; exit 3; fi'
    req, workspace = _request(tmp_path, COUNTER_RUN_SH.format(body=body), repeat=3)
    [row], out, rc = _run(req, workspace)
    assert rc != 0
    assert _names(workspace) == ["model", "model 2", "post-script scripts/post.sh"] and "POST-STEP ran" in out
    assert (row.status, row.reason) == ("FAILURE", "repeat 2 of 3: run command exited with code 3")
    assert (row.performance, row.samples) == ("54.5", [10.0, 99.0])


def test_every_sample_is_held_to_the_validity_contract(tmp_path: Path) -> None:
    body = 'if [ "$n" = 2 ]; then echo "performance: 0 items_per_second"; exit 0; fi'
    req, workspace = _request(tmp_path, COUNTER_RUN_SH.format(body=body), repeat=3)
    [row], out, rc = _run(req, workspace)
    assert rc == 0, out  # the median (10) alone would pass: the zero of run 2 must fail the row
    assert row.status == "FAILURE" and row.reason.startswith("repeat 2 of 3: performance is 0"), row.reason


def test_the_timeout_applies_to_each_repeat(tmp_path: Path) -> None:
    body = 'if [ "$n" = 2 ]; then sleep 30; fi'
    req, workspace = _request(tmp_path, COUNTER_RUN_SH.format(body=body), repeat=2, timeout=1)
    [row], _out, _rc = _run(req, workspace)
    assert _names(workspace) == ["model", "model 2", "post-script scripts/post.sh"]
    assert (row.status, row.reason, row.samples) == ("FAILURE", "repeat 2 of 2: timed out after 1 s", [10.0])
    assert script.total_limit(plan_run(req), script.runs(req)) == (script.total_limit(plan_run(req)) or 0) + 1 + 15


def test_a_failing_warmup_fails_the_row(tmp_path: Path) -> None:
    req, workspace = _request(tmp_path, COUNTER_RUN_SH.format(body='[ "$n" = 1 ] && exit 4'), repeat=2, warmup=1)
    [row], out, _rc = _run(req, workspace)
    assert _names(workspace) == ["warmup 1", "post-script scripts/post.sh"]
    assert (row.status, row.reason, row.samples) == ("FAILURE", "warmup 1 of 1: run command exited with code 4", [])


def test_each_repeat_parses_its_own_multiple_results_csv(tmp_path: Path) -> None:
    body = """printf 'model,performance,metric\\na,%s,ms\\n' "$n" > "$MAD_OUTPUT_CSV"
[ "$n" != 3 ] && printf 'b,%s,ms\\n' "$(( n * 100 ))" >> "$MAD_OUTPUT_CSV"
true"""
    req, workspace = _request(tmp_path, COUNTER_RUN_SH.format(body=body), repeat=3, warmup=1, multiple="perf_r.csv")
    rows, out, rc = _run(req, workspace)
    assert rc == 0, out
    assert [(r.model, r.status, r.performance, r.samples) for r in rows] == [
        ("rep_a", "SUCCESS", "3", [2.0, 3.0, 4.0]), ("rep_b", "FAILURE", "300", [200.0, 400.0])]
    assert rows[1].reason == "repeat 2 of 3: no ms result for rep_b"
    state = workspace / ".madengine"
    assert [(state / f"repeat-{i}/perf_r.csv").read_text().splitlines()[1] for i in (1, 2, 3)] == [
        "a,2,ms", "a,3,ms", "a,4,ms"]
    # the last run's CSV stays where the model wrote it (collected as after a single run)
    assert (workspace / "run_directory/perf_r.csv").read_text().splitlines()[1] == "a,4,ms"
    # collected: the last run's as usual, every run's under repeat-<i>/ of the run's directory
    assert steps.finish(req, plan_run(req), workspace) == rows and not workspace.exists()
    run_dir = tmp_path / "madengine-runs/r1/rep_d"
    assert (run_dir / "perf_r.csv").read_text().splitlines()[1] == "a,4,ms"
    assert [(run_dir / f"repeat-{i}/perf_r.csv").read_text().splitlines()[1] for i in (1, 2, 3)] == [
        "a,2,ms", "a,3,ms", "a,4,ms"]


def test_the_bundle_carries_every_repeat(tmp_path: Path) -> None:
    req, workspace = _request(tmp_path, COUNTER_RUN_SH.format(body=""), repeat=2, multiple="perf_r.csv")
    text = script.render(req, plan_run(req), workspace=str(workspace), bundle=True)
    assert ".madengine/model.*.out .madengine/repeat-*)" in text
    path = script.write(workspace, text)
    proc = subprocess.run(["bash", str(path)], cwd=workspace, capture_output=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "MAD_WORKSPACE": str(workspace)})
    _rest, bundle = script.split_bundle(proc.stdout.decode())
    assert bundle is not None
    unpacked = tmp_path / "unpacked"
    names = {p.relative_to(unpacked).as_posix() for p in script.unpack_bundle(bundle, unpacked)}
    assert {".madengine/model.out", ".madengine/model.2.out", ".madengine/steps.tsv"} <= names


# --- the samples in the result record, the run summary and Slurm's collection ---------------------------------------


def test_samples_reach_the_run_summary_and_records(tmp_path: Path) -> None:
    from madengine.report.load import load_sources
    from madengine.report.summary import build_summary, write_summary
    from madengine.results.record import ResultRecord

    row = PerfRow(model="m", status="SUCCESS", performance="2", metric="x", samples=[1.0, 2.0, 3.0])
    assert build_summary([row]).models[0].samples == [1.0, 2.0, 3.0]
    assert ResultRecord.from_cells(row.to_csv_dict()).samples == []  # perf.csv has no samples column
    assert ResultRecord.from_cells({"model": "m", "status": "SUCCESS", "samples": "1;2"}).samples == []
    path = write_summary(tmp_path / "summary.json", [row, PerfRow(model="n", status="FAILURE")],
                         output=tmp_path / "perf.csv")
    entries = json.loads(path.read_text())["models"]
    assert [e["samples"] for e in entries] == [[1.0, 2.0, 3.0], []]
    [source] = load_sources([path])
    assert [r.samples for r in source.rows] == [[1.0, 2.0, 3.0], []]
    old = json.loads(path.read_text())
    for entry in old["models"]:
        del entry["samples"]  # a summary written before samples existed
    path.write_text(json.dumps(old))
    assert [r.samples for r in load_sources([path])[0].rows] == [[], []]


def test_slurm_rows_take_their_samples_from_the_node_summary(tmp_path: Path) -> None:
    import csv

    from madengine.deploy.jobs import JobRecord, JobStatus
    from madengine.deploy.slurm.collect import rows_for_job
    from madengine.report.summary import write_summary

    rows = [PerfRow(model="m_a", status="SUCCESS", performance="2", metric="x", samples=[1.0, 2.0, 3.0]),
            PerfRow(model="m_b", status="FAILURE", reason="repeat 2 of 3: timed out after 5 s", samples=[4.0])]
    node = tmp_path / "results" / "node1"
    node.mkdir(parents=True)
    with open(node / "perf.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=PERF_CSV_HEADER)
        writer.writeheader()
        writer.writerows(r.to_csv_dict() for r in rows)
    write_summary(node / "run-summary.json", rows, output=node / "perf.csv")
    record = JobRecord(job_id="7", model="m", output=str(tmp_path / "perf.csv"), local_dir=str(tmp_path))
    found = rows_for_job(record, JobStatus("7", "completed"))
    assert [(r.model, r.samples) for r in found] == [("m_a", [1.0, 2.0, 3.0]), ("m_b", [4.0])]
    assert found[1].reason == "node node1: repeat 2 of 3: timed out after 5 s"
    (node / "run-summary.json").unlink()  # no summary: no samples, as no reasons
    assert [r.samples for r in rows_for_job(record, JobStatus("7", "completed"))] == [[], []]
