"""The ``madengine`` console script: an Invoke ``Program`` over the same namespace as ``inv``.

``madengine build --tags dummy`` and ``inv build --tags dummy`` behave the same from any directory. Unlike ``inv``,
a Program with a bundled namespace does not load a project ``invoke.yaml`` by itself; this one loads the
``invoke.yaml`` of the current directory (a MAD checkout), so both read the same ``madengine:`` settings.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

from invoke import Program

from madengine import __version__
from madengine.errors import EXIT_FAILURE, EXIT_INVALID_ARGS


class MadengineProgram(Program):
    """Invoke Program that also loads ``./invoke.yaml`` as project configuration, and exits with code 4 (invalid
    arguments) on an unknown task or flag instead of Invoke's 1."""

    def parse_collection(self) -> None:
        """Use the bundled namespace, then load the project config of the working directory."""
        super().parse_collection()
        self.config.set_project_location(os.getcwd())
        self.config.load_project()

    def parse_core(self, argv: list[str] | None) -> None:
        """Invoke's core-flag parsing; a parse error exits 4 with Invoke's one-line message. ``TASK ... --help`` is
        read as ``--help TASK``: Invoke would take ``--help`` as the value of a positional argument (``jobs.logs
        --help`` looked for a job named "--help"). madengine v2's short flags are read as their long forms
        (:data:`V2_SHORT_FLAGS`)."""
        with _parse_errors_exit_4():
            argv = _help_first(argv if argv is not None else sys.argv, self.namespace)
            super().parse_core(_v2_short_flags(argv, self.namespace))

    def parse_tasks(self) -> None:
        """Invoke's task parsing; a parse error exits 4 with Invoke's one-line message."""
        with _parse_errors_exit_4():
            super().parse_tasks()


def _help_first(argv: list[str], namespace: object) -> list[str]:
    names = set(getattr(namespace, "task_names", {})) | {a for t in getattr(namespace, "task_names", {}).values()
                                                         for a in t}
    for i, token in enumerate(argv[1:], start=1):
        if token in names:
            if any(t in ("-h", "--help") for t in argv[i + 1:]):
                return [*argv[:i], "--help", token]
            break
    return argv


#: madengine v2's short flags (its ``build``/``run`` commands) → the long flag here; ``-m`` is ``--manifest-file``
#: for tasks that take one (runs), else ``--manifest-output`` (build). Used only where the task has the long flag.
V2_SHORT_FLAGS = {"-t": ("--tags",), "-o": ("--output",), "-c": ("--additional-context",),
                  "-f": ("--additional-context-file",), "-s": ("--summary-output",), "-l": ("--live-output",),
                  "-r": ("--registry",), "-m": ("--manifest-file", "--manifest-output")}


def _v2_short_flags(argv: list[str], namespace: Any) -> list[str]:
    out = list(argv[:1])
    flags: set[str] = set()
    for token in argv[1:]:
        if token in getattr(namespace, "task_names", {}) or any(token in a for a in namespace.task_names.values()):
            # the body's signature, not task.get_arguments(): Invoke's get_arguments consumes the task's help texts
            params = list(inspect.signature(namespace[token].body).parameters)[1:]
            flags = {f"--{name.replace('_', '-')}" for name in params}
        elif token in V2_SHORT_FLAGS and flags:
            token = next((long for long in V2_SHORT_FLAGS[token] if long in flags), token)
        out.append(token)
    return out


@contextlib.contextmanager
def _parse_errors_exit_4() -> Iterator[None]:
    from invoke.exceptions import ParseError

    try:
        yield
    except ParseError as e:
        print(f"madengine: error: {e}", file=sys.stderr)
        sys.exit(EXIT_INVALID_ARGS)
    except ValueError as e:  # Invoke casting a flag's value to the type of its default (`--repeat abc`)
        match = re.search(r"invalid literal for int\(\) with base 10: '(.*)'$", str(e))
        if match is None:
            raise
        value = match.group(1)
        argv = sys.argv[1:]
        flag = next((argv[i - 1] for i, token in enumerate(argv) if token == value and i and
                     argv[i - 1].startswith("-")), "")
        flag = flag or next((t.split("=", 1)[0] for t in argv if t.startswith("-") and t.endswith(f"={value}")), "")
        print(f"madengine: error: {flag or 'a flag'} {value!r}: give a whole number", file=sys.stderr)
        sys.exit(EXIT_INVALID_ARGS)


def main() -> None:
    """Console-script entry point (``madengine ...``). Errors in Invoke's own configuration loading (a malformed
    ``invoke.yaml``, an ``INVOKE_MADENGINE_*`` value of the wrong type) exit 4 with one line, not a traceback."""
    from madengine.tasks import ns

    program = MadengineProgram(namespace=ns, version=__version__, name="madengine", binary="madengine",
                               binary_names=["madengine"])
    try:
        program.run()
    except BrokenPipeError:  # the reader went away (`madengine --list | head`): stop quietly, as a shell tool would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_FAILURE)
    except Exception as e:  # noqa: BLE001 - invoke config casting/merging, yaml parse errors: one line, not a trace
        if os.environ.get("MADENGINE_DEBUG"):
            raise
        detail = " ".join(str(e).split())[:300]
        print(f"madengine: error: {type(e).__name__}: {detail} (check the flags, invoke.yaml and INVOKE_MADENGINE_* "
              "variables; MADENGINE_DEBUG=1 shows the traceback)", file=sys.stderr)
        sys.exit(EXIT_INVALID_ARGS)
