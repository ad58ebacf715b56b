"""Every validation rule of the launchers, each with a failing example and its one-line message, plus the legal
neighbours of each rule (DP with and without EP, PP with a stated depth, ...)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from madengine import launchers
from madengine.errors import ConfigError
from madengine.gpu import GpuAssignment
from madengine.hub import Model
from madengine.manifest import BuiltImage
from madengine.workflow.plan import RunRequest, container_env
from tests.conftest import madengine

SLURM_2x8 = {"slurm": {"nodes": 2, "gpus_per_node": 8}}
SLURM_1x8 = {"slurm": {"nodes": 1, "gpus_per_node": 8}}

# (id, context, resolve kwargs, message regex)
FAILING: list[tuple[str, dict[str, Any], dict[str, int], str]] = [
    ("vllm-product-vs-slurm-gpus", {"launcher": "vllm", "vllm": {"tensor_parallel_size": 4}, **SLURM_1x8}, {},
     r"^vllm tensor_parallel_size × pipeline_parallel_size × data_parallel_size = 4 × 1 × 1 = 4 but 1 node\(s\) × "
     r"8 GPUs per node \(slurm.gpus_per_node\) = 8 GPUs are allocated; they must be equal$"),
    ("vllm-product-vs-allocation", {"launcher": "vllm", "vllm": {"tensor_parallel_size": 8, "data_parallel_size": 2}},
     {"nodes": 1, "gpus_per_node": 8}, r"= 8 × 1 × 2 = 16 but 1 node\(s\) × 8 GPUs per node \(allocated GPUs per node\)"),
    ("vllm-product-over-nodes", {"launcher": "vllm", "vllm": {"tensor_parallel_size": 8, "pipeline_parallel_size": 2},
                                 "slurm": {"nodes": 2, "gpus_per_node": 4}}, {},
     r"= 8 × 2 × 1 = 16 but 2 node\(s\) × 4 GPUs per node \(slurm.gpus_per_node\) = 8 GPUs"),
    ("vllm-product-not-splittable", {"launcher": "vllm", "vllm": {"tensor_parallel_size": 3}, "slurm": {"nodes": 2}},
     {}, r"= 3 × 1 × 1 = 3 does not split over 2 nodes"),
    ("vllm-ep-needs-tp-or-dp", {"launcher": "vllm", "vllm": {"enable_expert_parallel": True}}, {},
     r"^vllm.enable_expert_parallel needs vllm.tensor_parallel_size > 1 or vllm.data_parallel_size > 1 "
     r"\(got tp=1, dp=1\)$"),
    ("vllm-pp-deeper-than-model", {"launcher": "vllm", "vllm": {"tensor_parallel_size": 2, "pipeline_parallel_size": 4,
                                                                "num_layers": 2}}, {},
     r"^vllm.pipeline_parallel_size=4 exceeds vllm.num_layers=2"),
    ("vllm-dp-not-over-nodes", {"launcher": "vllm", "vllm": {"tensor_parallel_size": 4, "data_parallel_size": 3},
                                "slurm": {"nodes": 2, "gpus_per_node": 6}}, {},
     r"^vllm.data_parallel_size=3 does not split over 2 nodes"),
    ("vllm-port-range", {"launcher": "vllm", "vllm": {"port": 70000}}, {}, r"^vllm.port=70000 is out of range 1-65535$"),
    ("vllm-port-zero", {"launcher": "vllm", "vllm": {"port": 0}}, {}, r"^vllm.port=0 is out of range 1-65535$"),
    ("vllm-ports-distinct", {"launcher": "vllm", "vllm": {"data_parallel_size": 16, "port": 13345}, **SLURM_2x8}, {},
     r"^ports must be distinct: vllm.port=13345 and vllm.dp_rpc_port=13345$"),
    ("vllm-master-vs-api-port", {"launcher": "vllm", "vllm": {"port": 29500}}, {},
     r"^ports must be distinct: vllm.port=29500 and vllm.master_port=29500$"),
    ("vllm-bad-backend", {"launcher": "vllm", "vllm": {"distributed_executor_backend": "mpi"}}, {},
     r"^vllm.distributed_executor_backend='mpi' is not one of mp, ray, uni, external_launcher$"),
    ("vllm-typo", {"launcher": "vllm", "vllm": {"tensor_paralel_size": 8}}, {},
     r"^vllm: unknown key 'tensor_paralel_size'; did you mean 'tensor_parallel_size'\?$"),
    ("vllm-not-int", {"launcher": "vllm", "vllm": {"tensor_parallel_size": "eight"}}, {},
     r"^vllm.tensor_parallel_size must be an integer >= 1 \(got 'eight'\)$"),
    ("sglang-disagg-nodes", {"launcher": "sglang", "sglang": {"mode": "disaggregated", "prefill_nodes": 2,
                                                              "decode_nodes": 1, "tp_size": 8},
                             "slurm": {"nodes": 4, "gpus_per_node": 8}}, {},
     r"^sglang.prefill_nodes=2 \+ sglang.decode_nodes=1 = 3 but the allocation has 4 nodes; they must be equal$"),
    ("sglang-disagg-missing", {"launcher": "sglang", "sglang": {"mode": "disaggregated", "prefill_nodes": 1}}, {},
     r"^sglang.mode=disaggregated needs sglang.prefill_nodes and sglang.decode_nodes$"),
    ("sglang-disagg-instance", {"launcher": "sglang", "sglang": {"mode": "disaggregated", "prefill_nodes": 1,
                                                                 "decode_nodes": 1, "tp_size": 4,
                                                                 "decode": {"tp_size": 6}},
                                "slurm": {"nodes": 2, "gpus_per_node": 4}}, {},
     r"^sglang.decode: an instance uses 6 GPUs \(tp_size × dp_size\), not a whole number of nodes of 4 GPUs"),
    ("sglang-disagg-role-nodes", {"launcher": "sglang", "sglang": {"mode": "disaggregated", "prefill_nodes": 1,
                                                                   "decode_nodes": 2, "tp_size": 8,
                                                                   "prefill": {"tp_size": 16}},
                                  "slurm": {"nodes": 3, "gpus_per_node": 8}}, {},
     r"^sglang.prefill_nodes=1 is not a multiple of the 2 nodes one prefill instance needs"),
    ("sglang-product", {"launcher": "sglang", "sglang": {"tp_size": 4, "dp_size": 4}, **SLURM_1x8}, {},
     r"^sglang tp_size × dp_size = 4 × 4 = 16 but 1 node\(s\) × 8 GPUs per node \(slurm.gpus_per_node\) = 8 GPUs"),
    ("sglang-ep-divides-tp", {"launcher": "sglang", "sglang": {"tp_size": 8, "ep_size": 3}}, {},
     r"^sglang.ep_size=3 must divide sglang.tp_size=8$"),
    ("sglang-ep-needs-tp-or-dp", {"launcher": "sglang", "sglang": {"ep_size": 2}}, {},
     r"^sglang.ep_size=2 needs sglang.tp_size > 1 or sglang.dp_size > 1 \(got tp=1, dp=1\)$"),
    ("sglang-ports-distinct", {"launcher": "sglang", "sglang": {"mode": "disaggregated", "prefill_nodes": 1,
                                                                "decode_nodes": 1, "tp_size": 8, "router_port": 30000}},
     {}, r"^ports must be distinct: sglang.port=30000 and sglang.router_port=30000$"),
    ("sglang-mode", {"launcher": "sglang", "sglang": {"mode": "split"}}, {},
     r"^sglang.mode='split' is not one of colocated, disaggregated$"),
    ("sglang-disagg-keys-colocated", {"launcher": "sglang", "sglang": {"prefill_nodes": 1}}, {},
     r'^sglang.prefill_nodes needs "sglang.mode": "disaggregated"$'),
    ("torchrun-nproc-vs-gpus", {"launcher": "torchrun", "torchrun": {"nproc_per_node": 4}, **SLURM_1x8}, {},
     r"^torchrun.nproc_per_node=4 but slurm.gpus_per_node=8: torchrun starts one rank per GPU"),
    ("torchrun-nodes-disagree", {"launcher": "torchrun", "torchrun": {"nnodes": 4}, **SLURM_2x8}, {},
     r"^torchrun.nnodes=4 but slurm.nodes=2: the node counts must agree$"),
    ("torchrun-nodes-vs-allocation", {"launcher": "torchrun", "torchrun": {"nnodes": 2}}, {"nodes": 3},
     r"^torchrun.nnodes=2 but allocated nodes=3: the node counts must agree$"),
    ("torchrun-port-range", {"launcher": "torchrun", "torchrun": {"master_port": 65536}}, {},
     r"^torchrun.master_port=65536 is out of range 1-65535$"),
    ("torchrun-rdzv", {"launcher": "torchrun", "torchrun": {"rdzv_backend": "zmq"}}, {},
     r"^torchrun.rdzv_backend='zmq' is not one of static, c10d, etcd, etcd-v2$"),
    ("distributed-section", {"distributed": {"launcher": "torchrun", "nproc_per_node": 0}}, {},
     r"^distributed.nproc_per_node must be an integer >= 1 \(got 0\)$"),
    ("deepspeed-gpus", {"launcher": "deepspeed", "deepspeed": {"num_gpus": 4}, **SLURM_1x8}, {},
     r"^deepspeed.num_gpus=4 but slurm.gpus_per_node=8: DeepSpeed starts one rank per GPU"),
    ("unknown-launcher", {"launcher": "mpirun"}, {},
     r"^launcher 'mpirun' is unknown; known launchers: torchrun, deepspeed, vllm, sglang, python$"),
    ("two-launchers", {"launcher": "vllm", "distributed": {"launcher": "torchrun"}}, {},
     r"^launcher='vllm' but distributed.launcher='torchrun'; give one of them$"),
    ("no-launcher", {"gpu_vendor": "NONE"}, {}, r"^no launcher in the context"),
]


@pytest.mark.parametrize(("ctx", "kwargs", "message"), [pytest.param(c, k, m, id=i) for i, c, k, m in FAILING])
def test_rule_fails_with_one_line_message(ctx: dict[str, Any], kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        launchers.resolve(ctx, **kwargs)
    text = info.value.message
    assert "\n" not in str(info.value)
    assert re.search(message, text), text


@pytest.mark.parametrize(("ctx", "strategy", "ep"), [
    pytest.param({"launcher": "vllm", "vllm": {"data_parallel_size": 8, "enable_expert_parallel": True}}, "DP+EP", 8,
                 id="dp-with-ep"),
    pytest.param({"launcher": "vllm", "vllm": {"data_parallel_size": 8}}, "DP", 1, id="dp-without-ep"),
    pytest.param({"launcher": "vllm", "vllm": {"tensor_parallel_size": 8, "enable_expert_parallel": True}}, "TP+EP", 8,
                 id="tp-with-ep"),
    pytest.param({"launcher": "vllm", "vllm": {"tensor_parallel_size": 8}}, "TP", 1, id="tp"),
    pytest.param({"launcher": "vllm", "vllm": {"tensor_parallel_size": 2, "data_parallel_size": 4,
                                               "enable_expert_parallel": True}}, "TP+DP+EP", 8, id="tp-dp-ep"),
])
def test_legal_parallelism(ctx: dict[str, Any], strategy: str, ep: int) -> None:
    plan = launchers.resolve(ctx | SLURM_1x8)
    assert (plan.strategy, plan.parallelism["ep"], plan.world_size) == (strategy, ep, 8)


def test_pp_without_depth_warns_and_with_depth_does_not() -> None:
    ctx = {"launcher": "vllm", "vllm": {"tensor_parallel_size": 8, "pipeline_parallel_size": 2}, **SLURM_2x8}
    plan = launchers.resolve(ctx)
    assert plan.strategy == "TP+PP" and len(plan.warnings) == 1
    assert "vllm.num_layers (the model's depth) is not stated" in plan.warnings[0]
    ctx["vllm"]["num_layers"] = 94
    assert launchers.resolve(ctx).warnings == []
    ctx["vllm"]["num_layers"] = 95
    assert "does not divide" in launchers.resolve(ctx).warnings[0]


def test_render_rejects_rank_outside_plan_and_bad_deployment() -> None:
    plan = launchers.resolve({"launcher": "torchrun", "torchrun": {"nnodes": 2}, "gpu_vendor": "NONE"})
    with pytest.raises(ConfigError, match=r"^NODE_RANK=2 is outside the plan's 2 node\(s\) \(0-1\)$"):
        launchers.render(plan, 2, master_addr="n1")
    with pytest.raises(ConfigError, match="deployment 'ssh' is not one of local, slurm, k8s"):
        launchers.render(plan, 0, master_addr="n1", deployment="ssh")
    with pytest.raises(ConfigError, match=r"^this node's NNODES=3 but the torchrun plan has 2 node\(s\)"):
        launchers.render_for_node(plan, {"NNODES": "3", "NODE_RANK": "0", "MASTER_ADDR": "n1"})


def test_render_for_node_reads_the_deployment_environment() -> None:
    plan = launchers.resolve({"launcher": "torchrun", "torchrun": {"nnodes": 2, "nproc_per_node": 8}})
    slurm_env = {"MASTER_ADDR": "n1", "NODE_RANK": "1", "NNODES": "2", "MAD_DEPLOYMENT_TYPE": "slurm",
                 "SLURM_JOB_NODELIST": "n[1-2]", "WORLD_SIZE": "2"}
    assert launchers.render_for_node(plan, slurm_env) == launchers.render(plan, 1, master_addr="n1",
                                                                          deployment="slurm")
    k8s_env = {"MASTER_ADDR": "job-0.job", "JOB_COMPLETION_INDEX": "1", "MAD_DEPLOYMENT_TYPE": "k8s"}
    env = launchers.render_for_node(plan, k8s_env)
    assert env["MAD_MULTI_NODE_RUNNER"] == ("torchrun --nnodes 2 --nproc_per_node 8 --node_rank 1 "
                                            "--master_addr job-0.job --master_port 29500")
    assert env["WORLD_SIZE"] == "16" and env["MAD_LAUNCHER_DEPLOYMENT"] == "k8s"


def test_sglang_disaggregated_reads_hosts_from_the_slurm_nodelist() -> None:
    plan = launchers.resolve({"launcher": "sglang", "sglang": {"mode": "disaggregated", "prefill_nodes": 1,
                                                               "decode_nodes": 1, "tp_size": 8}})
    env = launchers.render_for_node(plan, {"MASTER_ADDR": "gpu07", "NODE_RANK": "0",
                                           "SLURM_JOB_NODELIST": "gpu[07-08]"})
    assert "--decode http://gpu08:30000" in env["MAD_SGLANG_ROUTER_ARGS"]
    with pytest.raises(ConfigError, match="the address of node 1 is unknown"):
        launchers.render(plan, 0, master_addr="gpu07")


def test_values_reaching_a_shell_are_quoted() -> None:
    plan = launchers.resolve({"launcher": "torchrun", "torchrun": {"extra_args": ["--log_dir", "/tmp/a b;rm -rf x"]}})
    env = launchers.render(plan, 0, master_addr="localhost")
    assert env["MAD_MULTI_NODE_RUNNER"].endswith("--log_dir '/tmp/a b;rm -rf x'")


@pytest.mark.parametrize(("nodelist", "hosts"), [("n[1-4]", ["n1", "n2", "n3", "n4"]), ("n1", ["n1"]),
                                                  ("gpu[07-09,12],cpu1", ["gpu07", "gpu08", "gpu09", "gpu12", "cpu1"])])
def test_expand_nodelist(nodelist: str, hosts: list[str]) -> None:
    assert launchers.expand_nodelist(nodelist) == hosts


def _request(ctx: dict[str, Any]) -> RunRequest:
    return RunRequest(model=Model(name="m"), build=BuiltImage(model="m", docker_image="", dockerfile=""), image="", hub=Path("."), ctx=ctx,
                      gpus=GpuAssignment("NONE", [], ""), timeout=None, log_dir=Path("."), work_root=Path("."),
                      run_id="r")


def test_container_env_adds_the_launcher_contract_over_the_generic_one() -> None:
    """A Slurm node's context (docker_env_vars from the job script) plus a launcher: the launcher's WORLD_SIZE
    (ranks) wins over the job script's (nodes × GPUs)."""
    ctx = {"gpu_vendor": "NONE", "launcher": "torchrun", "torchrun": {"nnodes": 2, "nproc_per_node": 2},
           "docker_env_vars": {"MASTER_ADDR": "n1", "NODE_RANK": "1", "NNODES": "2", "WORLD_SIZE": "2",
                               "MAD_DEPLOYMENT_TYPE": "slurm"}}
    env = container_env(_request(ctx))
    assert env["MAD_MULTI_NODE_RUNNER"] == ("torchrun --nnodes 2 --nproc_per_node 2 --node_rank 1 --master_addr n1 "
                                            "--master_port 29500")
    assert (env["WORLD_SIZE"], env["NODE_RANK"], env["MAD_LAUNCHER"]) == ("4", "1", "torchrun")
    assert "MAD_LAUNCHER" not in container_env(_request({"gpu_vendor": "NONE"}))


def test_explain_cli_error_is_one_line_exit_4(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"launcher": "vllm", "vllm": {"enable_expert_parallel": true}}')
    res = madengine("launchers.explain", "--additional-context-file", str(bad), cwd=tmp_path, timeout=60)
    assert res.rc == 4, res.text
    assert res.err.strip() == ("madengine: error: vllm.enable_expert_parallel needs vllm.tensor_parallel_size > 1 "
                               "or vllm.data_parallel_size > 1 (got tp=1, dp=1)")
    assert "Traceback" not in res.text
