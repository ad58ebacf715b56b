"""The build phase: selected models → Docker images → ``build_manifest.json``.

For each model every Dockerfile candidate that its ``# CONTEXT`` header allows is built as
``ci-<model>_<dockerfile basename>`` (see :mod:`madengine.dockerfiles`), with the context's ``docker_build_arg``
as build args, from the model's ``dockercontext`` (default ``docker/`` in the hub). The build output goes to
``<model>_<dockerfile>.build.live.log``. With a registry, each image is pushed as ``<registry>/<image>:latest`` and
recorded as ``registry_image``. A model whose build fails does not stop the others; the manifest lists what was
built and the build exits with code 2 afterwards.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from madengine import console, dockerfiles, stop
from madengine import manifest as manifest_mod
from madengine.context import DEPLOYMENT_KEYS, deployment_config
from madengine.errors import BuildError, ConfigError
from madengine.hub import Model
from madengine.workflow import credentials

_REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9._-]+)*$")

#: Context used to filter Dockerfiles when the user gives none (madengine v2 ``additional_context_defaults``).
BUILD_CONTEXT_DEFAULTS = {"gpu_vendor": "AMD", "guest_os": "UBUNTU"}


@dataclass
class BuildOutcome:
    """Result of a build: the manifest written (``None`` if nothing was built) and the failures (model, reason)."""

    manifest: manifest_mod.Manifest
    manifest_path: Path | None
    failures: list[tuple[str, str]] = field(default_factory=list)


def filter_context(ctx: Mapping[str, Any], detected_vendor: str, hub: Path | None = None) -> dict[str, Any]:
    """The context Dockerfile headers are matched against: defaults < detected GPU vendor < the hub's ``ctx_test``
    file (madengine v1/v2 read its content as the ``ctx_test`` key) < user context."""
    base = dict(BUILD_CONTEXT_DEFAULTS)
    if detected_vendor != "NONE":
        base["gpu_vendor"] = detected_vendor
    ctx_test = hub / "ctx_test" if hub is not None else None
    if ctx_test is not None and ctx_test.is_file():
        base["ctx_test"] = ctx_test.read_text(encoding="utf-8", errors="replace").strip()
    base.update({k: v for k, v in ctx.items() if not isinstance(v, dict | list)})
    return {k: str(v) for k, v in base.items()}


def registry_image(registry: str, image: str) -> str:
    """``<registry>/<image>:latest`` (registry like ``localhost:5000`` or ``host/project``)."""
    return f"{registry.rstrip('/')}/{image}:latest"


def build_models(hub: Path, models: Sequence[Model], ctx: Mapping[str, Any], *, registry: str = "",
                 clean_cache: bool = False, manifest_output: Path, log_dir: Path, live_output: bool = False,
                 detected_vendor: str = "NONE", client: Any = None,
                 target_archs: Sequence[str] = ()) -> BuildOutcome:
    """Build every selected model's images and write the manifest.

    Args:
        hub: hub root; model paths are relative to it.
        models: selected models (``madengine.hub.select``).
        ctx: validated context; its ``docker_build_arg`` become build args.
        manifest_output: where ``build_manifest.json`` goes; it is replaced atomically and only when at least one
            image was built (a fully failed build keeps the previous manifest).
        log_dir: directory for ``*.build.live.log``.
        client: a docker client (connected lazily when ``None``).
        target_archs: GPU architectures (``gfx942``, ...) to build one image each for (madengine v2's
            ``--target-archs``): the image name gets ``_<arch>``, the build the arg ``MAD_SYSTEM_GPU_ARCHITECTURE``,
            the record its ``gpu_architecture``; an architecture the Dockerfile's GPU-arch variables exclude is a
            build failure naming the variable.

    Raises:
        ConfigError: a model's Dockerfiles are missing or malformed.
        EngineError: the engine is unreachable.
        BuildError: after writing the manifest, when any build or push failed (lists them).
    """
    from madengine import docker_engine, docker_images

    manifest_mod.check_writable(manifest_output)
    if registry:
        check_registry(registry)
    client = client or docker_engine.connect()
    match_ctx = filter_context(ctx, detected_vendor, hub)
    stored = {k: v for k, v in ctx.items() if k not in DEPLOYMENT_KEYS}
    manifest = manifest_mod.Manifest(context=stored, deployment_config=deployment_config(ctx), registry=registry,
                                     hub=str(hub.resolve()))
    build_args = dict(ctx.get("docker_build_arg") or {})
    creds = credentials.load(hub)
    masker = credentials.Masker(credentials.secret_values(creds))
    failures: list[tuple[str, str]] = []
    prebuilt = str(ctx.get("MAD_CONTAINER_IMAGE") or "")
    if prebuilt:  # madengine v1/v2: no build, every selected model runs in the given image
        for model in models:
            ref = prebuilt if prebuilt != "auto" else _base_image(hub, model, match_ctx, build_args)
            record = _prebuilt(client, model, ref)
            manifest.built_images[record.docker_image] = record
            manifest.built_models[record.docker_image] = model
            console.progress(f"{model.name}: no build, runs in {ref} (MAD_CONTAINER_IMAGE / --use-image)")
        models = []
    matching = [(model, _dockerfiles_for(hub, model, match_ctx)) for model in models]
    if matching and not any(paths for _, paths in matching):  # e.g. a guest_os no Dockerfile declares: bad input
        keys = ", ".join(f"{k}={match_ctx[k]!r}" for k in BUILD_CONTEXT_DEFAULTS)
        raise ConfigError(f"no Dockerfile of the selected model(s) matches the context ({keys}, ...); check those "
                          "keys against the '# CONTEXT' line of their Dockerfiles")
    log_dir.mkdir(parents=True, exist_ok=True)
    for model, paths in matching:
        if not paths:
            failures.append((model.name, f"no Dockerfile {model.dockerfile}.* matches the context {match_ctx}"))
            console.warn(failures[-1][1])
            continue
        for path, arch in _variants(hub, model, paths, target_archs, failures):
            stop.check()  # a Ctrl-C swallowed by a __del__ during the previous build still stops here
            suffix = f"_{arch}" if arch else ""
            image = dockerfiles.image_name(model.name, path) + suffix
            log_base = dockerfiles.log_basename(model.name, path) + suffix
            log_path = log_dir / f"{log_base}.build.live.log"
            context_dir = hub / (model.dockercontext or "docker")
            if not context_dir.is_dir():
                raise ConfigError(f"models.json: model {model.name!r}: build context {context_dir} does not exist "
                                  "(field 'dockercontext', default docker/)")
            console.progress(f"building {image} from {path} (log: {log_path})")
            start = time.monotonic()
            with open(log_path, "w", encoding="utf-8") as log:
                def write(text: str, _log: Any = log) -> None:
                    text = masker.text(text)
                    _log.write(text)
                    _log.flush()
                    if live_output:
                        console.err().out(text, end="", highlight=False)

                try:
                    model_args = build_args | credentials.model_env(creds, model.cred or "", model.name) | (
                        {"MAD_SYSTEM_GPU_ARCHITECTURE": arch} if arch else {})
                    image_id = docker_images.build_image(client, context_dir=context_dir, dockerfile=hub / path,
                                                         tag=image, build_args=model_args, no_cache=clean_cache,
                                                         log=write)
                except BuildError as e:
                    base = build_args.get("BASE_DOCKER") or dockerfiles.default_base_docker(hub / path)
                    hint = ""
                    if base and not docker_images.image_exists(client, base):
                        hint = (f"; base image {base} is not on this engine (make it, e.g. `bash dev/engine.sh up`, "
                                "or set docker_build_arg.BASE_DOCKER)")
                    failures.append((model.name, masker.text(f"{e.message[:200]}{hint}")))
                    console.warn(f"{failures[-1][1]} (log: {log_path})")
                    continue
                duration = time.monotonic() - start
                record = manifest_mod.BuiltImage(
                    model=model.name, docker_image=image, dockerfile=str(path),
                    base_docker=build_args.get("BASE_DOCKER") or dockerfiles.default_base_docker(hub / path),
                    build_duration=round(duration, 3), log_file=str(log_path), log_base=log_base,
                    gpu_vendor=str(match_ctx.get("gpu_vendor", "")), image_id=image_id, gpu_architecture=arch,
                    build_fingerprint=dockerfiles.fingerprint(hub / path, build_args, match_ctx, arch),
                    execution={"timeout": model.timeout, "n_gpus": model.n_gpus, "args": model.args or ""})
                if registry:
                    remote = registry_image(registry, image)
                    console.progress(f"pushing {remote}")
                    try:
                        docker_images.push_image(client, image, remote, write)
                    except BuildError as e:
                        failures.append((model.name, e.message))
                        console.warn(e.message)
                        continue
                    record.registry, record.registry_image = registry, remote
            manifest.built_images[image] = record
            manifest.built_models[image] = model
            console.progress(f"built {image} in {duration:.1f} s")
    manifest.credentials_required = sorted({m.cred for m in models if m.cred})
    manifest.summary = manifest_mod.BuildSummary(
        successful_builds=[{"model": b.model, "docker_image": b.docker_image, "dockerfile": b.dockerfile,
                            "build_duration": b.build_duration} for b in manifest.built_images.values()],
        failed_builds=[{"model": name, "error": reason} for name, reason in failures],
        total_build_time=round(sum(b.build_duration for b in manifest.built_images.values()), 3),
        successful_pushes=[b.registry_image for b in manifest.built_images.values() if b.registry_image])
    written, previous = manifest_mod.save(manifest, manifest_output) if manifest.built_images else (None, None)
    if written:
        kept = f"; the previous manifest is kept as {previous}" if previous else ""
        console.progress(f"wrote {written} ({len(manifest.built_images)} image(s)){kept}")
    if failures:
        detail = "; ".join(f"{name}: {reason}" for name, reason in failures[:3])
        detail += f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""
        kept = "" if written else f" ({manifest_output} left unchanged)"
        error = BuildError(f"{len(failures)} build(s) failed{kept}: {detail}")
        error.manifest = manifest if written else None  # what did build, for a build-then-run workflow
        raise error
    return BuildOutcome(manifest, written, failures)


def _variants(hub: Path, model: Model, paths: Sequence[Path], archs: Sequence[str],
              failures: list[tuple[str, str]]) -> list[tuple[Path, str]]:
    """(Dockerfile, architecture) pairs to build: one per Dockerfile without ``archs`` (architecture ``""``), else
    one per architecture the Dockerfile's GPU-arch variables allow (the others go to ``failures``, with a warning)."""
    pairs = []
    for path in paths:
        for arch in archs or [""]:
            conflict = dockerfiles.arch_conflict(hub / path, arch) if arch else ""
            if conflict:
                failures.append((model.name, conflict))
                console.warn(conflict)
            else:
                pairs.append((path, arch))
    return pairs


