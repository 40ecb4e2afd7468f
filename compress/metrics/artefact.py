"""What every pair measures of its artefact besides its task metric: parameters, bytes, size ratios,
sparsity, retention (the runner's :class:`~compress.runner.PairResult` and the adaptation
techniques' extras). Their descriptors only: the runner computes them (:mod:`compress.metrics.descriptor`)."""

from __future__ import annotations

from compress.metrics.descriptor import Metric, register

PARAMETERS = register(Metric("parameters", "parameters", False, "{:,}", role="size", order=10, short="params",
                             markdown=False))  # fmt: skip
BYTES = register(Metric("bytes", "bytes", False, "{:,}", "bytes", role="size", order=20, markdown_always=True))
# a LoRA pair ships its adapter (compress.techniques.adaptation)
ADAPTER_BYTES = register(Metric("adapter_bytes", "adapter bytes", False, "{:,}", "bytes", role="size", order=30))
TRAINABLE_FRACTION = register(Metric("trainable_fraction", "trainable fraction", False, "{:.4f}", "ratio", ceiling=1.0,
                                     role="cost", order=40, heading="trained"))  # fmt: skip
SIZE_RATIO = register(Metric(
    "size_ratio", "size ratio", False, "{:.3f}", "ratio", description="ratio (artefact bytes / fp32 artefact bytes)",
    bound=True, notable=0.005, role="size", order=50, short="size", markdown_always=True,
    axis="size ratio (artefact bytes / fp32 artefact bytes)",
))  # fmt: skip
GZIP_RATIO = register(Metric(
    "gzip_ratio", "gzip ratio", False, "{:.3f}", "ratio", description="ratio (gzip bytes / fp32 gzip bytes)",
    bound=True, role="size", order=60, short="gzip", markdown_always=True,
    axis="gzip ratio (gzipped bytes / fp32 gzipped bytes)",
))  # fmt: skip
SPARSITY = register(Metric("sparsity", "sparsity", True, "{:.3f}", "ratio", ceiling=1.0, role="size", order=210,
                           markdown=False))  # fmt: skip
PARAM_RATIO = register(Metric("param_ratio", "parameter ratio", False, "{:.3f}", "ratio", role="size",
                              description="ratio (parameters / fp32 parameters)"))  # fmt: skip
# the compressed artefact's task metric against its fp32 artefact's, oriented so that above 1 is better
RETENTION = register(Metric(
    "retention", "retention", True, "{:.4f}", "ratio", ceiling=1.5,
    description="vs the fp32 artefact, above 1 better (top-1 ratio; fp32 perplexity / perplexity)",
    bound=True, confidence=True, notable=0.002, order=200, markdown_always=True,
))  # fmt: skip
