"""Images on the Docker engine: look up, build, push, pull (docker-py, imported lazily; the client comes from
:func:`madengine.docker_engine.connect`). Engine failures become :class:`~madengine.errors.EngineError` naming the
engine address; a failed build is a :class:`~madengine.errors.BuildError` with the engine's error line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from madengine.docker_engine import engine_address
from madengine.errors import BuildError, EngineError

if TYPE_CHECKING:  # pragma: no cover
    import docker


def image_exists(client: docker.DockerClient, ref: str) -> bool:
    """True when the engine has an image with this reference."""
    import docker.errors

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def image_id(client: docker.DockerClient, ref: str) -> str:
    """The id (``sha256:...``) of the image ``ref`` on this engine.

    Raises:
        EngineError: no such image.
    """
    import docker.errors

    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        raise EngineError(f"image {ref} is not on the engine at {engine_address()}") from None


def build_image(client: docker.DockerClient, *, context_dir: Path, dockerfile: Path, tag: str,
                build_args: dict[str, str], no_cache: bool, log: Callable[[str], None]) -> str:
    """Build ``dockerfile`` (a path inside or outside ``context_dir``) as ``tag``, streaming the output to ``log``.

    Returns:
        The image id (``sha256:...``).

    Raises:
        BuildError: the build failed (the engine's error line; the full output went to ``log``).
        EngineError: the engine failed otherwise.
    """
    import docker.errors

    image_id = ""
    try:
        stream = client.api.build(path=str(context_dir), dockerfile=str(dockerfile.resolve()), tag=tag,
                                  buildargs=build_args, nocache=no_cache, rm=True, forcerm=True, decode=True,
                                  pull=False)
        for chunk in stream:
            if "stream" in chunk:
                log(chunk["stream"])
            elif "error" in chunk:
                message = str(chunk["error"]).strip()
                log(message + "\n")
                raise BuildError(f"docker build of {tag} failed: {message.splitlines()[-1] if message else '?'}")
            elif "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
    except docker.errors.APIError as e:
        log(f"{e}\n")
        raise BuildError(f"docker build of {tag} failed: {e.explanation or e}") from None
    if not image_id:
        image_id = client.images.get(tag).id
    return image_id


def push_image(client: docker.DockerClient, local: str, remote: str, log: Callable[[str], None]) -> None:
    """Tag ``local`` as ``remote`` (``registry/name[:tag]``) and push it.

    Raises:
        BuildError: the push failed (the registry's message).
    """
    import docker.errors

    repository, _, tag = remote.rpartition(":") if ":" in remote.rsplit("/", 1)[-1] else (remote, "", "latest")
    try:
        client.images.get(local).tag(repository, tag or "latest")
        for chunk in client.api.push(repository, tag=tag or "latest", stream=True, decode=True):
            if "error" in chunk:
                raise BuildError(f"docker push of {remote} failed: {chunk['error']}")
            if "status" in chunk and "id" not in chunk:
                log(f"{chunk['status']}\n")
    except docker.errors.APIError as e:
        raise BuildError(f"docker push of {remote} failed: {e.explanation or e}") from None


def pull_image(client: docker.DockerClient, ref: str) -> None:
    """Pull ``ref`` from its registry.

    Raises:
        EngineError: the pull failed (the registry's message and the reference).
    """
    import docker.errors

    try:
        client.images.pull(ref)
    except docker.errors.APIError as e:
        raise EngineError(f"cannot pull image {ref}: {e.explanation or e}") from None


def save_image(client: docker.DockerClient, ref: str, path: Path) -> None:
    """``docker save`` the image ``ref`` to the tar archive ``path`` (written atomically; an archive already there
    is kept).

    Raises:
        EngineError: the engine has no such image or the archive cannot be written.
    """
    import docker.errors

    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "wb") as fh:
            for chunk in client.api.get_image(ref):  # by name: the archive carries this tag (not another one)
                fh.write(chunk)
        tmp.replace(path)
    except docker.errors.NotFound:
        tmp.unlink(missing_ok=True)
        raise EngineError(f"image {ref} is not on the engine at {engine_address()}; build it first") from None
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise EngineError(f"cannot write the image archive {path}: {e.strerror or e}") from None


def load_image(client: docker.DockerClient, path: Path) -> None:
    """``docker load`` the tar archive ``path`` into the engine.

    Raises:
        EngineError: the archive is missing or the engine refused it.
    """
    import docker.errors

    try:
        with open(path, "rb") as fh:
            client.images.load(fh)
    except OSError as e:
        raise EngineError(f"cannot read the image archive {path}: {e.strerror or e}") from None
    except docker.errors.APIError as e:
        raise EngineError(f"the engine at {engine_address()} refused the image archive {path}: "
                          f"{e.explanation or e}") from None
