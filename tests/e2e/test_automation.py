"""Run-time automation through ``run.local`` on the real engine: pre/post scripts, tools, system-environment
capture, data providers (local, custom, nas over a real sshd with rsync) and credentials."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.conftest import CPU, madengine, read_perf, write_script

SSHD_DIR = Path(os.environ.get("MADENGINE_SSHD_DIR", "/var/lib/madengine/sshd"))


def ctx(**keys) -> str:
    return json.dumps({"gpu_vendor": "NONE", **keys})


def log_of(hub: Path, name: str = "dummy") -> str:
    return (hub / f"{name}_dummy.ubuntu.run.live.log").read_text()


def order(text: str, markers: list[str]) -> list[int]:
    return [text.index(m) for m in markers]


def test_pre_post_scripts_run_in_order_in_the_model_dir(hub: Path, no_leftovers) -> None:
    write_script(hub, "scripts/hooks/pre.sh", 'echo "PRE-$1 in $(basename "$PWD")"')
    write_script(hub, "scripts/hooks/post.sh", 'echo "POST-$1"')
    c = ctx(pre_scripts=[{"path": "scripts/hooks/pre.sh", "args": "one"}, {"path": "scripts/hooks/pre.sh",
                                                                             "args": "two"}],
            post_scripts=[{"path": "scripts/hooks/post.sh", "args": "done"}])
    res = madengine("run.local", "--tags", "dummy", "--additional-context", c, cwd=hub)
    assert res.rc == 0, res.text
    log = log_of(hub)
    positions = order(log, ["PRE-one in run_directory", "PRE-two", "performance:", "POST-done"])
    assert positions == sorted(positions)


def test_failing_pre_script_fails_the_row_and_post_scripts_still_run(hub: Path, no_leftovers) -> None:
    write_script(hub, "scripts/hooks/bad.sh", "echo broken; exit 7")
    write_script(hub, "scripts/hooks/post.sh", 'echo "POST-RAN"')
    c = ctx(pre_scripts=[{"path": "scripts/hooks/bad.sh"}], post_scripts=[{"path": "scripts/hooks/post.sh"}])
    res = madengine("run.local", "--tags", "dummy", "--additional-context", c, cwd=hub)
    assert res.rc == 3
    assert "pre-script scripts/hooks/bad.sh exited with code 7" in res.err
    log = log_of(hub)
    assert "POST-RAN" in log and "step 1/3" not in log  # the model did not run
    assert read_perf(hub / "perf.csv")[0]["status"] == "FAILURE"


def test_post_scripts_run_after_a_timeout(hub: Path, no_leftovers) -> None:
    write_script(hub, "scripts/hooks/post.sh", 'echo "POST-AFTER-TIMEOUT"')
    c = ctx(post_scripts=[{"path": "scripts/hooks/post.sh"}])
    res = madengine("run.local", "--tags", "dummy_timeout", "--timeout", "2", "--additional-context", c, cwd=hub)
    assert res.rc == 3 and "timed out after 2 s" in res.err
    log = log_of(hub, "dummy_timeout")
    assert log.index("POST-AFTER-TIMEOUT") > log.index("sleeping")
    assert float(read_perf(hub / "perf.csv")[0]["test_duration"]) < 20


def test_stacked_tools_order(hub: Path, no_leftovers) -> None:
    for name in ("A", "B"):
        write_script(hub, f"scripts/common/site/pre_{name}.sh", f'echo "pre {name}"')
        write_script(hub, f"scripts/common/site/post_{name}.sh", f'echo "post {name}"')
        write_script(hub, f"scripts/common/site/cmd_{name}.sh", f'echo "cmd {name}"; exec "$@"')
    catalogue = {name: {"cmd": f"bash /myworkspace/scripts/common/site/cmd_{name}.sh",
                        "env_vars": {f"TOOL_{name}": "on"},
                        "pre_scripts": [{"path": f"scripts/common/site/pre_{name}.sh"}],
                        "post_scripts": [{"path": f"scripts/common/site/post_{name}.sh"}]} for name in ("A", "B")}
    (hub / "site-tools.yaml").write_text(json.dumps(catalogue))
    res = madengine("run.local", "--tags", "dummy", "--tools-config", "site-tools.yaml", "--additional-context",
                    ctx(tools=[{"name": "A"}, {"name": "B"}]), cwd=hub)
    assert res.rc == 0, res.text
    log = log_of(hub)
    positions = order(log, ["pre B", "pre A", "cmd B", "cmd A", "performance:", "post A", "post B"])
    assert positions == sorted(positions), log


def test_unknown_tool_is_a_one_line_error(hub: Path) -> None:
    res = madengine("run", "--tags", "dummy", "--additional-context", ctx(tools=[{"name": "rocprfo"}]), cwd=hub)
    assert res.rc == 4
    assert "unknown tool 'rocprfo'" in res.err and "Traceback" not in res.err


def test_gpu_sampler_writes_its_csv_and_env_capture(hub: Path, no_leftovers) -> None:
    res = madengine("run.local", "--tags", "dummy", "--additional-context",
                    ctx(tools=[{"name": "gpu_info_power_profiler", "env_vars": {"MAD_SAMPLER_INTERVAL": "0.2"}}]),
                    cwd=hub)
    assert res.rc == 0, res.text
    [sampler] = list((hub / "madengine-runs").glob("*/dummy_dummy.ubuntu/gpu_info_power_profiler_output.csv"))
    lines = sampler.read_text().splitlines()
    assert lines[0] == "timestamp,gpu,power_w,vram_used_mib,vram_total_mib,source"
    assert len(lines) >= 2 and lines[1].endswith(",unavailable")
    assert str(sampler) in res.err  # listed in the run output
    env = (hub / "dummy_env.csv").read_text()
    assert '"kernel",' in env and '"gpu_tool","not available"' in env
    assert "GPU info: not available" in log_of(hub)


def test_no_sys_env_details(hub: Path, no_leftovers) -> None:
    res = madengine("run.local", "--tags", "dummy", "--no-sys-env-details", "--additional-context", CPU, cwd=hub)
    assert res.rc == 0, res.text
    assert not (hub / "dummy_env.csv").exists()
    assert "gpu-info" not in log_of(hub)


@pytest.mark.parametrize(("readwrite", "expected"), [(False, "data writable: no"), (True, "data writable: yes")])
def test_local_data_provider_mount(hub: Path, tmp_path: Path, no_leftovers, readwrite: bool, expected: str) -> None:
    data = tmp_path / "dataset"
    data.mkdir()
    for i in range(4):
        (data / f"f{i}.bin").write_bytes(b"x" * 100)
    c = ctx(data={"dummy_data_local": {"local": {"path": str(data), "readwrite": readwrite}}})
    res = madengine("run.local", "--tags", "dummy_data_local", "--additional-context", c, cwd=hub)
    assert res.rc == 0, res.text
    [row] = read_perf(hub / "perf.csv")
    assert row["performance"] == "4" and row["dataname"] == "dummy_data_local"
    assert row["data_provider_type"] == "local" and row["data_size"] == "400"
    assert expected in log_of(hub, "dummy_data_local")


def test_missing_local_data_fails_the_row(hub: Path, no_leftovers) -> None:
    c = ctx(data={"dummy_data_local": {"local": {"path": "/nonexistent/data"}}})
    res = madengine("run.local", "--tags", "dummy_data_local", "--additional-context", c, cwd=hub)
    assert res.rc == 3
    assert "local: /nonexistent/data does not exist" in res.err
    [row] = read_perf(hub / "perf.csv")
    assert row["status"] == "FAILURE" and row["dataname"] == "dummy_data_local"


def test_custom_provider_with_force_mirror_local(hub: Path, tmp_path: Path, no_leftovers) -> None:
    mirror = tmp_path / "mirror"
    res = madengine("run.local", "--tags", "dummy_data_custom", "--force-mirror-local", str(mirror),
                    "--additional-context", CPU, cwd=hub)
    assert res.rc == 0, res.text
    assert sorted(p.name for p in (mirror / "dummy_data_custom").iterdir()) == [
        "sample_1.txt", "sample_2.txt", "sample_3.txt"]
    [row] = read_perf(hub / "perf.csv")
    assert row["data_provider_type"] == "custom" and int(row["data_size"]) > 0


@pytest.fixture
def nas_source(tmp_path: Path) -> Path:
    if not (SSHD_DIR / "id_ed25519").is_file():
        pytest.fail(f"no test sshd keys in {SSHD_DIR}; start it with `bash dev/sshd.sh up`")
    source = tmp_path / "nas-export"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("alpha")
    (source / "sub" / "b.txt").write_text("beta")
    return source


def nas_credentials(hub: Path, **extra) -> None:
    node = {"NAME": "test-nas", "HOST": "127.0.0.1", "PORT": "2222", "USERNAME": "root",
            "KEY_FILE": str(SSHD_DIR / "id_ed25519"), "KNOWN_HOSTS": str(SSHD_DIR / "known_hosts"), **extra}
    (hub / "credential.json").write_text(json.dumps({"NAS_NODES": [node]}))


def test_nas_provider_rsyncs_over_real_sshd(hub: Path, tmp_path: Path, nas_source: Path, no_leftovers) -> None:
    nas_credentials(hub)
    mirror = tmp_path / "mirror"
    # local comes before nas in the provider order: its missing path makes madengine fall back to nas
    c = ctx(data={"dummy_data_local": {"local": {"path": "/nonexistent"}, "nas": {"path": str(nas_source)}}})
    res = madengine("run.local", "--tags", "dummy_data_local", "--force-mirror-local", str(mirror),
                    "--additional-context", c, cwd=hub)
    assert res.rc == 0, res.text
    assert (mirror / "dummy_data_local" / "sub" / "b.txt").read_text() == "beta"
    [row] = read_perf(hub / "perf.csv")
    assert row["data_provider_type"] == "nas" and row["data_size"] == "9" and row["performance"] == "1"
    assert float(row["data_download_duration"]) > 0


def test_nas_unknown_host_key_is_rejected(hub: Path, tmp_path: Path, nas_source: Path, no_leftovers) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    nas_credentials(hub, KNOWN_HOSTS=str(empty))
    c = ctx(data={"dummy_data_local": {"local": {"path": "/nonexistent"}, "nas": {"path": str(nas_source)}}})
    res = madengine("run.local", "--tags", "dummy_data_local", "--additional-context", c, cwd=hub)
    assert res.rc == 3
    assert "local: /nonexistent does not exist" in res.err
    assert "nas: rsync from 127.0.0.1" in res.err and "failed" in res.err


def test_credentials_never_reach_files_or_output(hub: Path, no_leftovers) -> None:
    secret = "Sup3r-Secret-Value-42"
    (hub / "credential.json").write_text(json.dumps({"dummy_cred": {"username": "bench", "password": secret}}))
    models = json.loads((hub / "models.json").read_text())
    models.append({**models[0], "name": "dummy_secret", "cred": "dummy_cred", "tags": ["secret"],
                   "scripts": "scripts/secret/run.sh"})
    (hub / "models.json").write_text(json.dumps(models))
    write_script(hub, "scripts/secret/run.sh", 'echo "password is $dummy_cred_PASSWORD"; env | grep dummy_cred; '
                 'echo "performance: 1 x"')
    res = madengine("run.local", "--tags", "secret", "--additional-context", CPU, cwd=hub)
    assert res.rc == 0, res.text
    assert "password is ******" in (hub / "dummy_secret_dummy.ubuntu.run.live.log").read_text()
    assert secret not in res.out + res.err
    leaks = [p for p in hub.rglob("*") if p.is_file() and p.name != "credential.json"
             and secret.encode() in p.read_bytes()]
    assert not leaks, leaks
    manifest = (hub / "build_manifest.json").read_text()
    assert "dummy_cred" in manifest and not re.search(secret, manifest)
