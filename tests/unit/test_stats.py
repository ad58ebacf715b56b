"""Tests of madengine.results.stats: direction inference, bootstrap summaries, noise floors and verdicts."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from madengine.results.stats import (
    KINDS,
    Summary,
    Verdict,
    compare,
    compare_many,
    infer_direction,
    noise_floor,
    summarize,
)

# --- infer_direction ---------------------------------------------------------------------------------------------

HIGHER = [
    "samples_per_second", "samples/sec", "tokens/s", "tok/s", "img/s", "images_per_sec", "throughput", "TFLOPS",
    "GB/s", "it/s", "qps", "requests/s", "fps", "bandwidth", "score", "accuracy", "Samples/Sec", "TokensPerSecond",
    "tokens_per_second_per_gpu", "mem_bw", "ms/s",
]  # fmt: skip
LOWER = [
    "ms", "msec", "s", "sec", "seconds", "latency", "time", "ms/iter", "s/it", "ttft_ms", "tpot", "itl",
    "e2e_latency", "memory", "bytes", "MB", "GB", "perplexity", "loss", "error", "ms_p99", "latency(ms)", "MS",
    "Latency_P50", "time_per_output_token_ms", "peak_memory_GB",
]  # fmt: skip


@pytest.mark.parametrize("metric", HIGHER)
def test_infer_direction_higher(metric: str) -> None:
    assert infer_direction(metric) == "higher"


@pytest.mark.parametrize("metric", LOWER)
def test_infer_direction_lower(metric: str) -> None:
    assert infer_direction(metric) == "lower"


@pytest.mark.parametrize("metric", ["", "foo", "p99", "accuracy_error", "tokens"])
def test_infer_direction_unknown(metric: str) -> None:
    assert infer_direction(metric) == ""


# --- summarize ---------------------------------------------------------------------------------------------------


def test_summarize_ci_contains_median_and_is_reproducible() -> None:
    samples = [101.0, 97.5, 99.0, 103.2, 98.7, 100.4, 96.1]
    s = summarize(samples)
    assert isinstance(s, Summary)
    assert (s.n, s.median, s.min, s.max) == (7, 99.0, 96.1, 103.2)
    assert s.min <= s.ci_low <= s.median <= s.ci_high <= s.max
    assert s.ci_low < s.ci_high
    assert summarize(samples) == s
    assert summarize(samples, seed=0, resamples=2000) == s


def test_summarize_wider_confidence_gives_wider_interval() -> None:
    samples = list(np.random.default_rng(3).normal(100.0, 5.0, 30))
    narrow, wide = summarize(samples, confidence=0.5), summarize(samples, confidence=0.99)
    assert wide.ci_low <= narrow.ci_low <= narrow.median <= narrow.ci_high <= wide.ci_high


def test_summarize_single_and_invalid() -> None:
    assert summarize([4.2]) == Summary(1, 4.2, 4.2, 4.2, 4.2, 4.2)
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([1.0, math.nan])
    with pytest.raises(ValueError):
        summarize([1.0, 2.0], confidence=1.0)


# --- compare -----------------------------------------------------------------------------------------------------


def _jitter(rng: np.random.Generator, level: float, rel: float, n: int = 5) -> list[float]:
    return list(level * (1.0 + rng.uniform(-rel, rel, n)))


def test_clear_slowdown_is_regression_for_higher_and_improvement_for_lower() -> None:
    rng = np.random.default_rng(7)
    base, cand = _jitter(rng, 100.0, 0.01), _jitter(rng, 80.0, 0.01)
    v = compare(base, cand, "higher")
    assert v.kind == "regression"
    assert v.change == pytest.approx(-0.2, abs=0.02)
    assert v.p_value is not None and v.p_value < 0.05
    assert (v.threshold, v.n_baseline, v.n_candidate) == (0.05, 5, 5)
    assert "Mann-Whitney" in v.reason and "%" in v.reason
    assert compare(base, cand, "lower").kind == "improvement"
    assert compare(cand, base, "higher").kind == "improvement"
    assert compare(cand, base, "lower").kind == "regression"


def test_unchanged_distributions_are_noise_over_many_seeds() -> None:
    for seed in range(300):
        rng = np.random.default_rng(seed)
        base, cand = _jitter(rng, 100.0, 0.02), _jitter(rng, 100.0, 0.02)
        for direction in ("higher", "lower"):
            v = compare(base, cand, direction)
            assert v.kind == "noise", (seed, v)


def test_small_samples_are_insufficient() -> None:
    v = compare([1.0, 2.0, 3.0], [10.0, 11.0, 12.0], "higher")
    assert v.kind == "insufficient data" and v.p_value is None
    assert v.change == pytest.approx(4.5)
    assert compare([1.0, 2.0, 3.0, 4.0], [10.0, 11.0, 12.0, 13.0], "higher").kind == "improvement"
    # single runs on both sides carry no variance information, however different
    assert compare([100.0], [1.0], "higher").kind == "insufficient data"
    assert compare([], [1.0, 2.0, 3.0, 4.0], "higher").kind == "insufficient data"
    assert math.isnan(compare([1.0, 2.0], [], "higher").change)


def test_unknown_direction_and_nonpositive_baseline_are_insufficient() -> None:
    base, cand = [100.0, 101.0, 99.0, 100.5, 99.5], [80.0, 81.0, 79.0, 80.5, 79.5]
    v = compare(base, cand, "")
    assert v.kind == "insufficient data"
    assert "metric_direction" in v.reason
    v = compare([0.0] * 5, cand, "higher")
    assert v.kind == "insufficient data" and math.isnan(v.change)


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError):
        compare([1.0], [1.0], "up")
    with pytest.raises(ValueError):
        compare([1.0, math.inf], [1.0], "higher")
    with pytest.raises(ValueError):
        compare([1.0], [1.0], "higher", noise=-0.1)


def test_kinds() -> None:
    assert KINDS == ("regression", "improvement", "noise", "insufficient data")


# --- noise_floor -------------------------------------------------------------------------------------------------


def test_noise_floor_from_history_turns_a_six_percent_change_into_noise() -> None:
    rng = np.random.default_rng(11)
    history = [_jitter(rng, level, 0.005) for level in (100.0, 110.0, 95.0, 104.0, 92.0, 108.0, 97.0)]
    floor = noise_floor(history)
    assert floor is not None and 0.06 < floor < 0.2
    base, cand = _jitter(rng, 100.0, 0.005), _jitter(rng, 94.0, 0.005)
    assert compare(base, cand, "higher").kind == "regression"  # 6% > the default 5% threshold
    v = compare(base, cand, "higher", noise=0.10)
    assert v.kind == "noise" and v.threshold == 0.10
    assert compare(base, cand, "higher", noise=floor).kind == "noise"


def test_one_step_change_in_the_history_does_not_widen_the_noise_floor() -> None:
    rng = np.random.default_rng(5)
    history = [_jitter(rng, level, 0.005) for level in [100.0] * 5 + [150.0] * 5]  # a genuine 50% step up
    floor = noise_floor(history)
    assert floor is not None and floor < 0.05  # the step is one change, not noise


def test_noise_floor_within_run_spread_and_too_little_history() -> None:
    assert noise_floor([]) is None
    assert noise_floor([[100.0], [101.0]]) is None
    assert noise_floor([[100.0, 101.0]]) is None
    assert noise_floor([[100.0], [100.0], [100.0]]) == 0.0
    within = noise_floor([[90.0, 100.0, 110.0]])  # one noisy run: MAD 10%
    assert within == pytest.approx(2 * 1.4826 * 0.10)
    steady_medians = noise_floor([[90.0, 100.0, 110.0]] * 3)  # identical medians: within-run spread wins
    assert steady_medians == pytest.approx(within)


# --- compare_many ------------------------------------------------------------------------------------------------


def _same(a: Verdict, b: Verdict) -> bool:
    if math.isnan(a.change) and math.isnan(b.change):  # NaN != NaN: compare the rest
        a, b = replace(a, change=0.0), replace(b, change=0.0)
    return a == b


def test_compare_many_equals_compare_on_random_inputs_with_ties() -> None:
    rng = np.random.default_rng(2024)
    pairs: list[tuple[list[float], list[float], str, float | None]] = []
    for _ in range(3000):
        n1, n2 = int(rng.integers(0, 11)), int(rng.integers(0, 11))
        if rng.random() < 0.5:  # integers from a small range: many ties (and some all-equal pairs)
            base = list(rng.integers(1, 5, n1).astype(float))
            cand = list(rng.integers(1, 5, n2).astype(float) * rng.choice([1.0, 2.0]))
        else:
            base = list(rng.normal(100.0, 3.0, n1))
            cand = list(rng.normal(100.0 * rng.choice([0.8, 1.0, 1.1]), 3.0, n2))
        direction = str(rng.choice(["higher", "lower", ""]))
        noise = None if rng.random() < 0.5 else float(rng.uniform(0.0, 0.2))
        pairs.append((base, cand, direction, noise))
    pairs.append(([0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0], "higher", None))
    pairs.append(([5.0] * 6, [5.0] * 6, "lower", None))
    many = compare_many(pairs, min_effect=0.03, alpha=0.1)
    assert len(many) == len(pairs)
    for (base, cand, direction, noise), verdict in zip(pairs, many, strict=True):
        one = compare(base, cand, direction, noise=noise, min_effect=0.03, alpha=0.1)
        assert _same(one, verdict), (base, cand, direction, one, verdict)
    assert {v.kind for v in many} == set(KINDS)


def test_compare_many_rejects_bad_input_naming_the_pair() -> None:
    with pytest.raises(ValueError, match="pair 1"):
        compare_many([([1.0], [2.0], "higher", None), ([1.0, math.nan], [2.0, 3.0], "higher", None)])
    with pytest.raises(ValueError, match="pair 0"):
        compare_many([([1.0], [2.0], "sideways", None)])


# --- import cost -------------------------------------------------------------------------------------------------


def test_import_does_not_load_numpy_or_scipy() -> None:
    code = "import sys, madengine.results.stats; print(sorted({'numpy', 'scipy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
