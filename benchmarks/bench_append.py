"""Benchmark: appending one model's row to a large perf.csv with ``relative_change`` (not a test; exits 0).

Writes a perf.csv of ``--rows`` rows (default 300,000; 1,000 models x 300 runs), then measures, each in a fresh
process (so peak memory is the append's own): the first append with ``relative_change`` (no index yet: the file is
read once, streamed), a later one (the index covers the file: only the rows added since are read), and the baseline
``append_rows`` of the same row without ``relative_change``. Prints wall time and peak RSS of each and the ratios
of the indexed append against the baseline. Goal: an append costs O(new rows), so the indexed append stays close
to the baseline whatever the size of the file.

Usage: ``python benchmarks/bench_append.py [--rows 300000]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from madengine.results.perf_csv import PerfRow, append_rows  # noqa: E402

CHILD = """
import resource, sys, time
from madengine.results.perf_csv import PerfRow, append_rows
from madengine.report.relative import append_with_relative_change
row = PerfRow(model="m7", status="SUCCESS", performance="123.4", metric="samples_per_second",
              docker_file="docker/dummy.Dockerfile", deployment_type="local")
start = time.perf_counter()
if sys.argv[2] == "plain":
    append_rows(sys.argv[1], [row])
else:
    append_with_relative_change(sys.argv[1], [row])
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def measure(path: Path, mode: str) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one append in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), mode], check=True, capture_output=True,
                         text=True).stdout.split()
    return float(out[0]), int(out[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    rows = parser.parse_args().rows
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "perf.csv"
        batch = [PerfRow(model=f"m{i % 1000}", status="SUCCESS" if i % 20 else "FAILURE", performance=str(i % 997 + 1),
                         metric="samples_per_second", docker_file="docker/dummy.Dockerfile", deployment_type="local",
                         machine_name="node1", tags="bench") for i in range(10_000)]
        for _ in range(max(1, rows // len(batch))):
            append_rows(path, batch)
        size = path.stat().st_size / 2**20
        cold = measure(path, "relative")
        warm = measure(path, "relative")
        plain = measure(path, "plain")
    print(f"perf.csv: {rows} rows, {size:.0f} MiB")
    print(f"append_rows (baseline, no relative_change) : {plain[0] * 1000:8.1f} ms {plain[1]:7.1f} MiB peak RSS")
    print(f"first append with relative_change (no index): {cold[0] * 1000:8.1f} ms {cold[1]:7.1f} MiB peak RSS")
    print(f"append with relative_change (indexed)       : {warm[0] * 1000:8.1f} ms {warm[1]:7.1f} MiB peak RSS  "
          f"ratio {warm[0] / plain[0]:5.2f}x time, {warm[1] / plain[1]:4.2f}x memory")


if __name__ == "__main__":
    main()
