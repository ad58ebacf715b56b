"""Contexts written for other madengine generations (``configs/seed-*.json``: madengine v1's ``multi_node_args``,
madengine v2's SLURM and Kubernetes keys, launcher sections without ``"launcher"``) run as written: their dry-run
output for Slurm (the sbatch script) and Kubernetes (the Job) matches the golden files in ``tests/e2e/golden/``
(``MADENGINE_UPDATE_GOLDEN=1`` rewrites them; review the diff), and multi-node intent is never shrunk. Keys that
cannot carry over are refused with exit code 4 naming the key to use."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, check_golden, madengine

SEEDS = sorted((REPO / "configs").glob("seed-*.json"))
GOLDEN = Path(__file__).parent / "golden"
#: seed → (nodes, GPUs per node) it asks for.
INTENT = {"seed-v1-multi-node-args": (2, 8), "seed-v2-slurm-distributed": (2, 8), "seed-v2-k8s": (2, 8),
          "seed-vllm-no-launcher": (1, 8)}


def _manifest(hub: Path) -> Path:
    image = "ci-dummy_dummy.ubuntu"
    models = {m["name"]: m for m in json.loads((hub / "models.json").read_text())}
    manifest = {"built_images": {image: {"model": "dummy", "docker_image": image, "log_base": "dummy_dummy.ubuntu",
                                         "dockerfile": "docker/dummy.ubuntu.Dockerfile"}},
                "built_models": {image: models["dummy"]}, "context": {}, "hub": str(hub)}
    path = hub / "seed-manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def _golden(name: str, text: str) -> None:
    check_golden(GOLDEN / name, text)


def test_every_seed_has_an_intent() -> None:
    assert {p.stem for p in SEEDS} == set(INTENT)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda p: p.stem)
def test_seed_on_slurm_dry_run(seed: Path, hub: Path) -> None:
    res = madengine("run.slurm", "--manifest-file", str(_manifest(hub)), "--dry-run", "--additional-context-file",
                    str(seed), cwd=hub, timeout=120)
    assert res.rc == 0, res.text
    script = Path(next(line for line in res.out.splitlines() if line.endswith("job.sh")))
    text = script.read_text()
    nodes, gpus = INTENT[seed.stem]
    assert f"#SBATCH --nodes={nodes}\n" in text
    assert f"--gpus-per-node={gpus}" in text or f"--gres=gpu:{gpus}" in text
    run_dir = script.parent.parent
    text = text.replace(str(run_dir), "<RUN>").replace(str(hub), "<HUB>").replace(sys.executable, "<PYTHON>")
    _golden(f"{seed.stem}.slurm.sh", text)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda p: p.stem)
def test_seed_on_k8s_dry_run(seed: Path, hub: Path) -> None:
    res = madengine("run.k8s", "--manifest-file", str(_manifest(hub)), "--dry-run", "--additional-context-file",
                    str(seed), cwd=hub, timeout=120)
    assert res.rc == 0, res.text
    paths = [Path(p) for p in res.out.strip().splitlines() if p.endswith(".yaml")]
    job_file = next(p for p in paths if "-job-" in p.name)
    text = job_file.read_text()
    nodes, gpus = INTENT[seed.stem]
    job = job_file.stem.split("-job-", 1)[1]
    assert (f"completions: {nodes}" in text) == (nodes > 1)
    assert f"amd.com/gpu: '{gpus}'" in text
    run_id = re.search(r"madengine/run-id: '?([0-9a-f]+)", text).group(1)  # type: ignore[union-attr]
    # YAML quotes a run id that reads as a number (all digits, 1e5): normalise both spellings
    text = text.replace(job, "<JOB>").replace(f"'{run_id}'", "<RUN>").replace(run_id, "<RUN>")
    _golden(f"{seed.stem}.k8s.yaml", text)


def test_typed_gres_keeps_its_gpu_type(hub: Path) -> None:
    ctx = json.dumps({"gpu_vendor": "NONE", "slurm": {"gres": "gpu:mi300x:4"}})
    res = madengine("run.slurm", "--manifest-file", str(_manifest(hub)), "--dry-run", "--additional-context", ctx,
                    cwd=hub, timeout=120)
    assert res.rc == 0, res.text
    script = Path(next(line for line in res.out.splitlines() if line.endswith("job.sh")))
    assert "#SBATCH --gres=gpu:mi300x:4\n" in script.read_text()


def test_missing_data_config_is_refused_before_submitting(hub: Path) -> None:
    for task in ("run.slurm", "run.k8s", "run.local"):
        res = madengine(task, "--manifest-file", str(_manifest(hub)), "--dry-run" if task != "run.local" else
                        "--skip-model-run", "--data-config", "nope.json", "--additional-context",
                        '{"gpu_vendor": "NONE"}', cwd=hub, timeout=120)
        assert res.rc == 4 and "--data-config:" in res.err and "nope.json does not exist" in res.err, res.text


@pytest.mark.parametrize(("ctx", "message"), [
    ({"shared_data": "/nfs/data"}, "'shared_data' is not a madengine key: pass --force-mirror-local"),
    ({"slurm": {"ntasks_per_node": 8}}, "one task per node and the launcher starts the ranks"),
    ({"slurm": {"gres": "mps:100"}}, "add --gres=... to slurm.sbatch_args"),
    ({"multi_node_args": {"RUNNER": "mpirun"}}, "set \"launcher\" and its section"),
    ({"k8s": {"volumes": [{"name": "v", "type": "nfs", "mount_path": "/v"}]}}, "use one of pvc, host_path"),
    ({"slurm": {"time_limit": "01:00:00", "time": "02:00:00"}}, "'slurm.time_limit' ('01:00:00') and 'slurm.time'"),
    ({"vllm": {"tensor_parallel_size": 1}, "sglang": {"tp_size": 1}}, "say which one runs"),
])
def test_keys_that_cannot_carry_over_are_refused(ctx: dict, message: str, hub: Path) -> None:
    res = madengine("run.slurm", "--manifest-file", str(_manifest(hub)), "--dry-run", "--additional-context",
                    json.dumps({"gpu_vendor": "NONE", **ctx}), cwd=hub, timeout=120)
    assert res.rc == 4 and message in res.err, res.text
    assert "Traceback" not in res.text and len(res.err.strip().splitlines()) == 1
