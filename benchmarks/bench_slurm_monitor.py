"""Benchmark: Slurm monitoring cost with many queued jobs (not a test; always exits 0).

Prints (1) the scheduler commands madengine's monitor runs per tick while watching N jobs (target: 1) and the
wall time of one tick, and (2) the polling interval schedule (first ticks, the cap, time to reach it, the number of
ticks in the first 10 minutes) next to a fixed 1-second poll as the baseline.

With the local cluster up (``bash dev/slurm.sh up``) the jobs are real: N held jobs (``sbatch --hold``, which never
run) are submitted, watched for a few ticks, then cancelled. Without a cluster (or with ``--fake``), an in-memory
scheduler answers instead, and only the call count is meaningful.

Usage: ``python benchmarks/bench_slurm_monitor.py [--jobs 200] [--ticks 5] [--fake]``
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from madengine.deploy.slurm.cli import CommandResult, LocalExecutor, SlurmCli  # noqa: E402
from madengine.deploy.slurm.monitor import Monitor, intervals  # noqa: E402


class FakeScheduler:
    """Answers ``sacct -P -n -X -j ids`` with every job PENDING."""

    description = "fake"

    def run(self, argv, timeout=60.0) -> CommandResult:
        ids = argv[argv.index("-j") + 1].split(",") if "-j" in argv else []
        return CommandResult(0, "".join(f"{j}|PENDING|0:0|Resources\n" for j in ids), "")

    def push(self, local, remote) -> None: ...
    def pull(self, remote, local) -> None: ...
    def read_text(self, remote) -> None: ...
    def close(self) -> None: ...


def submit_held(n: int) -> list[str]:
    """Submit ``n`` held jobs (they never run) and return their ids."""
    ids = []
    for _ in range(n):
        out = subprocess.run(["sbatch", "--parsable", "--hold", "-o", "/dev/null", "--job-name=mad-bench",
                              "--wrap", "true"], capture_output=True, text=True, check=True)
        ids.append(out.stdout.strip().split(";")[0])
    return ids


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--fake", action="store_true", help="use the in-memory scheduler even if Slurm is up")
    args = parser.parse_args()

    real = not args.fake and shutil.which("sbatch") and subprocess.run(
        ["sinfo", "-h"], capture_output=True).returncode == 0
    ids: list[str] = []
    try:
        if real:
            t0 = time.perf_counter()
            ids = submit_held(args.jobs)
            print(f"submitted {len(ids)} held jobs in {time.perf_counter() - t0:.1f} s (real local cluster)")
            cli = SlurmCli(LocalExecutor())
        else:
            ids = [str(1000 + i) for i in range(args.jobs)]
            print(f"{len(ids)} jobs on an in-memory scheduler (no cluster, or --fake)")
            cli = SlurmCli(FakeScheduler())  # type: ignore[arg-type]
        monitor = Monitor(cli, ids, sleep=lambda s: None)
        calls, times = [], []
        for _ in range(args.ticks):
            before = cli.calls
            t0 = time.perf_counter()
            states = monitor.tick()
            times.append(time.perf_counter() - t0)
            calls.append(cli.calls - before)
        pending = sum(1 for s in states.values() if s.status == "pending")
        print(f"jobs watched: {len(ids)} ({pending} pending); query mode: {cli.mode}")
        print(f"scheduler calls per tick: {calls} (target: 1; the first tick may add the sacct probe that "
              "finds accounting disabled)")
        print(f"tick wall time: median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms")
        print(f"baseline (one query per job): {len(ids)} calls per tick")
    finally:
        if real and ids:
            subprocess.run(["scancel", *ids], capture_output=True)
            print(f"cancelled the {len(ids)} benchmark jobs")

    gen = intervals(first=1.0, cap=15.0, rng=random.Random(0))
    schedule = [next(gen) for _ in range(400)]
    elapsed, ticks_10min, reach_cap = 0.0, 0, None
    for i, value in enumerate(schedule):
        if elapsed < 600:
            ticks_10min += 1
        if reach_cap is None and value >= 15.0 * 0.9:
            reach_cap = (i, elapsed)
        elapsed += value
    print("interval schedule (s, first=1, factor=1.5, cap=15, jitter ±10%): "
          + ", ".join(f"{v:.2f}" for v in schedule[:10]) + ", ...")
    if reach_cap:
        print(f"reaches the cap at tick {reach_cap[0]} after {reach_cap[1]:.0f} s")
    print(f"queries in the first 10 minutes: {ticks_10min} (baseline fixed 1-s poll: 600)")


if __name__ == "__main__":
    main()
