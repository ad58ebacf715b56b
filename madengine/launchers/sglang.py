"""``"launcher": "sglang"``: ``python3 -m sglang.launch_server``, colocated or prefill/decode disaggregated.

Context (``sglang`` section): ``model`` (optional, given as ``MAD_SGLANG_MODEL``), ``tp_size``, ``dp_size``
(default 1), ``enable_dp_attention`` (DP inside the TP group: GPUs = TP; otherwise GPUs = TP × DP), ``ep_size``
(must divide ``tp_size``), ``port`` (server, default 30000), ``dist_init_port`` (multi-node rendezvous, default
20000), ``trust_remote_code``, ``nnodes``, ``extra_args``, ``env_vars``. ``"mode": "disaggregated"`` splits the
nodes into ``prefill_nodes`` then ``decode_nodes`` (their sum must be the node count); ``prefill`` and ``decode``
sub-sections may override ``tp_size``, ``dp_size``, ``enable_dp_attention``, ``ep_size`` and ``extra_args`` per
role; ``bootstrap_port`` (default 8998), ``transfer_backend`` (e.g. ``mooncake``, ``nixl``), ``ib_device``; a
router (``python3 -m sglang_router.launch_router``, ``router_port`` default 8000) runs on node 0 and gets
``MAD_SGLANG_ROUTER_ARGS``. Each role's instance size (its TP × DP GPUs) must be a whole number of nodes that
divides the role's nodes; an instance larger than one node runs with ``--nnodes/--node-rank/--dist-init-addr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from madengine.errors import ConfigError
from madengine.launchers import _common as c
from madengine.launchers.plan import LaunchPlan, Role

NAME = "sglang"
ROLE_KEYS = ("tp_size", "dp_size", "enable_dp_attention", "ep_size", "extra_args")
KEYS = ("model", *ROLE_KEYS, "port", "dist_init_port", "trust_remote_code", "nnodes", "env_vars", "mode",
        "prefill_nodes", "decode_nodes", "prefill", "decode", "bootstrap_port", "router_port", "transfer_backend",
        "ib_device", "master_port")
MODES = ("colocated", "disaggregated")


def _group(sec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """TP/DP/EP sizes of one server group (``where`` = ``sglang``, ``sglang.prefill`` or ``sglang.decode``)."""
    tp = c.int_opt(sec, "tp_size", where, 1) or 1
    dp = c.int_opt(sec, "dp_size", where, 1) or 1
    ep = c.int_opt(sec, "ep_size", where, 1) or 1
    attn = c.bool_opt(sec, "enable_dp_attention", where)
    if ep > 1 and tp == 1 and dp == 1:
        raise ConfigError(f"{where}.ep_size={ep} needs {where}.tp_size > 1 or {where}.dp_size > 1 (got tp=1, dp=1)")
    if tp % ep:
        raise ConfigError(f"{where}.ep_size={ep} must divide {where}.tp_size={tp}")
    if attn and tp % dp:
        raise ConfigError(f"{where}.dp_size={dp} must divide {where}.tp_size={tp} with enable_dp_attention")
    gpus = tp if attn else tp * dp
    return {"tp": tp, "dp": dp, "ep": ep, "dp_attention": attn, "gpus": gpus,
            "extra_args": c.args_opt(sec, "extra_args", where)}


def _strategy(g: Mapping[str, Any]) -> str:
    parts = [p for p, on in (("TP", g["tp"] > 1), ("DP-attention" if g["dp_attention"] else "DP", g["dp"] > 1),
                             ("EP", g["ep"] > 1)) if on]
    return "+".join(parts) or "single GPU"


def resolve(ctx: Mapping[str, Any], *, nodes: int | None = None, gpus_per_node: int | None = None) -> LaunchPlan:
    """The SGLang plan (see the module docstring); ``nodes``/``gpus_per_node`` are the allocation's, if known.

    Raises:
        ConfigError: one line per violated rule, naming the keys and the numbers.
    """
    w = "sglang"
    sec = c.section(ctx, w)
    c.check_known(sec, w, KEYS)
    mode = c.str_opt(sec, "mode", w, "colocated")
    if mode not in MODES:
        raise ConfigError(f"sglang.mode={mode!r} is not one of {', '.join(MODES)}")
    base = _group(sec, w)
    gpus, source = c.resolve_gpus(ctx, [], gpus_per_node)
    cpu = str(ctx.get("gpu_vendor") or "").upper() == "NONE"
    ports = {"server": ("sglang.port", c.port_opt(sec, "port", w, 30000)),
             "master": ("sglang.dist_init_port", c.port_opt(sec, "dist_init_port", w, 20000))}
    env = c.env_opt(sec, w)
    model = c.str_opt(sec, "model", w)
    if model:
        env["MAD_SGLANG_MODEL"] = model
    options: dict[str, Any] = {"mode": mode, "model": model, "trust_remote_code": c.bool_opt(sec, "trust_remote_code", w)}
    if mode == "colocated":
        for key in ("prefill_nodes", "decode_nodes", "prefill", "decode"):
            if key in sec:
                raise ConfigError(f"sglang.{key} needs \"sglang.mode\": \"disaggregated\"")
        nnodes = c.resolve_nodes(ctx, [("sglang.nnodes", c.int_opt(sec, "nnodes", w))], nodes)
        world = base["gpus"]
        product = (f"sglang tp_size = {base['tp']}" if base["dp_attention"] or base["dp"] == 1
                   else f"sglang tp_size × dp_size = {base['tp']} × {base['dp']} = {world}")
        if not gpus:
            if world % nnodes:
                raise ConfigError(f"{product} does not split over {nnodes} nodes")
            procs = world // nnodes
            gpus = 0 if gpus == 0 or cpu else procs
        elif world != nnodes * gpus:
            raise ConfigError(f"{product} but {nnodes} node(s) × {gpus} GPUs per node ({source}) = "
                              f"{nnodes * gpus} GPUs are allocated; they must be equal")
        else:
            procs = gpus
        c.check_distinct_ports(ports)
        options |= {"groups": {"server": base | {"instance_nodes": nnodes}}}
        return LaunchPlan(launcher=NAME, strategy=_strategy(base), nodes=nnodes, gpus_per_node=gpus,
                          procs_per_node=procs, world_size=world,
                          parallelism={"tp": base["tp"], "dp": base["dp"], "ep": base["ep"]},
                          roles=[Role(name="server", node_ranks=list(range(nnodes)))],
                          ports={k: v for k, (_, v) in ports.items()}, env_vars=env, options=options)

    prefill_nodes = c.int_opt(sec, "prefill_nodes", w)
    decode_nodes = c.int_opt(sec, "decode_nodes", w)
    if prefill_nodes is None or decode_nodes is None:
        raise ConfigError("sglang.mode=disaggregated needs sglang.prefill_nodes and sglang.decode_nodes")
    nnodes = c.resolve_nodes(ctx, [("sglang.nnodes", c.int_opt(sec, "nnodes", w))], nodes,
                             default=prefill_nodes + decode_nodes)
    if prefill_nodes + decode_nodes != nnodes:
        raise ConfigError(f"sglang.prefill_nodes={prefill_nodes} + sglang.decode_nodes={decode_nodes} = "
                          f"{prefill_nodes + decode_nodes} but the allocation has {nnodes} nodes; they must be equal")
    groups: dict[str, dict[str, Any]] = {}
    for role in ("prefill", "decode"):
        sub = c.section(sec, role)
        c.check_known(sub, f"sglang.{role}", ROLE_KEYS)
        groups[role] = _group({k: v for k, v in sec.items() if k in ROLE_KEYS} | sub, f"sglang.{role}")
    if not gpus:
        per_node = min(g["gpus"] for g in groups.values())
        gpus = 0 if gpus == 0 or cpu else per_node
    per_node = gpus or min(g["gpus"] for g in groups.values())
    offset = 0
    roles = []
    for role, count in (("prefill", prefill_nodes), ("decode", decode_nodes)):
        g = groups[role]
        if g["gpus"] % per_node:
            raise ConfigError(f"sglang.{role}: an instance uses {g['gpus']} GPUs (tp_size × dp_size), not a whole "
                              f"number of nodes of {per_node} GPUs ({source or 'inferred'})")
        g["instance_nodes"] = g["gpus"] // per_node
        if count % g["instance_nodes"]:
            raise ConfigError(f"sglang.{role}_nodes={count} is not a multiple of the {g['instance_nodes']} nodes one "
                              f"{role} instance needs (tp_size × dp_size = {g['gpus']} GPUs)")
        g["first_node"] = offset
        roles.append(Role(name=role, node_ranks=list(range(offset, offset + count))))
        offset += count
    ports["bootstrap"] = ("sglang.bootstrap_port", c.port_opt(sec, "bootstrap_port", w, 8998))
    ports["router"] = ("sglang.router_port", c.port_opt(sec, "router_port", w, 8000))
    c.check_distinct_ports(ports)
    options |= {"groups": groups, "transfer_backend": c.str_opt(sec, "transfer_backend", w),
                "ib_device": c.str_opt(sec, "ib_device", w), "prefill_nodes": prefill_nodes,
                "decode_nodes": decode_nodes}
    p, d = groups["prefill"], groups["decode"]
    strategy = f"PD-disaggregated (prefill {_strategy(p)}, decode {_strategy(d)})"
    world = p["gpus"] * (prefill_nodes // p["instance_nodes"]) + d["gpus"] * (decode_nodes // d["instance_nodes"])
    return LaunchPlan(launcher=NAME, strategy=strategy, nodes=nnodes, gpus_per_node=gpus, procs_per_node=per_node,
                      world_size=world, parallelism={"tp": p["tp"], "dp": p["dp"], "ep": p["ep"],
                                                     "decode_tp": d["tp"], "decode_dp": d["dp"], "decode_ep": d["ep"]},
                      roles=roles, ports={k: v for k, (_, v) in ports.items()}, env_vars=env, options=options)


def _host(hosts: list[str], rank: int) -> str:
    if rank < len(hosts):
        return hosts[rank]
    raise ConfigError(f"sglang: the address of node {rank} is unknown (give the node list: Slurm's "
                      "SLURM_JOB_NODELIST, or MAD_NODE_HOSTS=host0,host1,...)")


def _server_args(plan: LaunchPlan, g: Mapping[str, Any], rank_in_role: int, first: int, hosts: list[str],
                 master_addr: str) -> list[Any]:
    args: list[Any] = ["--tp-size", g["tp"]]
    if g["dp"] > 1:
        args += ["--dp-size", g["dp"]]
    if g["dp_attention"]:
        args.append("--enable-dp-attention")
    if g["ep"] > 1:
        args += ["--ep-size", g["ep"]]
    if plan.options["trust_remote_code"]:
        args.append("--trust-remote-code")
    args += ["--host", "0.0.0.0", "--port", plan.ports["server"]]
    if g["instance_nodes"] > 1:
        head = first + (rank_in_role // g["instance_nodes"]) * g["instance_nodes"]
        head_addr = master_addr if head == 0 else _host(hosts, head)
        args += ["--nnodes", g["instance_nodes"], "--node-rank", rank_in_role % g["instance_nodes"],
                 "--dist-init-addr", f"{head_addr}:{plan.ports['master']}"]
    return args + g["extra_args"]


def render(plan: LaunchPlan, node_rank: int, master_addr: str, hosts: list[str]) -> dict[str, str]:
    """The node's variables: ``MAD_MULTI_NODE_RUNNER`` = ``python3 -m sglang.launch_server`` (run.sh:
    ``$MAD_MULTI_NODE_RUNNER --model-path <model> $MAD_SGLANG_ARGS``), ``MAD_SGLANG_ARGS``; in disaggregated mode
    node 0 also gets ``MAD_SGLANG_ROUTER`` and ``MAD_SGLANG_ROUTER_ARGS``.

    Raises:
        ConfigError: a disaggregated or multi-node-instance plan without the other nodes' addresses in ``hosts``.
    """
    o = plan.options
    runner = "python3 -m sglang.launch_server"
    extra: dict[str, str] = {}
    if o["mode"] == "colocated":
        args = _server_args(plan, o["groups"]["server"], node_rank, 0, hosts, master_addr)
    else:
        role = plan.role_of(node_rank)
        g = o["groups"][role]
        args = _server_args(plan, g, node_rank - g["first_node"], g["first_node"], hosts, master_addr)
        args += ["--disaggregation-mode", role]
        if role == "prefill":
            args += ["--disaggregation-bootstrap-port", plan.ports["bootstrap"]]
        if o["transfer_backend"]:
            args += ["--disaggregation-transfer-backend", o["transfer_backend"]]
        if o["ib_device"]:
            args += ["--disaggregation-ib-device", o["ib_device"]]
        if node_rank == 0:
            router: list[Any] = ["--pd-disaggregation"]
            for r in ("prefill", "decode"):
                grp = o["groups"][r]
                count = o[f"{r}_nodes"]
                for head in range(grp["first_node"], grp["first_node"] + count, grp["instance_nodes"]):
                    addr = master_addr if head == 0 else _host(hosts, head)
                    router += [f"--{r}", f"http://{addr}:{plan.ports['server']}"]
                    if r == "prefill":
                        router.append(plan.ports["bootstrap"])
            router += ["--host", "0.0.0.0", "--port", plan.ports["router"]]
            extra = {"MAD_SGLANG_ROUTER": "python3 -m sglang_router.launch_router",
                     "MAD_SGLANG_ROUTER_ARGS": c.join(router)}
    sglang_args = c.join(args)
    return c.contract_env(plan, node_rank, master_addr, runner, sglang_args) | {"MAD_SGLANG_ARGS": sglang_args} | extra


def commands(plan: LaunchPlan, env: Mapping[str, str]) -> list[str]:
    """The command lines the node runs: its server, and on node 0 of a disaggregated plan the router too."""
    import shlex

    model = shlex.quote(plan.options["model"]) if plan.options["model"] else "<model>"
    lines = [f"{env['MAD_MULTI_NODE_RUNNER']} --model-path {model} {env['MAD_SGLANG_ARGS']}"]
    if "MAD_SGLANG_ROUTER_ARGS" in env:
        lines.append(f"{env['MAD_SGLANG_ROUTER']} {env['MAD_SGLANG_ROUTER_ARGS']}")
    return lines
