"""Distributed launchers and parallelism profiles: the context's ``launcher`` key (or ``distributed.launcher``)
plus that launcher's section, resolved into a :class:`~madengine.launchers.plan.LaunchPlan` and rendered into the
environment each node's ``run.sh`` receives.

Launchers (the name users write → module, imported only when used): ``torchrun``, ``deepspeed``, ``vllm``,
``sglang``, ``python``. The API is three pure functions:

- :func:`resolve` (context → plan; every rule checked, one-line :class:`~madengine.errors.ConfigError`),
- :func:`render` (plan, node rank, master address → ``{NAME: value}`` for that node),
- :func:`render_for_node` (plan, the node's environment → the same, with ``MASTER_ADDR``/``NODE_RANK``/``NNODES``
  taken from the environment a Slurm job or a Kubernetes pod gives the node).

Every value is a string; values that hold command lines are built with ``shlex`` quoting, so a ``run.sh`` may use
``$MAD_MULTI_NODE_RUNNER train.py`` (madengine v1's contract) for plain values or ``eval "$MAD_MULTI_NODE_RUNNER
train.py"`` when values may hold spaces.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from madengine.errors import ConfigError
from madengine.launchers.plan import LaunchPlan, Role

#: name users write → module implementing ``resolve(ctx, *, nodes, gpus_per_node)`` and
#: ``render(plan, node_rank, master_addr, hosts)``.
LAUNCHERS: dict[str, str] = {
    "torchrun": "madengine.launchers.torchrun",
    "deepspeed": "madengine.launchers.deepspeed",
    "vllm": "madengine.launchers.vllm",
    "sglang": "madengine.launchers.sglang",
    "python": "madengine.launchers.python",
}
DEPLOYMENTS = ("local", "slurm", "k8s")

__all__ = ["LAUNCHERS", "LaunchPlan", "Role", "expand_nodelist", "launcher_name", "master_address", "node_environment", "render",
           "commands", "explain",
           "render_for_node", "resolve"]


def launcher_name(ctx: Mapping[str, Any]) -> str | None:
    """The launcher the context asks for: ``launcher``, else ``distributed.launcher``; ``None`` when neither.

    Raises:
        ConfigError: both are given and differ, or the name is unknown (lists the known ones).
    """
    top = ctx.get("launcher")
    distributed = ctx.get("distributed")
    nested = distributed.get("launcher") if isinstance(distributed, Mapping) else None
    if top and nested and top != nested:
        raise ConfigError(f"launcher={top!r} but distributed.launcher={nested!r}; give one of them")
    name = top or nested
    if not name:
        return None
    if name not in LAUNCHERS:
        raise ConfigError(f"launcher {name!r} is unknown; known launchers: {', '.join(LAUNCHERS)}")
    return str(name)


def _module(name: str) -> ModuleType:
    return importlib.import_module(LAUNCHERS[name])


def resolve(ctx: Mapping[str, Any], *, nodes: int | None = None, gpus_per_node: int | None = None) -> LaunchPlan:
    """Resolve and validate the context's launcher into a plan.

    Args:
        ctx: a context (``launcher``/``distributed.launcher`` and the launcher's section; ``slurm``/``k8s``/
            ``distributed`` node counts and ``gpu_vendor`` are read too).
        nodes: nodes the deployment allocated (``None``: from the context, else 1). Must agree with the context.
        gpus_per_node: GPUs each node has (``None``: from the context, else inferred from the parallelism;
            0: CPU-only nodes, no GPU check).

    Returns:
        The :class:`LaunchPlan`.

    Raises:
        ConfigError: no launcher in the context, or a violated rule (one line naming the keys and numbers).
    """
    name = launcher_name(ctx)
    if name is None:
        raise ConfigError('no launcher in the context: set "launcher" (torchrun, deepspeed, vllm, sglang, python)')
    plan: LaunchPlan = _module(name).resolve(ctx, nodes=nodes, gpus_per_node=gpus_per_node)
    return plan


def render(plan: LaunchPlan, node_rank: int, *, master_addr: str, deployment: str = "local",
           hosts: Sequence[str] | None = None) -> dict[str, str]:
    """The environment node ``node_rank`` of ``plan`` gives its model.

    Args:
        plan: from :func:`resolve`.
        node_rank: 0 … ``plan.nodes - 1``.
        master_addr: node 0's address (``localhost`` locally, the first host of the Slurm node list, pod 0's DNS
            name ``<job>-0.<service>`` on Kubernetes).
        deployment: ``local``, ``slurm`` or ``k8s`` (recorded as ``MAD_LAUNCHER_DEPLOYMENT``).
        hosts: every node's address by rank (needed only where a node must reach a node other than node 0:
            SGLang disaggregation and multi-node instances); default ``[master_addr]``.

    Returns:
        ``{NAME: value}``, all strings: ``MAD_LAUNCHER``, ``MAD_LAUNCHER_STRATEGY``, ``MAD_LAUNCHER_ROLE``,
        ``MAD_LAUNCHER_DEPLOYMENT``, ``MAD_MULTI_NODE_RUNNER``, ``MAD_LAUNCHER_ARGS``, ``MASTER_ADDR``,
        ``MASTER_PORT``, ``NNODES``, ``NODE_RANK``, ``WORLD_SIZE``, ``GPUS_PER_NODE``, ``NPROC_PER_NODE``, the
        launcher's own (``MAD_VLLM_ARGS``, ``MAD_SGLANG_ARGS``, ...) and the section's ``env_vars``.

    Raises:
        ConfigError: a node rank outside the plan, an unknown deployment, or a missing node address.
    """
    if deployment not in DEPLOYMENTS:
        raise ConfigError(f"deployment {deployment!r} is not one of {', '.join(DEPLOYMENTS)}")
    if not 0 <= node_rank < plan.nodes:
        raise ConfigError(f"NODE_RANK={node_rank} is outside the plan's {plan.nodes} node(s) (0-{plan.nodes - 1})")
    if not master_addr:
        raise ConfigError("MASTER_ADDR is empty; the deployment must give node 0's address")
    host_list = list(hosts) if hosts else [master_addr]
    env = dict(plan.env_vars)
    env.update(_module(plan.launcher).render(plan, node_rank, master_addr, host_list))
    env["MAD_LAUNCHER_DEPLOYMENT"] = deployment
    return env


def render_for_node(plan: LaunchPlan, env: Mapping[str, str]) -> dict[str, str]:
    """:func:`render` for the node this process runs on, from its environment.

    Reads what the target gives every node (:class:`madengine.deploy.contract.Target`): ``MASTER_ADDR`` (default
    ``localhost``), ``NODE_RANK`` (else ``SLURM_NODEID``, else ``JOB_COMPLETION_INDEX``, else 0), ``NNODES`` (checked
    against the plan), ``MAD_DEPLOYMENT_TYPE`` (default ``local``) and the nodes' addresses in rank order
    (``MAD_NODE_HOSTS``, comma-separated; else ``SLURM_JOB_NODELIST`` for jobs started by hand under Slurm). The
    launchers never guess a target's naming.

    Raises:
        ConfigError: ``NNODES`` differs from the plan's nodes, a non-numeric rank, or see :func:`render`.
    """
    deployment = env.get("MAD_DEPLOYMENT_TYPE") or "local"
    if deployment not in DEPLOYMENTS:
        deployment = "local"
    master = env.get("MASTER_ADDR") or "localhost"
    raw_rank = env.get("NODE_RANK") or env.get("SLURM_NODEID") or env.get("JOB_COMPLETION_INDEX") or "0"
    if not raw_rank.strip().isdigit():
        raise ConfigError(f"NODE_RANK={raw_rank!r} is not a node number")
    raw_nodes = env.get("NNODES")
    if raw_nodes and raw_nodes.strip().isdigit() and int(raw_nodes) != plan.nodes:
        raise ConfigError(f"this node's NNODES={raw_nodes} but the {plan.launcher} plan has {plan.nodes} node(s); "
                          f"allocate {plan.nodes} node(s) or change the launcher's node count")
    hosts: list[str] | None = None
    if env.get("MAD_NODE_HOSTS"):
        hosts = [h.strip() for h in env["MAD_NODE_HOSTS"].split(",") if h.strip()]
    elif env.get("SLURM_JOB_NODELIST"):
        hosts = expand_nodelist(env["SLURM_JOB_NODELIST"])
    if hosts:
        hosts[0] = master
    return render(plan, int(raw_rank), master_addr=master, deployment=deployment, hosts=hosts)


def expand_nodelist(nodelist: str) -> list[str]:
    """Expand a Slurm host list: ``n[1-3,5],gpu01`` → ``["n1", "n2", "n3", "n5", "gpu01"]`` (zero padding kept).

    Raises:
        ConfigError: an unbalanced bracket or a bad range.
    """
    hosts: list[str] = []
    for item in re.findall(r"[^,\[]+(?:\[[^\]]*\][^,\[]*)*|,", nodelist):
        if item == ",":
            continue
        match = re.fullmatch(r"([^\[]*)\[([^\]]*)\](.*)", item)
        if not match:
            if "[" in item or "]" in item:
                raise ConfigError(f"cannot read the node list {nodelist!r}")
            hosts.append(item)
            continue
        prefix, ranges, suffix = match.groups()
        for part in ranges.split(","):
            lo, _, hi = part.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()):
                raise ConfigError(f"cannot read the node list {nodelist!r} (range {part!r})")
            for n in range(int(lo), int(hi or lo) + 1):
                hosts.append(f"{prefix}{str(n).zfill(len(lo))}{suffix}")
    return hosts


def master_address(deployment: str, *, nodelist: str | None = None, job: str | None = None,
                   service: str | None = None, nodes: int = 1) -> tuple[str, list[str]]:
    """Node 0's address and every node's, the way a deployment names them.

    ``local``: ``localhost``; ``slurm``: the first host of ``nodelist`` (e.g. ``n[1-4]`` → ``n1``); ``k8s``: pod
    0's stable DNS name ``<job>-0.<service>`` (``localhost`` for a single pod).

    Raises:
        ConfigError: an unknown deployment, a Slurm node list shorter than ``nodes``, or a missing job name.
    """
    if deployment == "local":
        return "localhost", ["localhost"] * nodes
    if deployment == "slurm":
        hosts = expand_nodelist(nodelist or "")
        if len(hosts) < nodes:
            raise ConfigError(f"the node list {nodelist!r} has {len(hosts)} host(s) but the plan needs {nodes}")
        return hosts[0], hosts[:nodes]
    if deployment == "k8s":
        if nodes == 1:
            return "localhost", ["localhost"]
        if not job:
            raise ConfigError("k8s: the Job name is needed to name its pods")
        svc = service or job
        hosts = [f"{job}-{i}.{svc}" for i in range(nodes)]
        return hosts[0], hosts
    raise ConfigError(f"deployment {deployment!r} is not one of {', '.join(DEPLOYMENTS)}")


def node_environment(ctx: Mapping[str, Any], env: Mapping[str, str], *, gpus_per_node: int) -> dict[str, str]:
    """The launcher variables of the model on this node: the context's launcher resolved for this node's
    allocation (``NNODES`` from ``env`` when given, ``gpus_per_node`` GPUs, 0 = CPU) and rendered with
    :func:`render_for_node` from ``env`` (the environment madengine gives the model so far, which holds the
    deployment's ``MASTER_ADDR``/``NODE_RANK``/``NNODES``). Used by :func:`madengine.workflow.plan.container_env`.

    Raises:
        ConfigError: the context's launcher configuration is invalid for this allocation.
    """
    raw_nodes = env.get("NNODES", "")
    nodes = int(raw_nodes) if raw_nodes.strip().isdigit() and int(raw_nodes) > 0 else None
    plan = resolve(ctx, nodes=nodes, gpus_per_node=gpus_per_node)
    return render_for_node(plan, env)


def commands(plan: LaunchPlan, env: Mapping[str, str]) -> list[str]:
    """The command lines a node runs with the rendered ``env`` (for display: ``<script>``/``<model>`` stand for what
    the model's run.sh supplies)."""
    lines: list[str] = _module(plan.launcher).commands(plan, env)
    return lines


def explain(plan: LaunchPlan, *, deployment: str = "local", nodelist: str | None = None,
            job: str | None = None) -> dict[str, Any]:
    """Every node of ``plan`` rendered as ``deployment`` would: ``{"plan": <plan as JSON>, "deployment": ...,
    "nodes": [{"node_rank", "host", "role", "commands", "env"}, ...]}``.

    ``nodelist`` (Slurm, default ``node[1-N]``) and ``job`` (Kubernetes Job name, default ``madengine``) name the
    hosts as the deployment would. ``local`` renders node 0 only (a local run is one node; on a multi-node plan the
    other nodes are started by hand with ``NODE_RANK``/``MASTER_ADDR`` in ``docker_env_vars``, madengine v1's way).

    Raises:
        ConfigError: see :func:`master_address` and :func:`render`.
    """
    if deployment == "slurm":
        master, hosts = master_address("slurm", nodelist=nodelist or f"node[1-{plan.nodes}]", nodes=plan.nodes)
    elif deployment == "k8s":
        master, hosts = master_address("k8s", job=job or "madengine", nodes=plan.nodes)
    else:  # local: this host is node 0; the others' addresses are whatever the user runs them on
        master, hosts = master_address(deployment, nodes=1)
        hosts += [f"<node{i}>" for i in range(1, plan.nodes)]
    nodes = []
    for rank in range(1 if deployment == "local" else plan.nodes):
        env = render(plan, rank, master_addr=master, deployment=deployment, hosts=hosts)
        nodes.append({"node_rank": rank, "host": hosts[rank], "role": plan.role_of(rank),
                      "commands": commands(plan, env), "env": dict(sorted(env.items()))})
    return {"plan": plan.model_dump(mode="json"), "deployment": deployment, "nodes": nodes}
