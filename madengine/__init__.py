"""madengine: build, run and report AI-model benchmarks from a MAD-layout model hub.

The package is the library; ``madengine.tasks`` is the thin Invoke surface over it, exposed both by the repository's
``tasks.py`` (``inv ...``) and by the ``madengine`` console script.
"""

__version__ = "0.1.0"
