"""End to end on a real Kubernetes API server (``bash dev/k8s.sh up``): ``madengine run.k8s`` runs the example
hub's models as Jobs, watches them, reads the pod logs into perf.csv rows and deletes what it created."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Cli, madengine, read_perf
from tests.k8s.conftest import KUBECONFIG, SOCKET, manifest_for, ours, wait_gone

pytestmark = [pytest.mark.k8s, pytest.mark.docker]

CPU_K8S = {"gpu_vendor": "NONE"}


def run_k8s(hub: Path, tmp_path: Path, ns: str, model: str, *extra: str, image: str | None = None,
            ctx: dict | None = None, timeout: float = 300) -> Cli:
    manifest = manifest_for(hub, tmp_path, model, image)
    return madengine("run.k8s", "--manifest-file", str(manifest), "--kubeconfig", str(KUBECONFIG),
                     "--namespace", ns, "--output", str(tmp_path / "perf.csv"),
                     "--additional-context", json.dumps(ctx or CPU_K8S), *extra, cwd=hub, timeout=timeout)


def test_job_completes_with_rows_from_the_log(k8s_api, k8s_ns, k8s_hub, tmp_path):
    cli = run_k8s(k8s_hub, tmp_path, k8s_ns, "dummy")
    assert cli.rc == 0, cli.text
    rows = read_perf(tmp_path / "perf.csv")
    assert len(rows) == 1
    row = rows[0]
    assert (row["model"], row["status"], row["deployment_type"], row["metric"]) == \
        ("dummy", "SUCCESS", "k8s", "samples_per_second")
    assert float(row["performance"]) >= 1000 and row["nnodes"] == "1"
    log = (tmp_path / "dummy_dummy.ubuntu.run.live.log").read_text()
    assert "performance:" in log and "model: dummy" in log
    pod_logs = list(tmp_path.glob("dummy_dummy.ubuntu.k8s.mad-dummy-*.log"))
    assert len(pod_logs) == 1
    assert "Complete" in cli.err and "Traceback" not in cli.text
    assert not any(wait_gone(k8s_api, k8s_ns).values())


def test_multiple_results_come_back_through_the_log(k8s_api, k8s_ns, k8s_hub, tmp_path):
    cli = run_k8s(k8s_hub, tmp_path, k8s_ns, "dummy_multi")
    assert cli.rc == 0, cli.text
    rows = read_perf(tmp_path / "perf.csv")
    assert [r["model"] for r in rows] == ["dummy_multi_1", "dummy_multi_2", "dummy_multi_3"]
    assert {r["status"] for r in rows} == {"SUCCESS"}
    assert not any(wait_gone(k8s_api, k8s_ns).values())


def test_failing_model_is_backoff_limit_exceeded_exit_3(k8s_api, k8s_ns, k8s_hub, tmp_path):
    cli = run_k8s(k8s_hub, tmp_path, k8s_ns, "dummy_fail")
    assert cli.rc == 3, cli.text
    assert "BackoffLimitExceeded" in cli.text
    assert "exit 1" in cli.err
    rows = read_perf(tmp_path / "perf.csv")
    assert [(r["model"], r["status"]) for r in rows] == [("dummy_fail", "FAILURE")]
    assert "simulated failure" in (tmp_path / "dummy_fail_dummy.ubuntu.run.live.log").read_text()
    assert "Traceback" not in cli.text
    assert not any(wait_gone(k8s_api, k8s_ns).values())


def test_deadline_from_the_model_timeout(k8s_api, k8s_ns, k8s_hub, tmp_path):
    """dummy_timeout has models.json timeout 5 s and sleeps 300 s: the step script in the pod stops it, as run.local
    does, and the row says so (activeDeadlineSeconds is only the safety net)."""
    start = time.monotonic()
    cli = run_k8s(k8s_hub, tmp_path, k8s_ns, "dummy_timeout")
    assert cli.rc == 3, cli.text
    assert "timed out after 5 s" in cli.text
    assert read_perf(tmp_path / "perf.csv")[0]["status"] == "FAILURE"
    assert "madengine: [model] timed out after 5 s" in (tmp_path / "dummy_timeout_dummy.ubuntu.run.live.log").read_text()
    assert time.monotonic() - start < 90
    assert not any(wait_gone(k8s_api, k8s_ns).values())


def test_missing_image_fails_fast_with_the_reason(k8s_api, k8s_ns, k8s_hub, tmp_path):
    start = time.monotonic()
    cli = run_k8s(k8s_hub, tmp_path, k8s_ns, "dummy", image="madengine-absent-image:1")
    elapsed = time.monotonic() - start
    assert cli.rc == 3, cli.text
    assert "ErrImagePull" in cli.text or "ImagePullBackOff" in cli.text
    assert "local tag" in cli.err  # the warning that nodes must have it
    assert elapsed < 30, f"took {elapsed:.0f} s"
    rows = read_perf(tmp_path / "perf.csv")
    assert rows[0]["status"] == "FAILURE"
    assert not any(wait_gone(k8s_api, k8s_ns).values())


def test_unschedulable_gpu_request_fails_fast_with_the_scheduler_message(k8s_api, k8s_ns, k8s_hub, tmp_path):
    """The node has no amd.com/gpu: a warning before creating, then the scheduler's reason, at once."""
    start = time.monotonic()
    cli = run_k8s(k8s_hub, tmp_path, k8s_ns, "dummy", "--gpus", "2", "--gpu-vendor", "amd")
    assert cli.rc == 3, cli.text
    assert "no node of" in cli.err and "amd.com/gpu allocatable" in cli.err
    assert "Unschedulable" in cli.text and "Insufficient amd.com/gpu" in cli.text
    assert time.monotonic() - start < 30
    assert read_perf(tmp_path / "perf.csv")[0]["n_gpus"] == "2"
    assert not any(wait_gone(k8s_api, k8s_ns, timeout=30).values())


