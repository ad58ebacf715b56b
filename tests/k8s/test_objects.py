"""Offline: every object madengine emits, in every mode, validated strictly against recent Kubernetes schemas
(``kubernetes-validate``; the 1.20 test cluster predates Indexed Jobs and drops unknown fields silently), plus the
config schema, the entry script, row parsing, the retry policy and ``--dry-run`` through the CLI.
"""

from __future__ import annotations

import functools
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from madengine.deploy.k8s import client, collect, config, images, manifests, objects, plan_model, watch
from madengine.errors import ConfigError
from madengine.hub import Model
from madengine.manifest import BuiltImage
from madengine.workflow import script as wscript
from tests.conftest import copy_example_hub, madengine

#: Kubernetes versions the emitted objects must be valid for (strict: no unknown field anywhere): an older
#: supported minor, a recent one, and the newest schema kubernetes-validate ships.
SCHEMA_VERSIONS = ("1.29.0", "1.33.0", kubernetes_validate.utils.latest_version())

FULL = {
    "namespace": "bench", "gpus": 4, "cpu": "8", "memory": "32Gi", "cpu_limit": "16", "memory_limit": "64Gi",
    "shm_size": "8Gi", "node_selector": {"gpu.amd.com/family": "mi300x"},
    "tolerations": [{"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                    {"key": "dedicated", "operator": "Equal", "value": "bench", "effect": "NoExecute",
                     "tolerationSeconds": 60}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
    "volumes": [
        {"name": "datasets", "pvc": "datasets", "mount_path": "/data", "read_only": True},
        {"name": "cfg", "config_map": "bench-config", "mount_path": "/etc/bench", "read_only": True},
        {"name": "token", "secret": "hf-token", "mount_path": "/secrets", "read_only": True},
        {"name": "scratch", "empty_dir": True, "size_limit": "10Gi", "mount_path": "/scratch"},
        {"name": "ramdisk", "empty_dir": True, "medium": "Memory", "mount_path": "/ram"},
        {"name": "models", "host_path": "/srv/models", "host_path_type": "Directory", "mount_path": "/models",
         "read_only": True, "sub_path": "llama"},
    ],
    "results_pvc": "bench-results", "sys_ptrace": True,
    "security_context": {"runAsUser": 0, "capabilities": {"add": ["IPC_LOCK"]}},
    "service_account": "bench", "image_pull_secrets": ["regcred"], "image_pull_policy": "Always",
    "env_vars": {"HF_HOME": "/data/hf", "NCCL_DEBUG": 1}, "labels": {"team": "perf"},
    "annotations": {"example.com/owner": "perf"}, "queue_name": "gpu-queue", "priority_class": "high",
    "backoff_limit": 1, "ttl_seconds_after_finished": 3600,
}

MODES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "cpu-single": ("dummy", {"gpu_vendor": "NONE"}, {}),
    "amd-single-full": ("dummy", {"gpu_vendor": "AMD"}, FULL),
    "nvidia-single": ("dummy", {"gpu_vendor": "NVIDIA"}, {"gpus": 8}),
    "multiple-results": ("dummy_multi", {"gpu_vendor": "NONE"}, {}),
    "multi-node": ("dummy", {"gpu_vendor": "AMD"}, {"nnodes": 4, "gpus": 8, "master_port": 23456}),
    "multi-node-full": ("dummy", {"gpu_vendor": "AMD"}, {**FULL, "nnodes": 2}),
    "scripts-in-image": ("dummy", {"gpu_vendor": "NONE"},
                         {"scripts": "image", "image_scripts_dir": "/opt/bench", "shm": False}),
    "registry-image": ("dummy", {"gpu_vendor": "NONE", "encapsulate_script": "rocprofv3 --stats --"}, {}),
}


@functools.cache
def example_hub() -> Path:
    """One private copy of the example hub for this module (planning reads it; nothing runs here)."""
    return copy_example_hub(Path(tempfile.mkdtemp(prefix="madengine-k8s-objects-")) / "hub")


def _models() -> dict[str, Model]:
    return {m["name"]: Model.model_validate(m) for m in json.loads((example_hub() / "models.json").read_text())}


