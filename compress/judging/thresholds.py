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
ratios are 1 by definition, bounds its absolute top-1 ``accuracy`` instead (a language model's,
its ``perplexity``, with a max bound). A bound is never loosened to
make a run pass; changing one is a reviewed diff whose ``last`` shows the
measurement that motivated it.

The accuracy-type min bounds (``retention``, ``accuracy``) are judged with
statistics (``compress.judging.stats``): a pair fails only when we are ``CONFIDENCE``
(95%) sure that the true value is below the floor, i.e. when the one-sided upper
confidence bound, which the runner records as ``retention_upper`` /
``accuracy_upper`` beside the point value, is below it. Size and latency bounds
compare the measured value.

``parse`` checks the file's form; ``check_registered`` (called by ``load``)
checks that every entry names a registered model and a technique that applies to
it, so a misspelt entry fails before any model is trained.

A team's own file is merged over the suite's (``load_merged``, the gate's
``--thresholds FILE``): the suite's ``benchmarks/thresholds.toml`` first, then each
file in order, a later file's entry for a pair replacing the earlier one whole.
Every bound remembers the file that set it, and a violation names that file.
"""

from __future__ import annotations

import difflib
import math
import operator
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from compress.metrics import Metric, descriptors
from compress.judging.stats import CONFIDENCE

DEVICES = ("cpu", "cuda")  # as compress.registry.DEVICES (this module imports no registry at load)

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "thresholds.toml"


class _Registered(Mapping):
    """A read-only mapping drawn afresh from the registered metric descriptors at every use
    (:mod:`compress.metrics.descriptor`), so that a metric registered later is bounded too."""

    def __init__(self, build):
        self._build = build

    def __getitem__(self, key):
        return self._build()[key]

    def __iter__(self):
        return iter(self._build())

    def __len__(self) -> int:
        return len(self._build())

    def __repr__(self) -> str:
        return repr(self._build())


def _bounded() -> list[Metric]:
    return [d for d in descriptors().values() if d.bound]


# metric -> bound kind, for every descriptor with `bound`, in the descriptors' order: "max" bounds (lower is
# better: size_ratio, gzip_ratio, perplexity, latency_ratio) must not be exceeded, "min" bounds (higher is
# better: retention, accuracy, psnr, psnr_over_bicubic, map50_95) must be reached
METRICS = _Registered(lambda: {d.name: d.bound_kind for d in _bounded()})
# bounds judged by a one-sided CONFIDENCE bound of the metric (a descriptor's `confidence`), read from
# "<metric><suffix>": a min bound by the upper bound (it fails only when even that is below it), a max
# bound by the lower one
STATISTICAL = _Registered(lambda: {d.name: d.bound_suffix for d in _bounded() if d.confidence})
UPPER_SUFFIX = "_upper"
# the largest value a bound (or its `last`) on the metric can meaningfully take (a descriptor's `ceiling`)
_CEILING = _Registered(lambda: {d.name: d.ceiling for d in _bounded() if d.ceiling is not None})


class ThresholdsError(ValueError):
    """The thresholds file is malformed or lacks an entry; the message names the key."""



def _int8_dot_product() -> bool:
    from compress.machine import int8_dot_product

    return int8_dot_product()


# CPU features a bound can need (`needs = "..."`): a speed claim made on CPUs with int8 dot-product
# instructions (VNNI, AMX) does not hold on one without them (an AVX2-only AMD EPYC).
NEEDS = {"int8-dot-product": _int8_dot_product}

@dataclass(frozen=True)
class Bound:
    metric: str
    kind: str  # "max" or "min"
    value: float
    last: float | None
    device: str | None = None  # asserted only where artefacts run on this device (None: everywhere)
    source: str = "<thresholds>"  # the file that set the bound
    needs: str | None = None  # asserted only on a CPU with this feature (NEEDS; None: everywhere)
    # why the bound is looser than the rule of compress.judging.propose (printed with it; None: it is not)
    reason: str | None = None

    def holds(self, measured: float) -> bool:
        # written so that NaN never passes
        return (operator.le if self.kind == "max" else operator.ge)(measured, self.value)


@dataclass(frozen=True)
class Bounds:
    key: str
    bounds: tuple[Bound, ...]
    source: str = "<thresholds>"  # the file the entry was read from

    def __getitem__(self, metric: str) -> Bound:
        for b in self.bounds:
            if b.metric == metric:
                return b
        raise KeyError(metric)

    def violations(self, metrics: dict, device: str = "cpu") -> list[str]:
        """One message per violated bound, naming the pair, the bound, the measured value and
        (when read from a file) the file that set the bound.

        A bound scoped to a device (``device = "cpu"``) is asserted only on it.

        ``retention`` and ``accuracy`` min bounds are judged by ``<metric>_upper``,
        their one-sided upper ``CONFIDENCE`` bound: they fail only when it is below
        the floor; a ``perplexity`` max bound by ``perplexity_lower``, failing only
        when even that is above the ceiling. Without it they fail too (never a silent pass).
        """
        out = []
        for b in self.bounds:
            if b.device is not None and b.device != device:
                continue
            if b.needs is not None and not NEEDS[b.needs]():
                continue
            if b.metric not in metrics:
                out.append(f"{self.key}: {b.metric} was not measured but has a bound{_set_in(b, ' (', ')')}")
                continue
            v = metrics[b.metric]
            suffix = STATISTICAL.get(b.metric)
            if suffix is not None:
                bound_key = b.metric + suffix
                side = "upper" if b.kind == "min" else "lower"
                if bound_key not in metrics:
                    out.append(
                        f"{self.key}: {b.metric} {v:.4f} was measured without its per-example outcomes "
                        f"(no {bound_key}), so {b.kind} {b.value} cannot be judged at {CONFIDENCE:.0%} "
                        f"confidence (last recorded {b.last}{_set_in(b)})"
                    )
                    continue
                judged = metrics[bound_key]
                if judged != judged:  # NaN: never a pass
                    out.append(f"{self.key}: {b.metric} {v:.4f}: {bound_key} is NaN, so {b.kind} {b.value} "
                               f"cannot be judged (last recorded {b.last}{_set_in(b)})")  # fmt: skip
                elif not b.holds(judged):
                    verb = "is below min" if b.kind == "min" else "exceeds max"
                    out.append(
                        f"{self.key}: {b.metric} {v:.4f} {verb} {b.value} with {CONFIDENCE:.0%} "
                        f"confidence: its {side} {CONFIDENCE:.0%} bound is {judged:.4f} "
                        f"(last recorded {b.last}{_set_in(b)})"
                    )
                continue
            if not b.holds(v):
                verb = "exceeds max" if b.kind == "max" else "is below min"
                out.append(f"{self.key}: {b.metric} {v:.4f} {verb} {b.value} (last recorded {b.last}{_set_in(b)})")
        return out


def _shown(source: str) -> str:
    """``source`` relative to the working directory when it is under it (as a person typed it)."""
    try:
        return str(Path(source).resolve().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return source


def _set_in(b: Bound, before: str = "; ", after: str = "") -> str:
    """``; bound set in FILE``: where ``b`` was read from (nothing for text parsed without a file),
    and the reason it is looser than the rule, where it says one."""
    why = f"; looser than the rule because {b.reason}" if b.reason else ""
    if b.source.startswith("<"):
        return f"{before}{why[2:]}{after}" if why else ""
    return f"{before}bound set in {_shown(b.source)}{why}{after}"


def _number(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ThresholdsError(f"{key}: expected a finite number, got {value!r}")
    return float(value)


def _did_you_mean(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _bound(where: str, metric: str, kind: str, sub: object, source: str = "<thresholds>") -> Bound:
    other = "min" if kind == "max" else "max"
    form = f"{metric} = {{ {kind} = ..., last = ... }}"
    if not isinstance(sub, dict):
        raise ThresholdsError(f"{where}: expected a table {form}, got {sub!r}")
    if other in sub:
        raise ThresholdsError(
            f"{where}: {metric} takes a {kind} bound, not a {other} one "
            f"({'it must be reached' if kind == 'min' else 'it must not be exceeded'}): write {form}"
        )
    if kind not in sub:
        raise ThresholdsError(f"{where}: missing {{ {kind} = ..., last = ... }}")
    extra = sorted(set(sub) - {kind, "last", "device", "needs", "reason"})
    if extra:
        raise ThresholdsError(f"{where}.{extra[0]}: unknown key; valid: {kind}, last, device, needs, reason")
    reason = sub.get("reason")
    if reason is not None and not (isinstance(reason, str) and reason.strip()):
        raise ThresholdsError(f"{where}.reason must be a non-empty string saying why the bound is looser "
                              f"than the rule, got {reason!r}")
    device = sub.get("device")
    if device is not None and device not in DEVICES:
        raise ThresholdsError(f"{where}.device must be one of {', '.join(DEVICES)}, got {device!r}")
    needs = sub.get("needs")
    if needs is not None and needs not in NEEDS:
        raise ThresholdsError(f"{where}.needs must be one of {', '.join(NEEDS)}, got {needs!r}")
    value = _number(f"{where}.{kind}", sub[kind])
    last = None if sub.get("last") is None else _number(f"{where}.last", sub["last"])
    ceiling = _CEILING.get(metric)
    if kind == "max" and not value > 0:
        raise ThresholdsError(f"{where}.max must be > 0")
    if kind == "min" and not 0 <= value <= (ceiling or math.inf):
        raise ThresholdsError(f"{where}.min must be in [0, {ceiling}]")
    if last is not None and not 0 <= last <= (ceiling or math.inf):
        span = f"in [0, {ceiling}]" if ceiling else ">= 0"
        raise ThresholdsError(f"{where}.last must be {span} (a measured {metric}), got {last!r}")
    return Bound(metric, kind, value, last, device, source, needs, reason)


def _entry(source: str, key: str, entry: object) -> Bounds:
    if not isinstance(entry, dict):
        raise ThresholdsError(f"{source}: {key}: expected a table with retention and size_ratio or gzip_ratio")
    unknown = sorted(set(entry) - set(METRICS))
    if unknown:
        raise ThresholdsError(
            f"{source}: {key}.{unknown[0]}: unknown key.{_did_you_mean(unknown[0], list(METRICS))} "
            f"Valid: {', '.join(METRICS)}"
        )
    if not entry:
        raise ThresholdsError(f"{source}: {key}: no bounds; valid: {', '.join(METRICS)}")
    bounds = [
        _bound(f"{source}: {key}.{metric}", metric, kind, entry[metric], source)
        for metric, kind in METRICS.items()
        if metric in entry
    ]
    return Bounds(key, tuple(bounds), source)


def parse(text: str, source: str = "<thresholds>") -> dict[str, Bounds]:
    """Parse and validate thresholds TOML; keys of the result are ``model.technique``."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ThresholdsError(f"{source}: not valid TOML: {exc}") from None
    if not doc:
        raise ThresholdsError(f"{source}: no entries; expected one [model.technique] table per pair")
    out = {}
    for model, techniques in doc.items():
        if not isinstance(techniques, dict):
            raise ThresholdsError(f"{source}: {model}: expected a table of techniques")
        if "." in model or not model:
            raise ThresholdsError(f"{source}: {model!r}: not a model name (write [model.technique] unquoted)")
        if not techniques:
            raise ThresholdsError(f"{source}: {model}: no techniques; expected [{model}.<technique>] tables")
        for technique, entry in techniques.items():
            key = f"{model}.{technique}"
            if "." in technique or not technique:
                raise ThresholdsError(f"{source}: {key!r}: not a technique name (write [model.technique] unquoted)")
            out[key] = _entry(source, key, entry)
    return out


