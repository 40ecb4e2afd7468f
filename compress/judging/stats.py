"""Accuracy and perplexity bounds judged with statistics: is a drop real, or the test set's noise?

Top-1 on a test set of ``n`` images is an estimate: a compressed model one image
short of a retention floor of 0.99 is not worse than one an image above it, and
float sums added in another order on another CPU move a few borderline images.
So the gate does not compare the point estimate with the floor. It asks whether
we are ``CONFIDENCE`` (95%) sure that the *true* value (on the distribution the
test set is drawn from) is below the floor, one-sided::

    a min bound on retention (or accuracy) FAILS  <=>  upper bound < floor

where ``upper bound`` is the one-sided upper ``CONFIDENCE`` confidence bound of
the metric. A real regression (2 points of retention on 10,000 images) still
fails; a pair one image short of the floor passes.

Retention (``retention_bound``): a paired bootstrap over examples. Both
artefacts are scored on the same images, so their errors are correlated; only
the images where they disagree carry information about the ratio. The per-example
outcomes reduce to the 2x2 table

    ==================  =====================  ===================
    counts              fp32 correct           fp32 wrong
    ==================  =====================  ===================
    compressed correct  ``both``               ``only_compressed``
    compressed wrong    ``only_fp32``          ``neither``
    ==================  =====================  ===================

and retention = (both + only_compressed) / (both + only_fp32). Resampling ``n``
examples with replacement is drawing the table's counts from a multinomial with
the observed proportions, so ``Generator.multinomial(n, p, size=SAMPLES)`` draws
all ``SAMPLES`` (20,000) bootstrap tables at once. The upper bound is the
``CONFIDENCE`` quantile of the bootstrap retentions (percentile method). The
seed is fixed: the same outcomes always give the same bound, on every machine.

Accuracy (``accuracy_bound``): the Wilson score interval's one-sided upper bound,
``(p + z^2/2n + z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` with ``z`` the
standard normal ``CONFIDENCE`` quantile. It is closed-form (no seed, no sampling
noise), never below the point estimate, and keeps its coverage near 0 and 1,
where the plain normal interval collapses.

Perplexity (``perplexity_bound``, ``loss_retention_bound``): a language model's
per-example outcome is a block's mean next-token loss (nats), a continuous value,
so the bounds are normal approximations over the blocks (about a thousand on the
held-out novel): perplexity ``exp(mean)`` with its lower bound ``exp(mean - z se)``,
and retention ``exp(mean(fp32 loss - compressed loss))`` with its upper bound from
the paired differences, ``exp(mean d + z se(d))``. Closed-form and deterministic.

What the test can resolve (``detectable_drop``): retention's standard error is
about ``sqrt(d / n) / a`` (``d`` the share of images where the two artefacts
disagree, ``a`` the fp32 accuracy), so the observed retention must lie about
``z sqrt(d / n) / a`` below the floor before the gate fails. On 10,000 images
with 2% disagreement and fp32 top-1 0.88 that is 0.26 points of retention (0.53
points to fail 95% of the time); a drop smaller than that is indistinguishable
from the test set's noise, and a floor cannot usefully be set closer to the
measured value than that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

__all__ = [
    "CONFIDENCE", "SAMPLES", "SEED", "PairedCounts", "Estimate",
    "paired_counts", "retention_bound", "accuracy_bound", "wilson_upper", "detectable_drop",
    "LowerEstimate", "perplexity_bound", "loss_retention_bound",
]  # fmt: skip

CONFIDENCE = 0.95  # one-sided: a bound fails only when we are this sure the true value is below it
SAMPLES = 20_000  # bootstrap tables; the bound's Monte Carlo sd is ~3e-5 of retention on 10,000 images
SEED = 20240523  # fixed: the verdict is a function of the outcomes alone


@dataclass(frozen=True)
class PairedCounts:
    """The 2x2 table of a compressed artefact's and its fp32 reference's per-example outcomes."""

    both: int
    only_compressed: int
    only_fp32: int
    neither: int

    @property
    def n(self) -> int:
        return self.both + self.only_compressed + self.only_fp32 + self.neither

    @property
    def retention(self) -> float:
        return (self.both + self.only_compressed) / (self.both + self.only_fp32)

    @property
    def discordant_rate(self) -> float:
        """Share of examples on which exactly one of the two is correct."""
        return (self.only_compressed + self.only_fp32) / self.n


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its one-sided upper ``confidence`` bound."""

    point: float
    upper: float
    n: int
    confidence: float = CONFIDENCE


