"""One descriptor per metric: what every table, bound, comparison, plot and asv track reads about it.

A :class:`Metric` names a results key (``"accuracy"``, ``"size_ratio"``) and says how to show it
(``label``, ``heading``, ``format``, ``unit``), which way is better (``higher_is_better``; a
thresholds bound on it is then a ``min`` or a ``max``), what it can be (``ceiling``) and what the
gate does with it: whether a thresholds file may bound it (``bound``) and judges that bound by
its one-sided confidence bound (``confidence``), the change :mod:`compress.judging.compare` reports
(``notable``), the drop :mod:`compress.judging.propose` derives a floor from (``detect``) and the unit of
its asv ``track_<name>`` (``description``). Readers:

- :mod:`compress.reporting.report` and :mod:`compress.storage.runs`: the columns of the text and Markdown tables
  (``order``, ``short``, ``heading``, ``format``, ``markdown``, ``markdown_always``);
- :mod:`compress.judging.thresholds`: the keys a bound may take, their direction, ceiling and statistics;
- :mod:`compress.judging.compare`: what is noted as better or worse between two runs;
- :mod:`compress.reporting.plots` and ``python -m compress report``: axis labels and plot titles;
- :mod:`compress.judging.propose`: the drop each quality floor must detect;
- ``benchmarks/asv_bench/compression.py``: one ``track_<name>`` per descriptor with a description.

A metric is one module: the module that computes it (a :class:`~compress.metrics.TaskMetric`, a
model's extra measurement) registers its descriptor with :func:`register` when imported, and
every reader above shows and judges it. :func:`descriptors` lists them in a fixed order, whatever
the order of imports: the built-in modules' in :data:`BUILTIN` order, then any other module's in
the order they were registered; within a module, in the order it registers them. That order is
the order of a thresholds entry's bounds (and of the keys a file may take, as its errors list them).

Example:
    >>> from compress import metrics
    >>> metrics.get_descriptor("perplexity").bound_kind, metrics.get_descriptor("perplexity").bound_key
    ('max', 'perplexity_lower')
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["Metric", "Detect", "register", "unregister", "get_descriptor", "descriptors", "BUILTIN",
           "GENERIC_RETENTION"]  # fmt: skip

# the modules of compress.metrics that register descriptors, in the order their descriptors are listed
BUILTIN = ("compress.metrics.artefact", "compress.metrics.accuracy", "compress.metrics.perplexity",
           "compress.metrics.psnr", "compress.metrics.detection", "compress.metrics.timing")  # fmt: skip
GENERIC_RETENTION = "retention (task metric / fp32)"  # the label of retention over several tasks' rows


class Detect(NamedTuple):
    """The drop a quality floor must detect (:mod:`compress.judging.propose`)."""

    drop: float  # in the metric's own units, or a fraction of it when relative
    unit: str  # how the drop is stated: "points", "dB", "relative"
    relative: bool  # the drop is a fraction of the value (3% of perplexity), not an amount
    flips: bool  # a drop flips per-example outcomes (adds to a paired score's variance), not a uniform loss


@dataclass(frozen=True)
class Metric:
    """How one results key is shown and judged. Frozen; one instance per key (see :func:`register`)."""

    name: str  # the results key: "accuracy", "size_ratio"
    label: str  # what it is called on an axis, in a title or a log line: "top-1", "PSNR", "size ratio"
    higher_is_better: bool
    format: str = "{}"  # a cell's format: "{:.4f}", "{:,}"
    unit: str = ""  # "", "dB", "bytes", "ratio", "ms", "s"
    ceiling: float | None = None  # the largest meaningful value (1.0 for a fraction); None: no ceiling
    description: str | None = None  # the unit of its asv track_<name> (None: asv tracks no such method)
    # the gate
    bound: bool = False  # a thresholds file may bound it: a min bound if higher is better, else a max one
    confidence: bool = False  # that bound is judged by its one-sided CONFIDENCE bound, recorded as bound_key
    notable: float | None = None  # compress.judging.compare reports a change at least this large (None: never)
    detect: Detect | None = None  # the drop a floor on it must detect (compress.judging.propose; None: proposes none)
    digits: int = 4  # decimals of a measured value (`last = ...`) in a thresholds file
    role: str = "quality"  # "quality", "size", "speed" or "cost": compress.judging.compare lists quality changes first
    # the tables (compress.reporting.report's text table, compress.storage.runs' Markdown report)
    order: float | None = None  # the position of its column, ascending (None: no column)
    heading: str | None = None  # its column's heading (None: the label)
    short: str | None = None  # the text table's narrower heading (None: the heading)
    markdown: bool = True  # a column of the Markdown report too (where ``order`` is set)
    markdown_order: float | None = None  # its position there, where it differs from ``order``
    markdown_always: bool = False  # shown in the Markdown report even where no row has it
    # the plots
    axis: str | None = None  # an axis label (None: the label)
    log_scale: bool = False  # plotted on a log axis

    def __post_init__(self):
        if self.role not in ("quality", "size", "speed", "cost"):
            raise ValueError(f"metric {self.name!r}: role must be quality, size, speed or cost, got {self.role!r}")
        if self.confidence and not self.bound:
            raise ValueError(f"metric {self.name!r}: a confidence bound is only judged on a bounded metric")

    @property
    def bound_kind(self) -> str:
        """A thresholds bound's kind: ``"min"`` (must be reached) if higher is better, else ``"max"``."""
        return "min" if self.higher_is_better else "max"

    @property
    def bound_key(self) -> str:
        """Where the value's one-sided confidence bound is recorded: ``<name>_upper`` (a floor fails only
        when even the upper bound is below it) or ``<name>_lower`` (a ceiling, when even the lower is above)."""
        return self.name + self.bound_suffix

    @property
    def bound_suffix(self) -> str:
        return "_upper" if self.higher_is_better else "_lower"

    @property
    def column(self) -> str:
        """The Markdown report's heading."""
        return self.heading or self.label

    @property
    def column_short(self) -> str:
        """The text table's heading."""
        return self.short or self.column

    @property
    def axis_label(self) -> str:
        return self.axis or self.label

    def show(self, value) -> str:
        """``value`` in the metric's format."""
        return self.format.format(value)

    def retention_axis(self) -> str:
        """The label of retention on this (task) metric, with its orientation: above 1 is better."""
        ratio = f"{self.label} / fp32 {self.label}" if self.higher_is_better else f"fp32 {self.label} / {self.label}"
        return f"{self.label} retention ({ratio})"


