"""End to end on the real local Slurm cluster (2 virtual nodes) and the real Docker engine, through the CLI.

Every run goes through `madengine run.slurm`: render → sbatch → batched monitoring → per-node `madengine run.local`
→ rows merged into perf.csv. Only the status-query outage uses fakes (wrappers around the real sacct/squeue).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import CPU, add_model, madengine, read_perf
from tests.slurm.conftest import fake_scheduler, latest_job_dir

pytestmark = pytest.mark.slurm

CTX = json.dumps({"gpu_vendor": "NONE", "slurm": {"poll_interval": 0.5, "poll_max": 2}})


def _slurm_state(job_id: str) -> str:
    out = subprocess.run(["squeue", "-t", "all", "-h", "-j", job_id, "-O", "State"], capture_output=True, text=True)
    return out.stdout.strip()


def _probe_rows(hub: Path) -> list[dict[str, str]]:
    return [r for r in read_perf(hub / "perf.csv") if r["model"] == "slurm_probe"]


def _node_logs(job_dir: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in job_dir.glob("results/*/slurm_probe_dummy.ubuntu.run.live.log")}


@pytest.mark.parametrize("runtime", ["docker", "native"])
def test_two_nodes_one_row_per_node(slurm_hub: Path, no_leftovers, runtime: str) -> None:
    ctx = json.dumps({"gpu_vendor": "NONE", "runtime": runtime, "slurm": {"poll_interval": 0.5, "poll_max": 2}})
    res = madengine("run.slurm", "--manifest-file", "probe.json", "--nodes", "2", "--time", "00:05:00",
                    "--additional-context", ctx, cwd=slurm_hub)
    assert res.rc == 0, res.text
    assert "Traceback" not in res.err
    rows = _probe_rows(slurm_hub)
    assert len(rows) == 2, rows
    assert sorted(r["performance"] for r in rows) == ["1", "2"]  # NODE_RANK 0 and 1
    assert {r["deployment_type"] for r in rows} == {"slurm"}
    assert {r["nnodes"] for r in rows} == {"2"}
    assert {r["gpus_per_node"] for r in rows} == {"0"}
    assert {r["status"] for r in rows} == {"SUCCESS"}
    assert all(r["docker_image"] == ("ci-slurm_probe_dummy.ubuntu" if runtime == "docker" else "") for r in rows)
    logs = _node_logs(latest_job_dir(slurm_hub, "slurm_probe"))
    assert set(logs) == {"n1", "n2"}
    assert "NODE_RANK=0 RANK=0 MASTER_ADDR=n1 NNODES=2 WORLD_SIZE=2 MASTER_PORT=29500" in logs["n1"]
    assert "NODE_RANK=1 RANK=1 MASTER_ADDR=n1 NNODES=2 WORLD_SIZE=2" in logs["n2"]
    assert "DEPLOYMENT=slurm" in logs["n1"]
    assert re.search(r"slurm-\d+\.out", res.err)  # points at the logs


def test_tags_build_then_run_with_section_from_context(slurm_hub: Path, no_leftovers) -> None:
    """`inv run --additional-context '{"deploy": "slurm", ...}'` builds and routes to the slurm target."""
    ctx = json.dumps({"gpu_vendor": "NONE", "deploy": "slurm",
                      "slurm": {"nodes": 2, "poll_interval": 0.5, "poll_max": 2}})
    res = madengine("run", "--tags", "dummy", "--additional-context", ctx, cwd=slurm_hub)
    assert res.rc == 0, res.text
    rows = [r for r in read_perf(slurm_hub / "perf.csv") if r["model"] == "dummy"]
    assert len(rows) == 2 and {r["deployment_type"] for r in rows} == {"slurm"}
    manifest = json.loads((slurm_hub / "build_manifest.json").read_text())
    assert manifest["deployment_config"]["deploy"] == "slurm"


def test_failing_model_gives_failed_and_exit_3(slurm_hub: Path, no_leftovers) -> None:
    res = madengine("run.slurm", "--manifest-file", "fail.json", "--nodes", "2", "--additional-context", CTX, cwd=slurm_hub)
    assert res.rc == 3, res.text
    assert re.search(r"job \d+: FAILED \(exit 3:0", res.err), res.err
    rows = [r for r in read_perf(slurm_hub / "perf.csv") if r["model"] == "dummy_fail"]
    assert len(rows) == 2 and {r["status"] for r in rows} == {"FAILURE"}
    assert "Traceback" not in res.err


def test_more_nodes_than_the_partition_has_is_exit_4(slurm_hub: Path) -> None:
    """--nodes 3 on a 2-node cluster would pend forever: refused before submitting (exit 4, one line naming the
    count sinfo gives), no job, no row."""
    res = madengine("run.slurm", "--manifest-file", "dummy.json", "--nodes", "3", "--additional-context", CTX,
                    cwd=slurm_hub)
    assert res.rc == 4, res.text
    last = res.err.strip().splitlines()[-1]
    assert "--nodes 3: the default partition has 2 node(s) (sinfo); ask for at most 2" in last and len(last) < 200
    assert "submitted" not in res.err and not _queue_ids(slurm_hub)
    assert not (slurm_hub / "perf.csv").exists() or "dummy" not in (slurm_hub / "perf.csv").read_text()


def _queue_ids(hub: Path) -> set[str]:
    """The ids of the queued or recent jobs whose script lies under ``hub`` (this test's)."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%o"], capture_output=True, text=True,
                         check=True).stdout
    return {line.split("|", 1)[0] for line in out.splitlines() if str(hub) in line}


