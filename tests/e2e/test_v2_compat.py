"""madengine v2 drop-in: its flags, environment and file keys behave as v2's do (issue "madengine v2 drop-in")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CPU, madengine, read_perf, write_script


def test_tags_are_split_on_commas_and_model_dir_names_the_hub(hub: Path, tmp_path: Path) -> None:
    """`--tags a,b` selects a and b (v2 splits on commas); MODEL_DIR (v1/v2's hub variable) is the default hub."""
    res = madengine("discover", "--tags", "dummy,dummy2/model2", "--json", cwd=tmp_path, env={"MODEL_DIR": str(hub)})
    assert res.rc == 0, res.err
    assert [m["name"] for m in json.loads(res.out)] == ["dummy", "dummy2/model2"]


def test_timeout_minus_one_means_the_models_own(hub: Path, no_leftovers) -> None:
    """`--timeout -1` is v2's default: each model's models.json timeout; other negatives are refused (exit 4)."""
    res = madengine("run.local", "--tags", "dummy", "--additional-context", CPU, "--timeout", "-1", cwd=hub)
    assert res.rc == 0 and "(timeout 7200 s)" in res.err, res.err
    bad = madengine("run.local", "--tags", "dummy", "--additional-context", CPU, "--timeout", "-5", cwd=hub)
    assert bad.rc == 4 and "must be -1" in bad.err


def test_a_guest_os_no_dockerfile_declares_is_invalid_input(hub: Path) -> None:
    """v2 treats a context that no Dockerfile can match as invalid input: exit 4 before anything builds."""
    ctx = json.dumps({"gpu_vendor": "NONE", "guest_os": "PLAN9"})
    res = madengine("build", "--tags", "dummy", "--additional-context", ctx, cwd=hub)
    assert res.rc == 4, res.err
    assert "guest_os='PLAN9'" in res.err and "building" not in res.err


def test_child_failed_error_after_a_performance_line_fails_the_row(hub: Path, no_leftovers) -> None:
    """torchrun's `ChildFailedError` fails the row even after a performance line (v2)."""
    write_script(hub, "scripts/dummy/run.sh", 'echo "performance: 12 samples_per_second"\n'
                 'echo "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: FAILED"')
    res = madengine("run.local", "--tags", "dummy", "--additional-context", CPU, cwd=hub)
    assert res.rc == 3, res.err
    row = read_perf(hub / "perf.csv")[-1]
    assert (row["status"], row["performance"]) == ("FAILURE", "12") and "ChildFailedError" in res.err


def test_build_manifest_has_v2_summary(hub: Path) -> None:
    """build_manifest.json carries v2's `summary` (successful_builds, failed_builds, total_build_time)."""
    res = madengine("build", "--tags", "dummy", "--additional-context", CPU, cwd=hub)
    assert res.rc == 0, res.err
    summary = json.loads((hub / "build_manifest.json").read_text())["summary"]
    assert [b["model"] for b in summary["successful_builds"]] == ["dummy"]
    assert summary["failed_builds"] == [] and summary["total_build_time"] >= 0


@pytest.mark.parametrize("runtime", ["docker", "native"])
def test_docker_cpus_pins_the_model(hub: Path, no_leftovers, runtime: str) -> None:
    """`docker_cpus` (v1/v2: `--cpuset-cpus`) pins the model to those CPUs, in a container and natively alike."""
    write_script(hub, "scripts/dummy/run.sh", 'echo "performance: $(nproc) cpus"')
    ctx = {"gpu_vendor": "NONE", "docker_cpus": "0", **({"runtime": "native"} if runtime == "native" else {})}
    res = madengine("run.local", "--tags", "dummy", "--additional-context", json.dumps(ctx), cwd=hub)
    assert res.rc == 0, res.err
    assert read_perf(hub / "perf.csv")[-1]["performance"] == "1"


def test_docker_cpus_is_refused_where_it_cannot_be_honoured(hub: Path) -> None:
    """A Pod cannot be pinned to CPUs by index: run.k8s refuses docker_cpus (exit 4) rather than drop it."""
    assert madengine("build", "--tags", "dummy", "--additional-context", CPU, cwd=hub).rc == 0
    ctx = json.dumps({"gpu_vendor": "NONE", "docker_cpus": "0-3"})
    res = madengine("run.k8s", "--manifest-file", "build_manifest.json", "--dry-run", "--additional-context", ctx,
                    cwd=hub)
    assert res.rc == 4 and "docker_cpus" in res.err and "k8s.cpu" in res.err, res.err


def test_mad_container_image_skips_the_build(hub: Path, no_leftovers) -> None:
    """`MAD_CONTAINER_IMAGE` (v1/v2): no build; the selected models run in the given image, named in the rows."""
    assert madengine("build", "--tags", "dummy", "--additional-context", CPU, cwd=hub).rc == 0
    ctx = json.dumps({"gpu_vendor": "NONE", "MAD_CONTAINER_IMAGE": "ci-dummy_dummy.ubuntu"})
    res = madengine("run.local", "--tags", "dummy2/model2", "--additional-context", ctx, "--manifest-output",
                    "prebuilt.json", cwd=hub)
    assert res.rc == 0, res.err
    assert "building" not in res.err and "runs in ci-dummy_dummy.ubuntu (MAD_CONTAINER_IMAGE" in res.err
    row = read_perf(hub / "perf.csv")[-1]
    assert (row["model"], row["status"], row["docker_image"]) == ("dummy2/model2", "SUCCESS", "ci-dummy_dummy.ubuntu")
    bad = madengine("build", "--tags", "dummy", "--additional-context",
                    json.dumps({"gpu_vendor": "NONE", "MAD_CONTAINER_IMAGE": "no such; image"}), cwd=hub)
    assert bad.rc == 4 and "MAD_CONTAINER_IMAGE" in bad.err


def test_v2_short_flags(hub: Path, no_leftovers) -> None:
    """v2's short flags work with `madengine`: -t/-c/-m for build (-m = --manifest-output), -m/-o for a run (-m =
    --manifest-file); the long flags stay the contract."""
    built = madengine("build", "-t", "dummy", "-c", CPU, "-m", "short.json", cwd=hub)
    assert built.rc == 0 and (hub / "short.json").is_file(), built.err
    ran = madengine("run.local", "-m", "short.json", "-o", "short.csv", "-s", "short-summary.json", cwd=hub)
    assert ran.rc == 0, ran.err
    assert read_perf(hub / "short.csv")[-1]["model"] == "dummy" and (hub / "short-summary.json").is_file()


def test_ctx_test_file_selects_dockerfiles(hub: Path) -> None:
    """A `ctx_test` file in the hub is the `ctx_test` context key (v1/v2), below the context itself."""
    (hub / "ctx_test").write_text("2\n")
    res = madengine("build", "--tags", "dummy_ctxtest", "--additional-context", CPU, cwd=hub)
    assert res.rc == 0, res.err
    built = json.loads((hub / "build_manifest.json").read_text())["built_images"]
    assert [b["dockerfile"] for b in built.values()] == ["docker/dummy_ctxtest.ctx2.ubuntu.Dockerfile"]
    ctx = json.dumps({"gpu_vendor": "NONE", "ctx_test": "1"})
    assert madengine("build", "--tags", "dummy_ctxtest", "--additional-context", ctx, cwd=hub).rc == 0
    built = json.loads((hub / "build_manifest.json").read_text())["built_images"]
    assert [b["dockerfile"] for b in built.values()] == ["docker/dummy_ctxtest.ctx1.ubuntu.Dockerfile"]


def test_gpu_vendor_none_smoke_tests_amd_only_dockerfiles(hub: Path, no_leftovers) -> None:
    """A hub whose Dockerfiles all declare gpu_vendor AMD runs on a GPU-less host with gpu_vendor NONE (notice)."""
    dockerfile = hub / "docker" / "dummy.ubuntu.Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("# CONTEXT {'guest_os': 'UBUNTU'}",
                                                         "# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}"))
    res = madengine("run.local", "--tags", "dummy", "--additional-context", CPU, cwd=hub)
    assert res.rc == 0, res.err
    assert "no Dockerfile declares gpu_vendor NONE" in res.err
    assert read_perf(hub / "perf.csv")[-1]["status"] == "SUCCESS"


