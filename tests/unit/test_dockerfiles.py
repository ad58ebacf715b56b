"""madengine.dockerfiles: candidates, CONTEXT headers, context filtering, image/log names (real files, no mocks)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from madengine.dockerfiles import (
    candidates,
    default_base_docker,
    filter_by_context,
    image_name,
    log_basename,
    read_context_header,
)
from madengine.errors import ConfigError
from madengine.hub import Model

AMD_HEADER = "# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}\n"
DOCKER_REF = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def hub(tmp_path: Path) -> Path:
    """The Dockerfiles of madengine's dummy fixture (AMD/NVIDIA variants and the ctx_test set)."""
    d = tmp_path / "docker"
    write(d / "dummy.ubuntu.amd.Dockerfile", AMD_HEADER + "ARG BASE_DOCKER=rocm/pytorch\nFROM $BASE_DOCKER\n")
    write(d / "dummy.ubuntu.nvidia.Dockerfile",
          "# CONTEXT {'gpu_vendor': 'NVIDIA', 'guest_os': 'UBUNTU'}\nARG BASE_DOCKER=nvcr.io/nvidia/pytorch:24.01-py3\n"
          "FROM $BASE_DOCKER\n")
    for variant, value, env in [("ctx1", "1", 1), ("ctx2a", "2", 2), ("ctx2b", "2", 2), ("noctx", "None", 0)]:
        write(d / f"dummy_ctxtest.{variant}.ubuntu.amd.Dockerfile",
              f"# CONTEXT {{'ctx_test': '{value}'}}\nFROM rocm/pytorch\nENV ctxtest={env}\n")
    write(d / "dummy_other.ubuntu.amd.Dockerfile", AMD_HEADER)  # shares the "dummy" start, not the "dummy." prefix
    (d / "dummy.dir").mkdir()  # directories never count
    return tmp_path


def model(dockerfile: str, name: str = "dummy") -> Model:
    return Model(name=name, dockerfile=dockerfile)


# ---------------------------------------------------------------- candidates


def test_candidates_sorted_relative_to_hub(hub: Path) -> None:
    assert candidates(hub, model("docker/dummy")) == [Path("docker/dummy.ubuntu.amd.Dockerfile"),
                                                      Path("docker/dummy.ubuntu.nvidia.Dockerfile")]
    assert [p.name for p in candidates(hub, model("docker/dummy_ctxtest"))] == [
        "dummy_ctxtest.ctx1.ubuntu.amd.Dockerfile", "dummy_ctxtest.ctx2a.ubuntu.amd.Dockerfile",
        "dummy_ctxtest.ctx2b.ubuntu.amd.Dockerfile", "dummy_ctxtest.noctx.ubuntu.amd.Dockerfile"]


def test_candidates_with_relative_hub_and_glob_characters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weird = tmp_path / "hub[1]"
    write(weird / "docker/x.ubuntu.amd.Dockerfile", AMD_HEADER)
    monkeypatch.chdir(tmp_path)
    assert candidates("hub[1]", model("docker/x")) == [Path("docker/x.ubuntu.amd.Dockerfile")]


def test_candidates_none_found_names_model_and_glob(hub: Path) -> None:
    with pytest.raises(ConfigError, match=r"model 'dummy2/model9': no Dockerfile matches docker/missing\.\* in ") as i:
        candidates(hub, model("docker/missing", name="dummy2/model9"))
    assert i.value.exit_code == 4


def test_candidates_empty_dockerfile(hub: Path) -> None:
    with pytest.raises(ConfigError, match=r"model 'dummy' has no 'dockerfile'"):
        candidates(hub, model(""))


# ---------------------------------------------------------------- CONTEXT header


def test_read_context_header_python_literal(hub: Path) -> None:
    assert read_context_header(hub / "docker/dummy.ubuntu.amd.Dockerfile") == {"gpu_vendor": "AMD",
                                                                                "guest_os": "UBUNTU"}


def test_read_context_header_json_and_position(tmp_path: Path) -> None:
    path = write(tmp_path / "a.Dockerfile", "# syntax=docker/dockerfile:1\n#\n#\n"
                 '#CONTEXT {"gpu_vendor": "AMD", "flag": true}\nFROM x\n')
    assert read_context_header(path) == {"gpu_vendor": "AMD", "flag": True}


def test_read_context_header_only_first_five_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "b.Dockerfile", "#\n" * 5 + AMD_HEADER)
    assert read_context_header(path) == {}
    assert read_context_header(write(tmp_path / "c.Dockerfile", "FROM x\n")) == {}
    assert read_context_header(write(tmp_path / "d.Dockerfile", "")) == {}


@pytest.mark.parametrize("header", ["# CONTEXT {'gpu_vendor': 'AMD'", "# CONTEXT ['AMD']", "# CONTEXT gpu=AMD"])
def test_read_context_header_malformed_names_file_and_line(tmp_path: Path, header: str) -> None:
    path = write(tmp_path / "e.Dockerfile", "# first\n" + header + "\nFROM x\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:2")):
        read_context_header(path)


def test_read_context_header_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read Dockerfile"):
        read_context_header(tmp_path / "nope.Dockerfile")


# ---------------------------------------------------------------- filter_by_context


