"""Dockerfile selection for a model, and the image and log names derived from it.

Rules (madengine v1 ``tools/run_models.py``, v2 ``execution/docker_builder.py``; MAD's ``docker/`` conventions):

* A model's ``dockerfile`` is a *prefix*: every file ``<prefix>.*`` is a candidate (``docker/pyt_vllm`` →
  ``docker/pyt_vllm.ubuntu.amd.Dockerfile``; ``docker/pyt_vllm_gemma4...`` is not one, the ``.`` is required).
* A candidate may declare, among its first 5 lines, ``# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}`` (a
  Python dict literal; JSON is accepted too). It is kept when every header key that the run context also has equals
  the context's value, compared as strings; keys the context lacks do not filter (so ``ctx_test`` headers only
  filter when the context sets ``ctx_test``). Every surviving Dockerfile is built and run.
* Image: ``ci-<model name, "/" → "_", lowercased>_<Dockerfile basename without ".Dockerfile">``, e.g.
  ``dummy2/model2`` + ``docker/dummy.ubuntu.amd.Dockerfile`` → ``ci-dummy2_model2_dummy.ubuntu.amd``.
* Logs: ``<model name, "/" → "_">_<basename without ".Dockerfile">`` + ``.build.live.log`` / ``.run.live.log``.
* Base image: the value of ``ARG BASE_DOCKER=...`` in the Dockerfile (what perf.csv reports as ``base_docker``).
"""

from __future__ import annotations

import ast
import glob
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from madengine.errors import ConfigError

if TYPE_CHECKING:
    from madengine.hub import Model

#: How many leading lines may hold the ``# CONTEXT`` header (madengine: ``head -n5``).
HEADER_LINES = 5

_HEADER = re.compile(r"^\s*#\s*CONTEXT\s+(.*?)\s*$")
_BASE_DOCKER = re.compile(r"^\s*(?i:ARG)\s+BASE_DOCKER=(.*?)\s*$")
# Docker image name: path components of [a-z0-9] runs joined by ".", "_", "__" or "-"+ (distribution/reference).
_VALID_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_MAX_NAME = 200  # Docker allows 255 for the whole name: leave room for a registry prefix


def candidates(hub_dir: str | os.PathLike[str], model: Model) -> list[Path]:
    """The files matching ``<model.dockerfile>.*`` under ``hub_dir``, sorted, as paths relative to ``hub_dir``.

    An absolute ``dockerfile`` prefix is globbed as is (and returned absolute). Raises :class:`ConfigError` when the
    model has no ``dockerfile`` or nothing matches (the message names the model and the glob).
    """
    prefix = model.dockerfile
    if not prefix:
        raise ConfigError(f"model '{model.name}' has no 'dockerfile' (a path prefix such as docker/<name>)")
    hub = os.fspath(hub_dir)
    pattern = glob.escape(os.path.join(hub, prefix)) + ".*"
    found = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    if not found:
        raise ConfigError(f"model '{model.name}': no Dockerfile matches {prefix}.* in {os.path.abspath(hub)}")
    if os.path.isabs(prefix):
        return [Path(p) for p in found]
    return [Path(os.path.relpath(p, hub)) for p in found]


def _parse_header(text: str, where: str) -> dict[str, Any]:
    """A CONTEXT header's value: a Python dict literal or JSON object, else ConfigError naming ``where``."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        try:
            value = json.loads(text)
        except ValueError:
            raise ConfigError(f"{where}: malformed '# CONTEXT' header {text!r}: expected a dict such as "
                              "{'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: '# CONTEXT' header must be a dict, got {type(value).__name__}")
    return value


def read_context_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``# CONTEXT {...}`` dict found among the first :data:`HEADER_LINES` lines of a Dockerfile; ``{}`` if none.

    Only the first such line counts. Raises :class:`ConfigError` (file and line) when the header is not a dict
    literal, or when the file cannot be read.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, start=1):
                if number > HEADER_LINES:
                    break
                found = _HEADER.match(line)
                if found:
                    return _parse_header(found.group(1), f"{os.fspath(path)}:{number}")
    except OSError as exc:
        raise ConfigError(f"cannot read Dockerfile {os.fspath(path)}: {exc.strerror or exc}") from exc
    return {}


def filter_by_context(paths: Iterable[str | os.PathLike[str]], ctx: Mapping[str, Any],
                      hub_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The Dockerfiles of ``paths`` whose CONTEXT header agrees with ``ctx`` (order kept).

    A file is kept when, for every header key present in ``ctx``, ``str(ctx[key]) == str(header[key])``; header keys
    absent from ``ctx`` do not filter, and a file without header always stays. Relative ``paths`` are read from
    ``hub_dir`` when given (as returned by :func:`candidates`), else from the cwd; they are returned unchanged.
    Raises :class:`ConfigError` for an unreadable file or a malformed header.
    """
    kept = []
    for path in paths:
        full = os.path.join(hub_dir, path) if hub_dir is not None else path
        header = read_context_header(full)
        if all(str(ctx[key]) == str(value) for key, value in header.items() if key in ctx):
            kept.append(Path(path))
    return kept