V2_TOOLS = ("rpd", "rocprof", "rocprof_hip_only", "rocprof_sys", "rocprofv3", "rocprofv3_compute", "rocprofv3_memory",
            "rocprofv3_communication", "rocprofv3_full", "rocprofv3_lightweight", "rocprofv3_agent",
            "rocprofv3_agent_full", "rocprofv3_perfetto", "rocprofv3_api_overhead", "rocprofv3_pc_sampling",
            "rocblas_trace", "hipblaslt_trace", "miopen_trace", "tensile_trace", "rccl_trace", "test_tools_A",
            "test_tools_B", "gpu_info_power_profiler", "gpu_info_vram_profiler", "therock_check")


def test_v2_tool_catalogue_is_carried() -> None:
    """Every tool name of madengine v2's scripts/common/tools.json is in the packaged catalogue."""
    from madengine.workflow.tools import load_catalogue

    assert set(V2_TOOLS) <= set(load_catalogue())


def test_v2_tools_run_or_say_what_is_missing(hub: Path, no_leftovers) -> None:
    """v2's test tools wrap the model (pre-scripts in reverse tool order, as madengine stacks them, then the
    command, the model, the post-scripts); a profiler missing from the image fails the row with a line that says
    so, rather than running without it."""
    ctx = json.dumps({"gpu_vendor": "NONE", "tools": [{"name": "test_tools_A"}, {"name": "therock_check"}]})
    res = madengine("run.local", "--tags", "dummy", "--additional-context", ctx, cwd=hub)
    assert res.rc == 0, res.err
    log = (hub / "dummy_dummy.ubuntu.run.live.log").read_text()
    order = [log.index(m) for m in ("therock_check: TheRock build", "pre_script A", "cmd_A", "performance:",
                                    "post_script A")]
    assert order == sorted(order), log
    ctx = json.dumps({"gpu_vendor": "NONE", "tools": [{"name": "rocprofv3_compute"}]})
    res = madengine("run.local", "--tags", "dummy", "--additional-context", ctx, cwd=hub)
    assert res.rc == 3
    assert "the 'rocprofv3' profiler is not in this image" in (hub / "dummy_dummy.ubuntu.run.live.log").read_text()


