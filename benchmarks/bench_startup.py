"""Cold start of the CLI: ``madengine --help``, ``madengine --list`` and ``inv --list``, against the bare
interpreter start (``python -c pass``) measured in the same run. Target: ``--help`` under 0.15 s over the
interpreter, which needs the heavy clients (docker, kubernetes, fabric) imported lazily.

Run: ``.venv/bin/python benchmarks/bench_startup.py [--repeat N]``. Prints medians and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def median_wall(cmd: list[str], repeat: int) -> float:
    """Median wall time in seconds of ``cmd`` over ``repeat`` runs (after one warm-up for the page cache)."""
    subprocess.run(cmd, cwd=REPO, capture_output=True, check=True)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def heavy_modules_loaded() -> list[str]:
    """Heavy client packages imported by building the namespace (should be none)."""
    code = ("import sys, madengine.tasks; "
            "print(','.join(m for m in ('docker','kubernetes','fabric','paramiko') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    repeat = parser.parse_args().repeat
    base = median_wall([sys.executable, "-c", "pass"], repeat)
    print(f"python -c pass          {base * 1000:7.1f} ms (baseline)")
    for label, cmd in (("madengine --help", [sys.executable, "-m", "madengine", "--help"]),
                       ("madengine --list", [sys.executable, "-m", "madengine", "--list"]),
                       ("inv --list", [sys.executable, "-m", "invoke", "--list"])):
        t = median_wall(cmd, repeat)
        print(f"{label:<22}  {t * 1000:7.1f} ms  ratio {t / base:5.2f}x  over baseline {(t - base) * 1000:6.1f} ms"
              f"  (target: under 150 ms over baseline)")
    print(f"heavy clients imported at start: {heavy_modules_loaded() or 'none'}")


if __name__ == "__main__":
    main()
