"""Translate madengine's ``additional_docker_run_options`` (``docker run`` CLI flags in one string, from models.json
or the context) into docker-py ``containers.run`` keyword arguments.

Only flags with a clear engine-API meaning are accepted; any other flag is an error that names it, rather than being
silently dropped. Supported: ``--shm-size``, ``--ipc``, ``--network``/``--net``, ``--privileged``, ``--cap-add``,
``--cap-drop``, ``--security-opt``, ``--device``, ``--group-add``, ``--ulimit NAME=SOFT[:HARD]``, ``-e/--env``,
``-v/--volume``, ``-u/--user``, ``--cpuset-cpus``, ``-m/--memory``, ``--cpus``, ``--pids-limit``, ``--hostname``.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from madengine.errors import ConfigError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit(2)
        raise ConfigError(f"additional_docker_run_options: {message}")


def _parser() -> _Parser:
    p = _Parser(add_help=False, allow_abbrev=False)
    p.add_argument("--shm-size")
    p.add_argument("--ipc")
    p.add_argument("--network", "--net")
    p.add_argument("--privileged", action="store_true")
    for flag in ("--cap-add", "--cap-drop", "--security-opt", "--device", "--group-add", "--ulimit"):
        p.add_argument(flag, action="append", default=[])
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-v", "--volume", action="append", default=[])
    p.add_argument("-u", "--user")
    p.add_argument("--cpuset-cpus")
    p.add_argument("-m", "--memory")
    p.add_argument("--cpus", type=float)
    p.add_argument("--pids-limit", type=int)
    p.add_argument("--hostname")
    return p


def parse_run_options(options: str) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Parse a ``docker run`` flag string.

    Returns:
        ``(kwargs, env, volumes)``: docker-py keyword arguments, extra environment variables, and volume strings in
        ``host:container[:mode]`` form.

    Raises:
        ConfigError: an unknown flag, a positional word, or a malformed value (names it).
    """
    if not options or not options.strip():
        return {}, {}, []
    try:
        words = shlex.split(options)
    except ValueError as e:
        raise ConfigError(f"additional_docker_run_options: {e}") from None
    ns, unknown = _parser().parse_known_args(words)
    if unknown:
        raise ConfigError(f"additional_docker_run_options: unsupported option {unknown[0]!r}; supported: "
                          "--shm-size --ipc --network --privileged --cap-add --cap-drop --security-opt --device "
                          "--group-add --ulimit -e -v -u --cpuset-cpus -m --cpus --pids-limit --hostname")
    kwargs: dict[str, Any] = {}
    simple = {"shm_size": ns.shm_size, "ipc_mode": ns.ipc, "network_mode": ns.network, "user": ns.user,
              "cpuset_cpus": ns.cpuset_cpus, "mem_limit": ns.memory, "pids_limit": ns.pids_limit,
              "hostname": ns.hostname}
    kwargs.update({k: v for k, v in simple.items() if v is not None})
    if ns.privileged:
        kwargs["privileged"] = True
    if ns.cpus is not None:
        kwargs["nano_cpus"] = int(ns.cpus * 1e9)
    for key, values in (("cap_add", ns.cap_add), ("cap_drop", ns.cap_drop), ("security_opt", ns.security_opt),
                        ("group_add", ns.group_add)):
        if values:
            kwargs[key] = list(values)
    if ns.device:
        kwargs["devices"] = [d if ":" in d else f"{d}:{d}:rwm" for d in ns.device]
    if ns.ulimit:
        from docker.types import Ulimit

        limits = []
        for item in ns.ulimit:
            name, _, values = item.partition("=")
            soft, _, hard = values.partition(":")
            try:
                limits.append(Ulimit(name=name, soft=int(soft), hard=int(hard or soft)))
            except ValueError:
                raise ConfigError(f"additional_docker_run_options: bad --ulimit {item!r}; use NAME=SOFT[:HARD]") \
                    from None
        kwargs["ulimits"] = limits
    env: dict[str, str] = {}
    for item in ns.env:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"additional_docker_run_options: -e {item!r} needs KEY=VALUE")
        env[key] = value
    return kwargs, env, list(ns.volume)
