"""``"launcher": "deepspeed"``: the DeepSpeed launcher, run on every node (``--no_ssh``: no pdsh fan-out).

Context (``deepspeed`` section): ``num_nodes``, ``num_gpus`` (per node; default: the allocated GPUs per node),
``hostfile`` (passed as ``--hostfile``), ``deepspeed_config`` (a path; the model gets it as
``MAD_DEEPSPEED_CONFIG`` to pass as ``--deepspeed_config``), ``master_port``, ``extra_args``, ``env_vars``.
Rendered runner::

    deepspeed --num_nodes 2 --num_gpus 8 --master_addr n1 --master_port 29500 --no_ssh --node_rank 1
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from madengine.errors import ConfigError
from madengine.launchers import _common as c
from madengine.launchers.plan import LaunchPlan, Role

NAME = "deepspeed"
KEYS = ("num_nodes", "num_gpus", "hostfile", "deepspeed_config", "master_port", "extra_args", "env_vars")


def resolve(ctx: Mapping[str, Any], *, nodes: int | None = None, gpus_per_node: int | None = None) -> LaunchPlan:
    """The DeepSpeed plan; ``nodes``/``gpus_per_node`` are the allocation's, if known.

    Raises:
        ConfigError: node counts that disagree, ``num_gpus`` ≠ the allocated GPUs per node, bad ports.
    """
    sec = c.section(ctx, "deepspeed")
    c.check_known(sec, "deepspeed", KEYS)
    nnodes = c.resolve_nodes(ctx, [("deepspeed.num_nodes", c.int_opt(sec, "num_nodes", "deepspeed"))], nodes)
    num_gpus = c.int_opt(sec, "num_gpus", "deepspeed")
    gpus, source = c.resolve_gpus(ctx, [], gpus_per_node)
    if gpus and num_gpus is not None and num_gpus != gpus:
        raise ConfigError(f"deepspeed.num_gpus={num_gpus} but {source}={gpus}: DeepSpeed starts one rank per GPU; "
                          f"set num_gpus to {gpus} or allocate {num_gpus} GPUs per node")
    procs = num_gpus or gpus or 1
    if gpus is None:
        gpus = 0 if str(ctx.get("gpu_vendor") or "").upper() == "NONE" else procs
    env = c.env_opt(sec, "deepspeed")
    config = c.str_opt(sec, "deepspeed_config", "deepspeed")
    if config:
        env["MAD_DEEPSPEED_CONFIG"] = config
    world = nnodes * procs
    return LaunchPlan(launcher=NAME, strategy="DeepSpeed DP" if world > 1 else "single process", nodes=nnodes,
                      gpus_per_node=gpus, procs_per_node=procs, world_size=world, parallelism={"dp": world},
                      roles=[Role(name="worker", node_ranks=list(range(nnodes)))],
                      ports={"master": c.master_port(ctx, sec, "deepspeed")}, env_vars=env,
                      options={"hostfile": c.str_opt(sec, "hostfile", "deepspeed"), "deepspeed_config": config,
                               "extra_args": c.args_opt(sec, "extra_args", "deepspeed")})


def render(plan: LaunchPlan, node_rank: int, master_addr: str, hosts: list[str]) -> dict[str, str]:
    """The node's launcher variables: ``MAD_MULTI_NODE_RUNNER`` = ``deepspeed <args>``."""
    o = plan.options
    args: list[Any] = ["--num_nodes", plan.nodes, "--num_gpus", plan.procs_per_node, "--master_addr", master_addr,
                       "--master_port", plan.ports["master"]]
    if o["hostfile"]:
        args += ["--hostfile", o["hostfile"]]
    if plan.nodes > 1:
        args += ["--no_ssh", "--node_rank", node_rank]
    args += o["extra_args"]
    launcher_args = c.join(args)
    return c.contract_env(plan, node_rank, master_addr, f"deepspeed {launcher_args}", launcher_args)


def commands(plan: LaunchPlan, env: Mapping[str, str]) -> list[str]:
    """The command line the node's run.sh runs (``<script>`` = the model's training script)."""
    config = f" --deepspeed --deepspeed_config {env['MAD_DEEPSPEED_CONFIG']}" if env.get("MAD_DEEPSPEED_CONFIG") else ""
    return [f"{env['MAD_MULTI_NODE_RUNNER']} <script> [args]{config}"]
