"""Benchmark: discovery of a generated 5,000-model MAD hub (not a test; always exits 0).

Generates, in a temporary directory, a root ``models.json`` plus ``scripts/<dir>/models.json`` files shaped like
MAD's (``../../docker/<x>`` Dockerfiles, ``run.sh`` scripts, five tags, ``multiple_results``, ``timeout: -1``), then
prints the median wall time of :func:`madengine.hub.discover` over several runs, the median of a baseline measured in
the same run (plain ``json.load`` of the same files), and their ratio. Also times ``select(models, ["all"])``.

Usage: ``python benchmarks/bench_discovery.py [--models 5000] [--dirs 50] [--runs 9]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from timing import median_time  # benchmarks/timing.py (scripts run from their folder)

from madengine.hub import discover, select  # noqa: E402


def entry(i: int, subdir: bool) -> dict[str, object]:
    """One MAD-like models.json entry."""
    return {
        "name": f"pyt_vllm_model-{i}",
        "url": "",
        "dockerfile": f"../../docker/pyt_vllm{i % 7}" if subdir else f"docker/pyt_vllm{i % 7}",
        "scripts": "run.sh" if subdir else "scripts/vllm/run.sh",
        "data": "huggingface",
        "n_gpus": "-1" if i % 3 else 8,
        "owner": "mad.support@amd.com",
        "training_precision": "",
        "multiple_results": f"perf_model-{i}.csv",
        "tags": ["pyt", "vllm", f"group{i % 20}", "inference", f"size{i % 5}"],
        "timeout": -1,
        "skip_gpu_arch": "gfx942" if i % 4 == 0 else "",
        "args": f"--model_repo org/Model-{i} --config configs/default.yaml",
    }


def make_hub(root: Path, n_models: int, n_dirs: int) -> list[Path]:
    """Write the hub; returns every models.json written."""
    per_dir = n_models // (n_dirs + 1)
    n_root = n_models - per_dir * n_dirs
    files = [root / "models.json"]
    files[0].write_text(json.dumps([entry(i, False) for i in range(n_root)], indent=4))
    for d in range(n_dirs):
        sub = root / "scripts" / f"family{d:02d}"
        sub.mkdir(parents=True)
        path = sub / "models.json"
        path.write_text(json.dumps([entry(n_root + d * per_dir + i, True) for i in range(per_dir)], indent=4))
        files.append(path)
    (root / "scripts" / "common").mkdir()  # a directory without models, as in MAD
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=5000)
    parser.add_argument("--dirs", type=int, default=50)
    parser.add_argument("--runs", type=int, default=9)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="madengine-bench-") as tmp:
        root = Path(tmp)
        files = make_hub(root, opts.models, opts.dirs)

        def baseline() -> None:
            for path in files:
                with open(path, encoding="utf-8") as fh:
                    json.load(fh)

        count = len(discover(root))
        models = discover(root)
        t_base = median_time(baseline, opts.runs)
        t_disc = median_time(lambda: discover(root), opts.runs)
        t_sel = median_time(lambda: select(models, ["all"]), opts.runs)
    print(f"hub: {count} models in {len(files)} models.json files ({opts.dirs} scripts/<dir>/)")
    print(f"baseline json.load : {t_base * 1000:8.1f} ms (median of {opts.runs})")
    print(f"discover()         : {t_disc * 1000:8.1f} ms (median of {opts.runs})")
    print(f"ratio              : {t_disc / t_base:8.2f} x baseline")
    print(f"select(['all'])    : {t_sel * 1000:8.1f} ms (median of {opts.runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