def test_sbatch_rejection_is_exit_4(slurm_hub: Path) -> None:
    res = madengine("run.slurm", "--manifest-file", "dummy.json", "--partition", "nopart", "--additional-context", CTX,
                    cwd=slurm_hub)
    assert res.rc == 4, res.text
    assert "sbatch rejected" in res.err and "invalid partition" in res.err.lower()


def test_dry_run_writes_script_submits_nothing(slurm_hub: Path) -> None:
    res = madengine("run.slurm", "--manifest-file", "dummy.json", "--nodes", "2", "--gpus-per-node", "1", "--exclusive",
                    "--time", "90", "--dry-run", "--additional-context", CTX, cwd=slurm_hub)
    assert res.rc == 0, res.text
    script = Path(res.out.strip().splitlines()[0])
    text = script.read_text()
    assert "#SBATCH --nodes=2" in text and "#SBATCH --gpus-per-node=1" in text
    assert "#SBATCH --exclusive" in text and "#SBATCH --time=00:01:30" in text
    assert not _queue_ids(slurm_hub)  # nothing of this hub was submitted (other users may submit meanwhile)
    assert not (slurm_hub / "perf.csv").exists() or len(read_perf(slurm_hub / "perf.csv")) == 0


def test_injection_in_env_does_not_execute(slurm_hub: Path, tmp_path: Path, no_leftovers) -> None:
    marker = tmp_path / "pwned"
    evil = f"$(touch {marker})`touch {marker}`'\"; touch {marker}\nx"
    ctx = json.dumps({"gpu_vendor": "NONE", "env_vars": {"EVIL": evil},
                      "slurm": {"poll_interval": 0.5, "poll_max": 2, "modules": [],
                                "env_vars": {"SITE_VAR": "from-site"}}})
    res = madengine("run.slurm", "--manifest-file", "probe.json", "--nodes", "1", "--additional-context", ctx, cwd=slurm_hub)
    assert res.rc == 0, res.text
    assert not marker.exists()
    log = _node_logs(latest_job_dir(slurm_hub, "slurm_probe"))["n1"]
    assert f"EVIL=[$(touch {marker})`touch {marker}`'\"; touch {marker}" in log
    assert "probe: SITE=[from-site]" in log  # slurm.env_vars reach the model's container, not only job.sh
    bad = json.dumps({"gpu_vendor": "NONE", "slurm": {"env_vars": {"A;touch x": "1"}}})
    res = madengine("run.slurm", "--manifest-file", "dummy.json", "--dry-run", "--additional-context", bad, cwd=slurm_hub)
    assert res.rc == 4 and "not a valid environment variable name" in res.err, res.text


