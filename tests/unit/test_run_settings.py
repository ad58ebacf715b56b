"""Settings precedence, timeouts, GPU lists, docker run options (no engine needed)."""

from __future__ import annotations

import pytest

from madengine import settings
from madengine.docker_options import parse_run_options
from madengine.errors import ConfigError
from madengine.gpu import HostGpus, assign, parse_gpu_list
from madengine.hub import Model
from madengine.run_local import effective_timeout, skipped_for_arch


def test_precedence_flag_over_env_over_config(monkeypatch) -> None:
    monkeypatch.delenv("MADENGINE_HUB", raising=False)
    assert settings.resolve(None)["hub"] == "."
    assert settings.resolve({"hub": "/cfg"})["hub"] == "/cfg"
    monkeypatch.setenv("MADENGINE_HUB", "/env")
    assert settings.resolve({"hub": "/cfg"})["hub"] == "/env"
    assert settings.resolve({"hub": "/cfg"}, hub="/flag")["hub"] == "/flag"
    monkeypatch.setenv("MADENGINE_LIVE_OUTPUT", "yes")
    assert settings.resolve(None)["live_output"] is True
    monkeypatch.setenv("MADENGINE_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="MADENGINE_TIMEOUT"):
        settings.resolve(None)


@pytest.mark.parametrize(("fields", "cli", "expected"), [
    ({}, None, 7200.0), ({"timeout": 5}, None, 5.0), ({"timeout": -1}, None, None), ({"timeout": 0}, None, None),
    ({"timeout": 5}, 0, None), ({"timeout": 5}, 60, 60.0), ({"timeout": "30"}, None, 30.0),
])
def test_effective_timeout(fields, cli, expected) -> None:
    """The models.json record's timeout (default 7200 s, strings converted) unless --timeout is given."""
    assert effective_timeout(Model(name="m", **fields).timeout, cli) == expected


def test_parse_timeout() -> None:
    assert settings.parse_timeout(None) is None and settings.parse_timeout("-1") is None
    assert settings.parse_timeout("0") == 0
    with pytest.raises(ConfigError, match="--timeout"):
        settings.parse_timeout("1.5")


def test_gpu_lists_and_assignment() -> None:
    assert parse_gpu_list("0,2-4,7") == [0, 2, 3, 4, 7]
    with pytest.raises(ConfigError, match="docker_gpus"):
        parse_gpu_list("a-b")
    host = HostGpus("AMD", 4, "gfx942", (128, 136, 144, 152))
    got = assign({"docker_gpus": "1-3"}, "2", host)
    assert got.indices == [1, 2] and got.devices == ["/dev/kfd", "/dev/dri/renderD136", "/dev/dri/renderD144"]
    assert assign({}, "-1", host).count == 4
    assert assign({"gpu_vendor": "NONE"}, "-1", host).count == 0
    with pytest.raises(ConfigError, match="needs 8 GPUs"):
        assign({}, "8", host)
    with pytest.raises(ConfigError, match="gpu_vendor"):
        assign({}, "1", HostGpus("NONE"))
    nv = assign({"gpu_vendor": "NVIDIA"}, "2", HostGpus("NVIDIA", 2, "H100"))
    assert nv.nvidia_device_ids == ["0", "1"] and nv.architecture == "H100"


def test_skip_gpu_arch() -> None:
    assert skipped_for_arch(Model(name="m", skip_gpu_arch="gfx90a, gfx942"), "gfx942")
    assert not skipped_for_arch(Model(name="m", skip_gpu_arch="gfx90a"), "gfx942")
    assert not skipped_for_arch(Model(name="m", skip_gpu_arch="gfx90a"), "")


def test_docker_run_options() -> None:
    kwargs, env, volumes = parse_run_options("--shm-size=16g --ipc host --cap-add SYS_PTRACE --ulimit memlock=-1 "
                                             "-e A=1 -v /tmp:/data:ro --cpus 1.5")
    assert kwargs["shm_size"] == "16g" and kwargs["ipc_mode"] == "host" and kwargs["cap_add"] == ["SYS_PTRACE"]
    assert kwargs["nano_cpus"] == 1_500_000_000 and kwargs["ulimits"][0]["Name"] == "memlock"
    assert env == {"A": "1"} and volumes == ["/tmp:/data:ro"]
    with pytest.raises(ConfigError, match="--rm"):
        parse_run_options("--rm")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_run_options("-e A")


def test_multi_node_rule_keeps_every_failure_and_the_reported_results() -> None:
    from madengine.deploy.jobs import job_rows
    from madengine.results.perf_csv import PerfRow
    from madengine.workflow.output import NO_PERFORMANCE

    rows = [PerfRow(model="m", status="SUCCESS", performance="7", node_rank="0"),
            PerfRow(model="m", status="FAILURE", reason=f"node n2: {NO_PERFORMANCE}", node_rank="1"),
            PerfRow(model="m", status="FAILURE", reason="node n3: run command exited with code 9", node_rank="2"),
            PerfRow(model="q", status="FAILURE", reason=NO_PERFORMANCE, node_rank="0")]
    kept = job_rows(rows)
    assert [(r.model, r.node_rank) for r in kept] == [("m", "0"), ("m", "2"), ("q", "0")]
