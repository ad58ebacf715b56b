"""Credentials: ``credential.json`` in the hub, overridden by same-named environment variables, and masking.

Format (madengine's ``core/constants.py``): a JSON object whose top-level keys name credential blocks, e.g.
``{"NAS_NODES": [{"NAME": ..., "HOST": ..., "PORT": ..., "USERNAME": ..., "PASSWORD": ...}],
"MAD_AWS_S3": {"USERNAME": ..., "PASSWORD": ...}, "my_repo_cred": {"username": ..., "password": ...}}``. An
environment variable with the same name as a block (e.g. ``NAS_NODES``) holding JSON replaces that block.

A model's ``cred`` field names a block; its keys reach the build as build args ``<CRED>_<KEY>`` (madengine v1) and
the container as environment variables of the same names. Secrets are never written to the manifest or perf.csv,
and every log line madengine writes passes through a :class:`Masker`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from madengine.errors import ConfigError
from madengine.validation import optional_json_object

#: Blocks that madengine itself reads (others are free-form, named by models' ``cred`` fields).
KNOWN_BLOCKS = ("NAS_NODES", "MAD_AWS_S3", "MAD_MINIO", "PUBLIC_GITHUB_ROCM_KEY", "dockerhub")
MASK = "******"
MIN_SECRET_LEN = 4  # shorter values (e.g. "22", "root") are too common to mask without mangling logs


def load(hub: Path, filename: str = "credential.json") -> dict[str, Any]:
    """Read ``<hub>/credential.json`` (optional) and apply environment overrides.

    Raises:
        ConfigError: the file or an override variable is not valid JSON (names which).
    """
    creds = optional_json_object(hub / filename, "credential blocks")
    for name in set(creds) | set(KNOWN_BLOCKS):
        override = os.environ.get(name)
        if override:
            try:
                creds[name] = json.loads(override)
            except json.JSONDecodeError:
                raise ConfigError(f"environment variable {name}: must hold JSON (it overrides credential.json)") \
                    from None
    return creds


def model_env(creds: Mapping[str, Any], cred_name: str, model: str) -> dict[str, str]:
    """The ``<CRED>_<KEY>`` variables of a model's ``cred`` block (uppercased keys).

    Raises:
        ConfigError: the model names a block that credential.json does not have.
    """
    if not cred_name:
        return {}
    block = creds.get(cred_name)
    if not isinstance(block, Mapping):
        raise ConfigError(f"model {model!r}: credential {cred_name!r} (models.json field 'cred') is not in "
                          "credential.json nor in the environment; add it there")
    return {f"{cred_name}_{str(k).upper()}": str(v) for k, v in block.items()}


#: Credential keys whose values are identifiers, not secrets (compared lower-case, exact names only: ``PORTAL_TOKEN``
#: or ``USER_TOKEN`` are secrets). Every other value is masked in logs, numbers included.
PUBLIC_KEYS = frozenset({"name", "host", "hostname", "port", "user", "username", "endpoint", "url", "repository",
                         "region", "bucket"})


def secret_values(creds: Any) -> set[str]:
    """Every leaf value of the credentials (strings and numbers, as text) except those under a :data:`PUBLIC_KEYS`
    key: passwords, tokens, keys. Values shorter than :data:`MIN_SECRET_LEN` are not masked (they would mangle
    ordinary log text)."""
    found: set[str] = set()

    def walk(value: Any, key: str) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, str(k).lower())
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif key not in PUBLIC_KEYS and not isinstance(value, bool) and isinstance(value, (str, int, float)):
            text = str(value)
            if len(text) >= MIN_SECRET_LEN:
                found.add(text)
            # a multi-line secret (a PEM key) is printed line by line: each of its lines is masked on its own
            found.update(line.strip() for line in text.splitlines()
                         if "\n" in text and len(line.strip()) >= MIN_SECRET_LEN)

    walk(creds, "")
    return found


class Masker:
    """Replaces secret values in text and bytes with ``******``.

    ``feed()`` is for streamed output: it holds back an incomplete last line so that a secret split across two
    chunks is still masked; ``flush()`` returns the rest. A line longer than :attr:`LONG_LINE` bytes (a progress bar
    redrawn with carriage returns) is passed on in pieces, each cut where no secret can straddle it.
    """

    LONG_LINE = 65536  # bytes

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._encoded = [s.encode() for s in self._secrets]
        self._pending = b""

    def __bool__(self) -> bool:
        return bool(self._secrets)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The masked values (longest first), e.g. to make a second masker for another stream."""
        return tuple(self._secrets)

    def text(self, value: str) -> str:
        """``value`` with every secret replaced."""
        for secret in self._secrets:
            value = value.replace(secret, MASK)
        return value

    def data(self, value: bytes) -> bytes:
        """``value`` (bytes) with every secret replaced."""
        for secret in self._encoded:
            value = value.replace(secret, MASK.encode())
        return value

    def feed(self, chunk: bytes) -> bytes:
        """Masked complete lines of the stream so far (the incomplete tail is kept for the next call)."""
        if not self._encoded:
            return chunk
        data = self._pending + chunk
        cut = data.rfind(b"\n") + 1
        if len(data) - cut > self.LONG_LINE:
            cut = self._safe_cut(data, len(data) - len(self._encoded[0]) + 1)
        self._pending = data[cut:]
        return self.data(data[:cut])

    def _safe_cut(self, data: bytes, cut: int) -> int:
        """The largest offset <= ``cut`` that no occurrence of a secret in ``data`` spans (a secret that may
        continue in the next chunk starts after ``cut``, which keeps the longest secret's length minus one)."""
        moved = True
        while moved:
            moved = False
            for secret in self._encoded:
                start = data.find(secret, max(0, cut - len(secret) + 1))
                while 0 <= start < cut:
                    if start + len(secret) > cut:
                        cut, moved = start, True
                        break
                    start = data.find(secret, start + 1)
        return cut

    def flush(self) -> bytes:
        """The masked remainder of the stream."""
        rest, self._pending = self._pending, b""
        return self.data(rest)