def check_registered(table: dict[str, Bounds]) -> None:
    """Raise ThresholdsError naming every entry that is not a registered, applicable pair.

    An entry must name a registered model (any tier) and a registered technique
    that applies to the model's framework. Every bad entry is listed at once,
    with a close match where there is one. Cheap: importing the registry imports
    no framework.
    """
    from compress import registry

    models = registry.list_models()
    techniques = registry.list_techniques()
    problems = []
    for key, bounds in table.items():
        model, _, technique = key.partition(".")
        where = f"{bounds.source}: [{key}]"
        bad = []
        if model not in models:
            bad.append(f"unknown model {model!r}.{_did_you_mean(model, models)}")
        if technique not in techniques:
            bad.append(f"unknown technique {technique!r}.{_did_you_mean(technique, techniques)}")
        elif model in models:
            spec = registry.get_model(model)
            applicable = registry.list_techniques(framework=spec.framework, task=spec.task)
            if technique not in applicable:
                bad.append(
                    f"technique {technique!r} does not apply to {spec.framework} {spec.task} model {model!r}."
                    f"{_did_you_mean(technique, applicable)} Its techniques: {', '.join(applicable)}"
                )
        if bad:
            problems.append(f"{where}: {' '.join(bad)}")
    if problems:
        raise ThresholdsError(
            f"{len(problems)} thresholds entr{'y names' if len(problems) == 1 else 'ies name'} "
            "no registered, applicable pair:\n  " + "\n  ".join(problems)
        )