def test_no_wait_then_status_and_logs_reattach(slurm_hub: Path, no_leftovers) -> None:
    res = madengine("run.slurm", "--manifest-file", "probe.json", "--nodes", "2", "--no-wait", "--additional-context", CTX,
                    cwd=slurm_hub)
    assert res.rc == 0, res.text
    job_id = re.search(r"^(\d+)$", res.out, re.M).group(1)  # type: ignore[union-attr]
    state = json.loads((slurm_hub / ".madengine" / "jobs.json").read_text())
    assert job_id in state["jobs"] and state["jobs"][job_id]["model"] == "slurm_probe"
    deadline = time.monotonic() + 120
    while True:  # "another shell" reattaches
        st = madengine("slurm.status", job_id, cwd=slurm_hub)
        if "COMPLETED" in st.out or time.monotonic() > deadline:
            break
        assert st.rc == 0, st.text
        assert re.search(r"PENDING|RUNNING|COMPLETING|CONFIGURING", st.out), st.text
        time.sleep(1)
    assert st.rc == 0, st.text
    assert "2 row(s) appended" in st.out
    assert len(_probe_rows(slurm_hub)) == 2
    again = madengine("slurm.status", job_id, cwd=slurm_hub)  # collected once only
    assert again.rc == 0 and "appended" not in again.out and len(_probe_rows(slurm_hub)) == 2
    logs = madengine("slurm.logs", job_id, cwd=slurm_hub)
    assert logs.rc == 0, logs.text
    assert "MASTER_ADDR=n1 NNODES=2" in logs.out and "NODE_RANK=1" in logs.out
    unknown = madengine("slurm.status", "999999", cwd=slurm_hub)
    assert unknown.rc == 4 and "not recorded" in unknown.err


