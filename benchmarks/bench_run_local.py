"""Wall time of ``madengine run.local`` on a trivial model against a bare ``docker run --rm`` of the same image and
command, both measured in this run. Target: run.local within 1.2x of the bare run.

The model is the example hub's ``dummy``; the image is built first (not timed). Both sides include process start:
the madengine side is the whole CLI (``python -m madengine run.local --manifest-file ...``), the baseline the docker
CLI (``docker run --rm <image> bash -c '<same command>'``).

Run: ``.venv/bin/python benchmarks/bench_run_local.py [--repeat N]`` (needs ``bash dev/engine.sh up``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CPU = '{"gpu_vendor": "NONE"}'


def timed(cmd: list[str], cwd: Path) -> float:
    """Wall seconds of one run of ``cmd`` (must succeed)."""
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as tmp:
        hub = Path(tmp) / "hub"
        shutil.copytree(REPO / "examples" / "hub", hub)
        mad = [sys.executable, "-m", "madengine"]
        subprocess.run([*mad, "build", "--tags", "dummy", "--additional-context", CPU], cwd=hub, check=True,
                       capture_output=True)
        script = (hub / "scripts" / "dummy" / "run.sh").read_text()
        bare = ["docker", "run", "--rm", "ci-dummy_dummy.ubuntu", "bash", "-c", script]
        ours = [*mad, "run.local", "--manifest-file", "build_manifest.json"]
        timed(bare, hub)
        timed(ours, hub)
        bare_t, ours_t = [], []
        for _ in range(repeat):  # interleaved, so drift affects both sides alike
            bare_t.append(timed(bare, hub))
            ours_t.append(timed(ours, hub))
    b, o = statistics.median(bare_t), statistics.median(ours_t)
    print(f"bare docker run --rm     {b:6.3f} s (median of {repeat}, baseline)")
    print(f"madengine run.local      {o:6.3f} s  ratio {o / b:5.2f}x  (target: within 1.2x)")


if __name__ == "__main__":
    main()
