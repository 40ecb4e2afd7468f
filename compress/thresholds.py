"""The thresholds file: per ``model.technique``, a bound on size ratio and on retention.

Format (TOML), one table per pair, the last measured value beside each bound::

    [mobilenetv2.int8]
    size_ratio = { max = 0.30, last = 0.2710 }   # artefact bytes / fp32 artefact bytes
    retention  = { min = 0.99, last = 0.9978 }   # accuracy / fp32 artefact accuracy

A bound is never loosened to make a run pass; changing one is a reviewed diff
whose ``last`` shows the measurement that motivated it.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "thresholds.toml"

_SPEC = {"size_ratio": "max", "retention": "min"}


class ThresholdsError(ValueError):
    """The thresholds file is malformed or lacks an entry; the message names the key."""


@dataclass(frozen=True)
class Bounds:
    key: str
    max_size_ratio: float
    min_retention: float
    last_size_ratio: float | None = None
    last_retention: float | None = None

    def violations(self, size_ratio: float, retention: float) -> list[str]:
        """Human-readable failures (empty when both bounds hold)."""
        out = []
        if not size_ratio <= self.max_size_ratio:
            out.append(
                f"{self.key}: size_ratio {size_ratio:.4f} exceeds max {self.max_size_ratio}"
                f" (last recorded {self.last_size_ratio})"
            )
        if not retention >= self.min_retention:
            out.append(
                f"{self.key}: retention {retention:.4f} is below min {self.min_retention}"
                f" (last recorded {self.last_retention})"
            )
        return out


def _number(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ThresholdsError(f"{key}: expected a finite number, got {value!r}")
    return float(value)


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
            if not isinstance(entry, dict):
                raise ThresholdsError(f"{source}: {key}: expected a table with size_ratio and retention")
            unknown = sorted(set(entry) - set(_SPEC))
            if unknown:
                raise ThresholdsError(f"{source}: {key}.{unknown[0]}: unknown key; valid: {', '.join(_SPEC)}")
            vals = {}
            for metric, bound in _SPEC.items():
                sub = entry.get(metric)
                if not isinstance(sub, dict) or bound not in sub:
                    raise ThresholdsError(f"{source}: {key}.{metric}: missing {{ {bound} = ..., last = ... }}")
                extra = sorted(set(sub) - {bound, "last"})
                if extra:
                    raise ThresholdsError(f"{source}: {key}.{metric}.{extra[0]}: unknown key; valid: {bound}, last")
                vals[metric] = _number(f"{source}: {key}.{metric}.{bound}", sub[bound])
                last = sub.get("last")
                vals[f"last_{metric}"] = None if last is None else _number(f"{source}: {key}.{metric}.last", last)
            if not 0 < vals["size_ratio"]:
                raise ThresholdsError(f"{source}: {key}.size_ratio.max must be > 0")
            if not 0 <= vals["retention"] <= 1.5:
                raise ThresholdsError(f"{source}: {key}.retention.min must be in [0, 1.5]")
            out[key] = Bounds(key, vals["size_ratio"], vals["retention"], vals["last_size_ratio"], vals["last_retention"])
    return out


def load(path: Path | str = DEFAULT_PATH) -> dict[str, Bounds]:
    path = Path(path)
    return parse(path.read_text(), str(path))


def lookup(thresholds: dict[str, Bounds], model: str, technique: str) -> Bounds:
    key = f"{model}.{technique}"
    try:
        return thresholds[key]
    except KeyError:
        raise ThresholdsError(
            f"no thresholds for registered pair {key!r}: add a [{key}] table with "
            "size_ratio = {{ max = ..., last = ... }} and retention = {{ min = ..., last = ... }} "
            "to benchmarks/thresholds.toml"
        ) from None
