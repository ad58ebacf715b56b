"""Statistics of repeated benchmark runs: summaries, run-to-run noise, and regression verdicts.

A benchmark repeated ``n`` times gives ``n`` samples of one metric. Medians are robust to the odd slow run, so
everything here is median-based:

* :func:`summarize` gives the median and a percentile bootstrap confidence interval of it (Efron 1979; Efron &
  Tibshirani 1993, ch. 13): resample the samples with replacement, take each resample's median, and read the
  interval off the quantiles of those medians.
* :func:`noise_floor` learns a benchmark's relative run-to-run noise from its history with the median absolute
  deviation (MAD), scaled by 1.4826 to estimate a normal standard deviation (Rousseeuw & Croux 1993).
* :func:`compare` decides whether a candidate run differs from a baseline run with the two-sided Mann-Whitney U
  test (Mann & Whitney 1947), which assumes no distribution, AND a minimum relative effect on the median, so that a
  significant but tiny change (or one inside the benchmark's known noise) is reported as noise.
  :func:`compare_many` gives the same verdicts for many benchmarks with one vectorised test per sample-size group.

numpy and scipy are imported inside the functions so that ``import madengine`` stays fast.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

Direction = Literal["higher", "lower"]

#: The verdict kinds, in order of severity.
KINDS: tuple[str, ...] = ("regression", "improvement", "noise", "insufficient data")

_MAD_TO_SD = 1.4826  # 1 / Phi^-1(3/4): MAD of a normal distribution times this is its standard deviation


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_TIME_UNITS = _words("s sec secs second seconds min mins minute minutes h hr hrs hour hours day days")
_RATE_WORDS = _words("throughput tput bandwidth bw qps rps fps tps iops flops gflops tflops pflops")
_HIGHER_WORDS = _words("score accuracy acc f1 bleu rouge map speedup")
_LOWER_WORDS = _words(
    "ms msec msecs us usec usecs ns nsec s sec secs second seconds latency lat time duration elapsed ttft tpot itl"
    " e2el memory mem bytes b kb mb gb tb kib mib gib tib perplexity ppl loss error err wer cer"
)


def infer_direction(metric: str) -> str:
    """Whether a larger value of ``metric`` (a perf.csv metric name) is better: "higher", "lower" or "" (unknown).

    The rule: the name is split into lower-case words at anything but letters and digits (and at camelCase
    boundaries); "/" reads as the word "per". Then, in this order:

    1. a rate over time (a "per" followed by a time unit: "samples/sec", "tokens_per_second", "GB/s", "it/s") or a
       rate word ("throughput", "bandwidth", "qps", "fps", "TFLOPS", ...) → "higher". Rates win over time units.
    2. otherwise only the words before the first "per" count (the numerator: "ms/iter" and "s/it" are times per
       iteration): quality words ("score", "accuracy", "f1", ...) → "higher"; cost words (time units "ms", "s",
       "latency", "time", "ttft", "tpot", "itl", sizes "bytes", "MB", "GB", "memory", and "perplexity", "loss",
       "error", ...) → "lower"; words of both kinds, or of neither → "" (set ``metric_direction`` explicitly).

    Decorations such as "ms_p99" or "latency(ms)" are tolerated: unknown words like "p99" are ignored.
    """
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", metric).lower().replace("/", " per ")
    words = re.findall(r"[a-z0-9]+", spaced)
    for i, word in enumerate(words):
        if word == "per" and i + 1 < len(words) and words[i + 1] in _TIME_UNITS:
            return "higher"
    if _RATE_WORDS.intersection(words):
        return "higher"
    numerator = words[: words.index("per")] if "per" in words else words
    higher, lower = bool(_HIGHER_WORDS.intersection(numerator)), bool(_LOWER_WORDS.intersection(numerator))
    return "higher" if higher and not lower else "lower" if lower and not higher else ""


@dataclass(frozen=True)
class Summary:
    """The samples of one run: their count, median, range and a bootstrap confidence interval of the median."""

    n: int
    median: float
    min: float
    max: float
    ci_low: float
    ci_high: float


def _finite(samples: Sequence[float], what: str) -> np.ndarray:
    import numpy as np

    arr = np.asarray(samples, dtype=float).reshape(-1)
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} must be finite numbers, got {list(samples)!r}")
    return arr


def summarize(
    samples: Sequence[float], *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> Summary:
    """Summarize ``n`` samples (any unit) with a percentile bootstrap ``confidence`` interval of their median.

    numpy, not ``scipy.stats.bootstrap``: the ``resamples`` x ``n`` resample indices come from a seeded
    ``numpy.random.Generator`` (so the interval is reproducible), the medians are taken along an axis (in chunks of
    at most ~2M values), and the interval is the (1-confidence)/2 and (1+confidence)/2 quantiles of those medians,
    widened if need be to contain the sample median. With n == 1 the interval is (x, x).

    Raises ValueError when ``samples`` is empty or not finite, ``confidence`` is not in (0, 1) or ``resamples`` < 1.
    """
    import numpy as np

    x = _finite(samples, "samples")
    if x.size == 0:
        raise ValueError("summarize() needs at least one sample")
    if not 0.0 < confidence < 1.0 or resamples < 1:
        raise ValueError(f"need 0 < confidence < 1 and resamples >= 1, got {confidence}, {resamples}")
    med = float(np.median(x))
    lo = hi = med
    if x.size > 1:
        rng = np.random.default_rng(seed)
        chunk = max(1, 2_000_000 // x.size)
        meds = np.concatenate(
            [
                np.median(x[rng.integers(0, x.size, size=(min(chunk, resamples - start), x.size))], axis=1)
                for start in range(0, resamples, chunk)
            ]
        )
        q_lo, q_hi = np.quantile(meds, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
        lo, hi = min(float(q_lo), med), max(float(q_hi), med)
    return Summary(int(x.size), med, float(x.min()), float(x.max()), lo, hi)


def noise_floor(history: Sequence[Sequence[float]]) -> float | None:
    """The relative run-to-run noise of a benchmark (a fraction: 0.03 = 3%) learned from earlier runs' samples.

    ``history`` holds one sequence of samples per earlier run, oldest first (empty runs are ignored). Two robust
    estimates, each two robust standard deviations (2 x 1.4826 x MAD) relative to the level, the larger one wins:

    * between runs (needs >= 3 runs): the smaller of the MAD of the per-run medians m_i, and the MAD of their
      successive differences m_i - m_(i-1) divided by sqrt(2) (a standard noise estimate that one step change in
      the level does not inflate), over the median of the m_i;
    * within runs (needs >= 3 samples in all): the MAD of the pooled relative residuals (x_ij - m_i) / |m_i| of the
      runs with >= 2 samples and a non-zero median.

    Taking the larger is deliberately conservative. Returns None when there are fewer than 3 runs and fewer than 3
    samples, or when neither estimate is defined (e.g. a zero median level). Raises ValueError on non-finite samples.
    """
    from statistics import median  # histories are small (runs x repeats): plain Python beats numpy's overhead

    runs = [[float(x) for x in run] for run in history]
    if not all(math.isfinite(x) for run in runs for x in run):
        raise ValueError(f"history samples must be finite numbers, got {list(map(list, history))!r}")
    runs = [run for run in runs if run]
    total = sum(len(run) for run in runs)
    if len(runs) < 3 and total < 3:
        return None
    meds = [median(run) for run in runs]
    estimates = []
    centre = median(meds)
    level = abs(centre)
    if len(runs) >= 3 and level > 0:
        spread = min(median(abs(m - centre) for m in meds),
                     median(abs(b - a) for a, b in itertools.pairwise(meds)) / math.sqrt(2))
        estimates.append(2 * _MAD_TO_SD * spread / level)
    resid = [(x - m) / abs(m) for run, m in zip(runs, meds, strict=True) if len(run) >= 2 and m != 0 for x in run]
    if resid and total >= 3:
        estimates.append(2 * _MAD_TO_SD * median(abs(r) for r in resid))
    return max(estimates) if estimates else None


@dataclass(frozen=True)
class Verdict:
    """How a candidate run compares with a baseline run of one benchmark metric.

    ``kind`` is one of :data:`KINDS`; ``change`` the relative change of the median, candidate vs baseline (-0.12 =
    12% lower; NaN when not computable); ``p_value`` the two-sided Mann-Whitney p (None when no test was run);
    ``threshold`` the minimum relative effect that counts; ``reason`` one sentence saying why.
    """

    kind: str
    change: float
    p_value: float | None
    threshold: float
    n_baseline: int
    n_candidate: int
    reason: str


def _check_args(direction: str, noise: float | None, min_effect: float, alpha: float) -> float:
    """Validate the arguments shared by :func:`compare` and :func:`compare_many`; return the threshold."""
    if direction not in ("higher", "lower", ""):
        raise ValueError(f"direction must be 'higher', 'lower' or '' (unknown), got {direction!r}")
    if not 0.0 < alpha < 1.0 or not min_effect >= 0.0:
        raise ValueError(f"need 0 < alpha < 1 and min_effect >= 0, got {alpha}, {min_effect}")
    if noise is not None and not 0.0 <= noise < math.inf:
        raise ValueError(f"noise must be a finite fraction >= 0 or None, got {noise}")
    return max(min_effect, noise or 0.0)


def _precheck(
    n1: int, n2: int, med_b: float, med_c: float, direction: str, threshold: float, alpha: float
) -> tuple[float, Verdict | None]:
    """The relative change, and the "insufficient data" verdict when the samples cannot be tested."""
    change = med_c / med_b - 1.0 if n1 and n2 and med_b > 0 else math.nan
    why = ""
    if not n1 or not n2:
        why = f"{n1} baseline vs {n2} candidate samples: nothing to compare"
    elif not direction:
        why = "metric direction unknown; set metric_direction in models.json"
    elif not med_b > 0:
        why = f"baseline median {med_b:g} is not positive, so a relative change is undefined"
    elif (best := 2.0 / math.comb(n1 + n2, n1)) > alpha:
        why = (
            f"{n1} vs {n2} samples cannot reach significance (smallest attainable p={best:.3g} > {alpha:g}); "
            "repeat the runs"
        )
    return change, (Verdict("insufficient data", change, None, threshold, n1, n2, why) if why else None)


def _final(
    change: float, p: float, direction: str, threshold: float, alpha: float, n1: int, n2: int
) -> Verdict:
    """The verdict of a tested pair: significant and large enough, or noise."""
    p = 1.0 if math.isnan(p) else p  # degenerate data (all values equal) carry no evidence of a difference
    effect = f"median {change:+.1%} (threshold {threshold:.1%})"
    if p >= alpha:
        return Verdict(
            "noise", change, p, threshold, n1, n2, f"{effect}, Mann-Whitney p={p:.3g} >= {alpha:g}"
        )
    if abs(change) < threshold:
        why = f"{effect} is below the threshold although Mann-Whitney p={p:.3g} < {alpha:g}"
        return Verdict("noise", change, p, threshold, n1, n2, why)
    worse = change < 0 if direction == "higher" else change > 0
    why = f"{effect}, Mann-Whitney p={p:.3g} < {alpha:g}"
    return Verdict("regression" if worse else "improvement", change, p, threshold, n1, n2, why)


def _exact(n1: int, n2: int, ties: bool) -> bool:
    """scipy's own rule: the exact null distribution when one sample has <= 8 values and there are no ties."""
    return min(n1, n2) <= 8 and not ties


