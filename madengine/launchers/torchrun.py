"""``"launcher": "torchrun"``: PyTorch's elastic launcher, one agent per node starting ``nproc_per_node`` ranks.

Context: the ``torchrun`` section, over the generic ``distributed`` section (same keys; ``torchrun`` wins):
``nnodes``, ``nproc_per_node`` (default: the GPUs per node, 1 on CPU), ``master_port`` (default: the deployment's,
else 29500), ``rdzv_backend`` (``static`` = ``--node_rank``/``--master_addr``, the default; or ``c10d``),
``rdzv_endpoint`` (default ``<master_addr>:<master_port>``), ``rdzv_id``, ``max_restarts``, ``extra_args``,
``env_vars``. Rendered runner (madengine v1's ``multi_node_args`` contract)::

    torchrun --nnodes 2 --nproc_per_node 8 --node_rank 1 --master_addr n1 --master_port 29500
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from madengine.errors import ConfigError
from madengine.launchers import _common as c
from madengine.launchers.plan import LaunchPlan, Role

NAME = "torchrun"
KEYS = ("launcher", "nnodes", "nproc_per_node", "master_port", "rdzv_backend", "rdzv_endpoint", "rdzv_id",
        "max_restarts", "extra_args", "env_vars")


def _section(ctx: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    own = c.section(ctx, "torchrun")
    generic = {k: v for k, v in c.section(ctx, "distributed").items() if k != "launcher"}
    c.check_known(own, "torchrun", KEYS)
    c.check_known(generic, "distributed", KEYS)
    return generic | own, "torchrun" if own else "distributed"


def resolve(ctx: Mapping[str, Any], *, nodes: int | None = None, gpus_per_node: int | None = None) -> LaunchPlan:
    """The torchrun plan (see the module docstring); ``nodes``/``gpus_per_node`` are the allocation's, if known.

    Raises:
        ConfigError: node counts that disagree, ``nproc_per_node`` ≠ the allocated GPUs per node, bad ports.
    """
    sec, where = _section(ctx)
    nnodes = c.resolve_nodes(ctx, [("torchrun.nnodes", c.int_opt(c.section(ctx, "torchrun"), "nnodes", "torchrun"))],
                             nodes)
    nproc = c.int_opt(sec, "nproc_per_node", where)
    gpus, source = c.resolve_gpus(ctx, [], gpus_per_node)
    if gpus and nproc is not None and nproc != gpus:
        raise ConfigError(f"{where}.nproc_per_node={nproc} but {source}={gpus}: torchrun starts one rank per GPU; "
                          f"set nproc_per_node to {gpus} or allocate {nproc} GPUs per node")
    if nproc is None:
        nproc = gpus or 1
    if gpus is None:
        gpus = 0 if str(ctx.get("gpu_vendor") or "").upper() == "NONE" else nproc
    backend = c.str_opt(sec, "rdzv_backend", where, "static")
    if backend not in ("static", "c10d", "etcd", "etcd-v2"):
        raise ConfigError(f"{where}.rdzv_backend={backend!r} is not one of static, c10d, etcd, etcd-v2")
    port = c.master_port(ctx, sec, where)
    options: dict[str, Any] = {"rdzv_backend": backend, "rdzv_endpoint": c.str_opt(sec, "rdzv_endpoint", where),
                               "rdzv_id": c.str_opt(sec, "rdzv_id", where, "madengine"),
                               "max_restarts": c.int_opt(sec, "max_restarts", where, minimum=0),
                               "extra_args": c.args_opt(sec, "extra_args", where)}
    world = nnodes * nproc
    return LaunchPlan(launcher=NAME, strategy="DDP" if world > 1 else "single process", nodes=nnodes,
                      gpus_per_node=gpus, procs_per_node=nproc, world_size=world, parallelism={"dp": world},
                      roles=[Role(name="worker", node_ranks=list(range(nnodes)))], ports={"master": port},
                      env_vars=c.env_opt(sec, where), options=options)


def render(plan: LaunchPlan, node_rank: int, master_addr: str, hosts: list[str]) -> dict[str, str]:
    """The node's launcher variables: ``MAD_MULTI_NODE_RUNNER`` = ``torchrun <args>``, ``MAD_LAUNCHER_ARGS`` = the
    args alone."""
    o, port = plan.options, plan.ports["master"]
    args: list[Any] = ["--nnodes", plan.nodes, "--nproc_per_node", plan.procs_per_node]
    if o["rdzv_backend"] == "static":
        args += ["--node_rank", node_rank, "--master_addr", master_addr, "--master_port", port]
    else:
        args += ["--rdzv_backend", o["rdzv_backend"], "--rdzv_endpoint", o["rdzv_endpoint"] or f"{master_addr}:{port}",
                 "--rdzv_id", o["rdzv_id"]]
    if o["max_restarts"] is not None:
        args += ["--max_restarts", o["max_restarts"]]
    args += o["extra_args"]
    launcher_args = c.join(args)
    return c.contract_env(plan, node_rank, master_addr, f"torchrun {launcher_args}", launcher_args)


def commands(plan: LaunchPlan, env: Mapping[str, str]) -> list[str]:
    """The command line the node's run.sh runs (``<script>`` = the model's training script)."""
    return [f"{env['MAD_MULTI_NODE_RUNNER']} <script> [args]"]
