"""The one module that speaks to the Docker engine (docker-py), imported lazily so that ``--help`` stays fast.

The engine is found as docker-py finds it: ``DOCKER_HOST`` (and ``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``), else the
local socket ``/var/run/docker.sock``. Every engine failure becomes an :class:`~madengine.errors.EngineError` with the
engine address and the fix.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from madengine import owner
from madengine.errors import EngineError

if TYPE_CHECKING:  # pragma: no cover
    import docker
    from docker.models.containers import Container

#: Label on every container madengine starts; its value is the run id (for cleanup and ``docker ps`` filters).
RUN_LABEL = "org.madengine.run-id"


def container_name(wanted: str) -> str:
    """``wanted`` as a name Docker accepts (``[a-zA-Z0-9][a-zA-Z0-9_.-]*``): other characters (a ``+`` in a model
    name) become ``_``."""
    name = re.sub(r"[^a-zA-Z0-9_.-]", "_", wanted)
    return name if name[:1].isalnum() else f"c{name}"


def engine_address() -> str:
    """The engine address docker-py will use (for messages)."""
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def _import_docker() -> None:
    """Import docker-py, lazily (it is heavy). docker-py imports paramiko (~50 ms) at import time for ``ssh://``
    engines and does without it when it is missing (its documented optional dependency), so paramiko is hidden
    from that first import unless ``DOCKER_HOST`` is ``ssh://``; later imports of paramiko (Fabric) are unaffected.
    """
    if "docker" in sys.modules or "paramiko" in sys.modules or engine_address().startswith("ssh://"):
        import docker  # noqa: F401
        return
    sys.modules["paramiko"] = None  # type: ignore[assignment]  # `import paramiko` raises ImportError meanwhile
    try:
        import docker  # noqa: F401,F811
    finally:
        del sys.modules["paramiko"]


def connect(timeout: float = 120.0) -> docker.DockerClient:
    """Return a client for the engine after a ping.

    Args:
        timeout: seconds each API call may take.

    Raises:
        EngineError: the engine is unreachable (names the address and how to start one).
    """
    _import_docker()
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException as e:
        reason = str(e).split("\n")[0]
        raise EngineError(
            f"cannot reach the Docker engine at {engine_address()} ({reason}); start one with "
            "`bash dev/engine.sh up` (as root) or set DOCKER_HOST") from None
    return client


def is_engine_failure(error: BaseException) -> bool:
    """True for a failure to talk to the engine (connection refused or dropped, a docker-py error)."""
    requests_exc = sys.modules.get("requests.exceptions")
    docker_errors = sys.modules.get("docker.errors")
    return bool((requests_exc and isinstance(error, requests_exc.RequestException))
                or (docker_errors and isinstance(error, docker_errors.DockerException)))


def engine_lost(error: BaseException) -> EngineError:
    """The one-line error for an engine that went away mid-run or mid-build (names the address and the fix)."""
    reason = " ".join(str(error).split())
    reason = reason.rsplit(": ", 1)[-1][:120] if reason else type(error).__name__
    return EngineError(f"lost the Docker engine at {engine_address()} ({reason}); check that it runs (`docker "
                       "info`); containers this run left are removed by `madengine clean` once it is back")


def reachable(client: docker.DockerClient) -> bool:
    """Whether the engine answers a ping now."""
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


@dataclass
class ContainerSpec:
    """What a benchmark container gets. Paths are host paths; ``mounts`` maps host path → (container path, mode)."""

    image: str
    name: str
    labels: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    mounts: dict[str, tuple[str, str]] = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)
    group_add: list[str] = field(default_factory=list)
    nvidia_device_ids: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def create_container(client: docker.DockerClient, spec: ContainerSpec, command: list[str] | None = None, *,
                     workdir: str | None = None) -> Container:
    """Create (not start) a container for ``spec`` whose main process is ``command`` (the image's entrypoint is
    replaced); ``None`` makes an idle container (``tail -f /dev/null``) to execute steps in.

    Raises:
        EngineError: a container of that name exists (names the fix) or the engine refused.
    """
    import docker.errors
    from docker.types import DeviceRequest

    kwargs: dict[str, Any] = dict(spec.extra)
    if spec.nvidia_device_ids:
        kwargs["device_requests"] = [DeviceRequest(device_ids=spec.nvidia_device_ids, capabilities=[["gpu"]])]
    if spec.group_add:
        kwargs["group_add"] = spec.group_add
    if workdir:
        kwargs["working_dir"] = workdir
    command = command or ["tail", "-f", "/dev/null"]
    labels = {**spec.labels, owner.OWNER_LABEL: owner.current()}
    try:
        return client.containers.create(
            spec.image, entrypoint=command[:1], command=command[1:], name=spec.name, labels=labels,
            environment=spec.env,
            volumes={host: {"bind": path, "mode": mode} for host, (path, mode) in spec.mounts.items()},
            devices=[f"{d}:{d}:rwm" for d in spec.devices], **kwargs)
    except docker.errors.APIError as e:
        if e.status_code == 409:
            raise EngineError(f"a container named {spec.name} already exists (left by --keep-alive?); remove it "
                              f"with `docker rm -f {spec.name}`") from None
        raise EngineError(f"cannot create a container from {spec.image}: {e.explanation or e}") from None


def start_container(client: docker.DockerClient, spec: ContainerSpec) -> Container:
    """Create and start an idle container (``tail -f /dev/null``) in which steps are executed with :func:`exec_stream`.

    Raises:
        EngineError: as :func:`create_container`, or the engine could not start it.
    """
    container = create_container(client, spec)
    _start(container, spec.image)
    return container


def _start(container: Container, image: str) -> None:
    import docker.errors

    try:
        container.start()
    except docker.errors.APIError as e:
        raise EngineError(f"cannot start a container from {image}: {e.explanation or e}") from None


def run_attached(container: Container, image: str, *, on_output: Callable[[bytes], None],
                 timeout: float | None) -> ExecResult:
    """Start a created container and stream its main process's stdout+stderr chunks to ``on_output`` until it
    exits (attached before the start, so nothing is missed whatever the engine's log driver).

    Args:
        timeout: seconds; ``None`` means no limit. When exceeded, the container is killed and ``timed_out`` set.

    Raises:
        KeyboardInterrupt: passed through (the caller removes the container).
        EngineError: the engine refused the attach or the start (an image without ``bash``, for example).
    """
    import docker.errors

    try:
        stream: Iterator[bytes] = container.attach(stream=True, logs=True, stdout=True, stderr=True)
    except docker.errors.APIError as e:
        raise EngineError(f"cannot attach to container {container.name}: {e.explanation or e}") from None
    _start(container, image)
    return _pump(container, stream, on_output, timeout, lambda: _exit_code(container))


def _exit_code(container: Container) -> int | None:
    import docker.errors

    try:
        code: int | None = container.wait(timeout=60).get("StatusCode")
        return code
    except (docker.errors.APIError, OSError, ValueError):  # ValueError: docker-py's read timeout wrapper
        return None


@dataclass
class ExecResult:
    """Outcome of one command in the container: exit code (``None`` when it was cut off) and wall time (s)."""

    exit_code: int | None
    duration: float
    timed_out: bool = False


def exec_stream(client: docker.DockerClient, container: Container, command: list[str], *, workdir: str,
                env: dict[str, str], on_output: Callable[[bytes], None], timeout: float | None,
                on_timeout: Callable[[], object] | None = None, grace: float = 20.0) -> ExecResult:
    """Run ``command`` in the running container, streaming stdout+stderr chunks to ``on_output``.

    Args:
        timeout: seconds; ``None`` means no limit. When exceeded, ``on_timeout`` is called (it should stop the
            command's process group); if the output has not ended ``grace`` seconds later, the container is killed.
            Either way ``timed_out`` is set.

    Raises:
        KeyboardInterrupt: passed through (the caller removes the container).
        EngineError: the engine refused the exec.
    """
    import docker.errors

    try:
        exec_id = client.api.exec_create(container.id, command, workdir=workdir, environment=env,
                                         stdout=True, stderr=True, tty=False)["Id"]
        stream: Iterator[bytes] = client.api.exec_start(exec_id, stream=True, demux=False)
    except docker.errors.APIError as e:
        raise EngineError(f"cannot execute in container {container.name}: {e.explanation or e}") from None

    def exit_code() -> int | None:
        try:
            code: int | None = client.api.exec_inspect(exec_id).get("ExitCode")
            return code
        except docker.errors.APIError:
            return None

    return _pump(container, stream, on_output, timeout, exit_code, on_timeout, grace)


def _pump(container: Container, stream: Iterator[bytes], on_output: Callable[[bytes], None], timeout: float | None,
          exit_code: Callable[[], int | None], on_timeout: Callable[[], object] | None = None,
          grace: float = 20.0) -> ExecResult:
    """Feed ``stream`` to ``on_output`` in a reader thread until it ends or ``timeout`` seconds pass (then
    ``on_timeout``, and after ``grace`` seconds a kill of the container)."""
    start = time.monotonic()

    def pump() -> None:
        with contextlib.suppress(Exception):  # the connection drops when the container is killed
            for chunk in stream:
                on_output(chunk)

    reader = threading.Thread(target=pump, name=f"output-{container.name}", daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        elapsed = time.monotonic() - start
        if on_timeout is not None:
            on_timeout()
            reader.join(grace)
        if reader.is_alive():
            kill_container(container)
            reader.join(30)
        return ExecResult(None, elapsed, timed_out=True)
    return ExecResult(exit_code(), time.monotonic() - start)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Hold off SIGINT/SIGTERM/SIGHUP (in the main thread) while cleanup runs, so a second Ctrl-C cannot cut a container
    removal short; a signal that arrives meanwhile is delivered afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda s, f: pending.append(s)) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if pending:
            signal.raise_signal(pending[0])


def kill_container(container: Container) -> None:
    """Send SIGKILL to the container; a container that already stopped is fine."""
    import docker.errors

    with contextlib.suppress(docker.errors.APIError):
        container.kill()


def remove_container(container: Container) -> bool:
    """Force-remove the container (kills it first). Returns False when the engine refused (caller reports it)."""
    import docker.errors

    try:
        with shielded():
            container.remove(force=True)
        return True
    except docker.errors.NotFound:
        return True
    except Exception:  # noqa: BLE001 - refused, or the engine is gone: the caller reports the container
        return False


def remove_container_named(client: docker.DockerClient, name: str) -> bool:
    """Force-remove the container called ``name`` if it exists (cleanup after an interrupted start)."""
    import docker.errors

    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        return True
    except Exception:  # noqa: BLE001 - refused, or the engine is gone: the caller reports the container
        return False
    return remove_container(container)


def leftovers(client: docker.DockerClient, *, include_kept: bool = False) -> list[Container]:
    """Containers madengine started whose owner process (:mod:`madengine.owner`) is gone from this host: left by a
    run that was killed (SIGKILL, a crash) before it could remove them. Containers kept on purpose
    (``--keep-alive``) only with ``include_kept``; containers of other hosts' runs (a shared engine) never. Listed
    with one call (no per-container inspect, which would race with other users removing theirs)."""
    import docker.errors

    found = []
    for entry in client.api.containers(all=True, filters={"label": owner.OWNER_LABEL}):
        labels = entry.get("Labels") or {}
        if owner.alive(labels.get(owner.OWNER_LABEL, "")) is False and (
                include_kept or owner.KEEP_ALIVE_LABEL not in labels):
            try:
                found.append(client.containers.get(entry["Id"]))
            except docker.errors.NotFound:
                continue  # removed meanwhile
    return found
