"""``inv run.k8s`` (run a manifest's models as Kubernetes Jobs) and ``inv k8s.status|logs|cancel JOB``.

Thin: flags become the k8s target's options (:mod:`madengine.deploy.k8s`), which win over the context's ``k8s``
keys, which win over the manifest's stored ``deployment_config``.
"""

from __future__ import annotations

import json as jsonlib
from typing import Any

from invoke import Collection

from madengine.tasks._common import HELP, mad_task, say
from madengine.validation import int_flag

K8S_HELP = {
    **HELP,
    "namespace": "Kubernetes namespace (default: k8s.namespace, else default)",
    "gpus": "GPUs per pod (default: the model's n_gpus); requested as amd.com/gpu or nvidia.com/gpu",
    "gpu_vendor": "amd, nvidia or none (default: the context's gpu_vendor, else amd)",
    "kubeconfig": "kubeconfig file (default: in-cluster, else $KUBECONFIG or ~/.kube/config)",
    "context": "kubeconfig context",
    "nnodes": "pods (nodes) per model; > 1 makes an Indexed Job plus a headless Service",
    "dry_run": "write the objects as YAML (one file per object), print the paths, create nothing",
    "no_wait": "create the Jobs and return; follow them with k8s.status / k8s.logs",
    "keep_job": "keep the finished Job (and its pods) instead of deleting it",
    "create_namespace": "create the namespace when it does not exist",
    "image_pull_policy": "Always, IfNotPresent (default) or Never",
    "job": "Job name, as printed by run.k8s",
    "follow": "keep printing the log until the pod ends",
    "json": "print the status as JSON",
}


@mad_task(name="k8s", iterable=["tags", "exclude_tags"], help=K8S_HELP)
def run_k8s(c, tags=None, exclude_tags=None, manifest_file=None, hub=None, additional_context=None,
            additional_context_file=None, timeout=None, live_output=False, output=None, registry=None,
            manifest_output=None, clean_docker_cache=False, namespace=None, gpus=None, gpu_vendor=None,
            kubeconfig=None, context=None, nnodes=None, dry_run=False, no_wait=False, keep_job=False,
            create_namespace=False, image_pull_policy=None, summary_output=None):
    """Run models as Kubernetes Jobs (--tags builds first), then collect status, logs and perf rows."""
    from madengine.tasks.run import workflow

    target_options = {"namespace": namespace, "gpus": int_flag(gpus, "--gpus"), "gpu_vendor": gpu_vendor,
                      "kubeconfig": kubeconfig, "context": context, "nnodes": int_flag(nnodes, "--nnodes"),
                      "dry_run": dry_run, "no_wait": no_wait, "keep_job": keep_job,
                      "create_namespace": create_namespace, "image_pull_policy": image_pull_policy}
    workflow(c, "k8s", target_options=target_options, tags=tags, exclude_tags=exclude_tags,
             manifest_file=manifest_file, hub=hub, additional_context=additional_context,
             additional_context_file=additional_context_file, timeout=timeout, live_output=live_output,
             output=output, registry=registry, manifest_output=manifest_output,
             clean_docker_cache=clean_docker_cache, summary_output=summary_output)


def _connect(namespace: str | None, kubeconfig: str | None, context: str | None) -> tuple[Any, str]:
    from madengine.deploy.k8s import client

    return client.connect(kubeconfig, context), namespace or "default"


@mad_task(help=K8S_HELP)
def status(c, job, namespace=None, kubeconfig=None, context=None, json=False):
    """Show a Job's state and its pods' phases (exit code 3 when it failed)."""
    from madengine.deploy.k8s import collect
    from madengine.errors import RunError

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
def logs(c, job, namespace=None, kubeconfig=None, context=None, follow=False):
    """Print the logs of a Job's pods (--follow streams the newest pod's log until it ends)."""
    from madengine.deploy.k8s import collect

    api, ns = _connect(namespace, kubeconfig, context)
    try:
        collect.print_logs(api, ns, str(job), follow=follow, write=say)
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
