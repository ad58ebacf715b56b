"""``inv launchers.explain``: the resolved launch plan of a context, node by node, without running anything."""

from __future__ import annotations

import json
from typing import Any

from madengine.tasks._common import HELP, mad_task, say

EXPLAIN_HELP = {
    **HELP,
    "nodes": "nodes the deployment allocates (default: from the context, else 1)",
    "gpus_per_node": "GPUs per node (default: from the context, else inferred from the parallelism; 0 = CPU)",
    "deployment": "render as local, slurm or k8s (default: the context's deploy key, else local)",
    "nodelist": "slurm: the job's node list, e.g. n[1-4] (default: the context's slurm.nodelist, else node[1-N])",
    "job": "k8s: the Job name that names the pods <job>-<i>.<job> (default madengine)",
}


@mad_task(help=EXPLAIN_HELP)
def explain(c, additional_context=None, additional_context_file=None, nodes=None, gpus_per_node=None,
            deployment=None, nodelist=None, job=None, json=False):
    """Print the launch plan of the context's launcher: strategy, nodes, GPUs, ranks, world size, and each node's
    role, commands and environment."""
    from madengine import launchers
    from madengine.context import build_context
    from madengine.validation import int_flag

    ctx = build_context(additional_context, additional_context_file)
    plan = launchers.resolve(ctx, nodes=int_flag(nodes, "--nodes"), gpus_per_node=int_flag(gpus_per_node, "--gpus-per-node"))
    target = deployment or str(ctx.get("deploy") or "local")
    if target not in launchers.DEPLOYMENTS:
        target = "local"
    listing = nodelist or (ctx.get("slurm") or {}).get("nodelist")
    result = launchers.explain(plan, deployment=target, nodelist=listing, job=job)
    if json:
        say(_json_dumps(result))
        return
    say(format_explain(result))


def _json_dumps(value: Any) -> str:
    return json.dumps(value, indent=2)


def format_explain(result: dict[str, Any]) -> str:
    """The human-readable plan: a summary table, the warnings, then each node's commands and environment."""
    from tabulate import tabulate

    plan = result["plan"]
    par = " ".join(f"{k}={v}" for k, v in plan["parallelism"].items())
    gpus = plan["gpus_per_node"] or "0 (CPU)"
    summary = [["launcher", plan["launcher"]], ["strategy", f"{plan['strategy']}" + (f"  ({par})" if par else "")],
               ["deployment", result["deployment"]], ["nodes", plan["nodes"]], ["GPUs per node", gpus],
               ["ranks per node", plan["procs_per_node"]], ["world size", plan["world_size"]],
               ["roles", ", ".join(f"{r['name']}: nodes {_ranks(r['node_ranks'])}" for r in plan["roles"])],
               ["ports", ", ".join(f"{k}={v}" for k, v in plan["ports"].items())]]
    lines = [tabulate(summary, tablefmt="plain")]
    lines += [f"warning: {w}" for w in plan["warnings"]]
    if result["deployment"] == "local" and plan["nodes"] > 1:
        lines.append(f"note: a local run is node 0 of {plan['nodes']}; start the others with NODE_RANK and "
                     "MASTER_ADDR in docker_env_vars, or deploy with slurm or k8s")
    for node in result["nodes"]:
        lines.append("")
        lines.append(f"node {node['node_rank']} ({node['role']}) on {node['host']}:")
        lines += [f"  $ {cmd}" for cmd in node["commands"]]
        lines += [f"  {k}={v}" for k, v in node["env"].items()]
    return "\n".join(lines)


def _ranks(ranks: list[int]) -> str:
    if not ranks:
        return "none"
    return str(ranks[0]) if len(ranks) == 1 else f"{ranks[0]}-{ranks[-1]}" if ranks == list(
        range(ranks[0], ranks[-1] + 1)) else ",".join(map(str, ranks))