def _dockerfiles_for(hub: Path, model: Model, match_ctx: Mapping[str, str]) -> list[Path]:
    """The model's Dockerfiles that match the context. ``gpu_vendor`` NONE (a GPU-less smoke test) falls back to the
    Dockerfiles of any vendor, with a notice, when none declares NONE: a hub whose Dockerfiles all say AMD can be
    smoke-tested on a CPU-only host."""
    found = dockerfiles.candidates(hub, model)
    paths = dockerfiles.filter_by_context(found, match_ctx, hub)
    if not paths and match_ctx.get("gpu_vendor") == "NONE":
        paths = dockerfiles.filter_by_context(found, {k: v for k, v in match_ctx.items() if k != "gpu_vendor"}, hub)
        if paths:
            console.progress(f"{model.name}: no Dockerfile declares gpu_vendor NONE; building "
                             f"{', '.join(map(str, paths))} for a run without GPUs")
    return paths


def _base_image(hub: Path, model: Model, match_ctx: Mapping[str, str], build_args: Mapping[str, str]) -> str:
    """``--use-image auto``: the base image the model's Dockerfile would build from (``docker_build_arg.BASE_DOCKER``,
    else its ``ARG BASE_DOCKER=`` default).

    Raises:
        ConfigError: no Dockerfile matches, or it names no base image.
    """
    paths = _dockerfiles_for(hub, model, match_ctx)
    base = build_args.get("BASE_DOCKER") or (dockerfiles.default_base_docker(hub / paths[0]) if paths else "")
    if not base:
        raise ConfigError(f"--use-image auto: model {model.name!r} has no Dockerfile with an 'ARG BASE_DOCKER=' "
                          "default (nor docker_build_arg.BASE_DOCKER); give the image: --use-image IMAGE")
    return base


