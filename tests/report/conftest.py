"""Shared helpers of the report tests: real perf.csv files written with madengine's own ``append_rows``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from madengine.results.perf_csv import PerfRow, append_rows

V1_HEADER = (
    "model, n_gpus, training_precision, pipeline, args, tags, docker_file, base_docker, docker_sha, docker_image, "
    "git_commit, machine_name, gpu_architecture, performance, metric, relative_change, status, build_duration, "
    "test_duration, dataname, data_provider_type, data_size, data_download_duration, build_number, "
    "additional_docker_run_options"
)


def row(model: str, status: str = "SUCCESS", **fields: object) -> PerfRow:
    """A PerfRow with sensible defaults for the fields reports show."""
    defaults: dict[str, object] = {"n_gpus": "1", "nnodes": "1", "launcher": "", "deployment_type": "local",
                                   "gpu_architecture": "gfx942", "docker_file": f"docker/{model}.Dockerfile"}
    if status == "SUCCESS":
        defaults.update(performance="100", metric="samples_per_second")
    defaults.update(fields)
    return PerfRow(model=model, status=status, **defaults)  # type: ignore[arg-type]


@pytest.fixture
def write_perf(tmp_path: Path) -> Callable[..., Path]:
    """``write_perf("a.csv", rows)`` appends ``rows`` to ``tmp_path/a.csv`` with append_rows; returns the path."""
    def write(name: str, rows: list[PerfRow]) -> Path:
        path = tmp_path / name
        append_rows(path, rows)
        return path
    return write


@pytest.fixture
def sample(write_perf: Callable[..., Path]) -> Path:
    """perf.csv with a SUCCESS, a FAILURE and a SKIPPED row."""
    return write_perf("perf.csv", [
        row("bert", performance="1000", metric="samples_per_second", n_gpus="8", launcher="torchrun",
            build_duration="12.5", test_duration="60.25"),
        row("resnet", "FAILURE", reason="never written to perf.csv"),
        row("llama", "SKIPPED"),
    ])
