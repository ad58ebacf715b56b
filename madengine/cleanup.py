"""Leftovers of killed runs: containers whose madengine process is gone (:func:`madengine.docker_engine.leftovers`).
Every run reports them when it starts; ``madengine clean`` removes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from madengine import console


@dataclass
class Leftover:
    """One leftover container: its name, the run id and model it ran, the perf.csv directory it wrote to, and
    whether it was kept on purpose (``--keep-alive``)."""

    name: str
    run_id: str
    model: str
    output_dir: str
    kept: bool

    def describe(self) -> str:
        """``name (model M, run R, output DIR)``."""
        return f"{self.name} (model {self.model or '?'}, run {self.run_id or '?'}, output {self.output_dir or '?'})"


def find(client: Any, *, include_kept: bool = False) -> list[tuple[Any, Leftover]]:
    """The leftover containers on the engine of ``client`` (see :func:`madengine.docker_engine.leftovers`)."""
    from madengine import docker_engine, owner

    found = []
    for container in docker_engine.leftovers(client, include_kept=include_kept):
        labels = container.labels or {}
        found.append((container, Leftover(container.name, labels.get(docker_engine.RUN_LABEL, ""),
                                          labels.get("org.madengine.model", ""),
                                          labels.get("org.madengine.output-dir", ""),
                                          owner.KEEP_ALIVE_LABEL in labels)))
    return found


def report(client: Any) -> None:
    """Warn about leftover containers (one line; the fix is ``madengine clean``). Never raises: a run goes on."""
    try:
        found = find(client)
    except Exception:  # noqa: BLE001 - a failed listing must not stop a run
        return
    if found:
        names = ", ".join(item.name for _, item in found[:5]) + (", ..." if len(found) > 5 else "")
        console.warn(f"{len(found)} container(s) left running by madengine runs that were killed ({names}); "
                     "remove them with `madengine clean` (or `inv clean`)")


def clean(*, dry_run: bool = False, include_kept: bool = False) -> tuple[list[Leftover], list[Leftover]]:
    """Remove the leftover containers (``dry_run``: only list them).

    Returns:
        (removed or, with ``dry_run``, found; those the engine refused to remove).

    Raises:
        EngineError: the engine is unreachable.
    """
    from madengine import docker_engine

    client = docker_engine.connect()
    done, failed = [], []
    for container, item in find(client, include_kept=include_kept):
        if dry_run or docker_engine.remove_container(container):
            done.append(item)
        else:
            failed.append(item)
    return done, failed
