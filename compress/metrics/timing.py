"""What a pair's timing records: batch-1 latency, throughput, latency ratios (:mod:`compress.judging.latency`,
:func:`compress.reporting.report.with_latency_ratios`) and the suite's own cost of the pair. Descriptors only
(:mod:`compress.metrics.descriptor`)."""

from __future__ import annotations

from compress.metrics.descriptor import Metric, register

LATENCY_MS = register(Metric("latency_ms", "p50 latency", False, "{:.3f}", "ms", role="speed", order=300,
                             heading="p50 ms", markdown_always=True))  # fmt: skip
THROUGHPUT = register(Metric("throughput", "throughput", True, "{:,.0f}", "examples/s", role="speed", order=310,
                             heading="examples/s at batch 32", short="ex/s b32"))  # fmt: skip
# batch-1 latency / the same runtime's fp32 latency, measured interleaved in one test
LATENCY_RATIO = register(Metric(
    "latency_ratio", "latency ratio", False, "{:.2f}x", "ratio", bound=True, role="speed", order=320,
    heading="vs own fp32", markdown_always=True, log_scale=True,
    axis="latency ratio (batch-1 p50 / same runtime's fp32 p50, timed interleaved; log scale)",
))  # fmt: skip
LATENCY_RATIO_BEST = register(Metric(
    "latency_ratio_best", "latency ratio to the best fp32", False, "{:.2f}x", "ratio", role="speed", order=330,
    heading="vs best fp32", markdown_always=True, log_scale=True,
    axis="latency ratio (batch-1 p50 / fastest fp32 of the family; log scale)",
))  # fmt: skip
COST_S = register(Metric("cost_s", "suite cost", False, "{:.1f}", "s", role="cost",
                         description="seconds the suite spent on the pair in this run"))  # fmt: skip
