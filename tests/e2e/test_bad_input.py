"""Bad input: each case gets its documented exit code and a one-line message naming the field and the fix,
with no traceback, and nothing already written is damaged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CPU, madengine


def one_line_error(text: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith("madengine: error:")]
    assert len(lines) == 1, text
    assert "Traceback" not in text, text
    return lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--additional-context", "{bad json"], "invalid JSON at line 1"),
        (["--additional-context", '{"gpu_vender": "AMD"}'], "did you mean 'gpu_vendor'"),
        (["--additional-context", '{"deplyo": "local"}'], "did you mean 'deploy'"),
        (["--additional-context", '{"docker_env_vars": "x"}'], "'docker_env_vars'"),
        (["--additional-context", '{"gpu_vendor": "INTEL"}'], "'gpu_vendor'"),
        (["--additional-context", '{"docker_env_vars": {"BAD NAME": "1"}}'], "not a valid environment"),
        (["--additional-context", "[1, 2]"], "must be a JSON object"),
        (["--additional-context-file", "missing.json"], "missing.json does not exist"),
        (["--additional-context", '{"deploy": "mars"}'], "unknown target 'mars'"),
        (["--timeout", "abc"], "--timeout"),
    ],
)
def test_bad_context_and_flags_exit_4(hub: Path, args: list[str], needle: str) -> None:
    res = madengine("run", "--tags", "dummy", *args, cwd=hub)
    assert res.rc == 4, res.text
    assert needle in one_line_error(res.err)


def test_unknown_tag_lists_closest(hub: Path) -> None:
    res = madengine("discover", "--tags", "dumy", cwd=hub)
    assert res.rc == 4
    line = one_line_error(res.err)
    assert "dumy" in line and "dummy" in line


def test_missing_hub_names_the_fix(tmp_path: Path) -> None:
    res = madengine("build", "--tags", "dummy", cwd=tmp_path)
    assert res.rc == 4
    assert "models.json" in one_line_error(res.err)


def test_malformed_models_json(hub: Path) -> None:
    (hub / "models.json").write_text('[{"name": "x",]')
    res = madengine("discover", cwd=hub)
    assert res.rc == 4
    assert "models.json" in one_line_error(res.err)


def test_missing_manifest(hub: Path) -> None:
    res = madengine("run.local", "--manifest-file", "nope.json", cwd=hub)
    assert res.rc == 4
    assert "nope.json does not exist" in one_line_error(res.err)


def test_neither_tags_nor_manifest(hub: Path) -> None:
    res = madengine("run.local", cwd=hub)
    assert res.rc == 4
    assert "--tags" in one_line_error(res.err)


def test_unreachable_engine_exit_1(hub: Path) -> None:
    res = madengine("build", "--tags", "dummy", "--additional-context", CPU, cwd=hub,
                    env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert res.rc == 1, res.text
    line = one_line_error(res.err)
    assert "cannot reach the Docker engine at unix:///nonexistent/docker.sock" in line
    assert "dev/engine.sh" in line


def test_debug_shows_traceback(hub: Path) -> None:
    res = madengine("run", "--tags", "dummy", "--additional-context", "{bad", cwd=hub, env={"MADENGINE_DEBUG": "1"})
    assert res.rc == 4 and "Traceback" in res.err


def test_gpu_run_without_gpus_explains_cpu_mode(hub: Path, docker_client) -> None:
    assert madengine("build", "--tags", "dummy", "--additional-context", CPU, cwd=hub).rc == 0
    res = madengine("run.local", "--manifest-file", "build_manifest.json", "--additional-context",
                    '{"gpu_vendor": "AMD"}', cwd=hub)
    assert res.rc == 4
    assert '"gpu_vendor": "NONE"' in one_line_error(res.err)


def test_foreign_perf_csv_is_left_untouched(hub: Path, docker_client) -> None:
    v1 = "model, n_gpus, training_precision, performance, metric, status\nold, 8, fp16, 1.0, x, SUCCESS\n"
    (hub / "perf.csv").write_text(v1)
    res = madengine("run.local", "--tags", "dummy", "--additional-context", CPU, cwd=hub)
    assert res.rc == 4, res.text
    assert "perf.csv" in one_line_error(res.err)
    assert (hub / "perf.csv").read_text() == v1


def test_build_failure_exit_2_keeps_previous_manifest(hub: Path, docker_client) -> None:
    (hub / "build_manifest.json").write_text('{"built_images": {}, "marker": "previous"}')
    (hub / "docker" / "broken.ubuntu.Dockerfile").write_text(
        "ARG BASE_DOCKER=madengine-base:bookworm\nFROM $BASE_DOCKER\nRUN echo about to fail && false\n")
    models = json.loads((hub / "models.json").read_text())
    models.append({"name": "broken", "dockerfile": "docker/broken", "scripts": "scripts/dummy/run.sh",
                   "tags": ["broken"]})
    (hub / "models.json").write_text(json.dumps(models))
    res = madengine("build", "--tags", "broken", "--additional-context", CPU, cwd=hub)
    assert res.rc == 2, res.text
    assert "broken" in one_line_error(res.err)
    assert json.loads((hub / "build_manifest.json").read_text())["marker"] == "previous"
    assert "about to fail" in (hub / "broken_broken.ubuntu.build.live.log").read_text()


@pytest.mark.parametrize("args", [["jobs.logs", "--help"], ["jobs.status", "-h"], ["run.slurm", "--tags", "x", "--help"]])
def test_help_after_a_task_shows_its_help(tmp_path: Path, args: list[str]) -> None:
    """``TASK --help`` prints the task's help even when the task takes a positional argument (Invoke alone would
    read "--help" as the job id)."""
    res = madengine(*args, cwd=tmp_path)
    assert res.rc == 0 and f"Usage: madengine [--core-opts] {args[0]}" in res.out, res.out + res.err
    assert not (tmp_path / ".madengine").exists()


def test_closed_pipe_is_quiet(tmp_path: Path) -> None:
    """``madengine --list | head -1``: the reader is gone before madengine writes; no error text, no traceback."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "madengine", "--list"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()  # long before the interpreter has started: the first write meets a closed pipe
    _, err = proc.communicate(timeout=60)
    assert err == "" and proc.returncode == 1, err


