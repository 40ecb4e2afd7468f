"""Proof, per pair, that each quality bound catches the drop it declares: planted in kept outcomes.

A gated pair's per-example outcomes (and its fp32 reference's) are kept from a measured run
(:func:`keep`: ``python -m compress thresholds keep-outcomes``, written to ``results/outcomes/``
per machine kind). :func:`prove` then plants, in the pair's own outcomes, a regression of the
size its bound must catch (the rule's declared drop: :func:`compress.judging.propose.quality_bound`)
and judges it exactly as the gate does (:meth:`compress.judging.thresholds.Bounds.violations`):

- top-1: correct outcomes turned wrong, chosen at random with a fixed seed (``ceil(drop x n)`` of them);
- perplexity: every token's loss raised by ``log(1 + drop)`` (perplexity times ``1 + drop``);
- PSNR: every image's PSNR lowered by the drop (dB).

The unchanged outcomes must pass; the planted ones must fail. Each bound's smallest detectable
drop is found by bisection over the same planting, so that a bound set on a worse run than this one
(its ``reason`` says so) shows what it catches from here. mAP's outcomes are per-detection rows,
ranked across the whole split: a planted drop there is not a matter of per-example outcomes, so
its pairs are listed as not planted, with that reason. Nothing is trained or run: the judge only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compress import metrics
from compress.judging import propose, thresholds

FORMAT = 1
SEED = 0
PLANTABLE = {"accuracy", "perplexity", "psnr"}
WHY_NOT = {"map50_95": "mAP is ranked over every detection of the split, not a mean of per-example outcomes"}


def keep(runner, pairs: list[tuple[str, str]], path: Path) -> dict:
    """Write the per-example outcomes of ``pairs`` and of their fp32 references to ``path`` (JSON).

    Outcomes come from ``runner`` (its result store when warm; measured otherwise)."""
    from compress.machine import machine_info
    from compress.pair import resolve
    from compress.techniques.quantization import Float32Config

    out = {"format": FORMAT, "machine": {k: machine_info()[k] for k in ("cpu", "cores")}, "pairs": {},
           "not_planted": {}}
    for model, technique in pairs:
        pair = resolve(model, technique)
        if pair.unsupported() or pair.not_applicable():
            continue
        metric = metrics.metric_of(pair.recipe)
        if metric.name not in PLANTABLE:  # (mAP's rows are 12 MB for the gate's 8 YOLOv8n pairs)
            out["not_planted"][f"{model}.{technique}"] = WHY_NOT.get(metric.name, f"no planting for {metric.name}")
            continue
        out["pairs"][f"{model}.{technique}"] = {
            "metric": metric.name,
            "outcomes": metric.pack(runner.outcomes(model, pair.config)),
            "reference": metric.pack(runner.outcomes(model, Float32Config())),  # retention's reference
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    return out


def load(path: Path) -> dict:
    data = json.loads(Path(path).read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: kept outcomes of format {data.get('format')!r}, this code reads {FORMAT}")
    return data


def row(metric_name: str, out: np.ndarray, ref: np.ndarray) -> dict:
    """The judged metrics of a pair from its outcomes and its reference's (as the runner records them)."""
    m = metrics.get_metric(metric_name)
    (score, score_bound), (retention, upper) = m.value(out), m.retention(out, ref)
    return {"metric": metric_name, metric_name: score, m.bound_key: score_bound,
            f"baseline_{metric_name}": m.value(ref)[0], "eval_images": m.examples(out),
            "retention": retention, "retention" + thresholds.UPPER_SUFFIX: upper}  # fmt: skip


