"""The Invoke namespace: ``discover``, ``build``, ``run`` (``run.local``, default ``run.deploy``), ``clean``.

Tasks are thin: they resolve options (:mod:`madengine.settings`) and call :mod:`madengine.api`. The same ``ns`` is
used by the repository's ``tasks.py`` (``inv``) and by the ``madengine`` console script.
"""

from invoke import Collection

from madengine.plugins import site_collection
from madengine.settings import DEFAULTS
from madengine.tasks import build as _build
from madengine.tasks import clean as _clean
from madengine.tasks import discover as _discover
from madengine.tasks import jobs as _jobs
from madengine.tasks import k8s as _k8s
from madengine.tasks import launchers as _launchers
from madengine.tasks import report as _report
from madengine.tasks import results as _results
from madengine.tasks import run as _run
from madengine.tasks import slurm as _slurm

ns = Collection()
ns.add_task(_discover.discover)
ns.add_task(_build.build)
ns.add_task(_clean.clean)
_run_ns = Collection.from_module(_run, name="run")
_run_ns.add_task(_slurm.run_slurm, name="slurm")
_run_ns.add_task(_k8s.run_k8s, name="k8s")
ns.add_collection(_run_ns)
ns.add_collection(_slurm.ns)
ns.add_collection(_jobs.ns)
ns.add_collection(_k8s.ns)
ns.add_collection(Collection.from_module(_report, name="report"))
ns.add_collection(Collection.from_module(_results, name="results"))
ns.add_collection(Collection.from_module(_launchers, name="launchers"))
ns.configure({"madengine": dict(DEFAULTS), "run": {"echo_format": "+ {command}"}})
_site = site_collection()  # ops staff's tasks: site.<name>.* (see madengine.plugins)
if _site is not None:
    ns.add_collection(_site)

__all__ = ["ns"]
