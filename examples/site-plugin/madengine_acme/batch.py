"""``acme-batch``: a small PBS-like batch system on this host, as a madengine target (the target contract of
:mod:`madengine.deploy.contract`, nothing else of madengine changed).

Each model is one job: a directory ``.madengine/acme-batch/<run>/<model>/`` with the job's one-model build manifest
and ``job.sh``, started detached (its own session) with its output in ``job.out``; the job runs ``madengine
run.local`` on that manifest with the run's options and writes ``exit_code`` when it ends. The job id is
``acme-<pid>``. One ``ps`` per tick answers for every job; ``cancel`` signals the job's session; ``logs`` prints
``job.out``; ``collect`` reads the job's perf.csv. ``inv jobs.status|logs|cancel acme-<pid>`` reattach.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from madengine import api
from madengine.deploy.contract import deployer
from madengine.deploy.jobs import JobRecord, JobStatus
from madengine.errors import SchedulerError
from madengine.run_spec import node_args


class AcmeBatch:
    """The target; ``target_options``: ``no_wait`` (submit, record, return)."""

    name = "acme-batch"
    reattach = "inv jobs.status {job}"
    error = SchedulerError
    first, cap, unknown_timeout = 0.5, 2.0, 60.0

    def __init__(self, request: api.DeployRequest | None = None) -> None:
        self.request = request
        options = request.target_options if request else {}
        self.dry_run, self.wait = bool(options.get("dry_run")), not options.get("no_wait")
        self.dirs: dict[str, Path] = {}  # job id → job directory, for poll

    @classmethod
    def attach(cls, record: JobRecord) -> AcmeBatch:
        """A target for a recorded job (it needs nothing but the record)."""
        target = cls()
        target.dirs[record.job_id] = Path(record.job_dir)
        return target

    def plan(self) -> list[Path]:
        """One job directory per built image, with its manifest and ``job.sh``."""
        request = self.request
        assert request is not None
        run = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        root = request.output.resolve().parent / ".madengine" / "acme-batch" / run
        hub = (request.hub or Path(request.manifest.hub or ".")).resolve()
        args = node_args(request.options, {p: str(Path(p).resolve()) for p in request.options.tools_config})
        jobs = []
        for image, build in request.manifest.built_images.items():
            model = request.manifest.model_for(image)
            job_dir = root / model.name.replace("/", "_")
            job_dir.mkdir(parents=True)
            one = request.manifest.model_copy(update={"built_images": {image: build},
                                                      "built_models": {image: model}, "hub": str(hub)})
            (job_dir / "build_manifest.json").write_text(one.model_dump_json(indent=2))
            (job_dir / "context.json").write_text(json.dumps(request.ctx))
            command = [sys.executable, "-m", "madengine", "run.local", "--manifest-file", "build_manifest.json",
                       "--hub", str(hub), "--output", "perf.csv", "--additional-context-file", "context.json", *args]
            (job_dir / "job.sh").write_text(f"cd {shlex.quote(str(job_dir))}\n{shlex.join(command)}\n"
                                            "echo $? > exit_code\n")
            jobs.append(job_dir)
        return jobs

    def render(self, planned: Sequence[Path]) -> list[Path]:
        """The job scripts."""
        return [job_dir / "job.sh" for job_dir in planned]

    def preflight(self, planned: Sequence[Path]) -> None:
        """Nothing to check: the jobs run here."""

    def submit(self, job_dir: Path) -> JobRecord:
        """Start ``job.sh`` detached (its own session), output to ``job.out``."""
        assert self.request is not None
        with open(job_dir / "job.out", "wb") as out:
            proc = subprocess.Popen(["sh", str(job_dir / "job.sh")], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        manifest = api.load_manifest(job_dir / "build_manifest.json")
        build = next(iter(manifest.built_images.values()))
        self.dirs[f"acme-{proc.pid}"] = job_dir
        return JobRecord(job_id=f"acme-{proc.pid}", target=self.name, model=build.model, job_dir=str(job_dir),
                         local_dir=str(job_dir), output=str(self.request.output.resolve()),
                         docker_image=build.docker_image, docker_file=build.dockerfile,
                         submitted=datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def poll(self, job_ids: list[str]) -> dict[str, JobStatus]:
        """One ``ps`` for all jobs: alive = running; gone = its ``exit_code`` decides."""
        pids = {j: j.removeprefix("acme-") for j in job_ids}
        ps = subprocess.run(["ps", "-o", "pid=,stat=", "-p", ",".join(pids.values())], capture_output=True,
                            text=True)
        alive = {line.split()[0] for line in ps.stdout.splitlines() if line.strip() and "Z" not in line.split()[1]}
        states = {}
        for job_id, pid in pids.items():
            if pid in alive:
                states[job_id] = JobStatus(job_id, "running", "R")
                continue
            code_file = self.dirs[job_id] / "exit_code"
            code = code_file.read_text().strip() if code_file.is_file() else ""
            states[job_id] = (JobStatus(job_id, "completed", "C") if code == "0" else
                              JobStatus(job_id, "failed", "F", exit_code=code) if code else
                              JobStatus(job_id, "cancelled", "K", "ended without an exit code (killed)"))
        return states

    def collect(self, record: JobRecord, status: JobStatus) -> list[api.PerfRow]:
        """The rows the job's ``run.local`` wrote (a FAILURE row when there are none)."""
        perf = Path(record.job_dir) / "perf.csv"
        rows = api.read_rows(perf) if perf.is_file() else []
        found = [api.PerfRow(**{**row, "deployment_type": self.name}) for row in rows]
        return found or [api.PerfRow(model=record.model, status="FAILURE", deployment_type=self.name,
                                     reason=f"{status.describe()}; see {record.job_dir}/job.out")]

    def cancel(self, records: list[JobRecord]) -> None:
        """SIGTERM to each job's session (``run.local`` then removes its container)."""
        for record in records:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(record.job_id.removeprefix("acme-")), signal.SIGTERM)

    def logs(self, record: JobRecord, follow: bool, write: Callable[[str], None]) -> JobStatus:
        """``job.out``; with ``follow``, until the job ends."""
        shown = 0
        while True:
            status = self.poll([record.job_id])[record.job_id]
            text = (Path(record.job_dir) / "job.out").read_text(errors="replace")
            write(text[shown:])
            shown = len(text)
            if not follow or status.terminal:
                return status
            time.sleep(0.5)

    def close(self) -> None:
        """Nothing to release."""


deploy = deployer(AcmeBatch)