def plant(metric_name: str, out: np.ndarray, drop: float, seed: int = SEED) -> np.ndarray:
    """``out`` made worse by ``drop`` in the metric's own units (points of top-1, a fraction of
    perplexity, dB of PSNR)."""
    if metric_name == "accuracy":
        worse = np.array(out, dtype=bool, copy=True)
        correct = np.flatnonzero(worse)
        k = min(len(correct), math.ceil(drop * len(worse) - 1e-9))
        worse[np.random.default_rng(seed).choice(correct, size=k, replace=False)] = False
        return worse
    if metric_name == "perplexity":
        return np.asarray(out, dtype=np.float64) + math.log1p(drop)
    if metric_name == "psnr":
        return np.asarray(out, dtype=np.float64) - drop
    raise ValueError(f"no planting for {metric_name!r}: {WHY_NOT.get(metric_name, 'unknown metric')}")


@dataclass(frozen=True)
class Verdict:
    pair: str
    metric: str  # the bound's metric: retention or the pair's own
    kind: str
    bound: float
    last: float | None
    value: float  # measured from the kept outcomes
    declared: float  # the drop the rule declares (or the smallest the test set resolves), metric units
    unit: str
    unchanged_passes: bool
    planted_fails: bool
    detectable: float  # the smallest planted drop that fails, metric units (inf: none up to the search's end)
    reason: str | None

    def show(self, x: float) -> str:
        if self.unit == "relative":
            return f"{x * 100:.1f}%"
        return f"{x * 100:.1f} points" if self.unit == "points" else f"{x:.2f} {self.unit}"


def _fails(bounds: thresholds.Bounds, metric_name: str, out, ref, drop: float) -> bool:
    return bool(bounds.violations(row(metric_name, plant(metric_name, out, drop), ref)))


def _detectable(bounds, metric_name, out, ref, hi: float) -> float:
    if not _fails(bounds, metric_name, out, ref, hi):
        return math.inf
    lo = 0.0
    for _ in range(20):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if _fails(bounds, metric_name, out, ref, mid) else (mid, hi)
    return hi


def prove(kept: dict, table: dict[str, thresholds.Bounds]) -> tuple[list[Verdict], dict[str, str]]:
    """``(verdicts, not planted)``: a verdict per quality bound of each kept pair; the pairs not planted, with why."""
    verdicts, skipped = [], dict(kept.get("not_planted", {}))
    for pair, entry in sorted(kept["pairs"].items()):
        name = entry["metric"]
        if name not in PLANTABLE:
            skipped[pair] = WHY_NOT.get(name, f"no planting for {name}")
            continue
        existing = table.get(pair)
        if existing is None:
            continue
        m = metrics.get_metric(name)
        out, ref = m.unpack(entry["outcomes"]), m.unpack(entry["reference"])
        measured = row(name, out, ref)
        for b in existing.bounds:
            if b.metric not in ("retention", name):
                continue
            rule = propose.quality_bound(pair, b.metric, measured)
            if rule is None:
                continue
            one = thresholds.Bounds(pair, (b,))
            declared = rule.detect  # points of top-1, a fraction of perplexity, dB of PSNR
            verdicts.append(Verdict(
                pair, b.metric, b.kind, b.value, b.last, measured[b.metric], declared, rule.unit,
                unchanged_passes=not one.violations(measured),
                planted_fails=_fails(one, name, out, ref, declared),
                detectable=_detectable(one, name, out, ref, hi=max(declared * 20, 0.5 if name == "accuracy" else 1.0)),
                reason=b.reason))  # fmt: skip
    return verdicts, skipped


def format_table(verdicts: list[Verdict], skipped: dict[str, str]) -> str:
    lines = ["| pair | bound | last | measured | declared drop | unchanged | planted | smallest caught | reason |",
             "|---|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        lines.append(f"| {v.pair} | {v.metric} {v.kind} {v.bound:g} | {v.last} | {v.value:.4f} | {v.show(v.declared)} | "
                     f"{'passes' if v.unchanged_passes else 'FAILS'} | {'fails' if v.planted_fails else 'PASSES'} | "
                     f"{v.show(v.detectable)} | {v.reason or ''} |")  # fmt: skip
    for pair, why in skipped.items():
        lines.append(f"| {pair} | not planted | | | | | | | {why} |")
    return "\n".join(lines)
