"""User-given Kubernetes fields (``k8s.tolerations``, ``k8s.affinity``, ``k8s.security_context``) turned into the
official client's model objects, every key checked against the client's own field list, so that a typo is a one-line
error with "did you mean" rather than a field the API server silently drops."""

from __future__ import annotations

import difflib
import re
from typing import Any

from madengine.deploy.k8s import client
from madengine.errors import ConfigError


def model_from_dict(klass: str, data: Any, where: str) -> Any:
    """A client model object from a manifest-style dict (camelCase keys, as in YAML), every key checked.

    Raises:
        ConfigError: an unknown key (with the closest one) or a value the client refuses, naming ``where.key``.
    """
    _check(klass, data, where)
    try:
        return client.deserialize(data, klass)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"context key {where!r}: {' '.join(str(e).split())}") from None


def _check(typ: str, value: Any, where: str) -> None:
    if typ.startswith("list["):
        if not isinstance(value, list):
            raise ConfigError(f"context key {where!r}: expected a list")
        for i, item in enumerate(value):
            _check(typ[5:-1], item, f"{where}[{i}]")
    elif typ.startswith("dict("):
        if not isinstance(value, dict):
            raise ConfigError(f"context key {where!r}: expected an object")
        inner = typ[5:-1].split(", ", 1)[1]
        for k, v in value.items():
            _check(inner, v, f"{where}.{k}")
    elif re.match(r"^V\d", typ) and hasattr(client.models(), typ):
        if not isinstance(value, dict):
            raise ConfigError(f"context key {where!r}: expected an object ({typ[2:] if typ[2:3].isupper() else typ})")
        fields = client.model_fields(typ)
        for key, item in value.items():
            if key not in fields:
                near = difflib.get_close_matches(str(key), list(fields), n=1)
                hint = f"; did you mean {near[0]!r}?" if near else f"; known: {', '.join(sorted(fields))}"
                raise ConfigError(f"context key '{where}.{key}' is not a field of {typ}{hint}")
            _check(fields[key], item, f"{where}.{key}")
