"""Shared task plumbing: error → exit-code translation, and the option help texts every task uses alike."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

from invoke import Exit, task

from madengine import stop
from madengine.errors import EXIT_FAILURE, EXIT_INTERRUPTED, MadEngineError
from madengine.run_spec import RunOptions, WorkflowOptions, help_texts

#: Help texts of every option tasks share: the run spec's declarations (:mod:`madengine.run_spec`) plus a few more.
HELP = {
    **help_texts(WorkflowOptions, RunOptions),
    "json": "print JSON instead of a table",
    "include_deprecated": "also select models marked is_deprecated",
}


def _debug_enabled() -> bool:
    return bool(os.environ.get("MADENGINE_DEBUG")) or logging.getLogger().isEnabledFor(logging.DEBUG)


def _sigterm(signum: int, frame: Any) -> None:
    stop.request(signum)
    if signum == signal.SIGHUP:  # the terminal is gone (closed window, dropped ssh): writes to it would fail
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            if os.isatty(fd):
                os.dup2(devnull, fd)
        os.close(devnull)
    raise KeyboardInterrupt


#: Signals that stop a task like Ctrl-C does (containers, jobs and pods it started are stopped, exit code 130).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def mad_task(*args: Any, **kwargs: Any) -> Callable[..., Any]:
    """``invoke.task`` whose body's :class:`MadEngineError` becomes ``Exit(message, code)`` (one line, no traceback
    unless ``-d``/``MADENGINE_DEBUG=1``), and whose Ctrl-C/SIGTERM/SIGHUP becomes exit code 130.

    Use exactly like ``@task(...)``; ``help`` defaults to the shared texts in :data:`HELP`.
    """

    def decorate(body: Callable[..., Any]) -> Any:
        @functools.wraps(body)
        def wrapper(c: Any, *a: Any, **kw: Any) -> Any:
            previous = {sig: signal.signal(sig, _sigterm) for sig in STOP_SIGNALS} if _main_thread() else {}
            try:
                return body(c, *a, **kw)
            except MadEngineError as e:
                if _debug_enabled():
                    traceback.print_exc()
                raise Exit(f"madengine: error: {e.message}", code=e.exit_code) from None
            except KeyboardInterrupt:
                raise Exit("madengine: interrupted; the containers, jobs or pods this run started were stopped",
                           code=EXIT_INTERRUPTED) from None
            except OSError as e:  # a file or directory the task needed: one line naming it
                if _debug_enabled():
                    traceback.print_exc()
                if _engine_failure(e):
                    raise Exit(f"madengine: error: {_engine_lost(e)}", code=EXIT_FAILURE) from None
                where = f": {e.filename}" if e.filename else ""
                raise Exit(f"madengine: error: {e.strerror or e}{where}", code=EXIT_FAILURE) from None
            except Exception as e:  # noqa: BLE001 - an internal error: one line, the trace on request
                if _debug_enabled():
                    traceback.print_exc()
                if _engine_failure(e):
                    raise Exit(f"madengine: error: {_engine_lost(e)}", code=EXIT_FAILURE) from None
                detail = " ".join(str(e).split())[:300]
                raise Exit(f"madengine: error: internal error {type(e).__name__}: {detail} (run with "
                           "MADENGINE_DEBUG=1 for the traceback, and please report it)", code=EXIT_FAILURE) from None
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        import inspect

        names = set(list(inspect.signature(body).parameters)[1:])
        texts = kwargs.pop("help", None) or HELP
        kwargs.setdefault("auto_shortflags", False)  # long flags are the contract; short ones would shift
        return task(help={k: v for k, v in texts.items() if k in names}, **kwargs)(wrapper)

    if args and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate


def _engine_failure(error: BaseException) -> bool:
    from madengine import docker_engine

    return docker_engine.is_engine_failure(error)


def _engine_lost(error: BaseException) -> str:
    from madengine import docker_engine

    return docker_engine.engine_lost(error).message


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def say(text: str) -> None:
    """Print a result line on stdout."""
    sys.stdout.write(text + "\n")
