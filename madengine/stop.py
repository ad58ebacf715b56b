"""A stop request (Ctrl-C, SIGTERM, SIGHUP) that cannot be lost: the signal handler records it before raising
KeyboardInterrupt, and long loops (:func:`check` between images, models and jobs) raise it again if the first one was
swallowed (Python ignores exceptions raised inside a ``__del__``, where a signal can land)."""

from __future__ import annotations

_requested: list[int] = []


def request(signum: int) -> None:
    """Record that the process was asked to stop by ``signum``."""
    _requested.append(signum)


def check() -> None:
    """Raise KeyboardInterrupt when a stop was requested (a no-op otherwise).

    Raises:
        KeyboardInterrupt: a stop signal arrived earlier.
    """
    if _requested:
        raise KeyboardInterrupt