def _prebuilt(client: Any, model: Model, ref: str) -> manifest_mod.BuiltImage:
    """The build record of ``model`` running in the existing image ``ref`` (``MAD_CONTAINER_IMAGE``): recorded as
    its ``registry_image`` (a run uses it as it is, pulling it only when this engine does not have it).

    Raises:
        ConfigError: ``ref`` is not an image reference.
    """
    from madengine import docker_images

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*", ref):
        raise ConfigError(f"context key 'MAD_CONTAINER_IMAGE': {ref!r} is not an image reference (e.g. "
                          "rocm/pytorch:latest)")
    image = dockerfiles.image_name(model.name, ref.rsplit("/", 1)[-1].replace(":", "-").replace("@", "-"))
    image_id = docker_images.image_id(client, ref) if docker_images.image_exists(client, ref) else ""
    return manifest_mod.BuiltImage(model=model.name, docker_image=image, dockerfile="", base_docker=ref,
                                   image_id=image_id, registry_image=ref, log_base=image.removeprefix("ci-"),
                                   execution={"timeout": model.timeout, "n_gpus": model.n_gpus, "args": model.args})


def check_registry(registry: str) -> None:
    """Check a ``--registry`` value before building: ``host[:port][/path]`` in lower case, no scheme.

    Raises:
        ConfigError: names the value and the expected form.
    """
    if not _REGISTRY.match(registry):
        raise ConfigError(f"--registry: {registry!r} is not a registry address; use host[:port][/project] in lower "
                          "case, e.g. localhost:5000")
