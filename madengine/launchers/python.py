"""``"launcher": "python"``: no distributed launcher; one ``python3`` process per node (the model script does its
own distribution, or none). The contract variables (``MASTER_ADDR``, ``NODE_RANK``, ...) are still rendered."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from madengine.launchers import _common as c
from madengine.launchers.plan import LaunchPlan, Role

NAME = "python"


def resolve(ctx: Mapping[str, Any], *, nodes: int | None = None, gpus_per_node: int | None = None) -> LaunchPlan:
    """One process per node; the node count from the context's sections or the allocation.

    Raises:
        ConfigError: node counts that disagree.
    """
    nnodes = c.resolve_nodes(ctx, [], nodes)
    gpus, _ = c.resolve_gpus(ctx, [], gpus_per_node)
    generic = c.section(ctx, "distributed")
    return LaunchPlan(launcher=NAME, strategy="single process" if nnodes == 1 else "one process per node",
                      nodes=nnodes, gpus_per_node=gpus or 0, procs_per_node=1, world_size=nnodes,
                      roles=[Role(name="worker", node_ranks=list(range(nnodes)))],
                      ports={"master": c.master_port(ctx, generic, "distributed")},
                      env_vars=c.env_opt(generic, "distributed"))


def render(plan: LaunchPlan, node_rank: int, master_addr: str, hosts: list[str]) -> dict[str, str]:
    """The node's launcher variables: ``MAD_MULTI_NODE_RUNNER`` = ``python3``, no launcher arguments."""
    return c.contract_env(plan, node_rank, master_addr, "python3", "")


def commands(plan: LaunchPlan, env: Mapping[str, str]) -> list[str]:
    """The command line the node's run.sh runs."""
    return ["python3 <script> [args]"]