def compare(
    baseline: Sequence[float],
    candidate: Sequence[float],
    direction: str,
    *,
    noise: float | None = None,
    min_effect: float = 0.05,
    alpha: float = 0.05,
) -> Verdict:
    """Decide whether ``candidate`` (samples of one metric) is a regression, improvement or noise vs ``baseline``.

    ``direction`` is "higher" or "lower" (which values are better; "" = unknown, see :func:`infer_direction`);
    ``noise`` a learned relative noise floor (:func:`noise_floor`), ``min_effect`` the minimum relative change that
    counts (a fraction), ``alpha`` the significance level. The threshold is max(min_effect, noise or 0).

    "insufficient data" when a side is empty, the direction is unknown, the baseline median is <= 0 (relative
    change undefined, NaN), or the sample sizes cannot reach significance at all: the smallest exact two-sided
    Mann-Whitney p for sizes n1, n2 is 2 / C(n1 + n2, n1), so 3 vs 3 (0.1) fails at alpha 0.05 while 4 vs 4 (0.029)
    passes. In particular single runs on both sides (1 vs 1, p >= 1) are insufficient however different, as they
    say nothing about variance. Otherwise the two-sided Mann-Whitney U test (exact when a side has <= 8 samples and
    there are no ties, else the tie-corrected normal approximation) decides: p < alpha and |change| >= threshold is
    a regression when the median moved the worse way for ``direction``, else an improvement; anything else is noise.

    Raises ValueError on non-finite samples or an invalid direction, noise, min_effect or alpha.
    """
    import numpy as np
    from scipy.stats import mannwhitneyu

    threshold = _check_args(direction, noise, min_effect, alpha)
    b, c = _finite(baseline, "baseline samples"), _finite(candidate, "candidate samples")
    n1, n2 = int(b.size), int(c.size)
    med_b = float(np.median(b)) if n1 else math.nan
    med_c = float(np.median(c)) if n2 else math.nan
    change, verdict = _precheck(n1, n2, med_b, med_c, direction, threshold, alpha)
    if verdict is not None:
        return verdict
    ties = bool((np.diff(np.sort(np.concatenate([b, c]))) == 0).any())
    p = float(
        mannwhitneyu(
            b, c, alternative="two-sided", method="exact" if _exact(n1, n2, ties) else "asymptotic"
        ).pvalue
    )
    return _final(change, p, direction, threshold, alpha, n1, n2)


