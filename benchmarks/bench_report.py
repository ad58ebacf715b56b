"""Benchmark: ``inv report`` formats on a generated 100,000-row perf.csv (not a test; always exits 0).

Writes, in a temporary directory, a perf.csv of ``--rows`` rows (1,000 models x 4 configurations, 5 % FAILURE, a few
SKIPPED and blank performances) with :func:`madengine.results.perf_csv.append_rows`, then prints the median wall
time of loading it (:func:`madengine.report.load.load_sources`) and of rendering each format (table, JSON,
Markdown, JUnit, HTML, a two-file comparison), next to a baseline measured in the same run: ``csv.DictReader`` over
the same file. Also prints the size of the HTML page.

Usage: ``python benchmarks/bench_report.py [--rows 100000] [--models 1000] [--runs 3]``
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from timing import median_time  # benchmarks/timing.py (scripts run from their folder)

from madengine.report.compare import compare, render_compare_table  # noqa: E402
from madengine.report.html import render_html  # noqa: E402
from madengine.report.junit import render_junit  # noqa: E402
from madengine.report.load import load_sources  # noqa: E402
from madengine.report.table import render_json, render_markdown, render_table  # noqa: E402
from madengine.results.perf_csv import PerfRow, append_rows  # noqa: E402


def make_rows(n_rows: int, n_models: int) -> list[PerfRow]:
    """``n_rows`` MAD-like rows: model i % n_models, 4 GPU/launcher configurations, some failures and skips."""
    rows = []
    for i in range(n_rows):
        model = i % n_models
        config = (i // n_models) % 4
        status = "FAILURE" if i % 20 == 7 else "SKIPPED" if i % 97 == 3 else "SUCCESS"
        rows.append(PerfRow(
            model=f"pyt_model_{model:04d}", n_gpus=str(2 ** config), nnodes="1", gpus_per_node=str(2 ** config),
            training_precision="fp16", args=f"--batch {8 * (config + 1)}", tags="pyt,inference",
            docker_file=f"docker/pyt_model_{model % 50}.ubuntu.amd.Dockerfile", base_docker="rocm/pytorch",
            docker_sha="sha256:" + "ab" * 32, docker_image=f"ci-pyt_model_{model:04d}", git_commit="deadbeef",
            machine_name=f"node{i % 16}", deployment_type="local", launcher=("torchrun", "deepspeed")[config % 2],
            gpu_architecture="gfx942",
            performance="" if status != "SUCCESS" or i % 501 == 0 else f"{1000 + model + (i % 37) * 1.5:.2f}",
            metric="samples_per_second" if status == "SUCCESS" else "", status=status,  # type: ignore[arg-type]
            build_duration=f"{10 + i % 50}.5", test_duration=f"{60 + i % 300}.25"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="madengine-bench-") as tmp:
        path = Path(tmp) / "perf.csv"
        other = Path(tmp) / "perf_b.csv"
        rows = make_rows(opts.rows, opts.models)
        append_rows(path, rows)
        append_rows(other, rows[::-1])

        def baseline() -> None:
            with open(path, newline="", encoding="utf-8") as fh:
                for _ in csv.DictReader(fh):
                    pass

        sources = load_sources([path])
        pair = load_sources([path, other])
        timings = [
            ("baseline csv.DictReader", median_time(baseline, opts.runs)),
            ("load (read + rows)", median_time(lambda: load_sources([path]), opts.runs)),
            ("table", median_time(lambda: render_table(sources), opts.runs)),
            ("json", median_time(lambda: render_json(sources), opts.runs)),
            ("markdown", median_time(lambda: render_markdown(sources), opts.runs)),
            ("junit", median_time(lambda: render_junit(sources), opts.runs)),
            ("html", median_time(lambda: render_html(sources), opts.runs)),
            ("compare (2 files)", median_time(lambda: render_compare_table(compare(pair)), opts.runs)),
        ]
        html_size = len(render_html(sources).encode())
    base = timings[0][1]
    print(f"perf.csv: {opts.rows:,} rows, {opts.models:,} models (median of {opts.runs} runs)")
    for name, seconds in timings:
        print(f"{name:26s}: {seconds * 1000:9.1f} ms  {seconds / base:7.1f} x baseline")
    print(f"html page size            : {html_size / 1e6:9.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
