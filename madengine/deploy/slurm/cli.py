"""The one place that runs Slurm's commands (``sbatch``, ``sacct``, ``squeue``, ``scancel``).

Commands go through an :class:`Executor`: :class:`LocalExecutor` runs them here with ``subprocess`` (a login node),
:class:`madengine.deploy.remote.RemoteExecutor` runs the same argument lists on a login node over SSH (Fabric). The
parsing below is the same for both.

Status queries are batched: one command for all jobs. With accounting storage, ``sacct -P -n -X -j a,b,c -o
JobID,State,ExitCode,Reason``. When accounting storage is disabled (``sacct`` says so), ``squeue -t all -h -j a,b,c
-O JobID,State,Reason,exit_code`` (Slurm keeps finished jobs there for ``MinJobAge``), and only for jobs squeue no
longer knows, ``sacct -c`` (the ``jobcomp/filetxt`` completion log). A query that fails raises
:class:`QueryFailed`; callers treat the jobs as *unknown*, never as finished.
"""

from __future__ import annotations

import random
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from madengine.errors import ConfigError, SchedulerError

#: Seconds any one Slurm command may take before it counts as failed.
COMMAND_TIMEOUT = 60.0

#: sbatch stderr fragments that mean "try again" (controller busy or unreachable), not "your job is wrong".
TRANSIENT_SUBMIT_ERRORS = ("Socket timed out", "Unable to contact slurm controller", "Resource temporarily unavailable",
                           "try again", "Zero Bytes were transmitted", "slurm_receive_msg", "Connection refused",
                           "timed out", "Communication connection failure", "Slurm temporarily unable")


class SlurmError(SchedulerError):
    """Slurm cannot be used: commands missing, submission failing after retries, status unknown for too long
    (exit code 1)."""


class QueryFailed(SlurmError):
    """A status query failed (scheduler unreachable, command error): job states are unknown this time."""


