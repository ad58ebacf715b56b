"""Kubernetes object names and label values madengine derives from model names and run ids.

Rules (Kubernetes "Object Names and IDs"): a DNS-1123 label is at most 63 characters of ``[a-z0-9-]``, starting and
ending with an alphanumeric character; a label *value* is at most 63 characters of ``[A-Za-z0-9._-]``, starting and
ending with an alphanumeric character (or empty). Names longer than the limit are cut and given a stable 8-hex-digit
suffix (the first 8 hex digits of the SHA-256 of the untruncated text), so two long names that share a prefix stay
distinct and the same input always gives the same name.
"""

from __future__ import annotations

import hashlib
import re

#: Longest DNS-1123 label (Services, namespaces, label values).
MAX_LABEL = 63
#: Longest Job name madengine makes: a Job's pods get ``<job>-<5 random chars>`` names, and an Indexed Job's pods
#: the hostname ``<job>-<index>``, which must itself be a DNS-1123 label (63); 52 leaves room for both.
MAX_JOB_NAME = 52

_DNS_INVALID = re.compile(r"[^a-z0-9-]+")
_LABEL_INVALID = re.compile(r"[^A-Za-z0-9._-]+")
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def dns_label(text: str, max_len: int = MAX_LABEL) -> str:
    """``text`` as a DNS-1123 label of at most ``max_len`` characters.

    Lower-cased; ``_``, ``/``, ``.`` and every other character outside ``[a-z0-9-]`` become ``-`` (runs collapse to
    one); leading and trailing ``-`` are dropped. When the result is longer than ``max_len``, or had to be changed
    so much that it is empty, it is cut to ``max_len - 9`` characters plus ``-`` and the 8-hex-digit hash of
    ``text``. Examples: ``"pyt_huggingface_bert"`` → ``"pyt-huggingface-bert"``; ``"dummy3/Dummy_A"`` →
    ``"dummy3-dummy-a"``.
    """
    if max_len < 10:
        raise ValueError("max_len must be at least 10")
    name = _DNS_INVALID.sub("-", text.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if name and len(name) <= max_len:
        return name
    return f"{name[: max_len - 9].rstrip('-')}-{_digest(text)}".lstrip("-") or _digest(text)


def label_value(text: str) -> str:
    """``text`` as a label value: invalid characters become ``-``, cut to 63 with the stable hash suffix."""
    value = _LABEL_INVALID.sub("-", text).strip("-_.")
    if len(value) <= MAX_LABEL and LABEL_VALUE_RE.match(value):
        return value
    return f"{value[: MAX_LABEL - 9].rstrip('-_.')}-{_digest(text)}".lstrip("-_.")


def job_name(model: str, run_id: str) -> str:
    """The Job of one model in one run: ``mad-<model>-<run id>``, a DNS-1123 label of at most 52 characters.

    The run id (hex, unique per ``run.k8s`` invocation) is kept whole when the model name is cut, so a re-run never
    collides with an earlier Job (no 409) and names stay readable. ``run_id`` must be at most 20 characters.
    """
    run = dns_label(run_id, 20)
    return f"mad-{dns_label(model, MAX_JOB_NAME - len('mad--') - len(run))}-{run}"


def is_dns_label(name: str, max_len: int = MAX_LABEL) -> bool:
    """True when ``name`` is a valid DNS-1123 label of at most ``max_len`` characters."""
    return len(name) <= max_len and bool(DNS_LABEL_RE.match(name))
