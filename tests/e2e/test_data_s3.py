"""The minio and aws data providers against a real S3-compatible server (moto's standalone server from PyPI, started
here on 127.0.0.1): download into the mirror, mount at the data home, fill data_size, skip unchanged objects, mask
the keys, and a failure that names the location."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import madengine, read_perf, write_script

SECRET_KEY = "s3-Secret-Key-5150"
OBJECTS = {"sets/a/x.bin": 700, "sets/a/sub/y.bin": 300}


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server on a free port, with bucket ``bench`` holding :data:`OBJECTS`."""
    boto3 = pytest.importorskip("boto3")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("moto") / "server.log"
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, log.read_text()
                time.sleep(0.2)
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                              aws_secret_access_key=SECRET_KEY, region_name="us-east-1")
        client.create_bucket(Bucket="bench")
        for key, size in OBJECTS.items():
            client.put_object(Bucket="bench", Key=key, Body=b"\0" * size)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


def _hub_with_s3_model(hub: Path, endpoint: str, provider: str, path: str = "s3://bench/sets/a") -> None:
    block = ({"MAD_MINIO": {"USERNAME": "bench", "PASSWORD": SECRET_KEY, "MINIO_ENDPOINT": endpoint}}
             if provider == "minio" else
             {"MAD_AWS_S3": {"USERNAME": "bench", "PASSWORD": SECRET_KEY, "ENDPOINT": endpoint}})
    (hub / "credential.json").write_text(json.dumps(block))
    (hub / "data.json").write_text(json.dumps({"s3data": {provider: {"path": path, "home": "/data_s3"}}}))
    models = json.loads((hub / "models.json").read_text())
    models.append({**models[0], "name": "dummy_s3", "tags": ["s3"], "data": "s3data",
                   "scripts": "scripts/s3/run.sh"})
    (hub / "models.json").write_text(json.dumps(models))
    write_script(hub, "scripts/s3/run.sh", 'echo "key=$MAD_MINIO_PASSWORD"\n'
                 'echo "performance: $(find "$MAD_DATAHOME/" -name "*.bin" | wc -l) files"')


@pytest.mark.parametrize(("provider", "runtime"), [("minio", "docker"), ("minio", "native"), ("aws", "docker")])
def test_s3_data_is_mirrored_and_mounted(hub: Path, s3_endpoint: str, no_leftovers, provider: str,
                                         runtime: str) -> None:
    _hub_with_s3_model(hub, s3_endpoint, provider)
    ctx = json.dumps({"gpu_vendor": "NONE", **({"runtime": "native"} if runtime == "native" else {})})
    res = madengine("run.local", "--tags", "s3", "--additional-context", ctx, cwd=hub)
    assert res.rc == 0, res.err
    row = read_perf(hub / "perf.csv")[-1]
    assert (row["status"], row["performance"], row["data_provider_type"], row["data_size"]) == \
        ("SUCCESS", "2", provider, "1000")
    mirrored = hub / ".madengine" / "data" / "s3data" / "x.bin"
    before = mirrored.stat().st_mtime_ns
    again = madengine("run.local", "--tags", "s3", "--additional-context", ctx, cwd=hub)
    assert again.rc == 0 and mirrored.stat().st_mtime_ns == before  # unchanged objects are not downloaded again
    leaks = [p for p in hub.rglob("*") if p.is_file() and p.name != "credential.json"
             and SECRET_KEY.encode() in p.read_bytes()]
    assert not leaks and SECRET_KEY not in res.out + res.err


def test_s3_failure_names_the_location(hub: Path, s3_endpoint: str, no_leftovers) -> None:
    _hub_with_s3_model(hub, s3_endpoint, "minio", "s3://no-such-bucket/x")
    res = madengine("run.local", "--tags", "s3", "--additional-context", '{"gpu_vendor": "NONE"}', cwd=hub)
    assert res.rc == 3, res.err
    row = read_perf(hub / "perf.csv")[-1]
    assert row["status"] == "FAILURE" and "minio: cannot read s3://no-such-bucket/x: NoSuchBucket" in res.err