def test_use_image_records_an_existing_image(hub: Path, no_leftovers) -> None:
    """`build --use-image IMAGE` (v2) records an existing image instead of building; `auto` takes the base image of
    the model's Dockerfile; a run with --tags takes the same flag."""
    res = madengine("build", "--tags", "dummy", "--additional-context", CPU, "--use-image", "auto", cwd=hub)
    assert res.rc == 0 and "building" not in res.err, res.err
    record = next(iter(json.loads((hub / "build_manifest.json").read_text())["built_images"].values()))
    assert record["registry_image"] == "madengine-base:bookworm" and record["image_id"].startswith("sha256:")
    ran = madengine("run.local", "--tags", "dummy", "--additional-context", CPU, "--use-image",
                    "madengine-base:bookworm", cwd=hub)
    assert ran.rc == 0, ran.err
    assert read_perf(hub / "perf.csv")[-1]["docker_image"] == "madengine-base:bookworm"


def test_multi_arch_builds_and_runs_the_image_of_the_node(hub: Path, no_leftovers) -> None:
    """`--target-archs gfx942,gfx950`: one image per architecture (suffixed, MAD_SYSTEM_GPU_ARCHITECTURE passed,
    recorded); a run picks the node's; a node of another architecture gets one FAILURE row naming both; an
    architecture the Dockerfile's GPU-arch variables exclude is a build failure naming the variable."""
    dockerfile = hub / "docker" / "dummy.ubuntu.Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\nARG MAD_SYSTEM_GPU_ARCHITECTURE\n"
                          'RUN echo "built for ${MAD_SYSTEM_GPU_ARCHITECTURE}" > /built_for\n')
    res = madengine("build", "--tags", "dummy", "--additional-context", CPU, "--target-archs", "gfx942,gfx950",
                    cwd=hub)
    assert res.rc == 0, res.err
    built = json.loads((hub / "build_manifest.json").read_text())["built_images"]
    assert {k: b["gpu_architecture"] for k, b in built.items()} == {
        "ci-dummy_dummy.ubuntu_gfx942": "gfx942", "ci-dummy_dummy.ubuntu_gfx950": "gfx950"}
    write_script(hub, "scripts/dummy/run.sh", 'cat /built_for; echo "performance: 1 x"')

    def run(arch: str):
        ctx = json.dumps({"gpu_vendor": "NONE", "docker_env_vars": {"MAD_SYSTEM_GPU_ARCHITECTURE": arch}})
        return madengine("run.local", "--manifest-file", "build_manifest.json", "--additional-context", ctx, cwd=hub)

    assert run("gfx950").rc == 0
    row = read_perf(hub / "perf.csv")[-1]
    assert (row["docker_image"], row["status"]) == ("ci-dummy_dummy.ubuntu_gfx950", "SUCCESS")
    assert "built for gfx950" in (hub / "dummy_dummy.ubuntu_gfx950.run.live.log").read_text()
    before = len(read_perf(hub / "perf.csv"))
    other = run("gfx90a")
    assert other.rc == 3 and "is built for gfx942, this node's GPUs are gfx90a" in other.err, other.err
    assert len(read_perf(hub / "perf.csv")) == before + 1
    dockerfile.write_text(dockerfile.read_text() + "ARG PYTORCH_ROCM_ARCH=gfx90a;gfx942\n")
    res = madengine("build", "--tags", "dummy", "--additional-context", CPU, "--target-archs", "gfx942",
                    "--target-archs", "gfx950", "--manifest-output", "narrow.json", cwd=hub)
    assert res.rc == 2 and "PYTORCH_ROCM_ARCH=gfx90a;gfx942 does not include gfx950" in res.err, res.err
    assert list(json.loads((hub / "narrow.json").read_text())["built_images"]) == ["ci-dummy_dummy.ubuntu_gfx942"]


def test_multiple_results_keep_every_column(hub: Path, no_leftovers) -> None:
    """A multiple_results CSV's extra columns (here `temperature`) are not lost: perf.csv keeps v2's 29 columns,
    and the whole CSV is kept in the run's directory (and, written at the top of the workspace, next to perf.csv)."""
    res = madengine("run.local", "--tags", "dummy_multi", "--additional-context", CPU, cwd=hub)
    assert res.rc == 0, res.err
    kept = list(hub.glob("madengine-runs/*/dummy_multi_dummy.ubuntu/perf_dummy_multi.csv"))
    assert len(kept) == 1 and kept[0].read_text().splitlines()[0] == "model,temperature,performance,metric"
    assert [r["model"] for r in read_perf(hub / "perf.csv")] == ["dummy_multi_1", "dummy_multi_2", "dummy_multi_3"]
