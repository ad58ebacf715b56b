"""Error types and the process exit code each maps to.

The exit codes are madengine v2's (``cli/constants.py``), and they are the contract Makefiles and CI rely on:

====  ==========================================================================
code  meaning
====  ==========================================================================
0     every selected model ended SUCCESS or SKIPPED
1     any other failure (engine unreachable, I/O error, internal error)
2     a Docker image failed to build
3     a model ran but did not end SUCCESS or SKIPPED (FAILURE, timeout, ...)
4     invalid arguments or context (bad JSON, unknown key, missing hub file, ...)
130   interrupted by Ctrl-C (SIGINT); started containers were removed first
====  ==========================================================================

Every error carries a one-line message that names the field or file at fault and the fix; the task layer prints
it without a traceback (``--debug`` shows one).
"""

from __future__ import annotations

from typing import Any

EXIT_SUCCESS = 0
EXIT_FAILURE = 1
EXIT_BUILD_FAILURE = 2
EXIT_RUN_FAILURE = 3
EXIT_INVALID_ARGS = 4
EXIT_INTERRUPTED = 130


class MadEngineError(Exception):
    """Base class: a user-facing failure with a one-line message and an exit code."""

    exit_code: int = EXIT_FAILURE

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        """The one-line message (newlines folded), as printed to the user."""
        return " ".join(str(self).split("\n"))


class ConfigError(MadEngineError):
    """Invalid arguments, context, manifest or hub files (exit code 4)."""

    exit_code = EXIT_INVALID_ARGS


class EngineError(MadEngineError):
    """The container engine (Docker) cannot be reached or refused an operation (exit code 1)."""

    exit_code = EXIT_FAILURE


class BuildError(MadEngineError):
    """One or more images failed to build (exit code 2). ``manifest`` holds what did build, when anything did."""

    exit_code = EXIT_BUILD_FAILURE
    manifest: Any = None


class RunError(MadEngineError):
    """One or more models did not end SUCCESS or SKIPPED (exit code 3)."""

    exit_code = EXIT_RUN_FAILURE


class SchedulerError(MadEngineError):
    """A batch scheduler (Slurm, Kubernetes, a plugin's) cannot be used or stopped answering about the jobs
    (exit code 1)."""

    exit_code = EXIT_FAILURE


class PerfCsvError(MadEngineError):
    """perf.csv cannot be appended to without damaging it (exit code 4: choose another ``--output``)."""

    exit_code = EXIT_INVALID_ARGS


class StoreError(MadEngineError):
    """The results store cannot be opened or written (exit code 1: a database that does not answer; a malformed
    ``--results-db`` URL is raised with exit code 4). perf.csv is written before the store, so no row is lost."""

    exit_code = EXIT_FAILURE
