"""Latency ratios that survive a noisy, shared machine.

Two functions timed one after the other can see different machine load; timed
call by call in alternation, both see the same load, and the ratio of their
medians is stable even when the absolute times drift.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable


def _block(fn: Callable[[], Any], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def throughput(fn: Callable[[], Any], batch: int, *, rounds: int = 5, budget_s: float = 1.0) -> float:
    """Examples per second of ``fn`` (one call: one batch of ``batch`` examples): after one warm-up
    call, the median of ``rounds`` blocks sized to about ``budget_s / rounds`` each."""
    if rounds < 1 or batch < 1:
        raise ValueError(f"rounds and batch must be >= 1, got {rounds} and {batch}")
    per_call = max(_block(fn, 1), 1e-6)
    calls = max(1, int(budget_s / rounds / per_call))
    return batch / statistics.median(_block(fn, calls) for _ in range(rounds))


class Paired:
    """``fn`` timed against ``reference`` call by call, alternating: each call of ``fn`` follows one
    timed call of ``reference``, so both see the same machine load at every moment.

    Both are warmed up first, alternating (``warmup_s`` in all, at least 6 and at most 400 calls).
    The warm-up's later half gives the noise: the spread of the per-round log ratio
    ``log(fn / reference)`` (1.4826 x its median absolute deviation, robust to a stray slow call).
    :attr:`rounds` is then the number of rounds whose median ratio is known to within
    ``precision`` (relative, at ``confidence``; the median's variance is pi/2 of the mean's under
    normal noise): a quiet pair stops early, a noisy one takes more rounds, up to those whose calls
    take about ``budget_s`` (the time cap), always within ``[min_rounds, max_rounds]``. With no
    ``reference`` (an fp32 reference pair timed on its own), the noise is that of ``log(fn)``.

    It drives pytest-benchmark's pedantic mode, whose rounds are the calls of ``fn`` and whose
    untimed setup is the call of the reference::

        paired = Paired(fn, reference)
        benchmark.pedantic(fn, setup=paired.setup, rounds=paired.rounds)
        ratio, t, t_ref = paired.ratio(benchmark.stats.stats.data)
        paired.halfwidth(benchmark.stats.stats.data)  # the precision reached

    One pass gives both the pair's benchmark (its ``fn`` calls) and its ratio to the reference:
    the artefact is not timed twice.
    """

    def __init__(self, fn: Callable[[], Any], reference: Callable[[], Any] | None = None, *,
                 precision: float = 0.03, confidence: float = 0.95, budget_s: float = 1.0,
                 min_rounds: int = 15, max_rounds: int = 20_000, warmup_s: float = 0.3):  # fmt: skip
        if min_rounds < 1 or max_rounds < min_rounds:
            raise ValueError(f"rounds must be 1 <= min_rounds <= max_rounds, got {min_rounds} and {max_rounds}")
        if not 0 < precision < 1 or not 0.5 < confidence < 1:
            raise ValueError(f"precision must be in (0, 1) and confidence in (0.5, 1), got {precision} and {confidence}")
        self.fn, self.reference = fn, reference
        self.precision, self.confidence = precision, confidence
        fn_s, ref_s = _warm_paired(fn, reference, warmup_s)
        later = slice(len(fn_s) // 2, None)
        per_round = statistics.median(fn_s[later]) + (statistics.median(ref_s[later]) if ref_s else 0.0)
        self.noise = _robust_sd(_log_ratios(fn_s[later], ref_s[later] if ref_s else None))
        self.cap = int(budget_s / max(per_round, 1e-7))
        self.needed = _rounds_for(self.noise, precision, confidence)
        self.rounds = min(max_rounds, max(min_rounds, min(self.cap, self.needed)))
        self.reference_s: list[float] = []

    def setup(self) -> None:
        """One timed call of the reference (pytest-benchmark's setup: run before each timed call of
        fn); nothing without a reference."""
        if self.reference is None:
            return
        t0 = time.perf_counter()
        self.reference()
        self.reference_s.append(time.perf_counter() - t0)

    def ratio(self, fn_s: list[float]) -> tuple[float, float, float]:
        """``(median(fn) / median(reference), fn seconds, reference seconds)`` per call, from the
        timed calls of fn (``fn_s``) and the reference calls made between them."""
        if not fn_s or not self.reference_s:
            raise ValueError("nothing was timed: run the rounds first")
        ma, mb = statistics.median(fn_s), statistics.median(self.reference_s)
        return ma / mb, ma, mb

    def halfwidth(self, fn_s: list[float]) -> float:
        """The relative half-width, at :attr:`confidence`, of the median ratio (of fn's median with
        no reference) that the timed rounds reached: their own noise, as the warm-up's is judged."""
        if not fn_s:
            raise ValueError("nothing was timed: run the rounds first")
        noise = _robust_sd(_log_ratios(fn_s, self.reference_s if self.reference is not None else None))
        return _z(self.confidence) * math.sqrt(math.pi / 2) * noise / math.sqrt(len(fn_s))


def _warm_paired(fn: Callable[[], Any], reference: Callable[[], Any] | None,
                 seconds: float) -> tuple[list[float], list[float]]:  # fmt: skip
    """Call ``reference`` then ``fn`` for about ``seconds`` (6 to 400 calls in all); their times."""
    fn_s: list[float] = []
    ref_s: list[float] = []
    per_round = 1 if reference is None else 2
    t_end = time.perf_counter() + seconds
    while len(fn_s) * per_round < 6 or (len(fn_s) * per_round < 400 and time.perf_counter() < t_end):
        if reference is not None:
            t0 = time.perf_counter()
            reference()
            ref_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fn()
        fn_s.append(time.perf_counter() - t0)
    return fn_s, ref_s


def _log_ratios(fn_s: list[float], ref_s: list[float] | None) -> list[float]:
    if ref_s is None:
        return [math.log(max(a, 1e-9)) for a in fn_s]
    return [math.log(max(a, 1e-9) / max(b, 1e-9)) for a, b in zip(fn_s, ref_s)]


def _robust_sd(values: list[float]) -> float:
    """1.4826 x the median absolute deviation: the standard deviation under normal noise."""
    if len(values) < 2:
        return 0.0
    mid = statistics.median(values)
    return 1.4826 * statistics.median(abs(v - mid) for v in values)


def _z(confidence: float) -> float:
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2)


def _rounds_for(noise: float, precision: float, confidence: float) -> int:
    """Rounds whose median is known to within ``precision`` (relative) at ``confidence``, for
    per-round log-noise ``noise``: ``pi/2 (z noise / precision)^2``."""
    return math.ceil(math.pi / 2 * (_z(confidence) * noise / precision) ** 2)


def interleaved_ratio(fn: Callable[[], Any], reference: Callable[[], Any], **kwargs) -> tuple[float, float, float]:
    """``(median(fn) / median(reference), fn seconds, reference seconds)`` per call, timed by
    :class:`Paired` (its keyword arguments) without pytest-benchmark."""
    paired = Paired(fn, reference, **kwargs)
    fn_s = []
    for _ in range(paired.rounds):
        paired.setup()
        t0 = time.perf_counter()
        fn()
        fn_s.append(time.perf_counter() - t0)
    return paired.ratio(fn_s)
