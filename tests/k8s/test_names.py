"""Golden tests of the Kubernetes names madengine derives (RFC 1123 labels, stable hash suffixes)."""

from __future__ import annotations

import pytest

from madengine.deploy.k8s.names import MAX_JOB_NAME, dns_label, is_dns_label, job_name, label_value


@pytest.mark.parametrize(("text", "expected"), [
    ("pyt_huggingface_bert", "pyt-huggingface-bert"),
    ("dummy3/Dummy_A", "dummy3-dummy-a"),
    ("ci-dummy_dummy.ubuntu", "ci-dummy-dummy-ubuntu"),
    ("--Weird__Name--", "weird-name"),
    ("a" * 63, "a" * 63),
    ("a" * 64, "a" * 54 + "-" + "ffe054fe"),
    ("___", "bda25155"),
])
def test_dns_label_golden(text: str, expected: str) -> None:
    assert dns_label(text) == expected
    assert is_dns_label(dns_label(text))


def test_long_names_stay_distinct_and_stable() -> None:
    a, b = "x" * 80 + "_one", "x" * 80 + "_two"
    assert dns_label(a) != dns_label(b)
    assert dns_label(a) == dns_label(a)
    assert len(dns_label(a)) == 63


@pytest.mark.parametrize(("model", "run_id", "expected"), [
    ("dummy", "1a2b3c4d", "mad-dummy-1a2b3c4d"),
    ("dummy3/model_bs8", "1a2b3c4d", "mad-dummy3-model-bs8-1a2b3c4d"),
    ("pyt_huggingface_gpt2_very_long_model_name_for_benchmarks", "1a2b3c4d",
     "mad-pyt-huggingface-gpt2-very-long-2264793e-1a2b3c4d"),
])
def test_job_name_golden(model: str, run_id: str, expected: str) -> None:
    name = job_name(model, run_id)
    assert name == expected
    assert is_dns_label(name, MAX_JOB_NAME)
    assert is_dns_label(f"{name}-0")  # an Indexed Job pod's hostname


def test_job_names_differ_per_run() -> None:
    assert job_name("dummy", "00000001") != job_name("dummy", "00000002")


@pytest.mark.parametrize(("text", "expected"), [
    ("dummy3/model_bs8", "dummy3-model_bs8"),
    ("ok.Value-1", "ok.Value-1"),
    ("-x-", "x"),
])
def test_label_value_golden(text: str, expected: str) -> None:
    assert label_value(text) == expected