@pytest.mark.parametrize(("task", "section", "needle"), [
    ("build", {"slurm": {"partiton": "x"}}, "slurm.partiton: unknown key; did you mean 'partition'?"),
    ("run.slurm", {"slurm": {"partiton": "x"}}, "slurm.partiton: unknown key; did you mean 'partition'?"),
    ("build", {"k8s": {"namespce": "x"}}, "'k8s.namespce' is not a k8s setting; did you mean 'namespace'?"),
    ("run.local", {"k8s": {"gpus": "many"}}, "k8s.gpus"),
])
def test_typos_inside_target_sections_are_refused_before_building(hub: Path, task: str, section: dict,
                                                                  needle: str) -> None:
    """The slurm/k8s sections are checked with the whole context, before anything is built or run."""
    ctx = json.dumps({"gpu_vendor": "NONE", **section})
    res = madengine(task, "--tags", "dummy", "--additional-context", ctx, cwd=hub)
    assert res.rc == 4 and needle in res.err, res.err
    assert "building" not in res.err and not (hub / "build_manifest.json").exists()


@pytest.mark.parametrize("task", ["build", "run.local", "discover", "clean"])
def test_task_help_shows_every_options_text(tmp_path: Path, task: str) -> None:
    """`madengine --help TASK` prints a help text for every option (none lost to the argv rewriting)."""
    res = madengine("--help", task, cwd=tmp_path)
    assert res.rc == 0, res.err
    options = [line for line in res.out.split("Options:", 1)[1].splitlines() if line.startswith("  --")]
    assert options and all(len(line.split(None, 1)) == 2 for line in options), res.out
