"""Image references for pods: which reference a pod uses, whether it is well formed, and loading a local image into
a node's containerd when there is no registry.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from madengine.errors import ConfigError, EngineError

# The distribution reference grammar (github.com/distribution/reference), without the rarely used IPv6 hosts.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)"
REFERENCE_RE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?(?:@sha256:[a-f0-9]{{64}})?$")


def check_reference(ref: str, field: str = "image") -> str:
    """``ref`` unchanged when it is a well-formed image reference (``[host[:port]/]name[:tag][@sha256:...]``).

    Raises:
        ConfigError: a malformed reference (upper case in the name, spaces, a bad tag), naming ``field``.
    """
    if not ref or len(ref) > 255 or not REFERENCE_RE.match(ref):
        raise ConfigError(f"{field}: {ref!r} is not a valid image reference ([registry/]name[:tag][@sha256:digest], "
                          "lower-case name)")
    return ref


def load_into_containerd(image: str, target: str, docker: str = "docker", ctr: str = "ctr") -> None:
    """Copy ``image`` from the Docker engine into a node's containerd: ``docker save IMAGE | ctr -a SOCKET -n k8s.io
    images import -``. ``target`` is the ``k8s.load_images`` value ``containerd:<socket>``.

    Raises:
        ConfigError: a bad ``target``, or ``docker``/``ctr`` missing.
        EngineError: the save or the import failed (with their last error line).
    """
    if not target.startswith("containerd:"):
        raise ConfigError(f"k8s.load_images: {target!r} must be 'containerd:<socket path>'")
    socket = target.split(":", 1)[1]
    if not Path(socket).exists():
        raise ConfigError(f"k8s.load_images: socket {socket} does not exist; start the cluster's containerd "
                          "(bash dev/k8s.sh up) or fix the path")
    for tool in (docker, ctr):
        if not shutil.which(tool):
            raise ConfigError(f"k8s.load_images: {tool!r} is not installed (needed to copy {image} into containerd)")
    save = subprocess.Popen([docker, "save", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert save.stdout is not None
    imp = subprocess.run([ctr, "-a", socket, "-n", "k8s.io", "images", "import", "-"], stdin=save.stdout,
                         capture_output=True, text=True, check=False)
    save.stdout.close()
    save_err = save.stderr.read().decode(errors="replace") if save.stderr else ""
    if save.wait() != 0:
        raise EngineError(f"k8s.load_images: docker save {image} failed: {save_err.strip().splitlines()[-1:]}")
    if imp.returncode != 0:
        last = (imp.stderr.strip().splitlines() or ["no output"])[-1]
        raise EngineError(f"k8s.load_images: importing {image} into {socket} failed: {last}")