@dataclass
class CommandResult:
    """One command's outcome: exit code (124 = timed out), and its output as text."""

    rc: int
    stdout: str
    stderr: str

    @property
    def error_line(self) -> str:
        """The last non-empty stderr line (or stdout's), for one-line messages."""
        lines = [ln.strip() for ln in (self.stderr or self.stdout).splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit code {self.rc}"


class Executor(Protocol):
    """Where Slurm commands and job files live: this host, or a login node over SSH."""

    #: Shown in messages, e.g. ``local`` or ``ssh root@127.0.0.1:2222``.
    description: str

    def run(self, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> CommandResult:
        """Run one command (no shell on this side); never raises for a non-zero exit or a timeout."""
        ...

    def push(self, local: Path, remote: str, mode: int | None = None) -> None:
        """Make the file or tree ``local`` available at ``remote`` on the executor's side (files with permission
        bits ``mode`` when given)."""
        ...

    def pull(self, remote: str, local: Path) -> None:
        """Copy the tree ``remote`` from the executor's side into ``local`` (a missing one is a no-op)."""
        ...

    def read_text(self, remote: str) -> str | None:
        """A file's text on the executor's side, ``None`` when missing."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class LocalExecutor:
    """Runs commands on this host with ``subprocess`` (madengine runs on a login node)."""

    description = "local"

    def run(self, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> CommandResult:
        """See :meth:`Executor.run`. A missing program gives rc 127."""
        try:
            proc = subprocess.run(list(argv), capture_output=True, text=True, encoding="utf-8", errors="replace",
                                  timeout=timeout, check=False)  # a stray non-UTF-8 byte must not crash a poll
        except FileNotFoundError:
            return CommandResult(127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            return CommandResult(124, "", f"{shlex.join(argv)} timed out after {timeout:.0f} s")
        return CommandResult(proc.returncode, proc.stdout, proc.stderr)

    def push(self, local: Path, remote: str, mode: int | None = None) -> None:
        """Copy ``local`` to ``remote`` unless they are the same path (the usual case: shared storage)."""
        target = Path(remote)
        if target.resolve() == local.resolve():
            return
        if local.is_dir():
            shutil.copytree(local, target, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(local, target)
            if mode is not None:
                target.chmod(mode)

    def pull(self, remote: str, local: Path) -> None:
        """Copy the tree ``remote`` into ``local`` unless they are the same path."""
        source = Path(remote)
        if source.is_dir() and source.resolve() != local.resolve():
            shutil.copytree(source, local, dirs_exist_ok=True)

    def read_text(self, remote: str) -> str | None:
        """The file's text, ``None`` when missing."""
        try:
            return Path(remote).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None

    def close(self) -> None:
        """Nothing to release."""


@dataclass
class JobInfo:
    """One job's state as Slurm reports it: ``state`` is the base name (``CANCELLED by 0`` and ``CANCELLED+`` →
    ``CANCELLED``), ``exit_code`` is ``code:signal`` (sacct's form; squeue's raw wait status is converted),
    ``reason`` the pending/end reason (may be empty)."""

    job_id: str
    state: str
    exit_code: str = ""
    reason: str = ""


def _base_state(text: str) -> str:
    word = text.strip().split(" ")[0] if text.strip() else ""
    return word.rstrip("+").upper()


def _wait_status_to_exit(raw: str) -> str:
    """squeue's ``exit_code`` (a wait status, e.g. 768) as sacct's ``3:0``."""
    try:
        value = int(raw)
    except ValueError:
        return raw
    return f"{(value >> 8) & 0xFF}:{value & 0x7F}"


def parse_parsable(stdout: str) -> str:
    """The job id from ``sbatch --parsable`` output (``123`` or ``123;cluster``).

    Raises:
        SlurmError: no job id in the output.
    """
    for line in stdout.splitlines():
        token = line.strip().split(";")[0]
        if token.isdigit():
            return token
    raise SlurmError(f"sbatch printed no job id (output: {stdout.strip()[:200]!r})")


class SlurmCli:
    """Slurm's command-line interface through an executor.

    ``calls`` counts the commands run (the benchmark checks one status query per tick). ``sleep`` is the retry
    back-off's sleep (injectable for tests).
    """

    def __init__(self, executor: Executor | None = None, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.executor: Executor = executor or LocalExecutor()
        self.sleep = sleep
        self.calls = 0
        #: ``sacct`` while accounting storage answers; ``squeue`` once sacct said it is disabled.
        self.mode = "sacct"

    def _run(self, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> CommandResult:
        self.calls += 1
        result = self.executor.run(argv, timeout)
        if result.rc == 127:
            raise SlurmError(f"{argv[0]} not found on {self.executor.description}; run madengine on a Slurm login "
                             "node (or pass --cluster SITE/NAME), or start the local cluster: bash dev/slurm.sh up")
        return result

    def node_gpus(self, partition: str | None = None) -> int | None:
        """GPUs per node of ``partition`` (default: the default partition) from ``sinfo``'s GRES column: the
        smallest ``gpu[:type]:N`` count of its nodes (``gpu:mi300x:8(S:0-1)`` → 8). ``None`` when no node has GPU
        GRES or sinfo fails (a failure is not taken as "no GPUs": the caller falls back to whole nodes)."""
        argv = ["sinfo", "-h", "-o", "%G"] + (["-p", partition] if partition else [])
        result = self._run(argv)
        if result.rc != 0:
            return None
        counts = []
        for line in result.stdout.splitlines():
            for gres in line.split(","):
                parts = gres.split("(")[0].strip().split(":")
                if parts[0] == "gpu" and len(parts) >= 2 and parts[-1].isdigit():
                    counts.append(int(parts[-1]))
        return min(counts) if counts else None

    def partition_nodes(self, partition: str | None = None) -> int | None:
        """How many nodes ``partition`` (default: the default partition, ``*`` in sinfo) has, from ``sinfo``; ``None``
        when sinfo fails or does not list it (the caller then lets sbatch decide)."""
        result = self._run(["sinfo", "-h", "-o", "%P|%D"])
        if result.rc != 0:
            return None
        total, found = 0, False
        for line in result.stdout.splitlines():
            name, _, count = line.strip().partition("|")
            if (name.rstrip("*") == partition if partition else name.endswith("*")) and count.strip().isdigit():
                total, found = total + int(count), True
        return total if found else None

    def submit(self, script: str, retries: int = 3, backoff: float = 2.0) -> str:
        """``sbatch --parsable SCRIPT`` (a path on the executor's side); returns the job id.

        Transient controller errors (:data:`TRANSIENT_SUBMIT_ERRORS`) are retried ``retries`` times with
        exponential back-off (``backoff`` × 2^n seconds, ±20 % jitter).

        Raises:
            ConfigError: sbatch rejected the job (bad partition, node count, GRES, ...): its message, exit code 4.
            SlurmError: transient errors persisted through the retries.
        """
        for attempt in range(retries + 1):
            result = self._run(["sbatch", "--parsable", script])
            if result.rc == 0:
                return parse_parsable(result.stdout)
            message = result.error_line
            transient = result.rc == 124 or any(t.lower() in (result.stderr + result.stdout).lower()
                                                for t in TRANSIENT_SUBMIT_ERRORS)
            if not transient:
                raise ConfigError(f"sbatch rejected {script}: {message}; check the slurm options "
                                  "(--partition, --nodes, --gpus-per-node, --time, ...)")
            if attempt < retries:
                self.sleep(backoff * (2 ** attempt) * random.uniform(0.8, 1.2))
        raise SlurmError(f"sbatch failed {retries + 1} times ({message}); is slurmctld up? (sinfo)")

    def query(self, job_ids: Iterable[str]) -> dict[str, JobInfo]:
        """The states of ``job_ids`` with ONE command (two only for jobs squeue has forgotten, without accounting).

        Jobs Slurm does not report (yet) are missing from the result.

        Raises:
            QueryFailed: the command failed or timed out.
        """
        ids = [str(j) for j in job_ids]
        if not ids:
            return {}
        if self.mode == "sacct":
            result = self._run(["sacct", "-P", "-n", "-X", "-j", ",".join(ids), "-o", "JobID,State,ExitCode,Reason"])
            if result.rc == 0:
                return self._parse_sacct(result.stdout, ids)
            if "accounting storage is disabled" not in (result.stderr + result.stdout).lower():
                raise QueryFailed(f"sacct failed: {result.error_line}")
            self.mode = "squeue"
        infos = self._squeue(ids)
        missing = [j for j in ids if j not in infos]
        if missing:
            result = self._run(["sacct", "-c", "-P", "-n", "-X", "-j", ",".join(missing), "-o",
                                "JobID,State,ExitCode"])
            if result.rc != 0:
                raise QueryFailed(f"sacct -c failed: {result.error_line}")
            infos.update(self._parse_sacct(result.stdout, missing))
        return infos

    def _squeue(self, ids: list[str]) -> dict[str, JobInfo]:
        result = self._run(["squeue", "-t", "all", "-h", "-j", ",".join(ids), "-O",
                            "JobID:|,State:|,Reason:|,exit_code:|"])
        if result.rc != 0:
            if "invalid job id" in result.stderr.lower():
                return {}  # none of them is known any more: sacct -c has the finished ones
            raise QueryFailed(f"squeue failed: {result.error_line}")
        infos: dict[str, JobInfo] = {}
        for line in result.stdout.splitlines():
            parts = line.split("|")
            if len(parts) >= 4 and parts[0].strip() in ids:
                job_id = parts[0].strip()
                infos[job_id] = JobInfo(job_id, _base_state(parts[1]), _wait_status_to_exit(parts[3].strip()),
                                        parts[2].strip())
        return infos

    @staticmethod
    def _parse_sacct(stdout: str, ids: list[str]) -> dict[str, JobInfo]:
        infos: dict[str, JobInfo] = {}
        for line in stdout.splitlines():
            parts = line.split("|")
            if len(parts) < 3 or parts[0].strip() not in ids:
                continue
            job_id = parts[0].strip()
            reason = parts[3].strip() if len(parts) > 3 else ""
            infos[job_id] = JobInfo(job_id, _base_state(parts[1]), parts[2].strip(),
                                    "" if reason == "None" else reason)
        return infos

    def cancel(self, job_ids: Iterable[str]) -> None:
        """``scancel`` the jobs (one command).

        Raises:
            SlurmError: scancel failed for another reason than jobs that already finished.
        """
        ids = [str(j) for j in job_ids]
        if not ids:
            return
        result = self._run(["scancel", *ids])
        if result.rc != 0 and not re.search(r"(already completing|invalid job id)", result.stderr, re.I):
            raise SlurmError(f"scancel {' '.join(ids)} failed: {result.error_line}")
