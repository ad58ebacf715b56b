"""Context parsing, merging and validation (no engine needed)."""

from __future__ import annotations

import pytest

from madengine.context import (
    build_context,
    deep_merge,
    deployment_config,
    parse_context_text,
    validate_context,
)
from madengine.errors import ConfigError


def test_json_and_python_literal_forms() -> None:
    assert parse_context_text('{"a": 1}', "x") == {"a": 1}
    assert parse_context_text("{'gpu_vendor': 'AMD'}", "x") == {"gpu_vendor": "AMD"}
    assert parse_context_text("  ", "x") == {}


@pytest.mark.parametrize(("text", "needle"), [("{", "line 1 column 2"), ("[1]", "JSON object"), ("3", "int")])
def test_parse_errors(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match="x: ") as e:
        parse_context_text(text, "x")
    assert needle in str(e.value)


def test_string_wins_over_file_and_base(tmp_path) -> None:
    f = tmp_path / "c.json"
    f.write_text('{"docker_env_vars": {"A": "file", "B": "file"}, "guest_os": "UBUNTU"}')
    ctx = build_context('{"docker_env_vars": {"A": "cli"}}', str(f), {"docker_env_vars": {"C": "base"}, "x": 1})
    assert ctx["docker_env_vars"] == {"A": "cli", "B": "file", "C": "base"}
    assert ctx["guest_os"] == "UBUNTU" and ctx["x"] == 1


def test_normalisation() -> None:
    ctx = validate_context({"gpu_vendor": "nvidia", "docker_env_vars": {"N": 8, "F": 1.5}})
    assert ctx["gpu_vendor"] == "NVIDIA"
    assert ctx["docker_env_vars"] == {"N": "8", "F": "1.5"}


@pytest.mark.parametrize(("raw", "needle"), [
    ({"gpu_vender": "AMD"}, "did you mean 'gpu_vendor'"),
    ({"GPU_VENDOR": "AMD"}, "did you mean 'gpu_vendor'"),
    ({"docker_env_var": {}}, "did you mean 'docker_env_vars'"),
    ({"pre_scripts": [{"args": "x"}]}, "'pre_scripts.0.path'"),
    ({"pre_scripts": [{"path": "a", "arg": "x"}]}, "'pre_scripts.0.arg'"),
    ({"docker_mounts": ["a"]}, "'docker_mounts'"),
    ({"log_error_pattern_scan": "maybe"}, "'log_error_pattern_scan'"),
])
def test_validation_errors(raw: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        validate_context(raw)
    assert needle in str(e.value)


def test_unknown_keys_stay_legal() -> None:
    assert validate_context({"ctx_test": "1", "my_site_key": {"a": 1}})["ctx_test"] == "1"


def test_deep_merge_replaces_non_dicts() -> None:
    assert deep_merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}}) == {"a": {"b": 1, "c": [2]}}


def test_deployment_config() -> None:
    assert deployment_config({"gpu_vendor": "AMD"}) == {"deploy": "local"}
    cfg = deployment_config({"deploy": "slurm", "slurm": {"nodes": 2}, "docker_env_vars": {}})
    assert cfg == {"deploy": "slurm", "slurm": {"nodes": 2}}