def make_run(model_name: str = "dummy", ctx: dict[str, Any] | None = None, k8s: dict[str, Any] | None = None,
             hub: Path | None = None, registry_image: str = "", timeout: int | None = None) -> Any:
    ctx = dict(ctx or {"gpu_vendor": "NONE"})
    hub = hub or example_hub()
    cfg = config.resolve(None, k8s or {}, {})
    image = f"ci-{model_name}_dummy.ubuntu"
    build = BuiltImage(model=model_name, docker_image=image, dockerfile="docker/dummy.ubuntu.Dockerfile",
                       registry_image=registry_image, log_base=f"{model_name}_dummy.ubuntu")
    return plan_model(image, build, _models()[model_name], ctx, cfg, "0123abcd", hub, Path("/tmp"), timeout)


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_object_is_strictly_valid(mode: str, version: str) -> None:
    model, ctx, k8s = MODES[mode]
    run = make_run(model, ctx, k8s, registry_image="registry.example.com:5000/bench/ci-dummy:1"
                   if mode == "registry-image" else "")
    kinds = [o.kind for o in run.objects]
    expected = ["ConfigMap"] + (["Service"] if k8s.get("nnodes", 1) > 1 else []) + ["Job"]
    assert kinds == expected
    for obj in run.objects:
        data = client.serialize(obj)
        try:
            kubernetes_validate.validate(data, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{mode}: {obj.kind} invalid for Kubernetes {version}: {e.message} at {list(e.path)}")
        assert yaml.safe_load(manifests.to_yaml(obj)) == data


def _job(run: Any) -> dict[str, Any]:
    return client.serialize(run.objects[-1])


def test_single_job_fields() -> None:
    run = make_run("dummy", {"gpu_vendor": "AMD"}, {"gpus": 2, "ttl_seconds_after_finished": 5}, timeout=600)
    job = _job(run)
    assert job["metadata"]["name"] == "mad-dummy-0123abcd"
    assert job["metadata"]["labels"]["app.kubernetes.io/name"] == "madengine"
    assert job["metadata"]["labels"]["madengine/run-id"] == "0123abcd"
    spec = job["spec"]
    # the step script stops the model after 600 s; the Job's deadline is the safety net over every step's limit
    limit = int(wscript.total_limit(run.run_plan) or 0)
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (0, limit, 5)
    assert "mad_step model 600 1 " in run.plan.files[".madengine/steps.sh"][0].decode()
    assert "completionMode" not in spec
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    c = pod["containers"][0]
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["resources"] == {"limits": {"amd.com/gpu": "2"}, "requests": {"amd.com/gpu": "2"}}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["MASTER_ADDR"] == "localhost" and env["NODE_RANK"] == "0" and env["WORLD_SIZE"] == "2"
    assert env["MAD_DEPLOYMENT_TYPE"] == "k8s" and env["MAD_RUNTIME_NGPUS"] == "2"
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts["/dev/shm"] == "dshm" and mounts["/myworkspace"] == "workspace"
    dshm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert dshm["emptyDir"]["medium"] == "Memory"


def test_multi_node_is_indexed_with_headless_service() -> None:
    run = make_run("dummy", {"gpu_vendor": "NVIDIA"}, {"nnodes": 3, "gpus": 8})
    svc = client.serialize(run.objects[1])
    job = _job(run)
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"] == {"madengine/job": job["metadata"]["name"]}
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == svc["metadata"]["name"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert env["MASTER_ADDR"]["value"] == f"{job['metadata']['name']}-0.{svc['metadata']['name']}"
    assert (env["NNODES"]["value"], env["WORLD_SIZE"]["value"], env["GPUS_PER_NODE"]["value"]) == ("3", "24", "8")
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "8"}


def test_configmap_carries_scripts_and_binary_files(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    (hub / "scripts" / "dummy" / "sub").mkdir(parents=True)
    (hub / "scripts" / "dummy" / "run.sh").write_text("echo performance: 1 x\n")
    (hub / "scripts" / "dummy" / "sub" / "w.bin").write_bytes(b"\xff\x00\x01")
    run = make_run("dummy", hub=hub)
    cm = client.serialize(run.objects[0])
    assert cm["data"]["run_directory__run.sh"] == "echo performance: 1 x\n"
    assert cm["binaryData"] == {"run_directory__sub__w.bin": "/wAB"}
    assert "scripts__common__pre_scripts__sys_env.sh" in cm["data"] and ".madengine__steps.sh" in cm["data"]
    vol = next(v for v in _job(run)["spec"]["template"]["spec"]["volumes"] if v["name"] == "scripts")
    items = {i["key"]: (i["path"], i["mode"]) for i in vol["configMap"]["items"]}
    assert items["run_directory__sub__w.bin"] == ("run_directory/sub/w.bin", 0o644)
    assert items[".madengine__steps.sh"] == (".madengine/steps.sh", 0o755)


def test_configmap_too_large(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    (hub / "scripts" / "dummy").mkdir(parents=True)
    (hub / "scripts" / "dummy" / "big.txt").write_text("x" * 1_100_000)
    with pytest.raises(ConfigError, match=r"k8s.scripts to \"image\""):
        make_run("dummy", hub=hub)


@pytest.mark.parametrize(("k8s", "ctx", "pattern"), [
    ({"namespce": "x"}, None, r"'k8s.namespce' is not a k8s setting; did you mean 'namespace'"),
    ({"namespace": "bad;ns$(id)"}, None, r"'k8s.namespace': 'bad;ns\$\(id\)' is not a namespace name"),
    ({"memory": "lots"}, None, r"'k8s.memory': 'lots' is not a Kubernetes quantity"),
    ({"volumes": [{"name": "a", "mount_path": "/a"}]}, None, r"k8s.volumes.0.*exactly one of pvc"),
    ({"tolerations": [{"key": "a", "opertor": "Exists"}]}, None,
     r"'k8s.tolerations\[0\].opertor' is not a field of V1Toleration; did you mean 'operator'"),
    ({"affinity": {"nodeAffinity": {"required": {}}}}, None, r"'k8s.affinity.nodeAffinity.required' is not a field"),
    ({"volumes": [{"name": "dshm", "empty_dir": True, "mount_path": "/x"}]}, None, r"taken by madengine"),
    ({}, {"gpu_vendor": "AMD"}, r"all GPUs of a node .* give --gpus N"),
    ({"load_images": "docker"}, None, r"containerd:<socket path>"),
])
def test_config_errors_name_the_field(k8s: dict[str, Any], ctx: dict[str, Any] | None, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        make_run("dummy", ctx, k8s)


def test_precedence_flags_over_context_over_manifest() -> None:
    cfg = config.resolve({"namespace": "stored", "nnodes": 2, "cpu": "1"}, {"namespace": "ctx", "nnodes": 3},
                         {"namespace": "flag", "nnodes": None, "keep_job": False, "no_wait": True})
    assert (cfg.namespace, cfg.nnodes, cfg.cpu, cfg.wait, cfg.keep_job) == ("flag", 3, "1", False, False)


@pytest.mark.parametrize(("ref", "ok"), [
    ("ci-dummy_dummy.ubuntu", True),
    ("rocm/pytorch:rocm6.2_ubuntu22.04", True),
    ("localhost:5000/ci-bert:latest", True),
    ("registry.example.com/team/ci-bert@sha256:" + "a" * 64, True),
    ("Upper/Case", False),
    ("has space:1", False),
    ("name:tag:extra", False),
])
def test_image_references(ref: str, ok: bool) -> None:
    if ok:
        assert images.check_reference(ref) == ref
    else:
        with pytest.raises(ConfigError, match="not a valid image reference"):
            images.check_reference(ref)


def test_bad_image_reference() -> None:
    with pytest.raises(ConfigError, match="not a valid image reference"):
        make_run("dummy", registry_image="Registry.Example.com/Bad Image:1")


def _lay_out_configmap(run: Any, mount: Path, work: Path | None = None) -> None:
    """The ConfigMap volume as the kubelet lays it out: every item at its path (plus the ``..data`` dir); with
    ``work``, the step script's /myworkspace paths point there."""
    (mount / "..data").mkdir(parents=True)
    for rel, (content, mode) in run.plan.files.items():
        (mount / rel).parent.mkdir(parents=True, exist_ok=True)
        if work is not None:
            content = content.replace(objects.WORKSPACE.encode(), str(work).encode())
        (mount / rel).write_bytes(content)
        (mount / rel).chmod(mode)


def _pod_script(run: Any, mount: Path, work: Path) -> str:
    return objects.entry_script(run.plan).replace(objects.SCRIPTS_MOUNT, str(mount)).replace(
        objects.WORKSPACE, str(work))


def test_entry_script_runs_the_step_script_like_run_local(tmp_path: Path) -> None:
    """The pod's script, run by a real sh with the ConfigMap layout, copies the workspace and runs the step script,
    whose results bundle at the end of the log gives the same rows as run.local."""
    run = make_run("dummy_multi")
    mount, work = tmp_path / "mount", tmp_path / "ws"
    _lay_out_configmap(run, mount, work)
    step_script = work / ".madengine" / "steps.sh"
    script = _pod_script(run, mount, work)
    proc = subprocess.run(["sh", "-c", script.replace(f'bash "$w"/{objects.STEP_SCRIPT}',
                                                      f'MAD_WORKSPACE={work} bash {step_script}')],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "MAD_OUTPUT_CSV": "perf_dummy_multi.csv"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (work / "run_directory" / "..data").exists()
    assert wscript.BUNDLE_BEGIN in proc.stdout
    run.request.work_root = tmp_path / "collect"
    run.request.log_dir = tmp_path / "out"
    run.request.log_dir.mkdir()
    rows = collect.rows_from_log(run.request, run.run_plan, proc.stdout, None)
    assert [r.model for r in rows] == ["dummy_multi_1", "dummy_multi_2", "dummy_multi_3"]
    assert {r.status for r in rows} == {"SUCCESS"} and {r.deployment_type for r in rows} == {"k8s"}
    assert (run.request.log_dir / "dummy_multi_env.csv").is_file()  # the environment capture came back


def test_failed_outcome_without_bundle_makes_a_failure_row() -> None:
    run = make_run("dummy")
    outcome = watch.Outcome("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    rows = collect.rows_from_log(run.request, run.run_plan, "performance: 12.5 samples_per_second\n", outcome)
    assert rows[0].status == "FAILURE" and rows[0].performance == ""
    assert rows[0].reason.startswith("BackoffLimitExceeded")


def _pod(**status: Any) -> Any:
    m = client.models()
    return m.V1Pod(metadata=m.V1ObjectMeta(name="p", annotations={objects.NODE_RANK_ANNOTATION: "1"}),
                   status=m.V1PodStatus(**status))


def test_pod_state_reasons() -> None:
    m = client.models()
    pulling = _pod(phase="Pending", container_statuses=[m.V1ContainerStatus(
        name="model", image="x", image_id="", ready=False, restart_count=0,
        state=m.V1ContainerState(waiting=m.V1ContainerStateWaiting(reason="ErrImagePull", message="no  such\nimage")))])
    state = watch.pod_state(pulling)
    assert (state.reason, state.detail, state.index) == ("ErrImagePull", "ErrImagePull: no such image", 1)
    unsched = _pod(phase="Pending", conditions=[m.V1PodCondition(
        type="PodScheduled", status="False", reason="Unschedulable", message="0/1 nodes have amd.com/gpu")])
    assert watch.pod_state(unsched).reason == "Unschedulable"
    oom = _pod(phase="Failed", container_statuses=[m.V1ContainerStatus(
        name="model", image="x", image_id="", ready=False, restart_count=0,
        state=m.V1ContainerState(terminated=m.V1ContainerStateTerminated(exit_code=137, reason="OOMKilled")))])
    assert (watch.pod_state(oom).reason, watch.pod_state(oom).exit_code) == ("OOMKilled", 137)


def test_call_retries_transient_errors_and_never_takes_them_as_success() -> None:
    exc = client.models().exceptions.ApiException
    attempts: list[int] = []

    def flaky(fail_times: int, status: int) -> Any:
        def fn(**_: Any) -> str:
            attempts.append(status)
            if len(attempts) <= fail_times:
                raise exc(status=status, reason="boom")
            return "ok"
        return fn

    assert client.call("x", flaky(2, 503), sleep=lambda s: None) == "ok" and len(attempts) == 3
    attempts.clear()
    with pytest.raises(client.K8sError, match="HTTP 503 after 5 attempts"):
        client.call("get thing", flaky(99, 503), sleep=lambda s: None)
    attempts.clear()
    with pytest.raises(ConfigError, match="HTTP 422"):
        client.call("create Job", flaky(99, 422), sleep=lambda s: None)
    assert len(attempts) == 1


def test_missing_client_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "kubernetes", None)
    with pytest.raises(ConfigError, match=r"pip install 'madengine\[kubernetes\]'"):
        client.require()


def _manifest(tmp_path: Path, models: list[str]) -> Path:
    all_models = _models()
    manifest = {"built_images": {}, "built_models": {}, "context": {"gpu_vendor": "NONE"},
                "deployment_config": {"deploy": "k8s", "k8s": {"namespace": "from-manifest"}},
                "hub": str(example_hub())}
    for name in models:
        image = f"ci-{name}_dummy.ubuntu"
        manifest["built_images"][image] = {"model": name, "docker_image": image,
                                           "dockerfile": "docker/dummy.ubuntu.Dockerfile",
                                           "log_base": f"{name}_dummy.ubuntu"}
        manifest["built_models"][image] = all_models[name].model_dump(mode="json")
    path = tmp_path / "build_manifest.json"
    path.write_text(json.dumps(manifest))
    return path


@pytest.mark.parametrize("nnodes", ["1", "2"])
def test_dry_run_writes_valid_yaml_and_creates_nothing(tmp_path: Path, nnodes: str) -> None:
    manifest = _manifest(tmp_path, ["dummy", "dummy_multi"])
    cli = madengine("run.k8s", "--manifest-file", str(manifest), "--dry-run", "--nnodes", nnodes,
                    "--kubeconfig", str(tmp_path / "no-such-kubeconfig"), "--output", str(tmp_path / "perf.csv"),
                    cwd=tmp_path)
    assert cli.rc == 0, cli.text
    files = sorted((tmp_path / "k8s-manifests").rglob("*.yaml"))
    per_model = 3 if nnodes == "2" else 2
    assert len(files) == 2 * per_model
    for f in files:
        data = yaml.safe_load(f.read_text())
        kubernetes_validate.validate(data, SCHEMA_VERSIONS[-1], strict=True)
        assert data["metadata"]["namespace"] == "from-manifest"
    assert not (tmp_path / "perf.csv").exists() or len((tmp_path / "perf.csv").read_text().splitlines()) <= 1
    assert "Traceback" not in cli.text


@pytest.mark.parametrize("text", ["apiVersion: v1\nclusters: [\n", "\tnot: yaml: at all", "[1, 2]\n"])
def test_malformed_kubeconfig_is_exit_4_naming_the_file(tmp_path: Path, text: str) -> None:
    """A kubeconfig that is not YAML (or not a kubeconfig) is bad input: exit 4, one line naming the file."""
    manifest = _manifest(tmp_path, ["dummy"])
    bad = tmp_path / "broken-kubeconfig"
    bad.write_text(text)
    cli = madengine("run.k8s", "--manifest-file", str(manifest), "--kubeconfig", str(bad), "--output",
                    str(tmp_path / "perf.csv"), cwd=tmp_path)
    assert cli.rc == 4, cli.text
    last = cli.err.strip().splitlines()[-1]
    assert f"cannot load --kubeconfig {bad}" in last and "Traceback" not in cli.text and "internal error" not in last


def test_unknown_key_is_exit_4_one_line(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ["dummy"])
    cli = madengine("run.k8s", "--manifest-file", str(manifest), "--dry-run",
                    "--additional-context", '{"k8s": {"gpu": 1}}', cwd=tmp_path)
    assert cli.rc == 4
    assert "k8s.gpu' is not a k8s setting; did you mean 'gpus'" in cli.err
    assert "Traceback" not in cli.text and len(cli.err.strip().splitlines()) == 1


def test_multi_node_launcher_gives_each_pod_its_rank(tmp_path: Path) -> None:
    """A torchrun launcher on 2 pods: each pod sources the export file of its NODE_RANK (from the completion index),
    so the runner command names its own rank and pod 0's DNS name as master."""
    ctx = {"gpu_vendor": "NONE", "launcher": "torchrun", "torchrun": {"nproc_per_node": 2}}
    run = make_run("dummy", ctx, {"nnodes": 2, "gpus": 0})
    job = run.plan.job_name
    assert sorted(k for k in run.plan.files if k.startswith(objects.LAUNCH_ENV_PREFIX)) == [
        ".madengine-launch-0.env", ".madengine-launch-1.env"]
    mount = tmp_path / "mount"
    _lay_out_configmap(run, mount)
    script = _pod_script(run, mount, tmp_path / "ws")
    script = script.replace(f'bash "$w"/{objects.STEP_SCRIPT}', 'echo "RUNNER=$MAD_MULTI_NODE_RUNNER"')
    for rank in (0, 1):
        proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30,
                              env={"PATH": "/usr/bin:/bin", "NODE_RANK": str(rank)})
        assert proc.returncode == 0, proc.stderr
        runner = next(line for line in proc.stdout.splitlines() if line.startswith("RUNNER="))
        assert f"--node_rank {rank}" in runner or f"--node-rank {rank}" in runner or f"node_rank={rank}" in runner
        assert f"{job}-0.{job}" in runner and "--nnodes 2" in runner.replace("=", " ")


def test_env_values_stay_literal() -> None:
    """Kubernetes expands $(NAME) in env values; madengine escapes it so a pod sees what run.local passes."""
    run = make_run("dummy", {"gpu_vendor": "NONE", "docker_env_vars": {"EXAMPLE_K": "pre-$(MAD_MODEL_NAME)-post"}})
    env = {e["name"]: e.get("value") for e in _job(run)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["EXAMPLE_K"] == "pre-$$(MAD_MODEL_NAME)-post"
    assert env["GPUS_PER_NODE"] == "0"


def _bundle_log(model_out: str, rc: int = 0) -> str:
    """A pod log ending in a results bundle, as the step script prints it."""
    import base64
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in ((".madengine/steps.tsv", f"model\t{rc}\t0\t1.0\t3.5\n"),
                           (".madengine/model.out", model_out)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return f"{model_out}{wscript.BUNDLE_BEGIN}\n{base64.b64encode(buf.getvalue()).decode()}\n{wscript.BUNDLE_END}\n"


def test_rows_from_every_pod_follow_the_multi_node_rule(tmp_path: Path) -> None:
    """Rank 0 reports, rank 1 ran cleanly without a result (dropped), rank 2 failed, rank 3 never ran: rows carry
    the pod and its rank (madengine.deploy.jobs.MULTI_NODE_RULE, as on Slurm)."""
    run = make_run("dummy")
    run.request.work_root = run.request.log_dir = tmp_path
    pods = [watch.PodState(f"job-{i}", "Succeeded", index=i, created=float(i)) for i in range(4)]
    logs = {"job-0": _bundle_log("performance: 42 samples_per_second\n"), "job-1": _bundle_log("worker done\n"),
            "job-2": _bundle_log("boom\n", rc=2)}
    rows = collect.rows_from_pods(run.request, run.run_plan, pods, logs, None)
    assert [(r.status, r.machine_name, r.node_rank) for r in rows] == [
        ("SUCCESS", "job-0", "0"), ("FAILURE", "job-2", "2"), ("FAILURE", "job-3", "3")]
    assert rows[0].performance == "42" and rows[0].test_duration == "2.50"
    assert rows[1].reason == "run command exited with code 2"
    assert rows[2].reason.startswith("pod job-3 (rank 3): the pod log holds no results bundle")
    assert (tmp_path / "k8s-pods" / "job-2").is_dir()  # other ranks' artifacts apart from rank 0's


def test_log_filter_masks_secrets_and_hides_the_bundle() -> None:
    shown = collect.LogFilter(lambda t: t.replace("pw-123", "******"))
    text = shown.feed("start pw-1") + shown.feed("23 ok\nperformance: 1 x\n" + wscript.BUNDLE_BEGIN + "\nQUJD\n")
    text += shown.feed(wscript.BUNDLE_END + "\nafter\n") + shown.flush()
    assert text == "start ****** ok\nperformance: 1 x\nafter\n"


def test_multi_arch_manifest_runs_the_image_of_the_named_architecture(tmp_path: Path) -> None:
    """--target-archs images on Kubernetes: one Job with the image of the architecture the context names; without
    one, exit 4 naming the architectures (a Pod cannot pick its own image)."""
    path = _manifest(tmp_path, ["dummy"])
    manifest = json.loads(path.read_text())
    (image, build), = manifest["built_images"].items()
    model = manifest["built_models"].pop(image)
    manifest["built_images"] = {f"{image}_{a}": {**build, "docker_image": f"{image}_{a}", "gpu_architecture": a}
                                for a in ("gfx942", "gfx950")}
    manifest["built_models"] = {f"{image}_{a}": model for a in ("gfx942", "gfx950")}
    path.write_text(json.dumps(manifest))
    common = ["run.k8s", "--manifest-file", str(path), "--dry-run", "--output", str(tmp_path / "perf.csv")]
    refused = madengine(*common, cwd=tmp_path)
    assert refused.rc == 4 and "has images for gfx942, gfx950" in refused.err, refused.text
    ctx = json.dumps({"gpu_vendor": "NONE", "docker_env_vars": {"MAD_SYSTEM_GPU_ARCHITECTURE": "gfx950"}})
    chosen = madengine(*common, "--additional-context", ctx, cwd=tmp_path)
    assert chosen.rc == 0, chosen.text
    jobs = [yaml.safe_load(f.read_text()) for f in (tmp_path / "k8s-manifests").rglob("*.yaml")]
    images = {c["image"] for j in jobs if j["kind"] == "Job" for c in j["spec"]["template"]["spec"]["containers"]}
    assert images == {f"{image}_gfx950"}
