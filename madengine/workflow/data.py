"""Data providers: how a model's ``data`` (a name in the hub's ``data.json``) reaches its container.

``data.json`` (madengine's format): ``{dataname: {provider_type: {path, home?, mirrorlocal?, readwrite?, args?}}}``;
the context's ``data`` key overrides entries key by key. Providers are tried in madengine's order, custom → local →
nas, and the first whose source check passes is used (minio and aws are madengine providers this version does not
implement: configuring only those is an error that says so):

- ``local``: ``path`` on the host is bind-mounted at ``MAD_DATAHOME``, read-only unless ``"readwrite": true``.
- ``custom``: ``path`` is a script in the hub, run in the container in ``MAD_DATAHOME`` with ``args`` before the model
  (a mirror directory is mounted there when ``mirrorlocal`` or ``--force-mirror-local`` is set).
- ``nas``: ``path`` on a NAS host from credential.json ``NAS_NODES`` (``NAME, HOST, PORT, USERNAME`` and
  ``PASSWORD`` or ``KEY_FILE``; optional ``KNOWN_HOSTS``) is copied with rsync over SSH on the host into a mirror
  directory (``mirrorlocal``/``--force-mirror-local`` ``/<dataname>``, default ``.madengine/data/<dataname>`` next to
  perf.csv), which is mounted read-write. Host keys are checked against known_hosts (``StrictHostKeyChecking=yes``);
  passwords go to ``sshpass`` through the environment, never on a command line.

The container gets ``MAD_DATAHOME`` (``home``, default ``/data_dlm_0``) and ``MAD_DATANAME``; the perf row gets
``dataname``, ``data_provider_type``, ``data_size`` (bytes) and ``data_download_duration`` (seconds).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from madengine.context import deep_merge
from madengine.errors import ConfigError
from madengine.validation import optional_json_object

PROVIDER_ORDER = ("custom", "local", "nas", "minio", "aws")
SUPPORTED = PROVIDER_ORDER
DEFAULT_HOME = "/data_dlm_0"
NAS_TIMEOUT = 2400  # seconds for one rsync, as madengine


class DataError(Exception):
    """The data could not be provided; the message is the row's failure reason."""


@dataclass
class DataPlan:
    """How the data reaches the container. ``mounts``: host path → (container path, mode)."""

    dataname: str
    provider_type: str
    home: str
    mounts: dict[str, tuple[str, str]] = field(default_factory=dict)
    container_step: str = ""
    script: str = ""
    size_bytes: int | None = None
    download_duration: float = 0.0

    @property
    def env(self) -> dict[str, str]:
        """``MAD_DATAHOME`` and ``MAD_DATANAME`` for the container."""
        return {"MAD_DATAHOME": self.home, "MAD_DATANAME": self.dataname}


def load_config(hub: Path, ctx: Mapping[str, Any], filename: str = "data.json") -> dict[str, Any]:
    """``<hub>/<filename>`` (optional) merged with the context's ``data`` key.

    Raises:
        ConfigError: malformed JSON.
    """
    return deep_merge(optional_json_object(hub / filename, "data names → providers"), ctx.get("data") or {})