def _stem(dockerfile_path: str | os.PathLike[str]) -> str:
    """Dockerfile basename without ``.Dockerfile`` (madengine removes every occurrence, so do we)."""
    return os.path.basename(os.fspath(dockerfile_path)).replace(".Dockerfile", "")


def image_name(model_name: str, dockerfile_path: str | os.PathLike[str]) -> str:
    """The local image name for a model built from one Dockerfile: ``ci-<name>_<basename>`` (see the module doc).

    Always a valid Docker image name. For every name Docker accepts, the result is madengine's (which lowercases the
    model name only; here the Dockerfile part is lowercased too, since Docker rejects capitals). A name Docker would
    reject is sanitised instead of failing the build: characters outside ``[a-z0-9._-]`` become ``_``, invalid runs
    of separators collapse to ``_``, and an 8-hex digest of the original is appended so two sanitised names cannot
    collide; names over 200 characters are cut and get the digest too (Docker allows 255 including any registry
    prefix).
    """
    raw = f"ci-{model_name.replace('/', '_').lower()}_{_stem(dockerfile_path).lower()}"
    if _VALID_NAME.match(raw) and len(raw) <= _MAX_NAME:
        return raw
    name = re.sub(r"[^a-z0-9._-]", "_", raw)
    name = re.sub(r"[._-]{2,}", lambda m: m.group(0) if m.group(0) == "__" or set(m.group(0)) == {"-"} else "_", name)
    name = name.strip("._-")
    digest = hashlib.sha1(raw.encode("utf-8")).hexdigest()[:8]
    return f"{name[:_MAX_NAME - 9].rstrip('._-')}-{digest}"


def log_basename(model_name: str, dockerfile_path: str | os.PathLike[str]) -> str:
    """``<model name, "/" → "_">_<Dockerfile basename without ".Dockerfile">`` (madengine's live-log stem).

    Add ``.build.live.log`` or ``.run.live.log``: ``dummy2/model2`` + ``dummy.ubuntu.amd.Dockerfile`` →
    ``dummy2_model2_dummy.ubuntu.amd``.
    """
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{model_name.replace('/', '_')}_{_stem(dockerfile_path)}")


def default_base_docker(path: str | os.PathLike[str]) -> str:
    """The value of the first ``ARG BASE_DOCKER=<image>`` line of a Dockerfile (surrounding quotes removed); ``""``
    when there is none. Raises :class:`ConfigError` when the file cannot be read.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                found = _BASE_DOCKER.match(line)
                if found:
                    value = found.group(1)
                    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                        value = value[1:-1]
                    return value
    except OSError as exc:
        raise ConfigError(f"cannot read Dockerfile {os.fspath(path)}: {exc.strerror or exc}") from exc
    return ""


#: Dockerfile variables that pin GPU architectures (madengine v2's list), read from ``ARG``/``ENV`` lines.
GPU_ARCH_VARIABLES = ("MAD_SYSTEM_GPU_ARCHITECTURE", "PYTORCH_ROCM_ARCH", "GPU_TARGETS", "GFX_COMPILATION_ARCH",
                      "GPU_ARCHS")


def arch_conflict(path: str | os.PathLike[str], arch: str) -> str:
    """Why the Dockerfile at ``path`` cannot be built for GPU architecture ``arch`` (a GPU-arch variable whose
    default lists other architectures, e.g. ``ARG PYTORCH_ROCM_ARCH=gfx90a;gfx942`` for ``gfx950``), or ``""``.
    ``MAD_SYSTEM_GPU_ARCHITECTURE`` is set by the build itself and never conflicts.

    Raises:
        ConfigError: the file cannot be read.
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read Dockerfile {os.fspath(path)}: {exc.strerror or exc}") from exc
    for name in GPU_ARCH_VARIABLES[1:]:
        found = re.findall(rf"^\s*(?:ARG|ENV)\s+{name}[= ]\s*[\"']?([^\s\"']+)", text, re.M | re.I)
        if not found:
            continue
        allowed = {a.strip().lower() for a in re.split(r"[;,]", found[-1]) if a.strip()}
        if allowed and arch.lower() not in allowed and not any(a.startswith("$") for a in allowed):
            return (f"{os.fspath(path)}: {name}={found[-1]} does not include {arch}; drop {arch} from "
                    "--target-archs or widen the Dockerfile's architectures")
    return ""


def fingerprint(path: str | os.PathLike[str], build_args: Mapping[str, Any], ctx: Mapping[str, Any],
                arch: str = "") -> str:
    """The build fingerprint of an image (provenance in perf rows and the results store): SHA-256 over the
    Dockerfile's bytes, the context's build args (names and values; credentials are not build args here), the
    Dockerfile-selecting context (``gpu_vendor``, ``guest_os``) and the target GPU architecture. Equal inputs give
    equal fingerprints, so two rows with the same fingerprint ran images built the same way."""
    digest = hashlib.sha256(Path(path).read_bytes())
    facts = {"build_args": {str(k): str(v) for k, v in build_args.items()}, "arch": arch,
             "ctx": {k: str(ctx.get(k, "")) for k in ("gpu_vendor", "guest_os")}}
    digest.update(json.dumps(facts, sort_keys=True).encode())
    return digest.hexdigest()
