"""Latency ratios that survive a noisy, shared machine.

Two functions timed one after the other can see different machine load; timed
in alternating short blocks, both see the same load, and the ratio of their
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


def interleaved_ratio(fn: Callable[[], Any], reference: Callable[[], Any], *, rounds: int = 15,
                      budget_s: float = 1.0) -> tuple[float, float, float]:  # fmt: skip
    """``(median(fn) / median(reference), fn seconds, reference seconds)`` per call.

    Both are warmed up, then timed in ``rounds`` alternating blocks sized so one
    block of each takes about ``budget_s / rounds``.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    per_call = max(_block(fn, 3), _block(reference, 3), 1e-6)
    calls = max(1, int(budget_s / rounds / per_call / 2))
    a, b = [], []
    for i in range(rounds):
        first, second = (fn, reference) if i % 2 == 0 else (reference, fn)
        t1, t2 = _block(first, calls), _block(second, calls)
        a.append(t1 if i % 2 == 0 else t2)
        b.append(t2 if i % 2 == 0 else t1)
    ma, mb = statistics.median(a), statistics.median(b)
    return ma / mb, ma, mb
