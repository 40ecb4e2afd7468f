"""The thresholds file: per ``model.technique``, bounds on size and on retention.

Format (TOML), one table per pair, the last measured value beside each bound::

    [mobilenetv2.int8]
    size_ratio = { max = 0.40, last = 0.3852 }   # artefact bytes / fp32 artefact bytes
    retention  = { min = 0.99, last = 0.9989 }   # accuracy / fp32 artefact accuracy

    [mobilenetv2.prune50]
    gzip_ratio = { max = 0.66, last = 0.6301 }   # gzip bytes / fp32 gzip bytes
    retention  = { min = 0.99, last = 0.9931 }

A compressed pair bounds ``retention`` and a size metric: ``size_ratio`` (raw
bytes), or ``gzip_ratio`` where sparsity is the point (a pruned model is stored
dense; its zeros pay off once compressed). The reference pair (``fp32``), whose
ratios are 1 by definition, bounds its absolute top-1 ``accuracy`` instead. A bound is never loosened to
make a run pass; changing one is a reviewed diff whose ``last`` shows the
measurement that motivated it.
"""

from __future__ import annotations

import math
import operator
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "thresholds.toml"

# metric -> bound kind; "max" bounds must not be exceeded, "min" bounds must be reached.
METRICS = {
    "size_ratio": "max",
    "gzip_ratio": "max",
    "retention": "min",
    "accuracy": "min",
    # batch-1 latency / the same runtime's fp32 latency, measured interleaved in one test
    "latency_ratio": "max",
}


class ThresholdsError(ValueError):
    """The thresholds file is malformed or lacks an entry; the message names the key."""


@dataclass(frozen=True)
class Bound:
    metric: str
    kind: str  # "max" or "min"
    value: float
    last: float | None

    def holds(self, measured: float) -> bool:
        # written so that NaN never passes
        return (operator.le if self.kind == "max" else operator.ge)(measured, self.value)


@dataclass(frozen=True)
class Bounds:
    key: str
    bounds: tuple[Bound, ...]

    def __getitem__(self, metric: str) -> Bound:
        for b in self.bounds:
            if b.metric == metric:
                return b
        raise KeyError(metric)

    def violations(self, metrics: dict) -> list[str]:
        """One message per violated bound, naming the pair, the bound and the measured value."""
        out = []
        for b in self.bounds:
            if b.metric not in metrics:
                out.append(f"{self.key}: {b.metric} was not measured but has a bound")
                continue
            v = metrics[b.metric]
            if not b.holds(v):
                verb = "exceeds max" if b.kind == "max" else "is below min"
                out.append(f"{self.key}: {b.metric} {v:.4f} {verb} {b.value} (last recorded {b.last})")
        return out


def _number(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ThresholdsError(f"{key}: expected a finite number, got {value!r}")
    return float(value)


def _entry(source: str, key: str, entry: object) -> Bounds:
    if not isinstance(entry, dict):
        raise ThresholdsError(f"{source}: {key}: expected a table with retention and size_ratio or gzip_ratio")
    unknown = sorted(set(entry) - set(METRICS))
    if unknown:
        raise ThresholdsError(f"{source}: {key}.{unknown[0]}: unknown key; valid: {', '.join(METRICS)}")
    if not entry:
        raise ThresholdsError(f"{source}: {key}: no bounds; valid: {', '.join(METRICS)}")
    bounds = []
    for metric, kind in METRICS.items():
        if metric not in entry:
            continue
        sub, where = entry[metric], f"{source}: {key}.{metric}"
        if not isinstance(sub, dict) or kind not in sub:
            raise ThresholdsError(f"{where}: missing {{ {kind} = ..., last = ... }}")
        extra = sorted(set(sub) - {kind, "last"})
        if extra:
            raise ThresholdsError(f"{where}.{extra[0]}: unknown key; valid: {kind}, last")
        value = _number(f"{where}.{kind}", sub[kind])
        last = None if sub.get("last") is None else _number(f"{where}.last", sub["last"])
        if kind == "max" and not value > 0:
            raise ThresholdsError(f"{where}.max must be > 0")
        if kind == "min" and not 0 <= value <= 1.5:
            raise ThresholdsError(f"{where}.min must be in [0, 1.5]")
        bounds.append(Bound(metric, kind, value, last))
    return Bounds(key, tuple(bounds))


def parse(text: str, source: str = "<thresholds>") -> dict[str, Bounds]:
    """Parse and validate thresholds TOML; keys of the result are ``model.technique``."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ThresholdsError(f"{source}: not valid TOML: {exc}") from None
    out = {}
    for model, techniques in doc.items():
        if not isinstance(techniques, dict):
            raise ThresholdsError(f"{source}: {model}: expected a table of techniques")
        for technique, entry in techniques.items():
            key = f"{model}.{technique}"
            out[key] = _entry(source, key, entry)
    return out


def load(path: Path | str = DEFAULT_PATH) -> dict[str, Bounds]:
    path = Path(path)
    return parse(path.read_text(), str(path))


def lookup(thresholds: dict[str, Bounds], model: str, technique: str) -> Bounds:
    """The bounds of a registered pair; a missing entry is an error, never a pass."""
    key = f"{model}.{technique}"
    try:
        return thresholds[key]
    except KeyError:
        raise ThresholdsError(
            f"no thresholds for registered pair {key!r}: add a [{key}] table with "
            "retention = { min = ..., last = ... } and size_ratio (or gzip_ratio) = "
            "{ max = ..., last = ... } to benchmarks/thresholds.toml"
        ) from None