def _outcomes(name: str, x: object) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array of per-example outcomes, got shape {a.shape}")
    if a.dtype != bool:
        if a.size and not np.isin(a, (0, 1)).all():
            raise ValueError(f"{name}: expected per-example correctness (booleans or 0/1), got other values")
        a = a.astype(bool)
    return a


def _check_confidence(confidence: float) -> float:
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence!r}")
    return confidence


def paired_counts(compressed: object, fp32: object) -> PairedCounts:
    """Reduce two per-example correctness arrays (same examples, same order) to their 2x2 table."""
    c, r = _outcomes("compressed", compressed), _outcomes("fp32", fp32)
    if c.shape != r.shape:
        raise ValueError(
            f"compressed and fp32 outcomes must cover the same examples: got {c.size} and {r.size}"
        )
    if c.size == 0:
        raise ValueError("no examples: retention of an empty test set is undefined")
    both = int(np.count_nonzero(c & r))
    only_c = int(np.count_nonzero(c & ~r))
    only_r = int(np.count_nonzero(~c & r))
    return PairedCounts(both, only_c, only_r, c.size - both - only_c - only_r)


def retention_bound(
    compressed: object, fp32: object, *, confidence: float = CONFIDENCE, samples: int = SAMPLES, seed: int = SEED
) -> Estimate:
    """Retention (compressed top-1 / fp32 top-1) and its one-sided upper bound, by paired bootstrap.

    ``compressed`` and ``fp32`` are per-example correctness (booleans) on the same
    examples in the same order. Deterministic: a fixed ``seed``.
    """
    counts = paired_counts(compressed, fp32)
    _check_confidence(confidence)
    if samples < 100:
        raise ValueError(f"samples must be >= 100, got {samples!r}")
    if counts.both + counts.only_fp32 == 0:
        raise ValueError(
            f"the fp32 reference is never correct on the {counts.n} examples: retention is undefined"
        )
    n = counts.n
    table = np.array([counts.both, counts.only_compressed, counts.only_fp32, counts.neither], dtype=np.int64)
    draws = np.random.default_rng(seed).multinomial(n, table / n, size=samples)
    num = draws[:, 0] + draws[:, 1]
    den = draws[:, 0] + draws[:, 2]
    # A resample without a single fp32-correct example (possible only when fp32 is
    # correct on a handful) says nothing against the compressed model: infinite.
    boot = np.divide(num, den, out=np.full(samples, np.inf), where=den > 0)
    upper = float(np.quantile(boot, confidence, method="higher"))
    return Estimate(counts.retention, upper, n, confidence)


def wilson_upper(correct: int, n: int, confidence: float = CONFIDENCE) -> float:
    """The one-sided upper ``confidence`` bound of a proportion ``correct / n`` (Wilson score)."""
    if isinstance(correct, bool) or isinstance(n, bool) or not (0 <= correct <= n):
        raise ValueError(f"expected 0 <= correct <= n, got correct={correct!r}, n={n!r}")
    if n == 0:
        raise ValueError("no examples: accuracy of an empty test set is undefined")
    z = NormalDist().inv_cdf(_check_confidence(confidence))
    p = correct / n
    denom = 1 + z * z / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # never below p nor above 1 in exact arithmetic: the clamp only removes rounding
    return min(1.0, max(p, (centre + half) / denom))


def accuracy_bound(correct: object, *, confidence: float = CONFIDENCE) -> Estimate:
    """Top-1 accuracy of per-example correctness ``correct`` and its one-sided upper bound (Wilson)."""
    c = _outcomes("correct", correct)
    if c.size == 0:
        raise ValueError("no examples: accuracy of an empty test set is undefined")
    k = int(np.count_nonzero(c))
    return Estimate(k / c.size, wilson_upper(k, c.size, confidence), c.size, confidence)


@dataclass(frozen=True)
class LowerEstimate:
    """A point estimate and its one-sided lower ``confidence`` bound (a metric where lower is better)."""

    point: float
    lower: float
    n: int
    confidence: float = CONFIDENCE


