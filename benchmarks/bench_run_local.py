"""Wall time of ``madengine run.local`` on a trivial model against a bare ``docker run --rm`` of the same image and
command, all measured in this run. Targets: within 1.5x of the bare run with the default automation (environment
capture and GPU info around the model), within 1.2x with ``--no-sys-env-details``. The step script runs in ONE
``docker exec`` (templates/run/steps.sh.j2).

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
        shutil.copytree(REPO / "examples" / "hub", hub, ignore=shutil.ignore_patterns(
            "perf.csv", "*.log", "build_manifest.json*", ".madengine", "*_env.csv", "madengine-runs"))
        mad = [sys.executable, "-m", "madengine"]
        subprocess.run([*mad, "build", "--tags", "dummy", "--additional-context", CPU], cwd=hub, check=True,
                       capture_output=True)
        script = (hub / "scripts" / "dummy" / "run.sh").read_text()
        bare = ["docker", "run", "--rm", "ci-dummy_dummy.ubuntu", "bash", "-c", script]
        ours = [*mad, "run.local", "--manifest-file", "build_manifest.json"]
        lean = [*ours, "--no-sys-env-details"]
        for cmd in (bare, ours, lean):
            timed(cmd, hub)  # warm caches
        times: dict[str, list[float]] = {"bare": [], "ours": [], "lean": []}
        for _ in range(repeat):  # interleaved, so drift affects every side alike
            for key, cmd in (("bare", bare), ("ours", ours), ("lean", lean)):
                times[key].append(timed(cmd, hub))
    b, o, n = (statistics.median(times[k]) for k in ("bare", "ours", "lean"))
    print(f"bare docker run --rm                    {b:6.3f} s (median of {repeat}, baseline)")
    print(f"madengine run.local                     {o:6.3f} s  ratio {o / b:5.2f}x  (target: within 1.5x)")
    print(f"madengine run.local --no-sys-env-details {n:6.3f} s  ratio {n / b:5.2f}x  (target: within 1.2x)")


if __name__ == "__main__":
    main()
