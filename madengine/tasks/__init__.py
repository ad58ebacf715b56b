"""The Invoke namespace: ``discover``, ``build``, ``run`` (``run.local``, default ``run.deploy``).

Tasks are thin: they resolve options (:mod:`madengine.settings`) and call :mod:`madengine.api`. The same ``ns`` is
used by the repository's ``tasks.py`` (``inv``) and by the ``madengine`` console script.
"""

from invoke import Collection

from madengine.settings import DEFAULTS
from madengine.tasks import build as _build
from madengine.tasks import discover as _discover
from madengine.tasks import run as _run

ns = Collection()
ns.add_task(_discover.discover)
ns.add_task(_build.build)
ns.add_collection(Collection.from_module(_run, name="run"))
ns.configure({"madengine": dict(DEFAULTS), "run": {"echo_format": "+ {command}"}})

__all__ = ["ns"]