def dir_size(path: Path) -> int:
    """Bytes under ``path`` (files only, symlinks not followed)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _mirror_dir(provider: Mapping[str, Any], dataname: str, force_mirror: str | None, default_root: Path) -> Path:
    root = force_mirror or provider.get("mirrorlocal")
    target = (Path(root) if root else default_root) / dataname
    target.mkdir(parents=True, exist_ok=True)
    return target


def _nas_nodes(creds: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    nodes = creds.get("NAS_NODES") or []
    if isinstance(nodes, Mapping):
        nodes = [nodes]
    return [n for n in nodes if isinstance(n, Mapping) and n.get("HOST")]


def _reachable(host: str, port: int, timeout: float = 5.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _rsync_from_nas(node: Mapping[str, Any], source: str, dest: Path) -> None:
    port = int(node.get("PORT") or 22)
    ssh = ["ssh", "-p", str(port), "-o", "BatchMode=no", "-o", "ConnectTimeout=10",
           "-o", "StrictHostKeyChecking=yes"]
    if node.get("KNOWN_HOSTS"):
        ssh += ["-o", f"UserKnownHostsFile={node['KNOWN_HOSTS']}"]
    env = dict(os.environ)
    if node.get("KEY_FILE"):
        ssh += ["-i", str(node["KEY_FILE"]), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
        prefix: list[str] = []
    elif node.get("PASSWORD"):
        if not shutil.which("sshpass"):
            raise DataError("nas: a NAS password needs `sshpass` on this host (apt-get install sshpass), or give "
                            "KEY_FILE in NAS_NODES")
        env["SSHPASS"] = str(node["PASSWORD"])
        prefix = ["sshpass", "-e"]
    else:
        prefix = []
        ssh += ["-o", "BatchMode=yes"]
    remote = f"{node.get('USERNAME', '')}@{node['HOST']}:{source.rstrip('/')}/" if node.get("USERNAME") \
        else f"{node['HOST']}:{source.rstrip('/')}/"
    cmd = [*prefix, "rsync", "-a", "--delete", "-e", shlex.join(ssh), remote, f"{dest}/"]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=NAS_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise DataError(f"nas: rsync from {node['HOST']}:{source} timed out after {NAS_TIMEOUT} s") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["?"])[-1][:200]
        raise DataError(f"nas: rsync from {node['HOST']}:{source} failed (exit {proc.returncode}): {detail}")


def custom_step(script: str, args: str) -> str:
    """The custom provider's step: its hub script, run in ``$MAD_DATAHOME`` (wherever the runtime put it) with the
    provider's ``args`` (shell words, as madengine passes them)."""
    return f'mkdir -p "$MAD_DATAHOME" && cd "$MAD_DATAHOME" && bash /myworkspace/{shlex.quote(script)} {args}'.strip()


def _try_provider(kind: str, provider: Mapping[str, Any], dataname: str, *, hub: Path, creds: Mapping[str, Any],
                  force_mirror: str | None, default_root: Path) -> DataPlan:
    home = str(provider.get("home") or DEFAULT_HOME)
    path = str(provider.get("path") or "")
    if not path:
        raise DataError(f"{kind}: no 'path' configured")
    if kind == "local":
        if provider.get("mirrorlocal"):
            raise DataError("local: 'mirrorlocal' cannot be used with the local provider")
        source = Path(path)
        if not source.exists():
            raise DataError(f"local: {source} does not exist")
        mode = "rw" if str(provider.get("readwrite", "")).lower() in ("true", "1", "yes") else "ro"
        return DataPlan(dataname, kind, home, {str(source.resolve()): (home, mode)}, size_bytes=dir_size(source))
    if kind == "custom":
        script = hub / path
        if not script.is_file():
            raise DataError(f"custom: script {script} does not exist")
        plan = DataPlan(dataname, kind, home, script=path)
        if force_mirror or provider.get("mirrorlocal"):
            mirror = _mirror_dir(provider, dataname, force_mirror, default_root)
            plan.mounts[str(mirror)] = (home, "rw")
        plan.container_step = custom_step(path, str(provider.get("args") or ""))
        return plan
    if kind == "nas":
        nodes = _nas_nodes(creds)
        if not nodes:
            raise DataError("nas: credential.json has no NAS_NODES")
        node = next((n for n in nodes if _reachable(str(n["HOST"]), int(n.get("PORT") or 22))), None)
        if node is None:
            tried = ", ".join(f"{n['HOST']}:{n.get('PORT') or 22}" for n in nodes)
            raise DataError(f"nas: no NAS node reachable (tried {tried})")
        mirror = _mirror_dir(provider, dataname, force_mirror, default_root)
        start = time.monotonic()
        _rsync_from_nas(node, path, mirror)
        return DataPlan(dataname, kind, home, {str(mirror): (home, "rw")}, size_bytes=dir_size(mirror),
                        download_duration=time.monotonic() - start)
    from madengine.workflow import data_s3  # minio, aws

    mirror = _mirror_dir(provider, dataname, force_mirror, default_root)
    start = time.monotonic()
    try:
        data_s3.download(kind, provider, creds, mirror)
    except data_s3.S3Error as e:
        raise DataError(str(e)) from None
    return DataPlan(dataname, kind, home, {str(mirror): (home, "rw")}, size_bytes=dir_size(mirror),
                    download_duration=time.monotonic() - start)


