"""Where a run's finished rows go, in one place for every target: provenance stamped on them, perf.csv (first: it is
the export madengine v2's tools read), then the results store (:mod:`madengine.results.store`).

A :class:`Recording` is made once per run (:func:`start`, before anything runs, so a bad ``--results-db`` or a dead
database server stops the run before any work) and travels with the run (``DeployRequest.recording``,
``LocalRun.recording``; a batch job's record keeps its URL and run id, so ``jobs.status`` in another shell records
into the same run). :func:`append` is the one call that writes rows.

Provenance: every row gets ``git_commit`` (the hub's commit, ``git rev-parse HEAD``; ``+dirty`` is not appended,
the run's record says whether the tree had changes in ``hub_git_commit``) when the node did not fill it, and its
``docker_sha`` is the image ID the build recorded (:func:`madengine.workflow.plan.base_row`).
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from madengine import console

if TYPE_CHECKING:
    from madengine.manifest import Manifest
    from madengine.results.perf_csv import PerfRow
    from madengine.results.store import RunInfo, Store


@dataclass
class Recording:
    """One run's recording: the store URL (``None``: no store), the run's record, the hub commit stamped on rows,
    and per-model/per-image facts the rows need (declared metric directions, build fingerprints)."""

    url: str | None
    run: RunInfo
    git_commit: str = ""
    directions: dict[str, str] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    store: Store | None = field(default=None, repr=False)
    failed: bool = False
    warned: set[tuple[str, str]] = field(default_factory=set, repr=False)

    @property
    def run_id(self) -> str:
        """The run's id in the store (also the id of its log directory ``madengine-runs/<id>``)."""
        return self.run.run_id

    def stamp(self, rows: Sequence[PerfRow]) -> None:
        """Fill the provenance a node could not know (``git_commit`` of the hub on the submitting host)."""
        for row in rows:
            if not row.git_commit and self.git_commit:
                row.git_commit = self.git_commit

    def add(self, rows: Sequence[PerfRow]) -> None:
        """Store ``rows`` (already in perf.csv). A store that fails mid-run is reported once, not fatal: the rows
        are in perf.csv and ``madengine results.ingest --csv`` imports them later without duplicates."""
        from madengine.errors import StoreError

        if self.url is None or self.failed or not rows:
            return
        self._check_directions(rows)
        try:
            store = self._open()
            store.add_rows(self.run_id, rows, directions=self.directions, fingerprints=self.fingerprints)
        except StoreError as e:
            self.failed = True
            console.warn(f"{e.message}; the rows are in perf.csv: import them later with `madengine results.ingest "
                         f"--csv {self.run.output} --results-db URL`")

    def _check_directions(self, rows: Sequence[PerfRow]) -> None:
        """Warn (once per model and metric) when a declared ``metric_direction`` contradicts the metric's name
        (``lower`` for ``samples_per_second``): a wrong direction turns every regression into an improvement."""
        from madengine.results.stats import infer_direction
        from madengine.results.store import direction_for

        for row in rows:
            declared = direction_for(row.model, self.directions)
            named = infer_direction(row.metric) if declared and row.metric else ""
            if named and named != declared and (row.model, row.metric) not in self.warned:
                self.warned.add((row.model, row.metric))
                console.warn(f"model {row.model}: metric_direction {declared!r} (as built into the manifest) "
                             f"contradicts its metric {row.metric!r}, which reads as {named}-is-better; verdicts "
                             "use the declared direction")

    def _open(self) -> Store:
        from madengine.results.store import open_store

        if self.store is None:
            assert self.url is not None
            self.store = open_store(self.url)
            self.store.begin_run(self.run)
        return self.store

    def finish(self, status: str = "done") -> None:
        """Record the run's end time and how it ended (``status``, see
        :data:`madengine.results.store.RUN_STATUSES`), and close the store (errors reported, never raised)."""
        from madengine.errors import StoreError

        if self.store is None:
            return
        try:
            if not self.failed:
                self.store.end_run(self.run_id, status=status)
        except StoreError as e:
            console.warn(e.message)
        finally:
            self.store.close()
            self.store = None


