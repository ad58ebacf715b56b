"""Faults a fleet meets every week (issue "nothing lost, nothing leaked, nothing orphaned"), reproduced for real:
a perf.csv cut short by another writer, a perf.csv broken while the model runs."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CPU, madengine, own_containers, read_perf, write_script


def test_cut_short_perf_csv_is_refused_before_running(hub: Path, docker_client, no_leftovers) -> None:
    """A last row cut short (an interrupted writer) is found before any model runs: exit 4, one line naming the
    file, line and fix; the file is left byte for byte; no row and no container."""
    assert madengine("run.local", "--tags", "dummy", "--additional-context", CPU, cwd=hub).rc == 0
    perf = hub / "perf.csv"
    perf.write_bytes(perf.read_bytes()[:-40])
    before = perf.read_bytes()
    res = madengine("run.local", "--tags", "dummy", "--additional-context", CPU, cwd=hub)
    assert res.rc == 4, res.err
    assert "perf.csv:2: the last row is cut short" in res.err and "sed -i '$d'" in res.err
    assert "running dummy" not in res.err and len(res.err.strip().splitlines()[-1]) < 300
    assert perf.read_bytes() == before


def test_perf_csv_missing_directory_is_not_created_by_a_refused_run(hub: Path) -> None:
    """A run refused for bad input (exit 4) writes nothing: no header-only perf.csv, no directories."""
    res = madengine("run.local", "--tags", "dummy", "--additional-context", '{"gpu_vendor": "AMD"}',
                    "--output", "new/perf.csv", cwd=hub)
    assert res.rc == 4, res.err
    assert not (hub / "new").exists()


def test_result_survives_a_perf_csv_broken_during_the_run(hub: Path, docker_client, no_leftovers) -> None:
    """Another tool replaces perf.csv with a foreign file while the model runs: the finished row is written to a
    new perf.csv next to it and the error says where; the foreign file is left alone."""
    perf = hub / "perf.csv"
    proc = subprocess.Popen([sys.executable, "-m", "madengine", "run.local", "--tags", "dummy_timeout",
                             "--timeout", "4", "--additional-context", CPU], cwd=hub,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not own_containers(docker_client, hub, "dummy_timeout"):
            assert time.monotonic() < deadline and proc.poll() is None, "the model's container never started"
            time.sleep(0.2)
        perf.write_text("when,what\n2026-01-01,someone else's file\n")
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 4, err
    assert perf.read_text() == "when,what\n2026-01-01,someone else's file\n"
    spare = list(hub.glob("perf.unsaved-*.csv"))
    assert len(spare) == 1 and f"saved to {spare[0].name} instead" in err and "Traceback" not in err
    rows = read_perf(spare[0])
    assert [(r["model"], r["status"]) for r in rows] == [("dummy_timeout", "FAILURE")]


SECRETS = {"PORTAL_TOKEN": "portal-T0ken-77", "USER_TOKEN": "user-T0ken-88", "REPORT_KEY": "rep0rt-KEY-99",
           "PIN": 73519246, "username": "bench"}


def test_secrets_are_masked_by_key_name_and_across_long_lines(hub: Path, no_leftovers) -> None:
    """Tokens under key names that merely contain "port"/"user" and numeric secrets are masked; so is a secret in
    a 10 MB line (past the masker's 64 KiB piece size, at every offset around it), in the run log, the console
    and a kept workspace. Only exactly-named identifiers (``username``) stay readable."""
    (hub / "credential.json").write_text(json.dumps({"site": SECRETS}))
    models = json.loads((hub / "models.json").read_text())
    models.append({**models[0], "name": "dummy_leaky", "cred": "site", "tags": ["leaky"],
                   "scripts": "scripts/leaky/run.sh"})
    (hub / "models.json").write_text(json.dumps(models))
    # One 10 MB line: the token repeated after pads of 65,520..65,545 bytes, so copies straddle every 64 KiB cut.
    write_script(hub, "scripts/leaky/run.sh", """env | grep '^site_' | sort
awk 'BEGIN { for (i = 0; i < 150; i++) printf "%*s%s", 65520 + i % 26, "", ENVIRON["site_PORTAL_TOKEN"]; print "" }'
echo "performance: 1 x"
""")
    res = madengine("run.local", "--tags", "leaky", "--additional-context", CPU, "--keep-model-dir", "--live-output",
                    cwd=hub)
    assert res.rc == 0, res.err
    log = (hub / "dummy_leaky_dummy.ubuntu.run.live.log").read_bytes()
    assert len(log) > 9_000_000 and log.count(b"******") >= 150 + 4
    assert b"site_USERNAME=bench" in log
    secrets = [str(v) for k, v in SECRETS.items() if k != "username"]
    assert not [s for s in secrets if s in res.out + res.err]
    leaks = [(p, s) for p in hub.rglob("*") if p.is_file() and p.name != "credential.json"
             for s in secrets if s.encode() in p.read_bytes()]
    assert not leaks, leaks
    kept = list(hub.glob(".madengine/work/*/.madengine/model.out"))
    assert kept, "the kept workspace is there"
    assert f"workspace kept at {kept[0].parent.parent}" in res.err  # and the user is told where


@pytest.mark.parametrize("args", [
    ["report", "--output", "perf.csv"],
    ["report", "--csv", "perf.csv", "--format", "json", "--output", "other.csv"],
    ["report.html", "--csv", "perf.csv", "--output", "./perf.csv"],
    ["report.junit", "--csv", "perf.csv", "--summary", "summary.json", "--output", "summary.json"],
    ["report.compare", "--csv", "perf.csv", "--csv", "other.csv", "--output", "other.csv"],
    ["build", "--tags", "dummy", "--additional-context", CPU, "--manifest-output", "other.csv"],
    ["run.local", "--tags", "dummy", "--additional-context", CPU, "--summary-output", "perf.csv"],
    ["run.local", "--tags", "dummy", "--additional-context", CPU, "--summary-output", "other.csv"],
])
def test_no_task_writes_over_results(hub: Path, args: list[str]) -> None:
    """Every task that writes a file refuses one of its inputs or any perf.csv as the destination: exit 4, one
    line naming the flag and file, nothing written, nothing run."""
    madengine("run.local", "--tags", "dummy", "--additional-context", CPU, "--summary-output", "summary.json",
              cwd=hub)
    (hub / "other.csv").write_bytes((hub / "perf.csv").read_bytes())
    before = {name: (hub / name).read_bytes() for name in ("perf.csv", "other.csv", "summary.json")}
    res = madengine(*args, cwd=hub)
    assert res.rc == 4, res.out + res.err
    last = res.err.strip().splitlines()[-1]
    assert "nothing was written" in last and "--" in last and "Traceback" not in res.err
    assert {name: (hub / name).read_bytes() for name in before} == before
    assert "running dummy" not in res.err and "building" not in res.err


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB file system (tmpfs) for --output: it fills up for real."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("runtime", ["docker", "native"])
def test_disk_full_during_the_run_cleans_up_and_names_the_path(hub: Path, small_disk: Path, docker_client,
                                                               no_leftovers, runtime: str) -> None:
    """The model writes 3 MB of output onto a 1 MiB disk: the run log cannot be written. The container (or
    process) is still removed, no workspace is left, and the one-line error names the full directory."""
    models = json.loads((hub / "models.json").read_text())
    models.append({**models[0], "name": "dummy_chatty", "tags": ["chatty"], "scripts": "scripts/chatty/run.sh"})
    (hub / "models.json").write_text(json.dumps(models))
    write_script(hub, "scripts/chatty/run.sh", "head -c 3000000 /dev/zero | tr '\\\\0' 'x' | fold -w 100\n"
                 'echo "performance: 1 x"')
    ctx = json.dumps({**json.loads(CPU), **({"runtime": "native"} if runtime == "native" else {})})
    res = madengine("run.local", "--tags", "chatty", "--additional-context", ctx, "--output",
                    str(small_disk / "perf.csv"), cwd=hub)
    assert res.rc == 1, res.err
    last = res.err.strip().splitlines()[-1]
    assert f"the file system holding {small_disk}/" in last and "is full" in last and "Traceback" not in res.err, \
        res.err
    assert not list(small_disk.glob(".madengine/work/*"))


def test_disk_full_while_laying_out_the_workspace(hub: Path, small_disk: Path, docker_client, no_leftovers) -> None:
    """The model's scripts directory does not fit: one line naming the workspace, no partial workspace."""
    (hub / "scripts" / "dummy" / "big.bin").write_bytes(b"\0" * 2_000_000)
    res = madengine("run.local", "--tags", "dummy", "--additional-context", CPU, "--output",
                    str(small_disk / "perf.csv"), cwd=hub)
    assert res.rc == 1, res.err
    last = res.err.strip().splitlines()[-1]
    assert "no space left for the model's workspace" in last and "shutil.Error" not in res.err, res.err
    assert not list(small_disk.glob(".madengine/work/*"))


def test_plus_in_names_and_a_refused_container_skip_nothing(hub: Path, docker_client, no_leftovers) -> None:
    """A '+' in a model name (allowed by models.json) runs: the container name is sanitised. A model whose
    container the engine refuses (a device that does not exist) is one FAILURE row; the models after it run."""
    models = json.loads((hub / "models.json").read_text())
    dummy = models[0]
    models += [{**dummy, "name": "a_refused", "tags": ["plus"], "additional_docker_run_options":
                "--device /dev/madengine-no-such-device"},
               {**dummy, "name": "b_dummy+plus", "tags": ["plus"]}]
    (hub / "models.json").write_text(json.dumps(models))
    res = madengine("run.local", "--tags", "plus", "--additional-context", CPU, cwd=hub)
    assert res.rc == 3, res.err
    rows = {r["model"]: r for r in read_perf(hub / "perf.csv")}
    assert rows["b_dummy+plus"]["status"] == "SUCCESS", res.err
    assert rows["a_refused"]["status"] == "FAILURE" and "madengine-no-such-device" in res.err


class _Proxy:
    """A TCP proxy to the local engine's socket (DOCKER_HOST=tcp://127.0.0.1:PORT) that can be cut like a lost
    engine: every connection closed and no new ones accepted."""

    def __init__(self) -> None:
        import socket
        import threading

        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        self.conns: list[Any] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect("/var/run/docker.sock")
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: Any, b: Any) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(2)

    def cut(self) -> None:
        with contextlib.suppress(OSError):
            self.server.shutdown(2)  # wakes the accept() blocked in the other thread (close() alone would not)
        self.server.close()
        with self.lock:
            for s in self.conns:
                with contextlib.suppress(OSError):
                    s.shutdown(2)
                    s.close()