def resolve(dataname: str, config: Mapping[str, Any], *, hub: Path, creds: Mapping[str, Any],
            force_mirror: str | None, default_root: Path) -> DataPlan:
    """Pick and prepare the first provider of ``dataname`` whose source check passes.

    Raises:
        DataError: no provider could serve the data (every provider's reason, in order).
        ConfigError: ``dataname`` is not in data.json / the context.
    """
    entry = config.get(dataname)
    if not isinstance(entry, Mapping) or not entry:
        raise ConfigError(f"model data {dataname!r} is not defined in the data config (data.json or --data-config) "
                          "nor in the context's 'data' key")
    unknown = [k for k in entry if k not in PROVIDER_ORDER]
    if unknown:
        raise ConfigError(f"data.json: {dataname!r}: unknown provider type {unknown[0]!r}; known: "
                          f"{', '.join(PROVIDER_ORDER)}")
    reasons = []
    for kind in PROVIDER_ORDER:
        if kind in entry:
            try:
                return _try_provider(kind, entry[kind] or {}, dataname, hub=hub, creds=creds,
                                     force_mirror=force_mirror, default_root=default_root)
            except DataError as e:
                reasons.append(str(e))
    raise DataError(f"data {dataname!r} unavailable: " + "; ".join(reasons))


def for_cluster(dataname: str, config: Mapping[str, Any], *, hub: Path, target: str) -> DataPlan:
    """The data plan of a model on a cluster whose nodes madengine cannot reach before the run (Kubernetes): the
    first of ``custom`` (its script runs in the pod, into ``MAD_DATAHOME``) and ``local`` (``path`` is a path on the
    nodes, mounted at ``MAD_DATAHOME``; nothing is checked from here). ``mounts`` maps that node path to the home.

    Raises:
        ConfigError: ``dataname`` is not defined, or only providers that need this host (``nas``: rsync here;
            ``minio``/``aws``) are configured (names the alternatives).
    """
    entry = config.get(dataname)
    if not isinstance(entry, Mapping) or not entry:
        raise ConfigError(f"model data {dataname!r} is not defined in the data config (data.json or --data-config) "
                          "nor in the context's 'data' key")
    for kind in ("custom", "local"):
        provider = entry.get(kind)
        if not isinstance(provider, Mapping):
            continue
        home = str(provider.get("home") or DEFAULT_HOME)
        path = str(provider.get("path") or "")
        if not path:
            raise ConfigError(f"data.json: {dataname!r}.{kind}: no 'path' configured")
        if kind == "local":
            mode = "rw" if str(provider.get("readwrite", "")).lower() in ("true", "1", "yes") else "ro"
            return DataPlan(dataname, kind, home, {path: (home, mode)})
        if not (hub / path).is_file():
            raise ConfigError(f"data.json: {dataname!r}.custom: script {hub / path} does not exist")
        return DataPlan(dataname, kind, home, container_step=custom_step(path, str(provider.get("args") or "")),
                        script=path)
    raise ConfigError(f"data {dataname!r}: {target} runs need a 'custom' or 'local' provider in data.json (found "
                      f"{', '.join(entry)}); a nas/minio/aws download runs on this host, which the {target} nodes "
                      f"do not share: put the data on a volume the nodes mount ('local' path, or k8s.data_pvc)")
