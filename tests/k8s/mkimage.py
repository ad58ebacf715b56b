"""Write docker-archive (``docker save`` format) image tars from local files, without a registry.

Used by ``dev/k8s.sh build`` for the cluster's sandbox image (``registry.k8s.io/pause:3.2``) and a small
``docker.io/library/busybox:1.36``. Usage: ``python mkimage.py OUTDIR PAUSE_BINARY BUSYBOX_BINARY``.
The tar layout (manifest.json, <config sha>.json, one layer.tar) is what ``ctr images import`` accepts.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from collections.abc import Iterable
from pathlib import Path

_APPLETS = ("sh", "echo", "cat", "sleep", "ls", "env", "true", "false", "date", "hostname", "id", "wc", "head",
            "printf", "mkdir", "cp", "grep", "test", "[", "seq", "tr", "sed", "awk", "rm", "mv", "tee")


def _dir(t: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = mode
    t.addfile(ti)


def mkimage(out: Path, repotag: str, files: Iterable[tuple[str, str]], symlinks: Iterable[tuple[str, str]] = (),
            entrypoint: list[str] | None = None, cmd: list[str] | None = None) -> None:
    """Write one single-layer image ``repotag`` to ``out``; ``files`` are (path in image, host path)."""
    files, symlinks = list(files), list(symlinks)
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        dirs: set[str] = set()
        for dst in [d for d, _ in files] + [d for d, _ in symlinks]:
            parts = dst.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    _dir(t, d)
        for d in ("tmp", "etc", "dev", "proc", "sys", "root"):
            if d not in dirs:
                _dir(t, d, 0o1777 if d == "tmp" else 0o755)
        for dst, src in files:
            t.add(src, arcname=dst.strip("/"))
        for dst, target in symlinks:
            ti = tarfile.TarInfo(dst.strip("/"))
            ti.type = tarfile.SYMTYPE
            ti.linkname = target
            t.addfile(ti)
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = {"architecture": "amd64", "os": "linux", "created": "2020-01-01T00:00:00Z",
              "config": {"Env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"], "Entrypoint": entrypoint, "Cmd": cmd},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "history": [{"created": "2020-01-01T00:00:00Z"}]}
    cfg = json.dumps(config).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    manifest = [{"Config": cfg_name, "RepoTags": [repotag], "Layers": ["layer.tar"]}]
    with tarfile.open(out, "w") as t:
        for name, data in (("layer.tar", layer_bytes), (cfg_name, cfg), ("manifest.json", json.dumps(manifest).encode())):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            t.addfile(ti, io.BytesIO(data))


def main(argv: list[str]) -> None:
    """Write ``pause.tar`` and ``busybox.tar`` into ``argv[0]``."""
    out, pause, busybox = Path(argv[0]), argv[1], argv[2]
    mkimage(out / "pause.tar", "registry.k8s.io/pause:3.2", [("/pause", pause)], entrypoint=["/pause"])
    mkimage(out / "busybox.tar", "docker.io/library/busybox:1.36", [("/bin/busybox", busybox)],
            symlinks=[("/bin/" + a, "busybox") for a in _APPLETS], cmd=["sh"])


if __name__ == "__main__":
    main(sys.argv[1:])