def _values(name: str, x: object, what: str = "losses") -> np.ndarray:
    """``x`` as a float64 1-d array of at least 2 finite per-example ``what`` (losses, scores)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 or a.size < 2:
        raise ValueError(f"{name}: expected a 1-d array of at least 2 per-example {what}, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: per-example {what} must be finite")
    return a


def perplexity_bound(losses: object, *, confidence: float = CONFIDENCE) -> LowerEstimate:
    """Perplexity ``exp(mean loss)`` of per-example mean token losses (nats; examples of equal length)
    and its one-sided lower bound: ``exp(mean - z sd / sqrt(n))`` (normal approximation of the mean
    over examples, closed-form and deterministic; a test split holds about a thousand examples)."""
    a = _values("losses", losses)
    z = NormalDist().inv_cdf(_check_confidence(confidence))
    mean, se = float(a.mean()), float(a.std(ddof=1)) / math.sqrt(a.size)
    return LowerEstimate(math.exp(mean), math.exp(mean - z * se), a.size, confidence)


def loss_retention_bound(compressed: object, fp32: object, *, confidence: float = CONFIDENCE) -> Estimate:
    """Retention of a lower-is-better perplexity, ``fp32 perplexity / compressed perplexity``
    (``exp(mean(fp32 loss - compressed loss))``: above 1 is better, as for top-1), and its
    one-sided upper bound from the PAIRED per-example differences: ``exp(mean d + z sd(d) / sqrt(n))``.
    Both artefacts are scored on the same examples, so only the differences carry noise."""
    c, r = _values("compressed", compressed), _values("fp32", fp32)
    if c.shape != r.shape:
        raise ValueError(f"compressed and fp32 losses must cover the same examples: got {c.size} and {r.size}")
    z = NormalDist().inv_cdf(_check_confidence(confidence))
    d = r - c
    mean, se = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(d.size)
    return Estimate(math.exp(mean), math.exp(mean + z * se), d.size, confidence)


def mean_bound(scores: object, *, confidence: float = CONFIDENCE) -> Estimate:
    """The mean of per-example scores where higher is better (a PSNR in dB per image) and its
    one-sided upper bound, ``mean + z sd / sqrt(n)`` (normal approximation of the mean)."""
    a = _values("scores", scores, "scores")
    z = NormalDist().inv_cdf(_check_confidence(confidence))
    mean, se = float(a.mean()), float(a.std(ddof=1)) / math.sqrt(a.size)
    return Estimate(mean, mean + z * se, a.size, confidence)


def mean_retention_bound(compressed: object, fp32: object, *, confidence: float = CONFIDENCE) -> Estimate:
    """Retention of a higher-is-better mean score, ``mean(compressed) / mean(fp32)``, and its
    one-sided upper bound from the PAIRED per-example differences ``d = compressed - fp32``:
    ``1 + (mean d + z sd(d) / sqrt(n)) / mean(fp32)`` (the fp32 mean taken as fixed: both are
    scored on the same examples, so the noise of the ratio is the differences')."""
    c, r = _values("compressed", compressed, "scores"), _values("fp32", fp32, "scores")
    if c.shape != r.shape:
        raise ValueError(f"compressed and fp32 scores must cover the same examples: got {c.size} and {r.size}")
    ref = float(r.mean())
    if ref <= 0:
        raise ValueError(f"the fp32 mean score is {ref!r}: a retention ratio needs a positive reference")
    z = NormalDist().inv_cdf(_check_confidence(confidence))
    d = c - r
    mean, se = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(d.size)
    return Estimate(float(c.mean()) / ref, 1 + (mean + z * se) / ref, d.size, confidence)


def detectable_drop(
    n: int, discordant_rate: float, accuracy: float, *, confidence: float = CONFIDENCE, power: float = 0.5
) -> float:
    """Roughly how far below a retention floor the true retention must be for the gate to fail.

    ``n`` examples, ``discordant_rate`` the share on which exactly one of the two
    artefacts is correct, ``accuracy`` the fp32 top-1. Normal approximation of the
    paired test: retention's standard error is ``sqrt(discordant_rate / n) /
    accuracy``. With ``power=0.5`` (default) this is how far below the floor the
    *observed* retention must lie to fail (a true drop of that size fails half
    the time); ``power=0.95`` gives the drop that fails 95% of the time.
    """
    if n <= 0:
        raise ValueError(f"n must be > 0, got {n!r}")
    if not 0 <= discordant_rate <= 1:
        raise ValueError(f"discordant_rate must be in [0, 1], got {discordant_rate!r}")
    if not 0 < accuracy <= 1:
        raise ValueError(f"accuracy (of fp32) must be in (0, 1], got {accuracy!r}")
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power!r}")
    dist = NormalDist()
    z = dist.inv_cdf(_check_confidence(confidence)) + dist.inv_cdf(power)
    return z * math.sqrt(discordant_rate / n) / accuracy
