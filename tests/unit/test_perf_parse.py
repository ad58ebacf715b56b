"""Tests of madengine.results.perf_parse: performance lines, error markers, multiple_results CSVs."""

from __future__ import annotations

from pathlib import Path

import pytest

from madengine.errors import ConfigError
from madengine.results.perf_parse import (
    DEFAULT_BENIGN_PATTERNS,
    DEFAULT_ERROR_PATTERNS,
    MAX_MARKER_CHARS,
    MultiResult,
    error_patterns_from_context,
    find_error_marker,
    parse_multiple_results,
    parse_performance,
)

# --- parse_performance -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        ("performance: 123.4 samples_per_second", ("123.4", "samples_per_second")),
        ("performance: 1.5e+03 tokens/s", ("1.5e+03", "tokens/s")),
        ("performance: 2E-4 s", ("2E-4", "s")),
        ("performance: 1e5 img/s", ("1e5", "img/s")),
        ("performance: -3.5 ms", ("-3.5", "ms")),
        ("performance: +7 fps", ("+7", "fps")),
        ("performance: .5 ratio", (".5", "ratio")),
        ("performance: 5. x", ("5.", "x")),
        ("performance: 14164/s, samples_per_second", ("14164", "samples_per_second")),
        ("performance: 14164 /s , samples_per_second", ("14164", "samples_per_second")),
        ("performance: 42, tokens_per_sec", ("42", "tokens_per_sec")),
        ("[rank0] performance: 3 ms", ("3", "ms")),
        ("2024-01-01 12:00:00 INFO performance: 99.9 TFLOPS", ("99.9", "TFLOPS")),
        ("performance:7 fps", ("7", "fps")),
        ("performance:\t12.0\tsamples_per_second\r\n", ("12.0", "samples_per_second")),
        ("performance: 12 tokens/s (mean of 10)", ("12", "tokens/s")),
        ("performance: 12 tokens/s,", ("12", "tokens/s")),
        ("performance: 5", ("5", "")),
        ("performance: 5   ", ("5", "")),
        ("step 1/10\rperformance: 9 it/s", ("9", "it/s")),  # progress bars end lines with \r
        ("eval performance: N/A; train performance: 12 s", ("12", "s")),
        ("performance: N/A\nperformance: 8 x", ("8", "x")),
        ("performance: 5\nsamples_per_second", ("5", "")),  # metric never taken from the next line
    ],
)
def test_parse_performance_forms(log: str, expected: tuple[str, str]) -> None:
    assert parse_performance(log) == expected


@pytest.mark.parametrize(
    "log",
    [
        "",
        "no performance here",
        "performance: N/A",
        "performance:",
        "performance: 123abc samples",
        "performance: 1,234 samples",
        "performance: 1.2.3 x",
        "performance: 1e samples",
        "performance: inf x",
        "Performance: 5 x",  # case-sensitive, as madengine
        "perf: 5 x",
    ],
)
def test_parse_performance_no_match(log: str) -> None:
    assert parse_performance(log) is None


def test_first_performance_line_wins() -> None:
    log = "warmup\nperformance: 1.0 samples_per_second\nmore\nperformance: 2.0 tokens_per_second\n"
    assert parse_performance(log) == ("1.0", "samples_per_second")


# --- find_error_marker ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "Traceback (most recent call last):",
        "RuntimeError: NCCL error in: ProcessGroupNCCL.cpp:1191",
        "torch.OutOfMemoryError: HIP out of memory. Tried to allocate 2.00 GiB",
        "torch.cuda.OutOfMemoryError: CUDA out of memory.",
        "ModuleNotFoundError: No module named 'apex'",
        "ImportError: cannot import name 'x'",
        "AssertionError: shapes differ",
        "ValueError: bad batch size",
        "torch.distributed.elastic: train.py FAILED: rank 0 failed (exitcode: -9)",
        "Segmentation fault (core dumped)",
        "Aborted (core dumped)",
        "Memory access fault by GPU node-2 (Agent handle: 0x55d5) on address 0x7f. Reason: Page not present",
        "HSA_STATUS_ERROR_OUT_OF_RESOURCES: The runtime failed to allocate the necessary resources.",
        "./run.sh: line 12:  4242 Killed                  python3 train.py",
    ],
)
def test_error_marker_found(line: str) -> None:
    log = f"starting\nperformance: 10 samples_per_second\n    {line}   \ndone\n"
    assert find_error_marker(log) == line.strip()


@pytest.mark.parametrize(
    "log",
    [
        "",
        "performance: 10 samples_per_second",
        "Killed 3 stale workers before start",
        "0 errors, 0 warnings",
        "test_x FAILED (retrying)",  # v2's over-broad FAILED is not a default marker here
        "+ grep -q 'RuntimeError:' run.log",
        "context: {'log_error_patterns': ['RuntimeError:']}",
    ],
)
def test_error_marker_absent(log: str) -> None:
    assert find_error_marker(log) is None