def test_engine_lost_mid_run_names_the_engine_and_the_container(hub: Path, docker_client) -> None:
    """The engine goes away while the model runs (its proxy is cut): one line naming the engine address and the
    fix, no traceback, the container reported for cleanup; `madengine clean` removes it once the engine is back."""
    assert madengine("build", "--tags", "dummy_timeout", "--additional-context", CPU, cwd=hub).rc == 0
    proxy = _Proxy()
    address = f"tcp://127.0.0.1:{proxy.port}"
    env = {**os.environ, "DOCKER_HOST": address}
    proc = subprocess.Popen([sys.executable, "-m", "madengine", "run.local", "--manifest-file", "build_manifest.json",
                             "--timeout", "60"], cwd=hub, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while not own_containers(docker_client, hub, "dummy_timeout"):
            assert time.monotonic() < deadline and proc.poll() is None, "the model's container never started"
            time.sleep(0.2)
        proxy.cut()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 1, err
    assert f"lost the Docker engine at {address}" in last and "madengine clean" in last, err
    assert "Traceback" not in err and "could not remove container container_dummy_timeout" in err
    cleaned = madengine("clean", cwd=hub)
    assert cleaned.rc == 0 and "removed container_dummy_timeout" in cleaned.out, cleaned.out + cleaned.err


@pytest.mark.parametrize("runtime", ["docker", "native"])
def test_background_processes_neither_hold_nor_outlive_the_run(hub: Path, docker_client, no_leftovers,
                                                               runtime: str) -> None:
    """A model forks background processes that keep its output open (a server it never stops; one in its own
    process group): the model step still ends when the model does (not at its 7200 s limit), the row is read, and
    no process outlives the run, natively as in a container."""
    marker = f"3{os.getpid() % 10000:04d}7"
    write_script(hub, "scripts/dummy/run.sh", f"sleep {marker} &\n(set -m; sleep {marker} &)\n"
                 'echo "performance: 1 x"')
    ctx = json.dumps({"gpu_vendor": "NONE", **({"runtime": "native"} if runtime == "native" else {})})
    res = madengine("run.local", "--tags", "dummy", "--additional-context", ctx, cwd=hub, timeout=120)
    assert res.rc == 0 and "Traceback" not in res.err, res.err
    assert read_perf(hub / "perf.csv")[-1]["performance"] == "1"
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True).stdout.split()
    for pid in left:  # leave nothing for the next test either
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), 9)
    assert not left


