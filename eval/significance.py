"""Paired significance tests: is a model's score against base a real move or noise?

Every model is scored on the same eval items, so the right test is paired: item difficulty cancels in
the per-item difference, and a gain that two overlapping error bars would call "noise" can be a clear,
consistent move. Two tests cover the eval stage's per-item data:

- right/wrong scores (acc, acc_norm, exact_match): McNemar's exact test, a two-sided binomial test on
  the items where exactly one of the two models is right (the discordant pairs);
- any other score (chrF per item, bits-per-byte as [bits, bytes] per document): a paired bootstrap over
  items, resampling the same items for both models, with a fixed seed so a report is reproducible.

Pure functions over lists and numpy arrays; the report only formats what these return.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BINARY_METRICS = frozenset({"acc", "acc_norm", "exact_match"})
"""Metrics whose per-item scores are 0/1, tested with McNemar's exact test."""

LOWER_IS_BETTER = frozenset({"bits_per_byte", "byte_perplexity", "word_perplexity", "perplexity"})
"""Metrics where a drop is an improvement."""

ALPHA = 0.05
"""Significance level of the marks."""

BETTER, WORSE, WITHIN_NOISE = "▲", "▼", "≈"

RESAMPLES = 10_000
"""Bootstrap resamples: the p-value's resolution is about 2 / RESAMPLES."""

SEED = 0
"""Fixed, so the same results give the same report."""


def binomial_two_sided_p(successes: int, trials: int) -> float:
    """Exact two-sided p of ``successes`` in ``trials`` fair coin flips (the McNemar exact test's null).

    Uses scipy's binomtest when scipy is installed (it is not a declared dependency); otherwise the exact
    sum, which for p = 1/2 is symmetric: p = min(1, 2 * P(X <= min(k, n - k))).
    """
    if trials == 0:
        return 1.0
    try:
        from scipy.stats import binomtest
    except ImportError:
        return exact_binomial_two_sided_p(successes, trials)
    return float(binomtest(successes, trials, 0.5, alternative="two-sided").pvalue)


def exact_binomial_two_sided_p(successes: int, trials: int) -> float:
    """The exact two-sided binomial p at p = 1/2 in integer arithmetic, without scipy."""
    if trials == 0:
        return 1.0
    tail = sum(math.comb(trials, i) for i in range(min(successes, trials - successes) + 1))
    return min(1.0, 2 * tail / 2**trials)


def mcnemar_exact(base: Sequence[float], other: Sequence[float]) -> tuple[int, int, float]:
    """McNemar's exact test on paired 0/1 scores: (items only base got right, only other got right, p).

    Items both models got right or both got wrong say nothing about which is better; only the
    discordant pairs count, and under "no difference" each goes either way with probability 1/2.
    """
    if len(base) != len(other):
        raise ValueError(f"paired scores differ in length: {len(base)} vs {len(other)}")
    base_only = sum(1 for a, b in zip(base, other, strict=True) if a >= 0.5 > b)
    other_only = sum(1 for a, b in zip(base, other, strict=True) if b >= 0.5 > a)
    return base_only, other_only, binomial_two_sided_p(other_only, base_only + other_only)


def bootstrap_differences(
    base: np.ndarray, other: np.ndarray, ratio: bool, resamples: int = RESAMPLES, seed: int = SEED
) -> np.ndarray:
    """The statistic of ``other`` minus that of ``base`` over paired resamples of the items.

    ``ratio=False``: per-item scores (shape n), the statistic is the mean. ``ratio=True``: per-document
    [bits, bytes] pairs (shape n x 2), the statistic is sum(bits) / sum(bytes), as lm-eval aggregates
    bits-per-byte; resampling whole documents keeps each document's bits with its bytes.
    Resamples are drawn in chunks so a few thousand items do not need gigabytes of indices.
    """
    rng = np.random.default_rng(seed)
    n = len(base)
    out = np.empty(resamples)
    chunk = max(1, 2_000_000 // max(n, 1))
    diff = None if ratio else other - base
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(size, n))
        if ratio:
            out[start : start + size] = other[idx, 0].sum(1) / other[idx, 1].sum(1) - base[idx, 0].sum(1) / base[
                idx, 1
            ].sum(1)
        else:
            out[start : start + size] = diff[idx].mean(1)
    return out