def test_no_wait_then_follow_logs_status_collects_once(k8s_api, k8s_ns, k8s_hub, tmp_path):
    """run.k8s --no-wait records the Job; k8s.logs --follow streams it; k8s.status collects its rows once it has
    ended (as slurm.status does) and deletes it; the generic jobs.* tasks reach the same record."""
    cli = run_k8s(k8s_hub, tmp_path, k8s_ns, "dummy", "--no-wait")
    assert cli.rc == 0 and "--no-wait" in cli.err, cli.text
    assert not (tmp_path / "perf.csv").exists() or len(read_perf(tmp_path / "perf.csv")) == 0
    jobs = ours(k8s_api, k8s_ns)["jobs"]
    assert len(jobs) == 1
    common = ("--namespace", k8s_ns, "--kubeconfig", str(KUBECONFIG))
    logs = madengine("k8s.logs", jobs[0], "--follow", *common, cwd=tmp_path)  # waits for the pod, then streams
    assert logs.rc == 0 and "performance:" in logs.out, logs.text
    generic = madengine("jobs.logs", jobs[0], "--output", str(tmp_path / "perf.csv"), cwd=tmp_path)
    assert generic.rc == 0 and "performance:" in generic.out, generic.text
    deadline = time.monotonic() + 60
    while True:
        st = madengine("k8s.status", jobs[0], *common, "--output", str(tmp_path / "perf.csv"), cwd=tmp_path)
        if "row(s) appended" in st.out or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert st.rc == 0 and "Complete" in st.out and "1 row(s) appended" in st.out, st.text
    rows = read_perf(tmp_path / "perf.csv")
    assert [(r["model"], r["status"], r["deployment_type"]) for r in rows] == [("dummy", "SUCCESS", "k8s")]
    again = madengine("jobs.status", jobs[0], "--output", str(tmp_path / "perf.csv"), cwd=tmp_path)
    assert again.rc == 0 and "COMPLETED (collected)" in again.out, again.text  # the Job is gone; its record stays
    assert "appended" not in again.out and len(read_perf(tmp_path / "perf.csv")) == 1  # collected once only
    assert not any(wait_gone(k8s_api, k8s_ns).values())


def test_no_wait_then_cancel(k8s_api, k8s_ns, k8s_hub, tmp_path):
    cli = run_k8s(k8s_hub, tmp_path, k8s_ns, "dummy_timeout", "--no-wait", "--timeout", "0")
    assert cli.rc == 0, cli.text
    job = ours(k8s_api, k8s_ns)["jobs"][0]
    cancel = madengine("jobs.cancel", job, "--output", str(tmp_path / "perf.csv"), cwd=tmp_path)
    assert cancel.rc == 0 and f"job {job}: Deleted" in cancel.out, cancel.text
    assert not any(wait_gone(k8s_api, k8s_ns).values())


def test_invalid_field_is_the_api_422_in_one_line(k8s_api, k8s_ns, k8s_hub, tmp_path):
    ctx = {**CPU_K8S, "k8s": {"memory": "2Gi", "memory_limit": "1Gi"}}
    cli = run_k8s(k8s_hub, tmp_path, k8s_ns, "dummy", ctx=ctx)
    assert cli.rc == 4, cli.text
    err = cli.err.strip().splitlines()
    last = err[-1]
    assert "HTTP 422" in last and "memory" in last and last.startswith("madengine: error: create Job")
    assert "Traceback" not in cli.text
    assert not any(wait_gone(k8s_api, k8s_ns, timeout=10).values())  # the ConfigMap made first is gone too


