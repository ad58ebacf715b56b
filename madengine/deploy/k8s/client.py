"""The only module that imports the official ``kubernetes`` Python client (lazily: ``pip install
'madengine[kubernetes]'``).

It loads the configuration (``--kubeconfig``/``--context``, else in-cluster, else the default kubeconfig), makes every
API call through :func:`call` (transient failures are retried with exponential backoff and never taken as success;
the API's own refusals become one-line :class:`~madengine.errors.MadEngineError` s naming the object and the API's
message), and wraps the API's watch (:func:`watch`). Other modules get model classes through :func:`models`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from madengine.errors import ConfigError, MadEngineError

#: HTTP statuses worth a retry: throttled or a server-side hiccup. Everything else 4xx is the caller's mistake.
RETRYABLE_STATUS = frozenset({0, 408, 429, 500, 502, 503, 504})
#: Seconds between attempts of a retried call (so at most 5 attempts, ~7.5 s of waiting).
BACKOFF = (0.5, 1.0, 2.0, 4.0)
#: (connect, read) timeout of a single non-watch request, seconds.
REQUEST_TIMEOUT = (10, 60)

INSTALL_HINT = "pip install 'madengine[kubernetes]' (or pip install 'kubernetes>=28,<38')"


class K8sError(MadEngineError):
    """The Kubernetes API is unreachable or refused a request for a reason other than an invalid object (exit 1).

    ``status`` is the HTTP status (0: no answer), when there was one.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def require() -> Any:
    """The imported ``kubernetes`` package.

    Raises:
        ConfigError: the package is not installed (names the pip command).
    """
    try:
        import kubernetes
    except ImportError:
        raise ConfigError(f"the k8s target needs the Python package 'kubernetes'; install it: {INSTALL_HINT}") \
            from None
    return kubernetes


def models() -> Any:
    """``kubernetes.client``: the model classes (``V1Job``, ``V1Pod``, ...) and the API classes."""
    return require().client


@dataclass
class Api:
    """A connected client: the low-level ``api_client`` plus the typed APIs madengine uses.

    ``where`` describes the cluster for messages (server URL and kubeconfig context, or ``in-cluster``).
    """

    api_client: Any
    core: Any
    batch: Any
    where: str

    def close(self) -> None:
        """Release the connection pool (the client otherwise keeps a thread pool alive)."""
        with contextlib.suppress(Exception):  # best effort at exit
            self.api_client.close()


def connect(kubeconfig: str | None = None, context: str | None = None) -> Api:
    """A client configured from ``kubeconfig``/``context`` when given, else in-cluster (a pod's service account),
    else the default kubeconfig (``$KUBECONFIG`` or ``~/.kube/config``). Nothing is sent to the cluster yet.

    Raises:
        ConfigError: the package is missing, or no usable configuration was found (names the file/context).
    """
    k8s = require()
    import yaml
    from kubernetes.config.config_exception import ConfigException

    cfg = k8s.client.Configuration()
    try:
        if kubeconfig and not os.path.isfile(kubeconfig):
            raise ConfigError(f"--kubeconfig: {kubeconfig} does not exist; give the path of a kubeconfig file")
        if kubeconfig or context:
            k8s.config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
            where = f"{cfg.host} (kubeconfig {kubeconfig or 'default'}{', context ' + context if context else ''})"
        else:
            try:
                k8s.config.load_incluster_config(client_configuration=cfg)
                where = f"{cfg.host} (in-cluster)"
            except ConfigException:
                k8s.config.load_kube_config(client_configuration=cfg)
                where = f"{cfg.host} (default kubeconfig)"
    except (ConfigException, OSError, ValueError, TypeError, yaml.YAMLError) as e:  # YAMLError: not YAML at all
        src = f"--kubeconfig {kubeconfig}" if kubeconfig else "the default kubeconfig ($KUBECONFIG, ~/.kube/config)"
        ctx = f" context {context!r}" if context else ""
        raise ConfigError(f"k8s: cannot load {src}{ctx}: {_one_line(str(e))}; pass --kubeconfig PATH "
                          "[--context NAME]") from None
    cfg.retries = False  # madengine retries itself (call), with backoff and a clear message
    api_client = k8s.client.ApiClient(cfg)
    return Api(api_client=api_client, core=k8s.client.CoreV1Api(api_client),
               batch=k8s.client.BatchV1Api(api_client), where=where)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def api_message(exc: Any) -> str:
    """The API's own one-line message from an ``ApiException`` (the Status body's ``message``), else its reason."""
    body = getattr(exc, "body", None)
    if body:
        try:
            data = json.loads(body)
            if isinstance(data, dict) and data.get("message"):
                return _one_line(str(data["message"]))
        except (ValueError, TypeError):
            pass
    return _one_line(str(getattr(exc, "reason", "") or exc))


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an ``ApiException`` (0 for a connection failure), or None for another exception."""
    k8s = require()
    if isinstance(exc, k8s.client.exceptions.ApiException):
        return int(exc.status or 0)
    return None


def _transport_error(exc: BaseException) -> bool:
    import urllib3

    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def call(what: str, fn: Callable[..., Any], *args: Any, ok_statuses: tuple[int, ...] = (),
         sleep: Callable[[float], None] = time.sleep, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with retries: throttling, 5xx and connection failures are retried after
    :data:`BACKOFF` seconds; anything else fails at once.

    Args:
        what: the operation and object for messages, e.g. ``"create Job default/mad-dummy-1a2b"``.
        ok_statuses: HTTP statuses returned as ``None`` instead of raised (e.g. ``(404,)`` when deleting).

    Raises:
        ConfigError: 422 (the API found a field invalid: its message names the field) or 400.
        K8sError: 401/403 (credentials), 404, 409 and every other refusal, and a failure that persisted through
            all retries (unreachable cluster).
    """
    k8s = require()
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    attempt = 0
    while True:
        try:
            return fn(*args, **kwargs)
        except k8s.client.exceptions.ApiException as e:
            status = int(e.status or 0)
            if status in ok_statuses:
                return None
            if status in RETRYABLE_STATUS and attempt < len(BACKOFF):
                sleep(BACKOFF[attempt])
                attempt += 1
                continue
            raise _api_error(what, status, api_message(e), attempt) from None
        except Exception as e:  # noqa: BLE001 - urllib3/socket errors: retried, then one line
            if not _transport_error(e):
                raise
            if attempt < len(BACKOFF):
                sleep(BACKOFF[attempt])
                attempt += 1
                continue
            raise K8sError(f"{what}: Kubernetes API unreachable after {attempt + 1} attempts: "
                           f"{_one_line(str(e))[:300]}; check --kubeconfig/--context and that the cluster is up",
                           status=0) from None