def start(*, output: str | Path, hub: str | Path | None, manifest: Manifest | None, ctx: Mapping[str, Any],
          target: str, results_db: str | None = None, label: str = "", run_id: str = "") -> Recording:
    """The run's :class:`Recording`, with the store opened and the run recorded (unless the store is off).

    Raises:
        ConfigError: a malformed ``results_db``/``--results-db`` (exit 4);
        StoreError: the database does not answer (exit 1), before anything runs.
    """
    from madengine import __version__
    from madengine.results.store import RunInfo, context_hash, redact_urls, resolve_url

    url = resolve_url(results_db, ctx.get("results_db"), output)
    commit, dirty = hub_commit(Path(hub) if hub else Path(manifest.hub) if manifest and manifest.hub else None)
    run = RunInfo(run_id=run_id or new_run_id(), command=redact_urls(shlex.join(sys.argv)),
                  target=target, label=label or "", context_hash=context_hash(ctx),
                  hub_git_commit=commit + ("+dirty" if dirty else ""), madengine_version=__version__,
                  host=socket.gethostname(), output=str(Path(output).resolve()))
    recording = Recording(url=url, run=run, git_commit=commit)
    if manifest is not None:
        for model in manifest.built_models.values():
            if model.metric_direction:
                recording.directions[model.name] = model.metric_direction
        for image, build in manifest.built_images.items():
            if build.build_fingerprint:
                recording.fingerprints[image] = build.build_fingerprint
                if build.registry_image:
                    recording.fingerprints[build.registry_image] = build.build_fingerprint
    if url is not None:
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)  # next to perf.csv, whose directory the run makes too
        recording._open()  # fail before any work when the store is unusable
    return recording


def check(results_db: str | None, ctx: Mapping[str, Any], output: str | Path) -> None:
    """Open and close the store a run would use (creating or upgrading its schema), so that a malformed URL or a
    database that does not answer stops a command before it builds anything.

    Raises:
        ConfigError, StoreError: as :func:`start`.
    """
    from madengine.results.store import open_store, resolve_url

    url = resolve_url(results_db, ctx.get("results_db"), output)
    if url is None:
        return
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():  # made by the run with perf.csv's directory: nothing yet
        parent = next(p for p in path.parent.parents if p.exists())
        if not os.access(parent, os.W_OK | os.X_OK):
            from madengine.errors import ConfigError

            raise ConfigError(f"--results-db {url}: {parent} is not a writable directory; give a writable path")
        return
    open_store(url).close()


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite store URL (``None`` for another database or an in-memory one)."""
    if not url.startswith("sqlite:///") or url in ("sqlite://", "sqlite:///:memory:"):
        return None
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


def attach(url: str | None, run_id: str, output: str | Path) -> Recording:
    """A :class:`Recording` for rows of a run recorded earlier (a detached batch job collected by ``jobs.status``).
    The run must already be in the store; nothing is opened until rows are added."""
    from madengine.results.store import RunInfo

    return Recording(url=url or None, run=RunInfo(run_id=run_id, output=str(output)))


def append(output: str | Path, rows: Sequence[PerfRow], recording: Recording | None) -> None:
    """The one way finished rows are written: provenance stamped, perf.csv appended (with ``relative_change``; see
    :func:`madengine.report.relative.append_with_relative_change`), then the results store.

    Raises:
        PerfCsvError: perf.csv cannot take the rows (they were saved to a recovery file, which the error names).
    """
    from madengine.report.relative import append_with_relative_change

    if recording is not None:
        recording.stamp(rows)
    append_with_relative_change(Path(output), rows)
    if recording is not None:
        recording.add(rows)


def new_run_id() -> str:
    """A fresh run id: 12 hex digits (unique per run; also names ``madengine-runs/<run id>``)."""
    return uuid.uuid4().hex[:12]


def hub_commit(hub: Path | None) -> tuple[str, bool]:
    """The hub's git commit (full hash) and whether its work tree has uncommitted changes; ``("", False)`` when
    the hub is not in a git repository or git is missing."""
    if hub is None:
        return "", False
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        head = subprocess.run(["git", "-C", str(hub), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=30, env=env)
        if head.returncode != 0:
            return "", False
        status = subprocess.run(["git", "-C", str(hub), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=30, env=env)
        return head.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        return "", False