def bootstrap_p(differences: np.ndarray) -> float:
    """Two-sided bootstrap p: twice the smaller share of resampled differences on either side of zero.

    The +1s count the observed sample as one of the resamples, so p is never exactly 0 (it bottoms
    out near 2 / resamples) and identical models give p = 1.
    """
    below = int((differences <= 0).sum())
    above = int((differences >= 0).sum())
    return min(1.0, 2 * (min(below, above) + 1) / (len(differences) + 1))


@dataclass(frozen=True)
class Comparison:
    """One model against base on one task."""

    difference: float
    """Model score minus base score, in the metric's own units (for bits-per-byte, + is worse)."""
    se: float | None
    """Standard error of the paired difference; None without per-item data."""
    p: float | None
    """Two-sided p-value of the paired test; None without per-item data."""
    test: str
    """Which test ran, or why none did ("no per-item data")."""
    lower_is_better: bool = False
    paired_difference: float | None = None
    """The same difference computed from the per-item data the test used. It can differ from
    ``difference``: corpus chrF is not the mean of sentence chrF. The mark and "moved" use this one, so
    the direction always agrees with the test."""

    @property
    def improvement(self) -> float:
        """The difference signed so that + is better, whatever the metric's direction."""
        tested = self.difference if self.paired_difference is None else self.paired_difference
        return -tested if self.lower_is_better else tested

    @property
    def mark(self) -> str:
        """▲ significantly better than base, ▼ significantly worse, ≈ within noise, "" untested."""
        if self.p is None:
            return ""
        if self.p >= ALPHA or self.improvement == 0:
            return WITHIN_NOISE
        return BETTER if self.improvement > 0 else WORSE

    @property
    def moved(self) -> bool | None:
        """The project's bar for "moved": |difference| above twice the paired standard error."""
        if self.se is None:
            return None
        return abs(self.improvement) > 2 * self.se


def _paired_se(differences: np.ndarray) -> float:
    """Standard error of the mean of per-item differences (0 for a single item: nothing to spread)."""
    if len(differences) < 2:
        return 0.0
    return float(differences.std(ddof=1) / math.sqrt(len(differences)))


def compare(
    base: Mapping[str, Any], other: Mapping[str, Any], resamples: int = RESAMPLES, seed: int = SEED
) -> Comparison:
    """Compare two eval entries of the same task (the eval stage's results.json ``tasks`` values).

    The difference is taken from the entries' ``value`` (what the scores table shows); the standard
    error and p come from ``per_item`` when both entries carry it over the same number of items.
    """
    metric = base.get("metric", "")
    lower = metric in LOWER_IS_BETTER
    difference = float(other["value"]) - float(base["value"])
    a, b = base.get("per_item"), other.get("per_item")
    if not a or not b:
        return Comparison(difference, None, None, "no per-item data", lower)
    if len(a) != len(b):
        return Comparison(difference, None, None, f"per-item counts differ ({len(a)} vs {len(b)})", lower)
    if metric == "bits_per_byte":
        pa, pb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if pa.ndim != 2 or pa.shape[1] != 2 or pb.shape != pa.shape:
            return Comparison(difference, None, None, "per-item data is not [bits, bytes] pairs", lower)
        diffs = bootstrap_differences(pa, pb, ratio=True, resamples=resamples, seed=seed)
        observed = float(pb[:, 0].sum() / pb[:, 1].sum() - pa[:, 0].sum() / pa[:, 1].sum())
        se = float(diffs.std(ddof=1))
        return Comparison(difference, se, bootstrap_p(diffs), "paired bootstrap", lower, observed)
    va, vb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if metric in BINARY_METRICS and set(np.unique(np.concatenate([va, vb]))) <= {0.0, 1.0}:
        _, _, p = mcnemar_exact(va.tolist(), vb.tolist())
        return Comparison(difference, _paired_se(vb - va), p, "McNemar exact", lower, float((vb - va).mean()))
    diffs = bootstrap_differences(va, vb, ratio=False, resamples=resamples, seed=seed)
    observed = float((vb - va).mean())
    return Comparison(difference, float(diffs.std(ddof=1)), bootstrap_p(diffs), "paired bootstrap", lower, observed)