def test_second_run_does_not_collide_and_status_logs_cancel(k8s_api, k8s_ns, k8s_hub, tmp_path):
    first = run_k8s(k8s_hub, tmp_path / "a", k8s_ns, "dummy", "--keep-job")
    second = run_k8s(k8s_hub, tmp_path / "b", k8s_ns, "dummy", "--keep-job")
    assert first.rc == 0 and second.rc == 0, first.text + second.text
    jobs = ours(k8s_api, k8s_ns)["jobs"]
    assert len(jobs) == 2 and len(set(jobs)) == 2
    job = jobs[0]
    common = ("--namespace", k8s_ns, "--kubeconfig", str(KUBECONFIG))
    status = madengine("k8s.status", job, *common, cwd=tmp_path)
    assert status.rc == 0 and "Complete" in status.out and "Succeeded" in status.out, status.text
    logs = madengine("k8s.logs", job, *common, cwd=tmp_path)
    assert logs.rc == 0 and "performance:" in logs.out, logs.text
    follow = madengine("k8s.logs", job, "--follow", *common, cwd=tmp_path)
    assert follow.rc == 0 and "performance:" in follow.out, follow.text
    for j in jobs:
        cancel = madengine("k8s.cancel", j, *common, cwd=tmp_path)
        assert cancel.rc == 0 and "deleted" in cancel.out, cancel.text
    assert not any(wait_gone(k8s_api, k8s_ns).values())
    gone = madengine("k8s.status", job, *common, cwd=tmp_path)
    assert gone.rc == 1 and "HTTP 404" in gone.err and "Traceback" not in gone.text


def test_ctrl_c_deletes_the_job(k8s_api, k8s_ns, k8s_hub, tmp_path):
    manifest = manifest_for(k8s_hub, tmp_path, "dummy_timeout")
    env = dict(os.environ)
    env.pop("MADENGINE_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-m", "madengine", "run.k8s", "--manifest-file", str(manifest),
                             "--kubeconfig", str(KUBECONFIG), "--namespace", k8s_ns, "--timeout", "0",
                             "--output", str(tmp_path / "perf.csv"), "--additional-context", json.dumps(CPU_K8S)],
                            cwd=k8s_hub, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        running = False
        while time.monotonic() < deadline and not running:
            pods = k8s_api.core.list_namespaced_pod(k8s_ns, label_selector="app.kubernetes.io/name=madengine").items
            running = any(p.status.phase == "Running" for p in pods)
            time.sleep(0.3)
        assert running, "the model's pod never ran"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    assert not any(wait_gone(k8s_api, k8s_ns, timeout=30).values())


def test_inv_run_with_deploy_k8s_and_load_images(k8s_api, k8s_ns, k8s_hub, tmp_path):
    """`run` routed by the context's deploy key; k8s.load_images copies the image into containerd first."""
    manifest = manifest_for(k8s_hub, tmp_path, "dummy")
    ctx = {**CPU_K8S, "deploy": "k8s",
           "k8s": {"kubeconfig": str(KUBECONFIG), "namespace": k8s_ns, "load_images": f"containerd:{SOCKET}"}}
    cli = madengine("run", "--manifest-file", str(manifest), "--output", str(tmp_path / "perf.csv"),
                    "--additional-context", json.dumps(ctx), cwd=k8s_hub, timeout=300)
    assert cli.rc == 0, cli.text
    assert "loaded ci-dummy_dummy.ubuntu into containerd:" in cli.err
    assert read_perf(tmp_path / "perf.csv")[0]["deployment_type"] == "k8s"
    assert not any(wait_gone(k8s_api, k8s_ns).values())


def test_missing_namespace_is_exit_4(k8s_api, k8s_hub, tmp_path):
    cli = run_k8s(k8s_hub, tmp_path, "madengine-no-such-ns", "dummy")
    assert cli.rc == 4 and "--create-namespace" in cli.err, cli.text


def test_unreachable_cluster_is_exit_1_one_line(k8s_hub, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG.read_text().replace("127.0.0.1:6443", "127.0.0.1:9"))
    manifest = manifest_for(k8s_hub, tmp_path, "dummy")
    cli = madengine("run.k8s", "--manifest-file", str(manifest), "--kubeconfig", str(kubeconfig),
                    "--additional-context", json.dumps(CPU_K8S), cwd=tmp_path, timeout=120)
    assert cli.rc == 1 and "unreachable" in cli.err and "Traceback" not in cli.text, cli.text