def load(path: Path | str = DEFAULT_PATH, *, registered: bool = True) -> dict[str, Bounds]:
    """Read and validate a thresholds file; with ``registered``, also ``check_registered``."""
    path = Path(path)
    table = parse(path.read_text(), str(path))
    if registered:
        check_registered(table)
    return table


def load_merged(paths: list[Path | str] | tuple[Path | str, ...] = (), *, base: Path | str = DEFAULT_PATH,
                registered: bool = True) -> dict[str, Bounds]:
    """The suite's thresholds file (``base``) with each of ``paths`` merged over it, in order.

    A pair's entry in a later file replaces its earlier entry whole (every bound
    of it), so a team can tighten or loosen a suite pair and bound its own models'
    pairs. Each file is validated as ``parse`` does; with ``registered``,
    ``check_registered`` runs on the merged table, which reads the registry and so
    loads the plugins first: a team's file may name its own models. Every entry
    and bound keeps the file it came from.

    Raises:
        ThresholdsError: a file is malformed, missing, or (with ``registered``) names
            a pair that is not registered; the message names the file.
    """
    table: dict[str, Bounds] = {}
    for path in (base, *paths):
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ThresholdsError(f"{path}: cannot read the thresholds file: {exc.strerror or exc}") from None
        table.update(parse(text, str(path)))
    if registered:
        check_registered(table)
    return table


def lookup(thresholds: dict[str, Bounds], model: str, technique: str) -> Bounds:
    """The bounds of a registered pair; a missing entry is an error, never a pass."""
    key = f"{model}.{technique}"
    try:
        return thresholds[key]
    except KeyError:
        raise ThresholdsError(
            f"no thresholds for registered pair {key!r}: add a [{key}] table with "
            "retention = { min = ..., last = ... } and size_ratio (or gzip_ratio) = "
            "{ max = ..., last = ... } to benchmarks/thresholds.toml (a team's own model: to its file, "
            "passed with --thresholds)"
        ) from None
