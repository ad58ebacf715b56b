"""``"launcher": "vllm"``: ``vllm serve`` with tensor (TP), pipeline (PP), data (DP) and expert (EP) parallelism.

Context (``vllm`` section): ``model`` (optional, given to the model as ``MAD_VLLM_MODEL``),
``tensor_parallel_size``, ``pipeline_parallel_size``, ``data_parallel_size`` (each default 1),
``enable_expert_parallel`` (EP size = TP × DP), ``num_layers`` (the model's depth, checked against PP),
``max_model_len``, ``distributed_executor_backend`` (``mp``, ``ray``, ``uni``, ``external_launcher``),
``disable_nccl_for_dp`` (sets ``VLLM_DISABLE_NCCL_FOR_DP_SYNCHRONIZATION=1``), ``swap_space`` (GiB),
``gpu_memory_utilization``, ``port`` (API, default 8000), ``dp_rpc_port`` (13345), ``ray_port`` (6379),
``trust_remote_code``, ``nnodes``, ``extra_args``, ``env_vars`` (e.g. ``VLLM_ROCM_USE_AITER``,
``VLLM_ALL2ALL_BACKEND``).

Rules: TP × PP × DP = nodes × GPUs per node; EP needs TP > 1 or DP > 1; PP > 1 wants ``num_layers`` (a warning
without it, an error when it is smaller than PP). Across nodes: DP replicas that fit one node are spread with
vLLM's multi-node DP (node 0 serves the API, the others run ``--headless`` with ``--data-parallel-start-rank``);
a replica larger than a node (DP = 1) spans the nodes with ``--nnodes/--node-rank/--master-addr`` (``mp``), or a
Ray cluster (``ray``: node 0 is the head and serves, the others join with ``ray start --address ... --block``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from madengine.errors import ConfigError
from madengine.launchers import _common as c
from madengine.launchers.plan import LaunchPlan, Role

NAME = "vllm"
KEYS = ("model", "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "enable_expert_parallel",
        "num_layers", "max_model_len", "distributed_executor_backend", "disable_nccl_for_dp", "swap_space",
        "gpu_memory_utilization", "port", "dp_rpc_port", "ray_port", "master_port", "trust_remote_code", "nnodes",
        "extra_args", "env_vars")
BACKENDS = ("mp", "ray", "uni", "external_launcher")


def strategy_name(tp: int, pp: int, dp: int, ep: bool) -> str:
    """``TP``, ``TP+EP``, ``DP+EP``, ``TP+PP``, ``TP+DP+EP``, ... (``single GPU`` when every size is 1)."""
    parts = [name for name, size in (("TP", tp), ("PP", pp), ("DP", dp)) if size > 1]
    if ep:
        parts.append("EP")
    return "+".join(parts) or "single GPU"


def resolve(ctx: Mapping[str, Any], *, nodes: int | None = None, gpus_per_node: int | None = None) -> LaunchPlan:
    """The vLLM plan (see the module docstring); ``nodes``/``gpus_per_node`` are the allocation's, if known.

    Raises:
        ConfigError: one line per violated rule, naming the keys and the numbers.
    """
    w = "vllm"
    sec = c.section(ctx, w)
    c.check_known(sec, w, KEYS)
    tp = c.int_opt(sec, "tensor_parallel_size", w, 1) or 1
    pp = c.int_opt(sec, "pipeline_parallel_size", w, 1) or 1
    dp = c.int_opt(sec, "data_parallel_size", w, 1) or 1
    ep = c.bool_opt(sec, "enable_expert_parallel", w)
    if ep and tp == 1 and dp == 1:
        raise ConfigError("vllm.enable_expert_parallel needs vllm.tensor_parallel_size > 1 or "
                          "vllm.data_parallel_size > 1 (got tp=1, dp=1)")
    world = tp * pp * dp
    nnodes = c.resolve_nodes(ctx, [("vllm.nnodes", c.int_opt(sec, "nnodes", w))], nodes)
    gpus, source = c.resolve_gpus(ctx, [], gpus_per_node)
    product = f"vllm tensor_parallel_size × pipeline_parallel_size × data_parallel_size = {tp} × {pp} × {dp} = {world}"
    if gpus is None or gpus == 0:
        if world % nnodes:
            raise ConfigError(f"{product} does not split over {nnodes} nodes")
        procs = world // nnodes
        if gpus is None:
            gpus = 0 if str(ctx.get("gpu_vendor") or "").upper() == "NONE" else procs
    else:
        if world != nnodes * gpus:
            raise ConfigError(f"{product} but {nnodes} node(s) × {gpus} GPUs per node ({source}) = "
                              f"{nnodes * gpus} GPUs are allocated; they must be equal")
        procs = gpus
    warnings: list[str] = []
    layers = c.int_opt(sec, "num_layers", w)
    if pp > 1:
        if layers is None:
            warnings.append(f"vllm.pipeline_parallel_size={pp} but vllm.num_layers (the model's depth) is not "
                            f"stated: cannot check that the layers split over {pp} stages")
        elif layers < pp:
            raise ConfigError(f"vllm.pipeline_parallel_size={pp} exceeds vllm.num_layers={layers}: every pipeline "
                              "stage needs at least one layer")
        elif layers % pp:
            warnings.append(f"vllm.num_layers={layers} does not divide by vllm.pipeline_parallel_size={pp}: "
                            "the stages get unequal layer counts")
    backend = c.str_opt(sec, "distributed_executor_backend", w)
    if backend is not None and backend not in BACKENDS:
        raise ConfigError(f"vllm.distributed_executor_backend={backend!r} is not one of {', '.join(BACKENDS)}")
    layout = "single-node"
    if nnodes > 1:
        if dp > 1 and dp % nnodes == 0:
            layout = "dp"
        elif dp > 1:
            raise ConfigError(f"vllm.data_parallel_size={dp} does not split over {nnodes} nodes: multi-node DP "
                              "puts the same number of DP replicas on every node")
        else:
            layout = "ray" if backend == "ray" else "mp"
    port = c.port_opt(sec, "port", w, 8000)
    ports = {"api": ("vllm.port", port)}
    if layout == "dp":
        ports["dp_rpc"] = ("vllm.dp_rpc_port", c.port_opt(sec, "dp_rpc_port", w, 13345))
    if layout == "ray":
        ports["ray"] = ("vllm.ray_port", c.port_opt(sec, "ray_port", w, 6379))
    ports["master"] = ("vllm.master_port", c.master_port(ctx, sec, w))
    c.check_distinct_ports(ports)
    env = c.env_opt(sec, w)
    if c.bool_opt(sec, "disable_nccl_for_dp", w):
        env["VLLM_DISABLE_NCCL_FOR_DP_SYNCHRONIZATION"] = "1"
    model = c.str_opt(sec, "model", w)
    if model:
        env["MAD_VLLM_MODEL"] = model
    if layout == "ray":
        roles = [Role(name="head", node_ranks=[0]), Role(name="ray-worker", node_ranks=list(range(1, nnodes)))]
    elif nnodes > 1:
        roles = [Role(name="head", node_ranks=[0]), Role(name="headless", node_ranks=list(range(1, nnodes)))]
    else:
        roles = [Role(name="head", node_ranks=[0])]
    options: dict[str, Any] = {
        "layout": layout, "model": model, "distributed_executor_backend": backend,
        "max_model_len": c.int_opt(sec, "max_model_len", w), "swap_space": c.str_opt(sec, "swap_space", w),
        "gpu_memory_utilization": c.str_opt(sec, "gpu_memory_utilization", w),
        "trust_remote_code": c.bool_opt(sec, "trust_remote_code", w), "num_layers": layers,
        "extra_args": c.args_opt(sec, "extra_args", w)}
    return LaunchPlan(launcher=NAME, strategy=strategy_name(tp, pp, dp, ep), nodes=nnodes, gpus_per_node=gpus,
                      procs_per_node=procs, world_size=world,
                      parallelism={"tp": tp, "pp": pp, "dp": dp, "ep": tp * dp if ep else 1}, roles=roles,
                      ports={k: v for k, (_, v) in ports.items()}, env_vars=env, options=options, warnings=warnings)


def render(plan: LaunchPlan, node_rank: int, master_addr: str, hosts: list[str]) -> dict[str, str]:
    """The node's variables: ``MAD_MULTI_NODE_RUNNER`` = ``vllm serve`` (run.sh: ``$MAD_MULTI_NODE_RUNNER <model>
    $MAD_VLLM_ARGS``), ``MAD_VLLM_ARGS`` (= ``MAD_LAUNCHER_ARGS``); with Ray also ``MAD_RAY_START_ARGS``."""
    o, par, ports = plan.options, plan.parallelism, plan.ports
    args: list[Any] = ["--tensor-parallel-size", par["tp"]]
    if par["pp"] > 1:
        args += ["--pipeline-parallel-size", par["pp"]]
    if par["dp"] > 1:
        args += ["--data-parallel-size", par["dp"]]
    if par["ep"] > 1:
        args.append("--enable-expert-parallel")
    if o["distributed_executor_backend"]:
        args += ["--distributed-executor-backend", o["distributed_executor_backend"]]
    for key, flag in (("max_model_len", "--max-model-len"), ("swap_space", "--swap-space"),
                      ("gpu_memory_utilization", "--gpu-memory-utilization")):
        if o[key] is not None:
            args += [flag, o[key]]
    if o["trust_remote_code"]:
        args.append("--trust-remote-code")
    args += ["--port", ports["api"]]
    extra: dict[str, str] = {}
    if o["layout"] == "dp":
        local = par["dp"] // plan.nodes
        args += ["--data-parallel-size-local", local, "--data-parallel-address", master_addr,
                 "--data-parallel-rpc-port", ports["dp_rpc"]]
        if node_rank > 0:
            args += ["--headless", "--data-parallel-start-rank", node_rank * local]
    elif o["layout"] == "mp":
        args += ["--nnodes", plan.nodes, "--node-rank", node_rank, "--master-addr", master_addr,
                 "--master-port", ports["master"]]
        if node_rank > 0:
            args.append("--headless")
    elif o["layout"] == "ray":
        extra["MAD_RAY_START_ARGS"] = c.join(["--head", "--port", ports["ray"]] if node_rank == 0 else
                                             ["--address", f"{master_addr}:{ports['ray']}", "--block"])
    args += o["extra_args"]
    vllm_args = c.join(args)
    return c.contract_env(plan, node_rank, master_addr, "vllm serve", vllm_args) | {"MAD_VLLM_ARGS": vllm_args} | extra


def commands(plan: LaunchPlan, env: Mapping[str, str]) -> list[str]:
    """The command lines the node runs, in order (Ray: ``ray start`` first; Ray workers only join)."""
    import shlex

    model = shlex.quote(plan.options["model"]) if plan.options["model"] else "<model>"
    serve = f"vllm serve {model} {env['MAD_VLLM_ARGS']}"
    if "MAD_RAY_START_ARGS" in env:
        ray = f"ray start {env['MAD_RAY_START_ARGS']}"
        return [ray, serve] if env["NODE_RANK"] == "0" else [ray]
    return [serve]
