"""madengine: build, run and report AI-model benchmarks from a MAD-layout model hub.

The package is the library; ``madengine.tasks`` is the thin Invoke surface over it, exposed both by the repository's
``tasks.py`` (``inv ...``) and by the ``madengine`` console script.
"""

from pathlib import Path as _Path

__version__ = "0.1.0"


def templates_dir() -> _Path:
    """Where madengine's templates are: ``$MADENGINE_TEMPLATES`` when set, else the ``templates/`` shipped with the
    package (in a source checkout, ``madengine/templates`` is a link to the repository's ``templates/``)."""
    import os

    root = os.environ.get("MADENGINE_TEMPLATES")
    return _Path(root) if root else _Path(__file__).resolve().parent / "templates"
