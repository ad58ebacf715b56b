"""Developer quality gate in isolated venvs: ``nox -s tests``, ``nox -s lint``, ``nox -s typecheck``.

The tests need what ``bash dev/engine.sh up`` and ``bash dev/engine.sh registry`` start (``bash dev/test.sh`` does
all of it, and is what CI runs).
"""

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    """The pytest suite against the real engine."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, tests and benchmarks."""
    session.install("ruff")
    session.run("ruff", "check", "madengine", "tests", "benchmarks", "tasks.py", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over the package (settings in pyproject.toml)."""
    session.install("-e", ".", "mypy", "types-PyYAML", "types-tabulate")
    session.run("mypy")
