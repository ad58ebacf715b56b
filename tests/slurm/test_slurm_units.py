"""Unit tests of the Slurm target's parts (no cluster): config and time parsing, rendering and quoting, the state
table, the polling schedule, the batched monitor, the job state file, Slurm output parsing, inventories."""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
from pathlib import Path

import pytest

from madengine.deploy import jobs as state
from madengine.deploy.slurm import config, render
from madengine.deploy.slurm.cli import CommandResult, JobInfo, SlurmCli, SlurmError, parse_parsable
from madengine.deploy.slurm.monitor import STATE_TABLE, JobStatus, Monitor, intervals, map_state
from madengine.errors import ConfigError
from madengine.hub import Model

ISSUE_STATES = ["PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT",
                "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "REQUEUED", "BOOT_FAIL", "DEADLINE", "SUSPENDED"]


# ---------------------------------------------------------------- config

@pytest.mark.parametrize(("text", "seconds"), [("00:01:00", 60), ("1-02:03:04", 93784), ("90", 90), (45, 45),
                                               ("12:00:00", 43200)])
def test_parse_time(text, seconds) -> None:
    assert config.parse_time(text) == seconds


@pytest.mark.parametrize("bad", ["1h", "00:61:00", "0", "", "1-2", True, "-5"])
def test_parse_time_rejects(bad) -> None:
    with pytest.raises(ConfigError, match="slurm.time"):
        config.parse_time(bad)


def test_format_time() -> None:
    assert config.format_time(90) == "00:01:30"
    assert config.format_time(93784) == "1-02:03:04"


def test_precedence_flags_over_context_over_defaults() -> None:
    ctx = {"slurm": {"nodes": 2, "partition": "ctx", "time": "00:10:00"}, "runtime": "native"}
    cfg = config.resolve(ctx, {"partition": "flag", "nodes": None, "exclusive": False},
                         {"partition": "inv", "account": "inv-acct", "nodes": 8})
    assert (cfg.partition, cfg.nodes, cfg.time, cfg.account, cfg.runtime) == ("flag", 2, 600, "inv-acct", "native")
    assert cfg.time_text == "00:10:00"
    assert config.resolve({}, {"nodes": "4"}).nodes == 4  # CLI strings are coerced


@pytest.mark.parametrize(("section", "match"), [
    ({"nodez": 2}, r"slurm.nodez: unknown key"),
    ({"nodes": 0}, r"slurm.nodes"),
    ({"partition": "a b"}, r"slurm.partition: may hold only"),
    ({"account": "x\n#SBATCH --uid=0"}, r"slurm.account"),
    ({"env_vars": {"1BAD": "x"}}, r"not a valid environment variable name"),
    ({"sbatch_args": ["--mem=1G; rm"]}, r"slurm.sbatch_args"),
    ({"time": "soon"}, r"slurm.time"),
])
def test_config_errors_name_the_key(section, match) -> None:
    with pytest.raises(ConfigError, match=match):
        config.resolve({"slurm": section})


# ---------------------------------------------------------------- rendering and quoting

def _spec(**cfg_keys) -> render.JobSpec:
    cfg = config.resolve({"slurm": cfg_keys})
    return render.JobSpec(job_name=render.job_name(cfg.job_name, "m"), job_dir="/shared/run/m", hub="/shared/hub",
                          python="/opt/py/bin/python", cfg=cfg, env_vars={"A": "1"}, run_args=["--timeout", "60"])


def test_render_sbatch_lines() -> None:
    text = render.render(_spec(nodes=4, partition="gpu", gpus_per_node=8, time="1-00:00:00", exclusive=True,
                               account="acct", qos="high", reservation="res1", nodelist="n[1-4]", exclude="n9",
                               constraint="mi300", modules=["rocm/6.2"]))
    sbatch = [ln for ln in text.splitlines() if ln.startswith("#SBATCH")]
    assert sbatch == [
        "#SBATCH --job-name=madengine-m", "#SBATCH --output=/shared/run/m/slurm-%j.out",
        "#SBATCH --error=/shared/run/m/slurm-%j.err", "#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=1",
        "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=8", "#SBATCH --time=1-00:00:00", "#SBATCH --exclusive",
        "#SBATCH --account=acct", "#SBATCH --qos=high", "#SBATCH --reservation=res1", "#SBATCH --nodelist=n[1-4]",
        "#SBATCH --exclude=n9", "#SBATCH --constraint=mi300"]
    assert "module load rocm/6.2" in text
    assert "export GPUS_PER_NODE=8" in text
    assert "--output \"$results/perf.csv\"" in text and "--timeout 60" in text
    assert "srun --nodes=\"$SLURM_JOB_NUM_NODES\" --ntasks-per-node=1" in text
    assert render.render(_spec(gpus_per_node=2, gres_gpu=True)).count("#SBATCH --gres=gpu:2") == 1
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)


