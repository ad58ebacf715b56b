"""End to end through the real CLI and the real Docker engine: build + run.local of the example hub."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import CPU, madengine, read_perf

PERF_HEADER = ("model,n_gpus,nnodes,gpus_per_node,training_precision,pipeline,args,tags,docker_file,base_docker,"
               "docker_sha,docker_image,git_commit,machine_name,deployment_type,launcher,gpu_architecture,performance,"
               "metric,relative_change,status,build_duration,test_duration,dataname,data_provider_type,data_size,"
               "data_download_duration,build_number,additional_docker_run_options")


def test_full_workflow_examples(hub: Path, no_leftovers) -> None:
    res = madengine("run.local", "--tags", "examples", "--additional-context", CPU, cwd=hub)
    assert res.rc == 0, res.text
    assert (hub / "perf.csv").read_text().splitlines()[0] == PERF_HEADER
    rows = {r["model"]: r for r in read_perf(hub / "perf.csv")}
    assert set(rows) == {"dummy", "dummy_multi_1", "dummy_multi_2", "dummy_multi_3", "dummy2/model2",
                         "dummy3/model_bs8", "dummy3/model_bs32"}
    assert all(r["status"] == "SUCCESS" for r in rows.values()), rows
    assert re.fullmatch(r"1\d{3}\.\d", rows["dummy"]["performance"])
    assert rows["dummy"]["metric"] == "samples_per_second"
    assert rows["dummy_multi_2"]["metric"] == "tokens_per_second"
    assert rows["dummy2/model2"]["args"] == "--batch-size 16"
    assert rows["dummy3/model_bs8"]["performance"] == "800.25"
    dummy = rows["dummy"]
    assert dummy["docker_image"] == "ci-dummy_dummy.ubuntu"
    assert dummy["docker_file"] == "docker/dummy.ubuntu.Dockerfile"
    assert dummy["base_docker"] == "madengine-base:bookworm"
    assert dummy["deployment_type"] == "local"
    assert dummy["n_gpus"] == "0" and dummy["nnodes"] == "1"
    assert float(dummy["test_duration"]) > 0 and float(dummy["build_duration"]) >= 0
    assert (hub / "dummy_dummy.ubuntu.run.live.log").is_file()
    assert (hub / "dummy2_model2_dummy.ubuntu.build.live.log").is_file()
    assert "performance:" in (hub / "dummy_dummy.ubuntu.run.live.log").read_text()
    manifest = json.loads((hub / "build_manifest.json").read_text())
    assert {"built_images", "built_models", "context", "credentials_required", "registry", "schema_version",
            "deployment_config"} <= set(manifest)
    assert manifest["built_models"]["ci-dummy2_model2_dummy.ubuntu"]["name"] == "dummy2/model2"
    assert not (hub / ".madengine" / "work").exists() or not any((hub / ".madengine" / "work").iterdir())


def test_failures_are_rows_with_reasons(hub: Path, no_leftovers) -> None:
    res = madengine("run.local", "--tags", "failures", "--additional-context", CPU, cwd=hub)
    assert res.rc == 3, res.text
    assert "Traceback" not in res.err
    rows = {r["model"]: r for r in read_perf(hub / "perf.csv")}
    assert {r["status"] for r in rows.values()} == {"FAILURE"}
    assert set(rows) == {"dummy_fail", "dummy_traceback", "dummy_timeout"}
    # a number was printed, but the traceback wins
    assert rows["dummy_traceback"]["performance"] == "123"
    assert "simulated crash" in res.err or "Traceback (most recent call last)" in res.err
    assert "timed out after 5 s" in res.err
    assert float(rows["dummy_timeout"]["test_duration"]) < 60
    assert "exited with code 1" in res.err
    assert "timed out" in (hub / "dummy_timeout_dummy.ubuntu.run.live.log").read_text()


def test_cli_timeout_overrides_model_timeout(hub: Path, no_leftovers) -> None:
    res = madengine("run.local", "--tags", "dummy_timeout", "--timeout", "2", "--additional-context", CPU, cwd=hub)
    assert res.rc == 3
    assert "timed out after 2 s" in res.err
    assert float(read_perf(hub / "perf.csv")[0]["test_duration"]) < 30


def test_context_selects_dockerfile(hub: Path, no_leftovers) -> None:
    ctx = json.dumps({"gpu_vendor": "NONE", "ctx_test": "2"})
    res = madengine("run.local", "--tags", "ctxtest", "--additional-context", ctx, cwd=hub)
    assert res.rc == 0, res.text
    [row] = read_perf(hub / "perf.csv")
    assert row["docker_file"] == "docker/dummy_ctxtest.ctx2.ubuntu.Dockerfile"
    assert row["performance"] == "2" and row["metric"] == "ctx_value"


def test_manifest_round_trip_and_runtime_override(hub: Path, no_leftovers) -> None:
    built_ctx = {"gpu_vendor": "NONE", "docker_env_vars": {"EXAMPLE_VALUE": "from-build", "EXAMPLE_KEPT": "kept"}}
    res = madengine("build", "--tags", "dummy", "--additional-context", json.dumps(built_ctx),
                    "--manifest-output", "m.json", cwd=hub)
    assert res.rc == 0, res.text
    stored = json.loads((hub / "m.json").read_text())
    assert stored["context"]["docker_env_vars"]["EXAMPLE_VALUE"] == "from-build"
    assert stored["deployment_config"]["deploy"] == "local"
    override = {"docker_env_vars": {"EXAMPLE_VALUE": "from-run"}}
    res = madengine("run.local", "--manifest-file", "m.json", "--additional-context", json.dumps(override), cwd=hub)
    assert res.rc == 0, res.text
    log = (hub / "dummy_dummy.ubuntu.run.live.log").read_text()
    assert "EXAMPLE_VALUE=from-run" in log and "EXAMPLE_KEPT=kept" in log
    assert json.loads((hub / "m.json").read_text()) == stored  # a run never rewrites the manifest


def test_v1_manifest_runs_as_local(hub: Path, no_leftovers) -> None:
    assert madengine("build", "--tags", "dummy", "--additional-context", CPU, cwd=hub).rc == 0
    manifest = json.loads((hub / "build_manifest.json").read_text())
    v1 = {k: manifest[k] for k in ("built_images", "built_models", "context", "credentials_required")}
    for record in v1["built_images"].values():
        for key in ("execution", "image_id", "log_base", "registry", "registry_image"):
            record.pop(key, None)
    (hub / "v1.json").write_text(json.dumps(v1))
    res = madengine("run.local", "--manifest-file", "v1.json", cwd=hub)
    assert res.rc == 0, res.text
    assert read_perf(hub / "perf.csv")[0]["status"] == "SUCCESS"


def test_skip_model_run_prints_and_writes_nothing(hub: Path, no_leftovers) -> None:
    res = madengine("run.local", "--tags", "dummy", "--skip-model-run", "--additional-context", CPU, cwd=hub)
    assert res.rc == 0, res.text
    assert "bash run.sh" in res.text
    assert not (hub / "perf.csv").exists()


def test_keep_alive_leaves_container_running(hub: Path, docker_client) -> None:
    res = madengine("run.local", "--tags", "dummy", "--keep-alive", "--additional-context", CPU, cwd=hub)
    assert res.rc == 0, res.text
    name = re.search(r"docker exec -it (\S+) bash", res.err).group(1)
    container = docker_client.containers.get(name)
    try:
        assert container.status == "running"
        code, out = container.exec_run(["bash", "-c", "ls /myworkspace/run_directory"])
        assert code == 0 and b"run.sh" in out
    finally:
        container.remove(force=True)


def test_live_output_streams_model_output(hub: Path, no_leftovers) -> None:
    res = madengine("run.local", "--tags", "dummy", "--live-output", "--additional-context", CPU, cwd=hub)
    assert res.rc == 0, res.text
    assert "step 3/3" in res.out


def test_inv_and_madengine_share_the_namespace(hub: Path) -> None:
    import subprocess
    import sys
    from pathlib import Path as P

    repo = P(__file__).resolve().parents[2]
    inv = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(repo), "discover", "--hub", str(hub),
                          "--json"], capture_output=True, text=True, cwd=hub)
    assert inv.returncode == 0, inv.stderr
    mad = madengine("discover", "--json", cwd=hub)
    assert json.loads(inv.stdout) == json.loads(mad.out)


def test_summary_output_and_relative_change(hub: Path, no_leftovers) -> None:
    for _ in range(2):
        res = madengine("run.local", "--tags", "dummy3", "--tags", "dummy_fail", "--additional-context", CPU,
                        "--summary-output", "summary.json", cwd=hub)
        assert res.rc == 3, res.text
    rows = read_perf(hub / "perf.csv")
    assert [r["relative_change"] for r in rows if r["model"] == "dummy3/model_bs8"] == ["", "+0.00%"]
    summary = json.loads((hub / "summary.json").read_text())
    entries = {m["model"]: m for m in summary["models"]}
    assert entries["dummy_fail"]["status"] == "FAILURE"
    assert "exited with code 1" in entries["dummy_fail"]["reason"]
    assert entries["dummy3/model_bs32"]["performance"] == 3200.25
    assert any(log.endswith("dummy_fail_dummy.ubuntu.run.live.log") for log in summary["logs"])
