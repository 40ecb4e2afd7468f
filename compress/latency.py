"""Latency ratios that survive a noisy, shared machine.

Two functions timed one after the other can see different machine load; timed
call by call in alternation, both see the same load, and the ratio of their
medians is stable even when the absolute times drift.
"""

from __future__ import annotations

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

    Both are warmed up first (``warmup_s`` each, at least 3 and at most 200 calls), then
    :attr:`rounds` is sized so the timed calls of both take about ``budget_s``, within
    ``[min_rounds, max_rounds]``. It drives pytest-benchmark's pedantic mode, whose rounds are
    the calls of ``fn`` and whose untimed setup is the call of the reference::

        paired = Paired(fn, reference)
        benchmark.pedantic(fn, setup=paired.setup, rounds=paired.rounds)
        ratio, t, t_ref = paired.ratio(benchmark.stats.stats.data)

    One pass gives both the pair's benchmark (its ``fn`` calls) and its ratio to the reference:
    the artefact is not timed twice.
    """

    def __init__(self, fn: Callable[[], Any], reference: Callable[[], Any], *, budget_s: float = 1.0,
                 min_rounds: int = 15, max_rounds: int = 20_000, warmup_s: float = 0.2):  # fmt: skip
        if min_rounds < 1 or max_rounds < min_rounds:
            raise ValueError(f"rounds must be 1 <= min_rounds <= max_rounds, got {min_rounds} and {max_rounds}")
        self.fn, self.reference = fn, reference
        per_call = _warm(fn, warmup_s) + _warm(reference, warmup_s)
        self.rounds = min(max_rounds, max(min_rounds, int(budget_s / max(per_call, 1e-7))))
        self.reference_s: list[float] = []

    def setup(self) -> None:
        """One timed call of the reference (pytest-benchmark's setup: run before each timed call of fn)."""
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


def _warm(fn: Callable[[], Any], seconds: float) -> float:
    """Call ``fn`` for about ``seconds`` (3 to 200 calls); the median seconds of the calls."""
    times, t_end = [], time.perf_counter() + seconds
    while len(times) < 3 or (len(times) < 200 and time.perf_counter() < t_end):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


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