def compare_many(
    pairs: Sequence[tuple[Sequence[float], Sequence[float], str, float | None]],
    *,
    min_effect: float = 0.05,
    alpha: float = 0.05,
) -> list[Verdict]:
    """:func:`compare` for many benchmarks at once: ``pairs`` of (baseline, candidate, direction, noise).

    Returns one :class:`Verdict` per pair, in order, equal to ``compare(baseline, candidate, direction,
    noise=noise, min_effect=min_effect, alpha=alpha)``. The pairs are grouped by sample sizes (n1, n2); each group's
    samples become 2-D arrays whose medians, ties and Mann-Whitney tests (one scipy call per group and method) are
    computed along an axis. Raises ValueError like :func:`compare`, naming the offending pair's index.
    """
    import numpy as np
    from scipy.stats import mannwhitneyu

    out: list[Verdict | None] = [None] * len(pairs)
    thresholds: list[float] = []
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (b, c, direction, noise) in enumerate(pairs):
        try:
            thresholds.append(_check_args(direction, noise, min_effect, alpha))
        except ValueError as err:
            raise ValueError(f"pair {i}: {err}") from None
        n1, n2 = len(b), len(c)
        if n1 and n2:
            groups.setdefault((n1, n2), []).append(i)
        else:
            out[i] = _precheck(n1, n2, math.nan, math.nan, direction, thresholds[i], alpha)[1]
    for (n1, n2), idx in groups.items():
        base = np.array([pairs[i][0] for i in idx], dtype=float).reshape(len(idx), n1)
        cand = np.array([pairs[i][1] for i in idx], dtype=float).reshape(len(idx), n2)
        bad = ~(np.isfinite(base).all(axis=1) & np.isfinite(cand).all(axis=1))
        if bad.any():
            raise ValueError(f"pair {idx[int(np.argmax(bad))]}: samples must be finite numbers")
        med_b, med_c = np.median(base, axis=1).tolist(), np.median(cand, axis=1).tolist()
        todo, changes = [], {}
        for row, i in enumerate(idx):
            changes[row], out[i] = _precheck(
                n1, n2, med_b[row], med_c[row], pairs[i][2], thresholds[i], alpha
            )
            if out[i] is None:
                todo.append(row)
        if not todo:
            continue
        rows = np.array(todo)
        both = np.sort(np.concatenate([base[rows], cand[rows]], axis=1), axis=1)
        ties = (np.diff(both, axis=1) == 0).any(axis=1)
        exact_rows = ~ties if _exact(n1, n2, ties=False) else np.zeros_like(ties)
        for exact in (True, False):
            sel = rows[exact_rows == exact]
            if not sel.size:
                continue
            method = "exact" if exact else "asymptotic"
            ps = mannwhitneyu(base[sel], cand[sel], alternative="two-sided", axis=1, method=method).pvalue
            for row, p in zip(sel.tolist(), np.atleast_1d(ps).tolist(), strict=True):
                i = idx[row]
                out[i] = _final(changes[row], p, pairs[i][2], thresholds[i], alpha, n1, n2)
    done = [v for v in out if v is not None]
    assert len(done) == len(pairs), "every pair gets a verdict"
    return done