def test_cancel_gives_cancelled_and_cleans_up(slurm_hub: Path, no_leftovers) -> None:
    res = madengine("run.slurm", "--manifest-file", "timeout.json", "--timeout", "0", "--nodes", "2", "--no-wait",
                    "--additional-context", CTX, cwd=slurm_hub)
    assert res.rc == 0, res.text
    job_id = re.search(r"^(\d+)$", res.out, re.M).group(1)  # type: ignore[union-attr]
    job_dir = latest_job_dir(slurm_hub, "dummy_timeout")
    deadline = time.monotonic() + 60
    while len(list(job_dir.glob("results/*/*.run.live.log"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)  # both nodes are running the model
    follow = subprocess.Popen([sys.executable, "-m", "madengine", "slurm.logs", job_id, "--follow"], cwd=slurm_hub,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    assert follow.poll() is None  # --follow waits while the job runs
    cancel = madengine("slurm.cancel", job_id, cwd=slurm_hub)
    assert cancel.rc == 0, cancel.text
    assert "CANCELLED" in cancel.out
    out, _ = follow.communicate(timeout=60)
    assert follow.returncode == 0 and "MASTER_ADDR=n1" in out
    st = madengine("slurm.status", job_id, cwd=slurm_hub)
    assert st.rc == 3, st.text
    rows = [r for r in read_perf(slurm_hub / "perf.csv") if r["model"] == "dummy_timeout"]
    assert len(rows) == 2 and {r["status"] for r in rows} == {"FAILURE"}
    time.sleep(3)  # the nodes' madengine removes its containers on SIGTERM (checked by no_leftovers)


def test_ctrl_c_cancels_the_jobs(slurm_hub: Path, no_leftovers) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "madengine", "run.slurm", "--manifest-file", "timeout.json",
                             "--timeout", "0", "--nodes", "2", "--additional-context", CTX], cwd=slurm_hub,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    job_id = None
    seen = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen.append(line)
        m = re.search(r"Slurm job (\d+)", line)
        if m:
            job_id = m.group(1)
        if job_id and "1 running" in line:
            break
    assert job_id, "".join(seen)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(seen) + err
    assert f"cancelled slurm job(s) {job_id}" in err
    assert "Traceback" not in err
    deadline = time.monotonic() + 30
    while _slurm_state(job_id) not in ("CANCELLED", "") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _slurm_state(job_id) == "CANCELLED"
    time.sleep(3)


def test_status_query_outage_never_reports_success(slurm_hub: Path, tmp_path: Path, no_leftovers) -> None:
    res = madengine("run.slurm", "--manifest-file", "dummy.json", "--nodes", "1", "--no-wait", "--additional-context", CTX,
                    cwd=slurm_hub)
    assert res.rc == 0, res.text
    job_id = re.search(r"^(\d+)$", res.out, re.M).group(1)  # type: ignore[union-attr]
    flag = tmp_path / "outage"
    flag.touch()
    env = fake_scheduler(tmp_path, flag)
    time.sleep(8)  # the job has finished by now; the scheduler "cannot be reached"
    st = madengine("slurm.status", job_id, cwd=slurm_hub, env=env)
    assert st.rc == 1, st.text
    assert "unknown" in st.text and "Socket timed out" in st.text
    assert "COMPLETED" not in st.out
    assert not (slurm_hub / "perf.csv").exists() or not read_perf(slurm_hub / "perf.csv")
    flag.unlink()
    deadline = time.monotonic() + 60
    while True:
        st = madengine("slurm.status", job_id, cwd=slurm_hub, env=env)
        if "COMPLETED" in st.out or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert st.rc == 0 and "COMPLETED" in st.out, st.text
    assert len(read_perf(slurm_hub / "perf.csv")) == 1


def test_cluster_over_ssh(slurm_hub: Path, login_node, no_leftovers) -> None:
    """Over SSH the run reads the hub parts it needs on the cluster: pre-scripts, scripts/common, a site tool
    catalogue, and credential.json (mode 0600)."""
    (slurm_hub / "credential.json").write_text(json.dumps({"SOME_CRED": {"password": "s3cret-over-ssh"}}))
    hook = slurm_hub / "scripts" / "hooks" / "pre.sh"
    hook.parent.mkdir(parents=True)
    hook.write_text('echo "REMOTE-PRE-RAN"\n')
    (slurm_hub / "site-tools.yaml").write_text(json.dumps({"site_env": {"env_vars": {"SITE_TOOL": "yes"}}}))
    ctx = json.dumps({**json.loads(CTX), "pre_scripts": [{"path": "scripts/hooks/pre.sh"}],
                      "tools": [{"name": "site_env"}]})
    res = madengine("run.slurm", "--manifest-file", "probe.json", "--nodes", "2", "--cluster", "local/loopback",
                    "--tools-config", "site-tools.yaml", "--additional-context", ctx, cwd=slurm_hub)
    assert res.rc == 0, res.text
    assert "ssh root@127.0.0.1:2222" in res.err and "s3cret-over-ssh" not in res.text
    rows = _probe_rows(slurm_hub)
    assert sorted(r["performance"] for r in rows) == ["1", "2"]
    job_dir = latest_job_dir(slurm_hub, "slurm_probe")
    logs = _node_logs(job_dir)  # fetched back from the login node
    assert "MASTER_ADDR=n1" in logs["n2"] and all("REMOTE-PRE-RAN" in text for text in logs.values())
    assert list(job_dir.glob("slurm-*.out"))
    remote = Path("/tmp/madengine-remote") / job_dir.parent.name  # the loopback cluster's work_dir, this host
    assert (remote / "hub" / "credential.json").stat().st_mode & 0o777 == 0o600
    assert (remote / "hub" / "scripts" / "hooks" / "pre.sh").is_file()
    assert list((remote / "tools").glob("*-site-tools.yaml"))


def test_cluster_unknown_host_key_is_refused(slurm_hub: Path, login_node, tmp_path: Path) -> None:
    inv_dir = tmp_path / "inventories"
    inv_dir.mkdir()
    other = tmp_path / "known_hosts"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    other.write_text("[127.0.0.1]:2222 " + " ".join((tmp_path / "k.pub").read_text().split()[:2]) + "\n")
    (inv_dir / "evil.yaml").write_text(
        "clusters:\n  c:\n    login: {host: 127.0.0.1, port: 2222, user: root, "
        f"key_filename: /var/lib/madengine/sshd/id_ed25519, known_hosts: {other}, connect_timeout: 5}}\n"
        "    work_dir: /tmp/madengine-remote\n")
    res = madengine("run.slurm", "--manifest-file", "dummy.json", "--cluster", "evil/c", "--additional-context", CTX,
                    cwd=slurm_hub, env={"MADENGINE_INVENTORY_DIR": str(inv_dir)})
    assert res.rc == 1, res.text
    assert "127.0.0.1" in res.err and "Traceback" not in res.err
    assert re.search(r"host key|Host key", res.err), res.err


@pytest.mark.slow
def test_time_limit_gives_timeout(slurm_hub: Path, no_leftovers) -> None:
    res = madengine("run.slurm", "--manifest-file", "timeout.json", "--timeout", "0", "--nodes", "2", "--time", "00:01:00",
                    "--additional-context", CTX, cwd=slurm_hub, timeout=240)
    assert res.rc == 3, res.text
    assert re.search(r"job \d+: TIMEOUT", res.err), res.err
    rows = [r for r in read_perf(slurm_hub / "perf.csv") if r["model"] == "dummy_timeout"]
    assert len(rows) == 2 and {r["status"] for r in rows} == {"FAILURE"}
    time.sleep(3)



def test_multi_node_rule_result_from_the_rank_that_printed_it(slurm_hub: Path, no_leftovers) -> None:
    """madengine.deploy.jobs.MULTI_NODE_RULE on a real 2-node job: rank 0 prints the result, rank 1 runs cleanly and
    prints none (a torchrun worker): one SUCCESS row from rank 0, no FAILURE row; a rank that fails is a FAILURE
    row naming its node."""
    script = slurm_hub / "scripts" / "rank0_only" / "run.sh"
    script.parent.mkdir(parents=True)
    script.write_text('#!/bin/bash\nif [ "${NODE_RANK:-0}" = 0 ]; then echo "performance: 7 items_per_second"; '
                      'elif [ -n "${FAIL_RANK1:-}" ]; then echo "rank 1 broke"; exit 9; fi\n')
    models = json.loads((slurm_hub / "models.json").read_text())
    models.append({"name": "rank0_only", "dockerfile": "docker/dummy", "scripts": "scripts/rank0_only/run.sh",
                   "n_gpus": "1", "tags": ["rank0_only"], "args": ""})
    (slurm_hub / "models.json").write_text(json.dumps(models))
    res = madengine("run.slurm", "--tags", "rank0_only", "--nodes", "2", "--additional-context", CTX, cwd=slurm_hub)
    assert res.rc == 0, res.text
    rows = [r for r in read_perf(slurm_hub / "perf.csv") if r["model"] == "rank0_only"]
    assert [(r["status"], r["performance"], r["machine_name"]) for r in rows] == [("SUCCESS", "7", "n1")]
    failing = json.dumps({**json.loads(CTX), "docker_env_vars": {"FAIL_RANK1": "1"}})
    res = madengine("run.slurm", "--tags", "rank0_only", "--nodes", "2", "--additional-context", failing,
                    cwd=slurm_hub)
    assert res.rc == 3 and "node n2: run command exited with code 9" in res.err, res.text


def test_status_while_the_run_waits_collects_each_job_once(slurm_hub: Path, tmp_path: Path, no_leftovers) -> None:
    """`jobs.status JOB` from another shell collects a job that `run.slurm` is still waiting for (its scheduler
    queries fail meanwhile): the rows are merged once, and `run.slurm` then says so instead of merging them again."""
    flag = tmp_path / "outage"
    flag.touch()
    env = fake_scheduler(tmp_path, flag)
    proc = subprocess.Popen([sys.executable, "-m", "madengine", "run.slurm", "--manifest-file", "dummy.json",
                             "--nodes", "2", "--additional-context", CTX], cwd=slurm_hub,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        job_id = ""
        while not job_id:
            assert time.monotonic() < deadline and proc.poll() is None, "the run never recorded its job"
            state = slurm_hub / ".madengine" / "jobs.json"
            job_id = next(iter(json.loads(state.read_text())["jobs"]), "") if state.is_file() else ""
            time.sleep(0.5)
        while True:  # another shell, with a working scheduler
            st = madengine("jobs.status", job_id, cwd=slurm_hub)
            if "row(s) appended" in st.out or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert st.rc == 0 and "2 row(s) appended" in st.out, st.text
        flag.unlink()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"job {job_id} was collected already" in err
    assert len(read_perf(slurm_hub / "perf.csv")) == 2


def test_jobs_of_a_killed_run_are_reported_and_cancelled_by_clean(slurm_hub: Path, no_leftovers) -> None:
    """run.slurm is SIGKILLed while it waits: its job keeps running, recorded with the dead owner. The next run
    warns about it, `clean --dry-run` lists it, `clean` cancels it (Slurm shows CANCELLED)."""
    proc = subprocess.Popen([sys.executable, "-m", "madengine", "run.slurm", "--manifest-file", "timeout.json",
                             "--timeout", "0", "--additional-context", CTX], cwd=slurm_hub,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = slurm_hub / ".madengine" / "jobs.json"
    deadline = time.monotonic() + 60
    while not (state.is_file() and json.loads(state.read_text())["jobs"]):
        assert time.monotonic() < deadline and proc.poll() is None, "the run never recorded its job"
        time.sleep(0.3)
    job_id = next(iter(json.loads(state.read_text())["jobs"]))
    proc.kill()
    proc.wait(timeout=30)
    try:
        again = madengine("run.local", "--manifest-file", "dummy.json", "--additional-context", CTX, cwd=slurm_hub)
        assert again.rc == 0 and f"slurm {job_id}" in again.err and "madengine clean" in again.err, again.err
        listed = madengine("clean", "--dry-run", cwd=slurm_hub)
        assert listed.rc == 0 and f"would cancel slurm job {job_id}" in listed.out, listed.text
        assert _slurm_state(job_id) in ("PENDING", "RUNNING", "CONFIGURING")
        cleaned = madengine("clean", cwd=slurm_hub)
        assert cleaned.rc == 0 and f"cancelled slurm job {job_id}" in cleaned.out, cleaned.text
        assert _slurm_state(job_id) == "CANCELLED"
        assert "no leftover" in madengine("clean", cwd=slurm_hub).out
    finally:
        subprocess.run(["scancel", job_id], check=False)


def test_a_stale_image_under_the_recorded_name_fails_on_every_node(hub: Path, slurm_cluster, no_leftovers) -> None:
    """The manifest records each image's id; a node whose engine has another image under that name (rebuilt
    since) fails the row before the model starts, naming both ids: here and on both Slurm nodes."""
    name = add_model(hub, f"stale_{uuid.uuid4().hex[:6]}", tags=["stale"])
    assert madengine("build", "--tags", name, "--additional-context", CPU, "--manifest-output", "old.json",
                     cwd=hub).rc == 0
    dockerfile = hub / "docker" / "dummy.ubuntu.Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\nENV MADENGINE_REBUILT=1\n")
    assert madengine("build", "--tags", name, "--additional-context", CPU, "--manifest-output", "new.json",
                     cwd=hub).rc == 0
    old_id = next(iter(json.loads((hub / "old.json").read_text())["built_images"].values()))["image_id"]
    res = madengine("run.local", "--manifest-file", "old.json", "--additional-context", CPU, cwd=hub)
    assert res.rc == 3 and "a different image under the same name" in res.err, res.err
    assert old_id.removeprefix("sha256:")[:12] in res.err
    res = madengine("run.slurm", "--manifest-file", "old.json", "--nodes", "2", "--additional-context", CTX, cwd=hub)
    assert res.rc == 3, res.err
    rows = [r for r in read_perf(hub / "perf.csv") if r["deployment_type"] == "slurm"]
    assert len(rows) == 2 and {r["status"] for r in rows} == {"FAILURE"}
    assert madengine("run.local", "--manifest-file", "new.json", "--additional-context", CPU, cwd=hub).rc == 0


def test_images_travel_as_archives_without_a_registry(hub: Path, slurm_cluster, docker_client, no_leftovers) -> None:
    """`--image-transfer save`: an image without a registry is saved into the run's directory and every node's
    manifest names the archive; a node whose engine lacks the image loads it (once) and checks its id."""
    name = add_model(hub, f"shipped_{uuid.uuid4().hex[:6]}", tags=["shipped"])
    assert madengine("build", "--tags", name, "--additional-context", CPU, cwd=hub).rc == 0
    image = f"ci-{name}_dummy.ubuntu"
    res = madengine("run.slurm", "--manifest-file", "build_manifest.json", "--nodes", "2", "--image-transfer",
                    "save", "--additional-context", CTX, cwd=hub)
    assert res.rc == 0 and f"saving {image}" in res.err, res.err
    job_manifest = next(hub.glob(f".madengine/slurm/*/{name}/build_manifest.json"))
    archive = Path(json.loads(job_manifest.read_text())["built_images"][image]["image_archive"])
    assert archive.is_file() and archive.stat().st_size > 0
    docker_client.images.remove(image, force=True)  # a node that never had it runs the job's own manifest
    node = madengine("run.local", "--manifest-file", str(job_manifest), "--output", "node.csv", cwd=hub)
    assert node.rc == 0 and f"loading {image} from {archive}" in node.err, node.err
    assert read_perf(hub / "node.csv")[-1]["status"] == "SUCCESS"


def test_multi_arch_images_make_one_job_each_node_runs_its_own(hub: Path, slurm_cluster, no_leftovers) -> None:
    """The per-architecture images of one model (--target-archs) are one Slurm job; every node runs the image of
    its own architecture (here the context names it for the CPU-only nodes)."""
    name = add_model(hub, f"archs_{uuid.uuid4().hex[:6]}", tags=["archs"])
    assert madengine("build", "--tags", name, "--additional-context", CPU, "--target-archs", "gfx942,gfx950",
                     cwd=hub).rc == 0
    ctx = json.dumps({**json.loads(CTX), "docker_env_vars": {"MAD_SYSTEM_GPU_ARCHITECTURE": "gfx950"}})
    res = madengine("run.slurm", "--manifest-file", "build_manifest.json", "--nodes", "2", "--additional-context",
                    ctx, cwd=hub)
    assert res.rc == 0, res.err
    assert res.err.count("submitted ") == 1
    rows = read_perf(hub / "perf.csv")
    assert [(r["docker_image"], r["status"]) for r in rows] == [(f"ci-{name}_dummy.ubuntu_gfx950", "SUCCESS")] * 2
