"""Wall time of ``madengine run.local`` on a trivial model against a bare ``docker run --rm`` of the same image and
command, all measured in this run. Targets: within 1.5x of the bare run with the default automation (environment
capture and GPU info around the model), within 1.2x with ``--no-sys-env-details``. The step script is the
container's main process (templates/run/steps.sh.j2), as the bare run's command is.

The model is the example hub's ``dummy``; the images are built first (not timed). Both sides include process start:
the madengine side is the whole CLI (``python -m madengine run.local --manifest-file ...``), the baseline the docker
CLI (``docker run --rm <image> bash -c '<same command>'``). The whole-CLI ratio includes madengine's fixed start-up
(the interpreter and its libraries: invoke, pydantic, docker-py, jinja2), paid once per invocation; the last line
separates it out: the cost of each further model in one invocation (``--tags`` selecting BATCH copies of ``dummy``),
``(T(BATCH models) - T(1 model)) / (BATCH - 1)``, against the bare run.

Run: ``.venv/bin/python benchmarks/bench_run_local.py [--repeat N]`` (needs ``bash dev/engine.sh up``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CPU = '{"gpu_vendor": "NONE"}'
BATCH = 5
#: As a user's machine runs it: Python caches compiled bytecode (some CI images turn that off, which costs every
#: run of an editable install ~40 ms of compiling madengine's modules).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str], cwd: Path) -> float:
    """Wall seconds of one run of ``cmd`` (must succeed)."""
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env=ENV)
    return time.perf_counter() - start


def hub_with_copies(hub: Path) -> None:
    """Copy the example hub's ``dummy`` entry BATCH - 1 times (tag ``bench``) so one invocation runs BATCH models."""
    models = json.loads((hub / "models.json").read_text())
    dummy = next(m for m in models if m["name"] == "dummy")
    copies = [dummy | {"name": f"dummy_bench{i}", "tags": ["bench"]} for i in range(1, BATCH)]
    (hub / "models.json").write_text(json.dumps(models + copies, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as tmp:
        hub = Path(tmp) / "hub"
        shutil.copytree(REPO / "examples" / "hub", hub, ignore=shutil.ignore_patterns(
            "perf.csv", "*.log", "build_manifest.json*", ".madengine", "*_env.csv", "madengine-runs"))
        hub_with_copies(hub)
        mad = [sys.executable, "-m", "madengine"]
        for tags, manifest in ((["dummy"], "one.json"), (["dummy", "bench"], "batch.json")):
            subprocess.run([*mad, "build", *(f"--tags={t}" for t in tags), "--additional-context", CPU,
                            "--manifest-output", manifest], cwd=hub, check=True, capture_output=True, env=ENV)
        script = (hub / "scripts" / "dummy" / "run.sh").read_text()
        commands = {
            "bare": ["docker", "run", "--rm", "ci-dummy_dummy.ubuntu", "bash", "-c", script],
            "ours": [*mad, "run.local", "--manifest-file", "one.json"],
            "lean": [*mad, "run.local", "--manifest-file", "one.json", "--no-sys-env-details"],
            "batch": [*mad, "run.local", "--manifest-file", "batch.json"],
        }
        for cmd in commands.values():
            timed(cmd, hub)  # warm caches (and write bytecode)
        times: dict[str, list[float]] = {key: [] for key in commands}
        for _ in range(repeat):  # interleaved, so drift affects every side alike
            for key, cmd in commands.items():
                times[key].append(timed(cmd, hub))
    b, o, n, t = (statistics.median(times[k]) for k in ("bare", "ours", "lean", "batch"))
    each = (t - o) / (BATCH - 1)
    print(f"bare docker run --rm                     {b:6.3f} s (median of {repeat}, baseline)")
    print(f"madengine run.local                      {o:6.3f} s  ratio {o / b:5.2f}x  (target: within 1.5x)")
    print(f"madengine run.local --no-sys-env-details {n:6.3f} s  ratio {n / b:5.2f}x  (target: within 1.2x)")
    print(f"each further model in one run.local      {each:6.3f} s  ratio {each / b:5.2f}x  "
          f"(default automation; fixed start-up per invocation {o - each:5.3f} s)")


if __name__ == "__main__":
    main()