class _Entry(NamedTuple):
    metric: Metric
    module: str
    seq: int


_REGISTRY: dict[str, _Entry] = {}
_SEQ = [0]


def register(metric: Metric, *, module: str | None = None) -> Metric:
    """Register ``metric`` (replacing a descriptor of the same name, which keeps its place) and return it.

    ``module``: the module it belongs to, for the order of :func:`descriptors` (default: the caller's).
    """
    if not isinstance(metric, Metric):
        raise TypeError(f"expected a compress.metrics.Metric, got {type(metric).__name__}")
    if module is None:
        module = sys._getframe(1).f_globals.get("__name__", "")
    old = _REGISTRY.get(metric.name)
    if old is not None and old.module == module:
        _REGISTRY[metric.name] = old._replace(metric=metric)
    else:
        _SEQ[0] += 1
        _REGISTRY[metric.name] = _Entry(metric, module, _SEQ[0])
    return metric


def unregister(name: str) -> None:
    """Forget the descriptor ``name`` (a test's throwaway metric); no error when there is none."""
    _REGISTRY.pop(name, None)


def _rank(entry: _Entry) -> tuple:
    where = BUILTIN.index(entry.module) if entry.module in BUILTIN else len(BUILTIN)
    return (where, entry.seq)


def descriptors() -> dict[str, Metric]:
    """Every registered descriptor by name, in the fixed order of the module's docstring."""
    _load()
    return {e.metric.name: e.metric for e in sorted(_REGISTRY.values(), key=_rank)}


def get_descriptor(name: str) -> Metric:
    """The descriptor of results key ``name``.

    Raises:
        ValueError: no such descriptor (the message lists the registered ones).
    """
    found = descriptors().get(name)
    if found is None:
        raise ValueError(f"no metric descriptor {name!r}; registered: {', '.join(sorted(descriptors()))}")
    return found






_PACKAGE = __name__.rsplit(".", 1)[0]  # compress.metrics: its modules register on import

def _load() -> None:
    """Import every module of this package once (each registers its metrics on import): the built-in
    ones (:data:`~compress.metrics.descriptor.BUILTIN`), then any other, by name."""
    if _LOADED:
        return
    import importlib
    import pkgutil
    from pathlib import Path

    _LOADED.append(True)  # before the imports: a module importing compress.metrics while loading is no loop
    try:
        for module in BUILTIN:
            importlib.import_module(module)
        for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name):
            if not info.name.startswith("_") and f"{_PACKAGE}.{info.name}" not in BUILTIN:
                importlib.import_module(f"{_PACKAGE}.{info.name}")
    except BaseException:
        _LOADED.clear()
        raise


_LOADED: list[bool] = []