def _api_error(what: str, status: int, message: str, attempt: int) -> MadEngineError:
    if status in (400, 422):
        return ConfigError(f"{what}: rejected by the API (HTTP {status}): {message}")
    if status in (401, 403):
        return K8sError(f"{what}: HTTP {status}: {message}; check the credentials of --kubeconfig/--context",
                        status=status)
    if status == 0 or status in RETRYABLE_STATUS:
        return K8sError(f"{what}: HTTP {status} after {attempt + 1} attempts: {message}", status=status)
    return K8sError(f"{what}: HTTP {status}: {message}", status=status)


def watch(what: str, list_fn: Callable[..., Any], *args: Any, resource_version: str | None,
          timeout_seconds: int, **kwargs: Any) -> Iterator[tuple[str, Any, str]]:
    """One watch request on ``list_fn`` (e.g. ``core.list_namespaced_pod``) from ``resource_version``.

    Yields ``(event type, object, resource version)`` until the server ends the watch (after ``timeout_seconds``).
    A watch that cannot be opened is retried as :func:`call` does; an expired resource version raises
    :class:`K8sError` with ``status`` 410 (callers re-list and watch again); a lost connection one with status 0.
    """
    k8s = require()
    w = k8s.watch.Watch()
    try:
        stream = w.stream(list_fn, *args, resource_version=resource_version, timeout_seconds=timeout_seconds,
                          allow_watch_bookmarks=False, _request_timeout=(10, timeout_seconds + 30), **kwargs)
        for event in stream:
            obj = event["object"]
            rv = (event.get("raw_object") or {}).get("metadata", {}).get("resourceVersion", "")
            yield event["type"], obj, rv
    except k8s.client.exceptions.ApiException as e:
        raise K8sError(f"{what}: watch failed: HTTP {e.status}: {api_message(e)}", status=int(e.status or 0)) \
            from None
    except Exception as e:  # noqa: BLE001
        if not _transport_error(e):
            raise
        raise K8sError(f"{what}: watch connection lost: {_one_line(str(e))[:300]}", status=0) from None
    finally:
        w.stop()


def serialize(obj: Any) -> Any:
    """A model object (or list of them) as the plain JSON-compatible dict the API receives (camelCase keys,
    ``None`` fields dropped): ``ApiClient.sanitize_for_serialization``."""
    return models().ApiClient().sanitize_for_serialization(obj)


def deserialize(data: Any, klass: str) -> Any:
    """A plain dict as the client's model class ``klass`` (e.g. ``"V1Toleration"``); unknown keys are ignored by
    the client, so callers check keys first (see :func:`model_fields`)."""
    import inspect

    api_client = models().ApiClient()
    if "content_type" in inspect.signature(api_client.deserialize).parameters:  # client >= 37
        return api_client.deserialize(json.dumps(data), klass, "application/json")

    class _Response:  # client < 37: deserialize(response, type) reads response.data
        def __init__(self, payload: Any) -> None:
            self.data = json.dumps(payload)

    return api_client.deserialize(_Response(data), klass)


def model_fields(klass: str) -> dict[str, str]:
    """The JSON field names of model class ``klass`` → their type names (from the class's ``attribute_map`` and
    ``openapi_types``), e.g. ``model_fields("V1Toleration")["tolerationSeconds"] == "int"``."""
    cls = getattr(models(), klass)
    return {cls.attribute_map[attr]: typ for attr, typ in cls.openapi_types.items()}


def server_version(api: Api) -> str:
    """The API server's version (``v1.20.2``): the reachability check before anything is created.

    Raises:
        K8sError: the cluster does not answer (after retries) or refuses the credentials.
    """
    info = call(f"reach the Kubernetes API at {api.where}", models().VersionApi(api.api_client).get_code)
    return str(info.git_version)