@pytest.mark.parametrize(
    ("log", "marker"),
    [
        ('Traceback (most recent call last):\n  File "train.py", line 9, in <module>\n    main()\n'
         "    ^^^^^^\nRuntimeError: simulated crash\n", "RuntimeError: simulated crash"),
        ("[rank0]: Traceback (most recent call last):\n[rank1]: step 3\n[rank0]:   File \"t.py\", line 2\n"
         "[rank0]: torch.OutOfMemoryError: HIP out of memory.\n", "[rank0]: torch.OutOfMemoryError: HIP out of memory."),
        ("Traceback (most recent call last):\n  File \"t.py\", line 2\n\nKeyboardInterrupt\n", "KeyboardInterrupt"),
        ('Traceback (most recent call last):\n  File "t.py", line 2\n', "Traceback (most recent call last):"),
    ],
)
def test_traceback_reported_by_its_exception_line(log: str, marker: str) -> None:
    assert find_error_marker(log) == marker


def test_first_error_line_in_log_order_wins() -> None:
    log = "ok\nValueError: first\nTraceback (most recent call last):\n"
    assert find_error_marker(log) == "ValueError: first"


def test_error_marker_truncated() -> None:
    line = "RuntimeError: " + "x" * 500
    marker = find_error_marker(line)
    assert marker is not None
    assert len(marker) == MAX_MARKER_CHARS
    assert marker.startswith("RuntimeError: xxx") and marker.endswith("...")


def test_custom_patterns_replace_defaults() -> None:
    log = "Traceback (most recent call last):\nstep FAILED\n"
    assert find_error_marker(log, patterns=["FAILED"]) == "step FAILED"
    assert find_error_marker("Traceback (most recent call last):", patterns=["FAILED"]) is None


def test_benign_patterns_exclude_lines() -> None:
    log = "checking: expected RuntimeError: raised\n"
    assert find_error_marker(log) == "checking: expected RuntimeError: raised"
    assert find_error_marker(log, benign=["expected RuntimeError"]) is None


def test_regex_pattern_and_invalid_regex() -> None:
    assert find_error_marker("rank 3 exited with code 139", patterns=[r"re:exited with code [1-9]\d*"])
    assert find_error_marker("rank 3 exited with code 0", patterns=[r"re:exited with code [1-9]\d*"]) is None
    with pytest.raises(ConfigError, match="log_error_patterns"):
        find_error_marker("x", patterns=["re:(unclosed"])
    with pytest.raises(ConfigError, match="log_error_benign_patterns"):
        find_error_marker("x", benign=[""])


@pytest.mark.parametrize(
    ("context", "patterns", "benign"),
    [
        ({}, DEFAULT_ERROR_PATTERNS, DEFAULT_BENIGN_PATTERNS),
        ({"log_error_pattern_scan": False}, (), DEFAULT_BENIGN_PATTERNS),
        ({"log_error_patterns": []}, DEFAULT_ERROR_PATTERNS, DEFAULT_BENIGN_PATTERNS),
        ({"log_error_patterns": ["BOOM"]}, ("BOOM",), DEFAULT_BENIGN_PATTERNS),
        ({"log_error_benign_patterns": ["ok"]}, DEFAULT_ERROR_PATTERNS, (*DEFAULT_BENIGN_PATTERNS, "ok")),
    ],
)
def test_error_patterns_from_context(context: dict, patterns: tuple, benign: tuple) -> None:
    assert error_patterns_from_context(context) == (patterns, benign)


