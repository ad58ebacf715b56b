"""``inv run.k8s`` (run a manifest's models as Kubernetes Jobs) and ``inv k8s.status|logs|cancel JOB``.

Thin: flags become the k8s target's options (:mod:`madengine.deploy.k8s`), which win over the context's ``k8s``
keys, which win over the manifest's stored ``deployment_config``.
"""

from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass
from typing import Any

from invoke import Collection

from madengine.run_spec import help_texts, option
from madengine.tasks._common import HELP, mad_task, say
from madengine.tasks.run import run_task


@dataclass
class K8sFlags:
    """``run.k8s``'s own flags (k8s-section keys, which they override). ``None``/``False`` = not given."""

    namespace: str | None = option(None, "Kubernetes namespace (default: k8s.namespace, else default)")
    gpus: str | None = option(None, "GPUs per pod (default: the model's n_gpus); requested as amd.com/gpu or "
                                    "nvidia.com/gpu")
    gpu_vendor: str | None = option(None, "amd, nvidia or none (default: the context's gpu_vendor, else amd)")
    kubeconfig: str | None = option(None, "kubeconfig file (default: in-cluster, else $KUBECONFIG or "
                                          "~/.kube/config)")
    context: str | None = option(None, "kubeconfig context")
    nnodes: str | None = option(None, "pods (nodes) per model; > 1 makes an Indexed Job plus a headless Service")
    dry_run: bool = option(False, "write the objects as YAML (one file per object), print the paths, create "
                                  "nothing")
    no_wait: bool = option(False, "create the Jobs and return; follow them with k8s.status / k8s.logs")
    keep_job: bool = option(False, "keep the finished Job (and its pods) instead of deleting it")
    create_namespace: bool = option(False, "create the namespace when it does not exist")
    image_pull_policy: str | None = option(None, "Always, IfNotPresent (default) or Never")


K8S_HELP = {
    **HELP, **help_texts(K8sFlags),
    "job": "Job name, as printed by run.k8s",
    "follow": "keep printing the log until the pod ends",
    "json": "print the status as JSON",
    "output": "perf.csv of the run that created the Job (a Job recorded there is collected once it has ended)",
    "hub": "model hub whose credential.json names the secrets to mask (default: the current directory)",
}

run_k8s = run_task("k8s", "k8s", "Run models as Kubernetes Jobs (--tags builds first), then collect status, logs "
                   "and perf rows.", K8sFlags)


def _connect(namespace: str | None, kubeconfig: str | None, context: str | None) -> tuple[Any, str]:
    from madengine.deploy.k8s import client

    return client.connect(kubeconfig, context), namespace or "default"


@mad_task(help=K8S_HELP)
def status(c, job, namespace=None, kubeconfig=None, context=None, json=False, output=None):
    """Show a Job's state and its pods' phases (exit code 3 when it failed); a Job that run.k8s --no-wait recorded
    next to --output is collected once it has ended, as jobs.status does."""
    from madengine.deploy import jobs as jobs_mod
    from madengine.deploy.k8s import collect
    from madengine.errors import RunError
    from madengine.tasks import jobs

    record = jobs_mod.load(jobs_mod.state_path(jobs.output_of(c, output))).get(str(job))
    if record is not None and record.target == "k8s" and not record.collected and not json:
        jobs.status(c, job, output)
        return

    api, ns = _connect(namespace, kubeconfig, context)
    try:
        info = collect.describe_job(api, ns, str(job))
    finally:
        api.close()
    if json:
        say(jsonlib.dumps(info, indent=2))
    else:
        detail = ": ".join(x for x in (info["reason"], info["message"]) if x)
        say(f"Job {ns}/{job}: {info['state']}" + (f" ({detail})" if detail else "")
            + f"  active={info['active']} succeeded={info['succeeded']} failed={info['failed']}")
        for pod, phase in info["pods"].items():
            say(f"  pod {pod}: {phase}")
    if info["state"] == "Failed":
        raise RunError(f"Job {ns}/{job} failed: {info['reason'] or 'see its pods'}")


@mad_task(help=K8S_HELP)
def logs(c, job, namespace=None, kubeconfig=None, context=None, follow=False, output=None, hub=None):
    """Print the logs of a Job's pods, secrets masked (--follow streams the newest pod's log until it ends)."""
    from pathlib import Path

    from madengine import settings
    from madengine.deploy import jobs as jobs_mod
    from madengine.deploy.k8s import collect
    from madengine.tasks import jobs
    from madengine.workflow import credentials

    record = jobs_mod.load(jobs_mod.state_path(jobs.output_of(c, output))).get(str(job))
    if record is not None and record.target == "k8s":
        jobs.logs(c, job, output, follow)  # planned again from its record: masked with its run's credentials
        return
    creds = credentials.load(Path(settings.resolve(c.config.get("madengine"), hub=hub)["hub"]))
    masker = credentials.Masker(credentials.secret_values(creds))
    api, ns = _connect(namespace, kubeconfig, context)
    try:
        collect.print_logs(api, ns, str(job), follow=follow, write=say, mask=masker.text)
    finally:
        api.close()


@mad_task(help=K8S_HELP)
def cancel(c, job, namespace=None, kubeconfig=None, context=None):
    """Delete a Job (background propagation: its pods go too) with its ConfigMap and Service."""
    from madengine import deploy as _deploy  # noqa: F401 - registry first, then the target
    from madengine.deploy import k8s

    api, ns = _connect(namespace, kubeconfig, context)
    try:
        existed = k8s.cancel(api, ns, str(job))
    finally:
        api.close()
    say(f"Job {ns}/{job}: deleted" if existed else f"Job {ns}/{job}: not found (nothing to delete)")


ns = Collection("k8s", status, logs, cancel)
