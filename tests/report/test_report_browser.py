"""The HTML report in a real browser: headless Debian chromium renders it from a file:// URL, offline.

Checks: no script errors (the page records ``window.onerror`` into ``data-js-errors``, and chromium's console log on
stderr has no error), the page script ran (``data-report-ready``), the table rows and the SVG bars are in the DOM,
and the screenshot is a real PNG. Without chromium the test skips, except under CI (``CI=true``) where it fails:
install it with ``bash dev/chromium.sh``.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from madengine.report.html import render_html
from madengine.report.load import load_sources
from tests.report.conftest import row

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    """The chromium binary; fails under CI, skips elsewhere, when it is missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "chromium is not installed; run `bash dev/chromium.sh` (Debian's chromium)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_html_report_in_chromium(tmp_path: Path, write_perf) -> None:
    binary = chromium()
    runs = []
    for day, factor in (("mon", 1.0), ("tue", 1.08), ("wed", 0.9)):
        runs.append(write_perf(f"{day}.csv", [
            row("pyt_bert", performance=f"{1200 * factor:.1f}", n_gpus="8", launcher="torchrun", test_duration="61"),
            row("pyt_bert", performance=f"{160 * factor:.1f}", n_gpus="1", launcher="torchrun", test_duration="55"),
            row("vllm_llama", performance=f"{5200 * factor:.0f}", metric="tokens_per_second", launcher="vllm"),
            row("latency", performance=f"{12 / factor:.2f}", metric="latency_ms"),
            *([row("pyt_resnet50", "FAILURE")] if day == "wed" else
              [row("pyt_resnet50", performance=f"{2400 * factor:.0f}", metric="images_per_second")]),
        ]))
    page = tmp_path / "report.html"
    page.write_text(render_html(load_sources(runs, ["mon", "tue", "wed"]), title="nightly gfx942"))

    dom = run_chromium(binary, tmp_path / "profile-dom", "--enable-logging=stderr", "--v=0",
                       "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-report-ready="1"' in html, "the page script did not finish"
    assert not re.search(r"<html[^>]*data-js-errors=", html), re.findall(r'data-js-errors="[^"]*"', html)
    console_errors = [line for line in dom.stderr.splitlines()
                      if "CONSOLE" in line and re.search(r"error|Uncaught", line, re.IGNORECASE)]
    assert not console_errors, console_errors
    assert len(re.findall(r'<tr class="row status-', html)) == 15
    assert len(re.findall(r'<tr class="failure"', html)) == 1
    assert len(re.findall(r'<rect class="bar"', html)) == 14      # 4 models x 3 runs (+1 config of bert) - 1 failed
    assert len(re.findall(r"<svg class=\"chart", html)) == 8       # a bar and a line chart per model
    assert "15 of 15 rows" in html                                # written by the page script (pager)

    shot = tmp_path / "report.png"
    result = run_chromium(binary, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,2000",
                          "--hide-scrollbars", page.as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    assert png_size(shot) == (1280, 2000)
    assert shot.stat().st_size > 50_000, "the screenshot looks blank"
    keep = os.environ.get("MADENGINE_REPORT_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_script_errors_are_detected(tmp_path: Path, sample: Path) -> None:
    """The error capture the test above relies on: a failing script shows up in the dumped DOM."""
    binary = chromium()
    page = tmp_path / "broken.html"
    page.write_text(render_html(load_sources([sample])).replace("</body>", "<script>noSuchFunction();</script></body>"))
    dom = run_chromium(binary, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert re.search(r'<html[^>]*data-js-errors="[^"]*noSuchFunction', dom.stdout), dom.stdout[:500]
