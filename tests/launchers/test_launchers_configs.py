"""Every file in configs/: it loads as a context, carries a one-line ``_description``, and (when it names a
launcher) passes validation; its rendered commands and environment for local, SLURM and Kubernetes match the golden
files under tests/launchers/golden/ (``MADENGINE_UPDATE_GOLDEN=1`` rewrites them; review the diff by eye)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from madengine import launchers
from madengine.context import build_context
from tests.conftest import REPO, check_golden, madengine

CONFIGS = sorted((REPO / "configs").glob("*.json"))
GOLDEN = Path(__file__).parent / "golden"
STRATEGIES = {
    "k8s-torchrun.json": "DDP",
    "sglang-disagg-2p2d.json": "PD-disaggregated (prefill TP, decode TP)",
    "slurm-torchrun-4node.json": "DDP",
    "vllm-deepseek-r1-dp8-ep.json": "DP+EP",
    "vllm-deepseek-r1-tp8-ep.json": "TP+EP",
    "vllm-llama4-maverick-tp8-ep.json": "TP+EP",
    "vllm-qwen3-235b-dp8-ep.json": "DP+EP",
    "vllm-qwen3-235b-tp8-ep.json": "TP+EP",
    "vllm-qwen3-235b-tp8.json": "TP",
    "seed-v1-multi-node-args.json": "DDP",
    "seed-v2-slurm-distributed.json": "DDP",
    "seed-v2-k8s.json": "DDP",
    "seed-vllm-no-launcher.json": "TP",
}
LAUNCHER_CONFIGS = [p for p in CONFIGS if p.name in STRATEGIES]


def test_every_launcher_config_is_listed() -> None:
    named = {p.name for p in CONFIGS if launchers.launcher_name(build_context(context_file=str(p)))}
    assert named == set(STRATEGIES)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_is_described(path: Path) -> None:
    ctx = build_context(context_file=str(path))
    description = ctx.get("_description")
    assert isinstance(description, str) and description.strip() and "\n" not in description
    if launchers.launcher_name(ctx):
        plan = launchers.resolve(ctx)
        assert plan.strategy == STRATEGIES[path.name]
        assert plan.warnings == []


def rendered(path: Path) -> dict[str, object]:
    """The golden document of one config: the plan, and every node rendered for each deployment (SLURM with the
    fake node list ``n[1-N]``, Kubernetes with the Job ``madengine-<config>``)."""
    ctx = build_context(context_file=str(path))
    plan = launchers.resolve(ctx)
    job = f"madengine-{path.stem}"
    doc: dict[str, object] = {"config": path.name, "plan": plan.model_dump(mode="json")}
    for deployment in launchers.DEPLOYMENTS:
        result = launchers.explain(plan, deployment=deployment, nodelist=f"n[1-{plan.nodes}]", job=job)
        doc[deployment] = result["nodes"]
    return doc


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS, ids=lambda p: p.name)
def test_golden_rendering(path: Path) -> None:
    actual = json.dumps(rendered(path), indent=2, ensure_ascii=False) + "\n"
    check_golden(GOLDEN / f"{path.stem}.json", actual)


def test_golden_files_have_a_config() -> None:
    assert {p.stem for p in GOLDEN.glob("*.json")} == {p.stem for p in LAUNCHER_CONFIGS}


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS, ids=lambda p: p.name)
def test_explain_cli(path: Path, tmp_path: Path) -> None:
    ctx = build_context(context_file=str(path))
    deployment = str(ctx.get("deploy") or "local")
    res = madengine("launchers.explain", "--additional-context-file", str(path), cwd=tmp_path, timeout=60)
    assert res.rc == 0, res.text
    plan = launchers.resolve(ctx)
    assert f"strategy        {STRATEGIES[path.name]}" in res.out
    assert f"deployment      {deployment}" in res.out
    assert f"world size      {plan.world_size}" in res.out
    for rank in range(1 if deployment == "local" else plan.nodes):
        assert f"node {rank} (" in res.out
    assert "MAD_MULTI_NODE_RUNNER=" in res.out
    res = madengine("launchers.explain", "--additional-context-file", str(path), "--json", cwd=tmp_path, timeout=60)
    assert res.rc == 0, res.text
    assert json.loads(res.out)["plan"] == plan.model_dump(mode="json")
