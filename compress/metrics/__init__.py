"""Task metrics: what a model's outputs are scored by, and which direction is better.

A model's recipe names its metric (``metric = "perplexity"``; without one,
``"accuracy"``: top-1). The runner scores every artefact with it, example by
example, stores the per-example outcomes (:mod:`compress.storage.results`) and derives
from them, the same way for every task:

- the metric's value (top-1, perplexity) and its one-sided ``CONFIDENCE`` bound on
  the side a bound is judged by: ``accuracy_upper`` (a floor on a metric where
  higher is better fails only when even the upper bound is below it),
  ``perplexity_lower`` (a ceiling on one where lower is better fails only when
  even the lower bound is above it);
- retention: the compressed artefact against its fp32 reference, oriented so that
  above 1 is better for every metric (top-1 / fp32 top-1; fp32 perplexity /
  perplexity), with its one-sided upper bound: thresholds, reports, comparisons
  and asv read one retention whatever the task.

One module per metric: :mod:`compress.metrics.accuracy`, :mod:`compress.metrics.perplexity`,
:mod:`compress.metrics.psnr`, :mod:`compress.metrics.detection`. Each also registers the
:class:`Metric` descriptor (:mod:`compress.metrics.descriptor`) of its metric and of the model
extras it goes with, which every table, bound, comparison, plot and asv track reads; a task
metric's ``name``, ``label`` and ``higher_is_better`` are its descriptor's. The descriptors of
what every pair measures besides its task metric (size, retention, latency) are registered by
:mod:`compress.metrics.artefact` and :mod:`compress.metrics.timing`. Any other module of this
package is imported too (:func:`_load`): a new metric is one module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Iterable

import numpy as np

from compress.metrics.descriptor import (BUILTIN, GENERIC_RETENTION, Detect, Metric, _load, descriptors, get_descriptor, register,
                                         unregister)

__all__ = ["TaskMetric", "get_metric", "metric_of", "list_metrics", "DEFAULT", "Metric", "Detect", "register",
           "unregister", "get_descriptor", "descriptors", "task_of", "retention_label"]  # fmt: skip

DEFAULT = "accuracy"


class TaskMetric(ABC):
    """How one task's outputs are scored. Stateless; one instance per metric."""

    descriptor: ClassVar[Metric]  # its results key, label, direction, format, bounds (compress.metrics.descriptor)
    # how per-example outcomes are stored: "bools" (one per example), "floats" (one per example) or
    # "rows" (a 2-D float array, several rows an example: see :meth:`examples`)
    kind: ClassVar[str]
    # examples per call of the artefact's predict (bounds the outputs held at once); None: the whole
    # split in one call, so the runtime batches it as it always has
    chunk: ClassVar[int | None] = None
    # bump when this metric's scoring changes meaning: part of the stored results' key from 2 on
    # (compress.storage.results), so that no result scored the old way is reused
    version: ClassVar[int] = 1

    @property
    def name(self) -> str:
        """The results key: ``"accuracy"``, ``"perplexity"`` (the descriptor's)."""
        return self.descriptor.name

    @property
    def label(self) -> str:
        """What it is called in a table or a log line: ``"top-1"``, ``"perplexity"`` (the descriptor's)."""
        return self.descriptor.label

    @property
    def higher_is_better(self) -> bool:
        return self.descriptor.higher_is_better

    @property
    def bound_key(self) -> str:
        """Where the value's confidence bound is recorded: ``<name>_upper`` or ``<name>_lower``."""
        return self.descriptor.bound_key

    @abstractmethod
    def outcomes(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Per-example outcomes of ``outputs`` (the task's outputs for a chunk of the test split)."""

    @abstractmethod
    def value(self, outcomes: np.ndarray) -> tuple[float, float]:
        """``(value, bound)``: the metric over the test split and its one-sided bound (see ``bound_key``)."""

    @abstractmethod
    def retention(self, outcomes: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
        """``(retention, upper)`` against the fp32 reference's outcomes (above 1 is better)."""

    def describe(self, value: float) -> str:
        return f"{self.label} {self.descriptor.show(value)}"

    def examples(self, outcomes: np.ndarray) -> int:
        """How many test examples ``outcomes`` hold (one per entry, unless a metric's rows say otherwise)."""
        return len(outcomes)

    @property
    def store_key(self) -> str:
        """The result store's name for the outcomes (kept from the first stored results)."""
        return {"bools": "correct", "floats": "losses"}.get(self.kind, self.kind)

    def pack(self, outcomes: np.ndarray) -> dict:
        """``outcomes`` as JSON for the result store (exact; see :mod:`compress.storage.results`)."""
        from compress.storage.results import pack_bools, pack_floats

        return pack_bools(outcomes) if self.kind == "bools" else pack_floats(outcomes)

    def unpack(self, stored: dict) -> np.ndarray:
        """The outcomes :meth:`pack` stored; raises ValueError when they are truncated or malformed."""
        from compress.storage.results import unpack_bools, unpack_floats

        return unpack_bools(stored) if self.kind == "bools" else unpack_floats(stored)


_METRICS: dict[str, TaskMetric] = {}


def _register(metric: TaskMetric) -> TaskMetric:
    _METRICS[metric.name] = metric
    return metric


def list_metrics() -> list[str]:
    _load()
    return sorted(_METRICS)


def get_metric(name: str) -> TaskMetric:
    """The registered metric ``name``.

    Raises:
        ValueError: no such metric (the message lists the registered ones).
    """
    _load()
    try:
        return _METRICS[name]
    except KeyError:
        raise ValueError(f"unknown task metric {name!r}; registered: {', '.join(sorted(_METRICS))}") from None


def metric_of(recipe: Any) -> TaskMetric:
    """The metric a model recipe is scored by (its ``metric``: :class:`compress.recipe.Recipe` defaults it to top-1)."""
    return get_metric(recipe.metric)


def task_of(row: dict) -> str:
    """The task metric a results row is scored by: its ``metric`` key; for a row without one (an older
    run), the first task metric it has a value of; else top-1."""
    named = row.get("metric")
    if isinstance(named, str) and named:
        return named
    return next((m for m in list_metrics() if row.get(m) is not None), DEFAULT)


def retention_label(rows: Iterable[dict], *, axis: bool = False, title: bool = False) -> str:
    """What retention is over ``rows``: ``"perplexity retention"`` where they are all of one task
    (with ``axis``, its orientation too: ``"perplexity retention (fp32 perplexity / perplexity)"``),
    :data:`GENERIC_RETENTION` where they mix tasks (or there are none); with ``title``, capitalized."""
    tasks = list(dict.fromkeys(task_of(r) for r in rows))
    known = descriptors()
    if len(tasks) == 1 and tasks[0] in known:
        d = known[tasks[0]]
        text = d.retention_axis() if axis else f"{d.label} retention"
    else:
        text = GENERIC_RETENTION
    if title and text[:1].islower() and not text[1:2].isupper():  # "top-1" -> "Top-1"; "mAP50-95" stays
        text = text[0].upper() + text[1:]
    return text
