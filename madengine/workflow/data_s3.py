"""The ``minio`` and ``aws`` data providers: download ``s3://bucket/prefix`` into a mirror directory on the node with
boto3 (imported only here: ``pip install 'madengine[s3]'``), as madengine v1/v2 do with their S3 clients.

Credentials come from ``credential.json`` (or the same-named environment variable): the ``MAD_MINIO`` block for
``minio`` (``USERNAME`` = access key, ``PASSWORD`` = secret key, ``MINIO_ENDPOINT`` = the server's URL) and
``MAD_AWS_S3`` for ``aws`` (``USERNAME``/``PASSWORD``, optional ``REGION`` and ``ENDPOINT``). A provider entry's
``endpoint`` wins over the block's. Objects already mirrored with the same size and ETag are not downloaded again
(a ``.<mirror name>.s3-index.json`` file beside the mirror directory records them), so a second run costs one
listing.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: credential.json block of each provider.
CREDENTIAL_BLOCKS = {"minio": "MAD_MINIO", "aws": "MAD_AWS_S3"}
INDEX_SUFFIX = ".s3-index.json"


class S3Error(Exception):
    """The download failed; the message names the provider, the location and the cause (no secret)."""


def _split(url: str, kind: str) -> tuple[str, str]:
    if not url.startswith("s3://") or len(url) <= 5:
        raise S3Error(f"{kind}: 'path' must be s3://BUCKET[/PREFIX], got {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    return bucket, prefix.strip("/")


def _client(kind: str, provider: Mapping[str, Any], creds: Mapping[str, Any]) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise S3Error(f"{kind}: the S3 client is not installed; pip install 'madengine[s3]'") from None
    block = creds.get(CREDENTIAL_BLOCKS[kind])
    if not isinstance(block, Mapping) or not block.get("USERNAME") or not block.get("PASSWORD"):
        raise S3Error(f"{kind}: credential.json has no {CREDENTIAL_BLOCKS[kind]} block with USERNAME and PASSWORD")
    endpoint = provider.get("endpoint") or block.get("MINIO_ENDPOINT" if kind == "minio" else "ENDPOINT")
    if kind == "minio" and not endpoint:
        raise S3Error("minio: no endpoint (MAD_MINIO.MINIO_ENDPOINT in credential.json, or 'endpoint' in data.json)")
    return boto3.client("s3", endpoint_url=str(endpoint) if endpoint else None,
                        aws_access_key_id=str(block["USERNAME"]), aws_secret_access_key=str(block["PASSWORD"]),
                        region_name=str(block.get("REGION") or "us-east-1"),
                        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10,
                                      read_timeout=300))


def download(kind: str, provider: Mapping[str, Any], creds: Mapping[str, Any], dest: Path) -> tuple[int, int]:
    """Mirror the provider's ``s3://bucket/prefix`` into ``dest``; returns (objects downloaded, objects kept).

    Raises:
        S3Error: bad path, missing credentials or client, an empty or unreachable location.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = _split(str(provider.get("path") or ""), kind)
    client = _client(kind, provider, creds)
    index_path = dest.parent / f".{dest.name}{INDEX_SUFFIX}"  # beside the mirror: not data, not in data_size
    try:
        index: dict[str, list[Any]] = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        index = {}
    fetched = kept = 0
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else "")
        for page in pages:
            for obj in page.get("Contents", []):
                key = obj["Key"]
                rel = key[len(prefix):].lstrip("/") if prefix else key
                if not rel or rel.endswith("/"):
                    continue
                target = (dest / rel).resolve()
                if not str(target).startswith(str(dest.resolve()) + os.sep):
                    raise S3Error(f"{kind}: object {key!r} would land outside {dest}")
                signature = [obj["Size"], obj.get("ETag", "")]
                if index.get(rel) == signature and target.is_file() and target.stat().st_size == obj["Size"]:
                    kept += 1
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, key, str(target))
                index[rel] = signature
                fetched += 1
    except (BotoCoreError, ClientError) as e:
        raise S3Error(f"{kind}: cannot read s3://{bucket}/{prefix}: {_reason(e)}") from None
    finally:
        with contextlib.suppress(OSError):  # the index only saves downloads next time
            index_path.write_text(json.dumps(index), encoding="utf-8")
    if not fetched and not kept:
        raise S3Error(f"{kind}: s3://{bucket}/{prefix} holds no objects")
    return fetched, kept


def _reason(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, Mapping):
        err = response.get("Error") or {}
        return f"{err.get('Code', '')} {err.get('Message', '')}".strip() or type(error).__name__
    return " ".join(str(error).split())[:200]
