"""Who started a container: ``<host>:<pid>:<start>`` of the madengine process (``start`` is the process start time
in clock ticks since boot, from ``/proc/<pid>/stat``, so a reused PID is not mistaken for the owner). Stored as the
``org.madengine.owner`` label on every container madengine starts; :func:`alive` tells whether that process still
runs, so that containers left by a killed run (SIGKILL, a lost machine) are found and removed (``madengine clean``).
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache

#: Label naming the owner process of a container (see the module docstring).
OWNER_LABEL = "org.madengine.owner"
#: Label on a container left running on purpose (``--keep-alive``): not a leftover.
KEEP_ALIVE_LABEL = "org.madengine.keep-alive"


def _start_ticks(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22; the command name in (...) may hold spaces


@lru_cache(maxsize=1)
def current() -> str:
    """This process as an owner label value."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid()) or ''}"


def alive(owner: str) -> bool | None:
    """Whether the owner process runs: ``None`` when it is on another host (cannot be told from here) or the value
    is not an owner label."""
    host, _, rest = owner.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    found = _start_ticks(int(pid))
    return found is not None and (not start or found == start)