@pytest.mark.parametrize("args", [
    ["run.local", "--manifest-file", "build_manifest.json", "--summary-output", "build_manifest.json"],
    ["run.local", "--tags", "dummy", "--additional-context", CPU, "--summary-output", "build_manifest.json"],
    ["build", "--tags", "dummy", "--additional-context", CPU, "--manifest-output", "models.json"],
    ["build", "--tags", "dummy", "--additional-context-file", "ctx.json", "--manifest-output", "ctx.json"],
    ["run.local", "--tags", "dummy", "--additional-context", CPU, "--output", "build_manifest.json"],
])
def test_no_input_of_a_command_is_overwritten(hub: Path, args: list[str]) -> None:
    """A run summary, a manifest or rows never replace an input of the same command (its manifest, models.json,
    the context file): exit 4 before anything is built, every file as it was."""
    assert madengine("build", "--tags", "dummy", "--additional-context", CPU, cwd=hub).rc == 0
    (hub / "ctx.json").write_text(CPU)
    before = {p: p.read_bytes() for p in (hub / "build_manifest.json", hub / "models.json", hub / "ctx.json")}
    res = madengine(*args, cwd=hub)
    assert res.rc == 4, res.out + res.err
    assert "building" not in res.err and "Traceback" not in res.err
    assert {p: p.read_bytes() for p in before} == before