@pytest.mark.parametrize(
    ("context", "key"),
    [
        ({"log_error_patterns": "RuntimeError:"}, "log_error_patterns"),
        ({"log_error_patterns": [1]}, "log_error_patterns"),
        ({"log_error_benign_patterns": {"a": 1}}, "log_error_benign_patterns"),
        ({"log_error_pattern_scan": "no"}, "log_error_pattern_scan"),
    ],
)
def test_error_patterns_from_context_rejects(context: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        error_patterns_from_context(context)


# --- parse_multiple_results -----------------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str, name: str = "perf_multi.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_multiple_results_basic(tmp_path: Path) -> None:
    path = _write(tmp_path, "model,performance,metric\n1,10.5,tokens/s\n2,11,tokens/s\n")
    results = parse_multiple_results(path)
    assert [(r.model, r.performance, r.metric, r.status, r.line) for r in results] == [
        ("1", "10.5", "tokens/s", "SUCCESS", 2),
        ("2", "11", "tokens/s", "SUCCESS", 3),
    ]
    assert results[0].row_name("dummy_multi") == "dummy_multi_1"
    assert results[0].extra == {}


@pytest.mark.parametrize(
    "text",
    [
        "model , performance,metric ,temperature, batch\nm1, 1.5 ,ms,0.7,32\n",
        "temperature,model,batch,performance,metric\n0.7,m1,32,1.5,ms\n",
        "\ufeffmodel,temperature,batch,performance,metric\r\nm1,0.7,32,1.5,ms\r\n",  # Excel: BOM + CRLF
        "\n\nmodel,temperature,batch,performance,metric\n\n,,,,\nm1,0.7,32,1.5,ms\n\n\n",
    ],
)
def test_multiple_results_header_forms_and_extras(tmp_path: Path, text: str) -> None:
    (result,) = parse_multiple_results(_write(tmp_path, text))
    assert (result.model, result.performance, result.metric, result.status) == ("m1", "1.5", "ms", "SUCCESS")
    assert list(result.extra.items()) == [("temperature", "0.7"), ("batch", "32")]


@pytest.mark.parametrize(
    ("row", "performance", "reason"),
    [
        ("m,,tokens/s", "", "blank"),
        ("m, ,tokens/s", "", "blank"),
        ("m,N/A,tokens/s", "", "not a finite number"),
        ("m,nan,tokens/s", "", "not a finite number"),
        ("m", "", "blank"),  # short row: padded with blank cells
    ],
)
def test_multiple_results_failed_rows_kept(tmp_path: Path, row: str, performance: str, reason: str) -> None:
    path = _write(tmp_path, f"model,performance,metric\nok,1,x\n{row}\n")
    ok, failed = parse_multiple_results(path)
    assert ok.status == "SUCCESS"
    assert (failed.model, failed.performance, failed.status) == ("m", performance, "FAILURE")
    assert reason in failed.reason


def test_multiple_results_quoted_cells(tmp_path: Path) -> None:
    path = _write(tmp_path, 'model,performance,metric,note\n"llama,8b",3,tok/s,"said ""hi""\nthere"\n')
    (result,) = parse_multiple_results(path)
    assert result.model == "llama,8b"
    assert result.extra == {"note": 'said "hi"\nthere'}


def test_multiple_results_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "perf_Llama.csv"
    with pytest.raises(ConfigError, match="perf_Llama.csv.*not found"):
        parse_multiple_results(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model,metric\n1,x\n", "'performance' is missing"),
        ("performance,metric\n1,x\n", "'model' is missing"),
        ("models,performance,metric\n1,2,x\n", "rename it to 'model'"),
        ("model,performance,metric,model\n1,2,x,1\n", "'model' appears more than once"),
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("model,performance,metric\n1,2,x,extra\n", r":2: 4 cells but the header names 3"),
        ("model,performance,metric\n,2,x\n", r":2: the 'model' cell is blank"),
        ('model,performance,metric\n"1,2,x\n', r":2: not valid CSV"),
    ],
)
def test_multiple_results_errors_name_file(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text, name="results_dummy.csv")
    with pytest.raises(ConfigError, match=message) as info:
        parse_multiple_results(path)
    assert "results_dummy.csv" in str(info.value)


def test_multiple_results_not_utf8(tmp_path: Path) -> None:
    path = _write(tmp_path, "model,performance,metric\n\xe9,1,x\n", encoding="latin-1")
    with pytest.raises(ConfigError, match="cannot be read"):
        parse_multiple_results(path)


def test_multi_result_is_immutable() -> None:
    result = MultiResult(model="1", performance="2", metric="x", status="SUCCESS")
    with pytest.raises(AttributeError):
        result.model = "2"  # type: ignore[misc]


@pytest.mark.parametrize(("log", "rejected"), [
    ("performance: nan samples_per_second", "nan"), ("performance: inf ms", "inf"), ("performance: 1e999 x", "1e999"),
    ("performance: -Infinity x", "-Infinity"), ("performance: N/A", None), ("no line at all", None),
])
def test_a_non_finite_performance_is_named_in_the_reason(log: str, rejected: str | None) -> None:
    """``performance: nan`` is not "no performance line": the reason says what the line gave."""
    from madengine.gpu import GpuAssignment
    from madengine.hub import Model
    from madengine.manifest import BuiltImage
    from madengine.results.perf_csv import PerfRow
    from madengine.workflow.output import NO_PERFORMANCE, rows_from_output, scan_output
    from madengine.workflow.plan import RunRequest

    assert scan_output(log, {}) == (None, None, rejected)
    assert scan_output(f"{log}\nperformance: 3 ms", {})[::2] == (("3", "ms"), None)
    req = RunRequest(model=Model(name="m"), build=BuiltImage(model="m", docker_image="i", dockerfile="d"), image="i",
                     hub=Path("."), ctx={}, gpus=GpuAssignment("NONE", [], ""), timeout=None, log_dir=Path("."),
                     work_root=Path("."), run_id="r")
    row = rows_from_output(req, PerfRow(model="m", status="FAILURE"), log, Path("."), Path("."))[0]
    assert row.status == "FAILURE" and row.reason == (
        NO_PERFORMANCE if rejected is None else f"the 'performance:' line gives {rejected!r}, not a finite number")