def test_hostile_values_are_quoted_and_do_not_execute(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = f"$(touch {marker})`touch {marker}`'\"; touch {marker}\nline2 $HOME"
    cfg = config.resolve({"slurm": {"modules": [f"mod$(touch {marker})"]}})
    spec = render.JobSpec(job_name=render.job_name("madengine", f"x$(touch {marker})'\"\n"),
                          job_dir="/shared/run/m", hub=f"/hub'$(touch {marker})", python="python3", cfg=cfg,
                          env_vars={"EVIL": evil})
    text = render.render(spec)
    assert "$(touch" not in spec.job_name
    # Run only the environment part of the script (up to the Slurm-dependent contract) with a fake `module`.
    env_part = text.split("# ---- the distributed contract")[0]
    script = "module() { printf 'module:%s\\n' \"$*\"; }\n" + env_part.replace("set -euo pipefail", "") + \
        'printf "EVIL=[%s]\\n" "$EVIL"\n'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert not marker.exists()
    assert f"EVIL=[{evil}]" in out
    assert f"module:load mod$(touch {marker})" in out


def test_bad_env_name_and_unsafe_job_dir_are_rejected() -> None:
    spec = _spec()
    spec.env_vars = {"A;B": "1"}
    with pytest.raises(ConfigError, match="not a valid shell variable name"):
        render.render(spec)
    spec = _spec()
    spec.job_dir = "/shared/my run"
    with pytest.raises(ConfigError, match="slurm.work_dir"):
        render.render(spec)


def test_site_template_dir_wins(tmp_path: Path) -> None:
    (tmp_path / "job.sh.j2").write_text("#!/bin/bash\necho site {{ job_name | shquote }}\n")
    spec = _spec(template_dir=str(tmp_path))
    assert render.render(spec) == "#!/bin/bash\necho site madengine-m\n"
    with pytest.raises(ConfigError, match="slurm.template_dir"):
        render.render(_spec(template_dir=str(tmp_path / "missing")))


# ---------------------------------------------------------------- state table

@pytest.mark.parametrize("slurm_state", ISSUE_STATES)
def test_every_state_is_mapped(slurm_state: str) -> None:
    assert slurm_state in STATE_TABLE
    status = map_state(JobInfo("1", slurm_state, "0:0"))
    assert status.status in {"pending", "running", "completed", "failed", "cancelled", "timeout"}


def test_state_mapping_details() -> None:
    assert map_state(JobInfo("1", "COMPLETED", "0:0")).status == "completed"
    failed = map_state(JobInfo("1", "FAILED", "3:0", "NonZeroExitCode"))
    assert (failed.status, failed.reason) == ("failed", "exit code 3")
    assert map_state(JobInfo("1", "TIMEOUT")).status == "timeout"
    assert map_state(JobInfo("1", "OUT_OF_MEMORY")).reason == "out of memory"
    pending = map_state(JobInfo("1", "PENDING", "", "Resources"))
    assert (pending.status, pending.reason, pending.terminal) == ("pending", "Resources", False)
    assert map_state(JobInfo("1", "WEIRD")).status == "unknown"
    assert "job 7: FAILED (exit 3:0" in JobStatus("7", "failed", "FAILED", "x", "3:0").describe()


# ---------------------------------------------------------------- schedule

def test_interval_schedule_decays_to_cap_with_jitter() -> None:
    gen = intervals(first=1.0, cap=15.0, factor=1.5, jitter=0.1, rng=random.Random(1))
    values = [next(gen) for _ in range(20)]
    bases = [min(1.0 * 1.5 ** i, 15.0) for i in range(20)]
    for value, base in zip(values, bases, strict=True):
        assert base * 0.9 <= value <= base * 1.1
    assert values[-1] >= 13.5 and len({round(v, 6) for v in values[-5:]}) > 1  # capped, and jittered


# ---------------------------------------------------------------- monitor (with a scripted CLI)

class ScriptedExecutor:
    """Answers sacct/squeue/scancel from a script; counts calls."""

    description = "scripted"

    def __init__(self, answers: list[CommandResult]) -> None:
        self.answers = answers
        self.commands: list[list[str]] = []

    def run(self, argv, timeout=60.0) -> CommandResult:
        self.commands.append(list(argv))
        if argv[0] == "scancel":
            return CommandResult(0, "", "")
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def push(self, local, remote) -> None: ...
    def pull(self, remote, local) -> None: ...
    def read_text(self, remote) -> None: ...
    def close(self) -> None: ...


def _sacct(*rows: str) -> CommandResult:
    return CommandResult(0, "".join(r + "\n" for r in rows), "")


def test_one_batched_query_per_tick() -> None:
    ex = ScriptedExecutor([_sacct("1|RUNNING|0:0|None", "2|PENDING|0:0|Resources"),
                           _sacct("1|COMPLETED|0:0|None", "2|RUNNING|0:0|None"),
                           _sacct("2|FAILED|3:0|NonZeroExitCode")])
    cli = SlurmCli(ex)
    monitor = Monitor(cli, ["1", "2"], sleep=lambda s: None)
    final = monitor.wait()
    assert monitor.ticks == 3 and cli.calls == 3
    assert ex.commands[2][ex.commands[2].index("-j") + 1] == "2"  # finished jobs are not asked about again
    assert (final["1"].status, final["2"].status, final["2"].exit_code) == ("completed", "failed", "3:0")


def test_query_failure_is_unknown_never_completed() -> None:
    down = CommandResult(1, "", "sacct: error: Socket timed out on send/recv operation")
    ex = ScriptedExecutor([_sacct("1|RUNNING|0:0|None"), down, down, _sacct("1|COMPLETED|0:0|None")])
    monitor = Monitor(SlurmCli(ex), ["1"], sleep=lambda s: None)
    seen = [monitor.tick()["1"].status for _ in range(4)]
    assert seen == ["running", "unknown", "unknown", "completed"]


def test_unknown_for_too_long_gives_up_without_success() -> None:
    now = [0.0]
    down = CommandResult(1, "", "squeue: error: Unable to contact slurm controller")
    cli = SlurmCli(ScriptedExecutor([down]))
    cli.mode = "squeue"

    def sleep(seconds: float) -> None:
        now[0] += seconds

    monitor = Monitor(cli, ["5"], unknown_timeout=30, clock=lambda: now[0], sleep=sleep)
    with pytest.raises(SlurmError, match=r"unknown for over 30 s.*slurm.status 5"):
        monitor.wait()
    assert monitor.states["5"].status == "unknown"


def test_hopeless_pending_is_cancelled() -> None:
    now = [0.0]
    ex = ScriptedExecutor([_sacct("9|PENDING|0:0|PartitionNodeLimit")])
    monitor = Monitor(SlurmCli(ex), ["9"], clock=lambda: now[0])
    monitor.tick()
    assert monitor.states["9"].status == "pending"
    now[0] = 5.0
    monitor.tick()
    assert monitor.states["9"].status == "cancelled" and "PartitionNodeLimit" in monitor.states["9"].reason
    assert ["scancel", "9"] in ex.commands


def test_accounting_disabled_falls_back_to_squeue_then_sacct_c() -> None:
    ex = ScriptedExecutor([CommandResult(1, "", "Slurm accounting storage is disabled"),
                           CommandResult(0, "3|RUNNING|None|0|\n", ""),
                           CommandResult(0, "3|FAILED|NonZeroExitCode|768|\n", ""),
                           CommandResult(1, "", "slurm_load_jobs error: Invalid job id specified"),
                           CommandResult(0, "3|CANCELLED|0:0\n", "")])
    cli = SlurmCli(ex)
    assert cli.query(["3"])["3"].state == "RUNNING" and cli.mode == "squeue"
    failed = cli.query(["3"])["3"]
    assert (failed.state, failed.exit_code) == ("FAILED", "3:0")  # wait status 768 → 3:0
    assert cli.query(["3"])["3"].state == "CANCELLED"  # purged from squeue: sacct -c
    assert ex.commands[-1][:2] == ["sacct", "-c"]


def test_submit_retries_transient_errors_and_rejects_bad_requests() -> None:
    sleeps: list[float] = []
    ex = ScriptedExecutor([CommandResult(1, "", "sbatch: error: Batch job submission failed: Socket timed out"),
                           CommandResult(0, "42;cluster\n", "")])
    assert SlurmCli(ex, sleep=sleeps.append).submit("/x/job.sh") == "42"
    assert len(sleeps) == 1 and 1.6 <= sleeps[0] <= 2.4
    bad = ScriptedExecutor([CommandResult(1, "", "sbatch: error: invalid partition specified: nopart")])
    with pytest.raises(ConfigError, match="invalid partition"):
        SlurmCli(bad).submit("/x/job.sh")
    down = ScriptedExecutor([CommandResult(1, "", "Unable to contact slurm controller (connect failure)")])
    with pytest.raises(SlurmError, match="failed 3 times"):
        SlurmCli(down, sleep=lambda s: None).submit("/x/job.sh", retries=2)
    with pytest.raises(SlurmError, match="no job id"):
        parse_parsable("Submitted batch job\n")


def test_missing_command_names_the_fix() -> None:
    with pytest.raises(SlurmError, match="dev/slurm.sh up"):
        SlurmCli(ScriptedExecutor([CommandResult(127, "", "sbatch: command not found")])).submit("x")


# ---------------------------------------------------------------- state file

def test_state_file_round_trip_and_concurrent_updates(tmp_path: Path) -> None:
    path = state.state_path(tmp_path / "perf.csv")
    assert path == tmp_path / ".madengine" / "jobs.json"

    def add(i: int) -> None:
        state.save(path, [state.JobRecord(job_id=str(i), model=f"m{i}", job_dir="/j", local_dir="/l",
                                          output=str(tmp_path / "perf.csv"))])

    threads = [threading.Thread(target=add, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(state.load(path)) == {str(i) for i in range(20)}
    state.update(path, "3", status="completed", collected=True)
    assert state.get(path, "3").collected is True
    assert json.loads(path.read_text())["version"] == 1
    with pytest.raises(ConfigError, match="not recorded"):
        state.get(path, "999")
    assert not list(path.parent.glob(".slurm-jobs.json.*"))  # no temporary files left


# ---------------------------------------------------------------- inventories

def test_example_inventory_validates() -> None:
    from madengine import inventory

    repo = Path(__file__).resolve().parents[2]
    path, cluster = inventory.find_cluster("local/loopback", [repo / "inventories"])
    assert cluster.login and cluster.login.port == 2222 and cluster.login.known_hosts
    assert cluster.slurm_defaults()["partition"] == "debug"


def test_inventory_errors(tmp_path: Path) -> None:
    from madengine import inventory

    (tmp_path / "site.yaml").write_text("clusters:\n  a:\n    login: {host: h, prot: 22}\n")
    with pytest.raises(ConfigError, match=r"clusters.a.login.prot"):
        inventory.find_cluster("site/a", [tmp_path])
    (tmp_path / "ok.yaml").write_text("clusters:\n  a:\n    login: alias1\n")
    assert inventory.find_cluster("ok", [tmp_path])[1].login.host == "alias1"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="no cluster 'b'"):
        inventory.find_cluster("ok/b", [tmp_path])
    with pytest.raises(ConfigError, match="no inventory nosite.yaml"):
        inventory.find_cluster("nosite/a", [tmp_path])


def test_allocation_is_sized_from_the_launcher_plan() -> None:
    from madengine.deploy.slurm import _resolve_config

    ctx = {"gpu_vendor": "NONE", "launcher": "torchrun", "torchrun": {"nnodes": 2, "nproc_per_node": 2,
                                                                       "master_port": 29611}}
    cfg, _ = _resolve_config(ctx, {}, None)
    assert (cfg.nodes, cfg.master_port) == (2, 29611)
    gpu = {"launcher": "vllm", "vllm": {"tensor_parallel_size": 8}}
    assert _resolve_config(gpu, {}, None)[0].gpus_per_node == 8
    assert _resolve_config(gpu, {}, None)[1] is True  # sized by the plan: the model's n_gpus does not override
    # the context's slurm section and the flags still win (and must agree with the plan)
    assert _resolve_config({**ctx, "slurm": {"partition": "debug"}}, {"nodes": 2}, None)[0].partition == "debug"


@pytest.mark.parametrize(("n_gpus", "ctx", "sinfo", "expected"), [
    ("4", {"gpu_vendor": "AMD"}, None, (4, False)),
    ("-1", {"gpu_vendor": "AMD"}, 8, (8, False)),
    ("-1", {"gpu_vendor": "AMD"}, None, (0, True)),   # no GPU GRES known: whole nodes
    ("4", {"gpu_vendor": "NONE"}, None, (0, False)),  # CPU run: no GPU request
])
def test_gpus_per_node_default_from_the_model(n_gpus, ctx, sinfo, expected) -> None:
    from madengine.deploy.slurm import _resolve_config, gpus_for_model

    cfg, explicit = _resolve_config(ctx, {}, None)
    assert not explicit
    job = gpus_for_model(cfg, Model(name="m", n_gpus=n_gpus), ctx, lambda: sinfo)
    assert (job.gpus_per_node or 0, job.exclusive) == expected


def test_node_gpus_reads_sinfo_gres(slurm_cluster) -> None:
    """The local cluster's nodes have Gres=gpu:2."""
    from madengine.deploy.slurm.cli import SlurmCli

    assert SlurmCli().node_gpus() == 2
    assert SlurmCli().node_gpus("no-such-partition") is None


def test_non_utf8_scheduler_output_makes_that_job_unknown(tmp_path, monkeypatch) -> None:
    """A stray non-UTF-8 byte in real ``sacct`` output (a fake sacct first on PATH) does not crash the poll: the
    garbled job is "unknown" for that tick, the others are read."""
    from madengine.deploy.slurm.cli import LocalExecutor

    fake = tmp_path / "bin" / "sacct"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nprintf '101|RUNNING|0:0|None\\n102|RUN\\377NING|0:0|None\\n'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    infos = SlurmCli(LocalExecutor()).query(["101", "102"])
    assert map_state(infos["101"]).status == "running"
    assert map_state(infos["102"]).status == "unknown"