def test_cut_inside_a_quoted_field_is_refused(hub: Path) -> None:
    """perf.csv cut inside a quoted field ("dummies,exa...): a new row would be swallowed by the open quote."""
    assert madengine("run.local", "--tags", "dummy", "--additional-context", CPU, cwd=hub).rc == 0
    perf = hub / "perf.csv"
    text = perf.read_text()
    perf.write_text(text[:text.rindex('"dummies,') + 6])
    res = madengine("run.local", "--tags", "dummy", "--additional-context", CPU, cwd=hub)
    assert res.rc == 4 and "cut short inside a quoted field" in res.err, res.err


def test_files_a_model_leaves_never_replace_results(hub: Path, no_leftovers) -> None:
    """A model writing ../build_manifest.json, ../<its>.run.live.log and ../perf.csv.pending: none replaces the
    real file (nor follows the log's link); they are kept in the run's directory."""
    write_script(hub, "scripts/dummy/run.sh", 'for f in build_manifest.json dummy_dummy.ubuntu.run.live.log '
                 'perf.csv.pending; do echo garbage > "../$f"; done\necho "performance: 1 x"')
    assert madengine("build", "--tags", "dummy", "--additional-context", CPU, cwd=hub).rc == 0
    manifest = (hub / "build_manifest.json").read_bytes()
    res = madengine("run.local", "--manifest-file", "build_manifest.json", cwd=hub)
    assert res.rc == 0, res.err
    assert (hub / "build_manifest.json").read_bytes() == manifest and not (hub / "perf.csv.pending").exists()
    assert "performance: 1 x" in (hub / "dummy_dummy.ubuntu.run.live.log").read_text()
    kept = list(hub.glob("madengine-runs/*/dummy_dummy.ubuntu/build_manifest.json"))
    assert len(kept) == 1 and kept[0].read_text() == "garbage\n"


def test_output_inside_the_scripts_directory(hub: Path, no_leftovers) -> None:
    """--output inside the model's scripts directory: madengine's own directories are not copied into the
    workspace (no endless recursion)."""
    res = madengine("run.local", "--tags", "dummy", "--additional-context", CPU, "--output",
                    "scripts/dummy/perf.csv", cwd=hub)
    assert res.rc == 0, res.err
    again = madengine("run.local", "--tags", "dummy", "--additional-context", CPU, "--output",
                      "scripts/dummy/perf.csv", cwd=hub)
    assert again.rc == 0, again.err
    assert len(read_perf(hub / "scripts" / "dummy" / "perf.csv")) == 2


@pytest.mark.parametrize(("args", "needle"), [
    (["--timeout", "99999999999999999999"], "--timeout: 99999999999999999999 s is more than a year"),
    (["--additional-context", json.dumps({"gpu_vendor": "NONE", "docker_mounts": {"/data": "/no/such/dir"}})],
     "'docker_mounts': /no/such/dir (for /data) does not exist"),
])
def test_bad_values_are_refused_in_one_line(hub: Path, args: list[str], needle: str, no_leftovers) -> None:
    res = madengine("run.local", "--tags", "dummy", *(args if "--additional-context" in args else
                                                      ["--additional-context", CPU, *args]), cwd=hub)
    assert res.rc == 4 and needle in res.err and "Traceback" not in res.err, res.err


def test_clean_with_a_broken_job_record_still_cleans(hub: Path) -> None:
    (hub / ".madengine").mkdir(exist_ok=True)
    (hub / ".madengine" / "jobs.json").write_text("{not json")
    res = madengine("clean", cwd=hub)
    assert res.rc == 1 and "jobs not checked" in res.err and "Traceback" not in res.err, res.err
