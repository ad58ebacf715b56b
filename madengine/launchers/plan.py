"""The launch plan: what a launcher resolved from the context, before anything is rendered for a node.

A :class:`LaunchPlan` is pure data (pydantic, JSON-serialisable): node count, GPUs per node, processes per node,
world size, the parallelism sizes, the roles nodes play (e.g. SGLang ``prefill``/``decode``), the ports, the
launcher's own environment and its normalised options. Rendering it for one node is
:func:`madengine.launchers.render`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Role(BaseModel):
    """A group of nodes doing the same job: ``name`` (``worker``, ``head``, ``prefill``, ``decode``, ...) and the
    node ranks (0-based, over the whole allocation) in it."""

    model_config = ConfigDict(extra="forbid")
    name: str
    node_ranks: list[int]


class LaunchPlan(BaseModel):
    """One resolved launcher configuration.

    Fields:
        launcher: the registry name (``torchrun``, ``deepspeed``, ``vllm``, ``sglang``, ``python``).
        strategy: the parallelism strategy's name, e.g. ``DDP``, ``TP``, ``TP+EP``, ``DP+EP``, ``TP+PP``,
            ``PD-disaggregated TP``.
        nodes: nodes in the allocation (≥ 1).
        gpus_per_node: GPUs each node gets (0 = CPU-only nodes).
        procs_per_node: processes (ranks) the launcher starts on each node.
        world_size: ranks over all nodes (``nodes × procs_per_node``).
        parallelism: sizes by name (``tp``, ``pp``, ``dp``, ``ep``; 1 = not used).
        roles: which node ranks do what (every rank is in exactly one role).
        ports: TCP ports by purpose (``master``, ``api``, ``dp_rpc``, ...), all distinct, 1-65535.
        env_vars: the launcher section's ``env_vars`` plus the variables its options imply.
        options: the launcher section as resolved (defaults filled in).
        warnings: non-fatal remarks (e.g. pipeline parallelism without a stated model depth).
    """

    model_config = ConfigDict(extra="forbid")
    launcher: str
    strategy: str
    nodes: int = Field(ge=1)
    gpus_per_node: int = Field(ge=0)
    procs_per_node: int = Field(ge=1)
    world_size: int = Field(ge=1)
    parallelism: dict[str, int] = Field(default_factory=dict)
    roles: list[Role] = Field(default_factory=list)
    ports: dict[str, int] = Field(default_factory=dict)
    env_vars: dict[str, str] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)

    def role_of(self, node_rank: int) -> str:
        """The name of the role node ``node_rank`` plays (``worker`` when no role lists it)."""
        for role in self.roles:
            if node_rank in role.node_ranks:
                return role.name
        return "worker"

    def allocation(self) -> dict[str, int]:
        """What a deployment must allocate for this plan: ``nodes``, ``gpus_per_node``, ``ntasks_per_node`` (always
        1: madengine runs one task per node, the launcher starts the ranks) and ``master_port``."""
        return {"nodes": self.nodes, "gpus_per_node": self.gpus_per_node, "ntasks_per_node": 1,
                "master_port": self.ports.get("master", 0)}