def test_filter_by_gpu_vendor(hub: Path) -> None:
    paths = candidates(hub, model("docker/dummy"))
    assert filter_by_context(paths, {"gpu_vendor": "AMD", "guest_os": "UBUNTU"}, hub_dir=hub) == [paths[0]]
    assert filter_by_context(paths, {"gpu_vendor": "NVIDIA"}, hub_dir=hub) == [paths[1]]
    assert filter_by_context(paths, {}, hub_dir=hub) == paths  # keys absent from ctx do not filter
    assert filter_by_context(paths, {"gpu_vendor": "AMD", "guest_os": "CENTOS"}, hub_dir=hub) == []


@pytest.mark.parametrize("ctx_test, expected", [
    ("1", ["ctx1"]), ("2", ["ctx2a", "ctx2b"]), ("None", ["noctx"]), (None, ["noctx"]), (1, ["ctx1"]),
])
def test_filter_ctx_test_keys(hub: Path, ctx_test: object, expected: list[str]) -> None:
    paths = candidates(hub, model("docker/dummy_ctxtest"))
    ctx = {"gpu_vendor": "AMD", "guest_os": "UBUNTU", "ctx_test": ctx_test}
    kept = filter_by_context(paths, ctx, hub_dir=hub)
    assert [p.name.split(".")[1] for p in kept] == expected  # compared as strings: 1 == '1', None == 'None'


def test_filter_without_ctx_test_keeps_all_variants(hub: Path) -> None:
    paths = candidates(hub, model("docker/dummy_ctxtest"))
    assert filter_by_context(paths, {"gpu_vendor": "AMD"}, hub_dir=hub) == paths


def test_filter_file_without_header_always_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "docker/plain.Dockerfile", "FROM x\n")
    monkeypatch.chdir(tmp_path)  # relative paths read from the cwd when no hub_dir
    assert filter_by_context(["docker/plain.Dockerfile"], {"gpu_vendor": "AMD"}) == [Path("docker/plain.Dockerfile")]


# ---------------------------------------------------------------- names


def test_image_name_matches_madengine() -> None:
    assert image_name("dummy", "docker/dummy.ubuntu.amd.Dockerfile") == "ci-dummy_dummy.ubuntu.amd"
    assert image_name("dummy2/model2", Path("docker/dummy.ubuntu.amd.Dockerfile")) == \
        "ci-dummy2_model2_dummy.ubuntu.amd"
    assert image_name("jax-maxtext/maxtext_MI300X_llama2_7B-bf16-pretrain",
                      "docker/primus_maxtext.ubuntu.amd.Dockerfile") == \
        "ci-jax-maxtext_maxtext_mi300x_llama2_7b-bf16-pretrain_primus_maxtext.ubuntu.amd"
    assert image_name("pyt_wan2.1_inference", "docker/pyt_wan2.1_inference.ubuntu.amd.Dockerfile") == \
        "ci-pyt_wan2.1_inference_pyt_wan2.1_inference.ubuntu.amd"


def test_image_name_lowercases_dockerfile_part() -> None:
    assert image_name("M", "docker/Dummy.Ubuntu.AMD.Dockerfile") == "ci-m_dummy.ubuntu.amd"


@pytest.mark.parametrize("name", ["a+b", "a@b", "a b", "x__/_y", "a._b", "_lead", "trail.", "ü", "a:b", "x" * 300])
def test_image_name_sanitised_is_valid_and_distinct(name: str) -> None:
    result = image_name(name, "docker/dummy.ubuntu.amd.Dockerfile")
    assert DOCKER_REF.match(result), result
    assert len(result) <= 200
    assert re.search(r"-[0-9a-f]{8}$", result)


def test_image_name_sanitised_names_do_not_collide() -> None:
    assert image_name("a+b", "d.Dockerfile") != image_name("a@b", "d.Dockerfile")


def test_log_basename() -> None:
    assert log_basename("dummy", "docker/dummy.ubuntu.amd.Dockerfile") == "dummy_dummy.ubuntu.amd"
    assert log_basename("dummy2/model2", Path("/abs/docker/dummy.ubuntu.amd.Dockerfile")) == \
        "dummy2_model2_dummy.ubuntu.amd"
    assert log_basename("Mixed/Case", "x.Dockerfile") == "Mixed_Case_x"  # madengine does not lowercase logs


# ---------------------------------------------------------------- base docker


def test_default_base_docker(hub: Path, tmp_path: Path) -> None:
    assert default_base_docker(hub / "docker/dummy.ubuntu.amd.Dockerfile") == "rocm/pytorch"
    assert default_base_docker(hub / "docker/dummy.ubuntu.nvidia.Dockerfile") == "nvcr.io/nvidia/pytorch:24.01-py3"
    assert default_base_docker(hub / "docker/dummy_ctxtest.ctx1.ubuntu.amd.Dockerfile") == ""
    quoted = write(tmp_path / "q.Dockerfile", 'ARG OTHER=1\narg BASE_DOCKER="rocm/jax:latest"  \n'
                                              "ARG BASE_DOCKER=second\n")
    assert default_base_docker(quoted) == "rocm/jax:latest"
    assert default_base_docker(write(tmp_path / "r.Dockerfile", "ARG base_docker=no\nARG BASE_DOCKER_X=no\n")) == ""
    with pytest.raises(ConfigError, match="cannot read Dockerfile"):
        default_base_docker(tmp_path / "missing.Dockerfile")
