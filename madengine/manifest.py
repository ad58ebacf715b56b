"""``build_manifest.json``: what was built, and the configuration to deploy it with.

Keys are madengine v2's (``execution/docker_builder.py`` ``export_build_manifest``): ``built_images`` (image name →
build record), ``built_models`` (image name → the models.json entry), ``context`` (docker_env_vars, docker_mounts,
docker_build_arg, gpu_vendor, docker_gpus, tools, pre/post scripts, ...), ``credentials_required`` and ``registry``.
madengine adds ``schema_version``, ``deployment_config`` (deploy target plus its slurm/k8s/distributed/... sections)
and, in each build record, ``execution`` (the model's resolved run settings). A v1 manifest without the added keys
still loads, as a local deployment.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from madengine.errors import ConfigError
from madengine.hub import Model
from madengine.validation import first_error

SCHEMA_VERSION = "2.0"


class BuiltImage(BaseModel):
    """One ``built_images`` record. Durations are seconds."""

    model_config = ConfigDict(extra="allow")
    model: str
    docker_image: str
    dockerfile: str
    base_docker: str = ""
    docker_sha: str = ""
    build_duration: float = 0.0
    log_file: str = ""
    log_base: str = ""
    gpu_vendor: str = ""
    image_id: str = ""
    registry: str = ""
    registry_image: str = ""
    image_archive: str = ""
    gpu_architecture: str = ""  # built for this GPU architecture only (--target-archs); "" = any  # a `docker save` tar a node loads when its engine lacks the image (Slurm, no registry)
    build_fingerprint: str = ""  # SHA-256 of the Dockerfile, build args and build-relevant context (provenance)
    execution: dict[str, Any] = Field(default_factory=dict)


class BuildSummary(BaseModel):
    """madengine v2's ``summary`` of a build: what built (``model``, ``docker_image``, ``dockerfile``,
    ``build_duration`` in seconds), what failed (``model``, ``error``), the total build time (seconds) and the pushed
    registry images. A manifest without one (older files) loads with it empty."""

    model_config = ConfigDict(extra="allow")
    successful_builds: list[dict[str, Any]] = Field(default_factory=list)
    failed_builds: list[dict[str, Any]] = Field(default_factory=list)
    total_build_time: float = 0.0
    successful_pushes: list[str] = Field(default_factory=list)
    failed_pushes: list[dict[str, Any]] = Field(default_factory=list)


class Manifest(BaseModel):
    """The whole build manifest. ``built_images`` and ``built_models`` share their keys (image names); a
    ``built_models`` entry is the typed models.json record (:class:`madengine.hub.Model`) the image was built for."""

    model_config = ConfigDict(extra="allow")
    schema_version: str = SCHEMA_VERSION
    built_images: dict[str, BuiltImage] = Field(default_factory=dict)
    built_models: dict[str, Model] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    credentials_required: list[str] = Field(default_factory=list)
    registry: str = ""
    deployment_config: dict[str, Any] = Field(default_factory=lambda: {"deploy": "local"})
    hub: str = ""
    summary: BuildSummary = Field(default_factory=BuildSummary)

    def model_for(self, image: str) -> Model:
        """The model record ``image`` was built for; a manifest without ``built_models`` (madengine v1) gives a
        record with the build record's model name and every other field at its models.json default."""
        return self.built_models.get(image) or Model(name=self.built_images[image].model)

    def stored_context(self) -> dict[str, Any]:
        """The context the build recorded, with the deployment config folded in (the base a run starts from)."""
        merged = dict(self.context)
        merged.update({k: v for k, v in self.deployment_config.items() if not (k == "deploy" and v == "local")})
        return merged


def select(manifest: Manifest, tags: Sequence[str], exclude_tags: Sequence[str] = ()) -> Manifest:
    """The part of ``manifest`` that ``tags`` select among its built models (the ``--tags`` rules of
    :func:`madengine.hub.select`, deprecated models included since they were built; ``model:key=value`` sets the
    run's args): every image of each selected model.

    Raises:
        ConfigError: a tag that matches no built model (naming the closest), or one model selected with two
            different args (a manifest runs each image once: run twice instead).
    """
    from madengine import hub

    picked: dict[str, Model] = {}
    for model in hub.select([manifest.model_for(image) for image in manifest.built_images], tags, exclude_tags,
                            include_deprecated=True):
        if model.name in picked and picked[model.name].args != model.args:
            raise ConfigError(f"--tags selects built model {model.name!r} twice with different args; a manifest "
                              "runs each image once: run once per setting")
        picked[model.name] = model
    images = {image: built for image, built in manifest.built_images.items()
              if manifest.model_for(image).name in picked}
    models = {image: picked[manifest.model_for(image).name] for image in images}
    return manifest.model_copy(update={"built_images": images, "built_models": models})


def load(path: str | Path) -> Manifest:
    """Read a build manifest.

    Raises:
        ConfigError: the file is missing, not JSON, holds no built image, or a record lacks a required key (names the
            file and key).
    """
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--manifest-file: {p} does not exist; run `inv build` first or fix the path") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"--manifest-file: {p} is not valid JSON (line {e.lineno} column {e.colno}: {e.msg})") \
            from None
    except UnicodeDecodeError:
        raise ConfigError(f"--manifest-file: {p} is not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"--manifest-file: cannot read {p}: {e.strerror}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"--manifest-file: {p} must hold a JSON object")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as e:
        field, message, _ = first_error(e)
        raise ConfigError(f"--manifest-file: {p}: key {field!r}: {message}") from None
    if not manifest.built_images:
        raise ConfigError(f"--manifest-file: {p} lists no built images (key 'built_images'); nothing to run — "
                          "check the path or run `inv build`")
    return manifest


def check_writable(path: str | Path) -> Path:
    """Check, before any build, that a manifest can be written at ``path``.

    Raises:
        ConfigError: the path is a directory or an existing perf.csv, or its directory cannot be created.
    """
    from madengine.safe_write import check_target

    p = check_target(path, flag="--manifest-output")
    if p.is_dir():
        raise ConfigError(f"--manifest-output: {p} is a directory; give a file name such as {p}/build_manifest.json")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--manifest-output: cannot create {p.parent}: {e.strerror}") from None
    return p


def save(manifest: Manifest, path: str | Path) -> tuple[Path, Path | None]:
    """Write the manifest atomically (temporary file in the same directory, then rename): a crash never leaves a
    half-written manifest. An existing manifest with other content is kept as ``<name>.prev`` first.

    Returns:
        (the manifest's path, the path of the kept previous manifest or ``None``).

    Raises:
        ConfigError: the path is a directory or not writable (names it).
    """
    p = check_writable(path)
    text = json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n"
    previous = None
    try:
        if p.is_file() and p.read_text(encoding="utf-8", errors="replace") != text:
            previous = p.with_name(p.name + ".prev")
            os.replace(p, previous)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    except OSError as e:
        raise ConfigError(f"--manifest-output: cannot write in {p.parent}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a manifest is as readable as any file the user writes
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p, previous
