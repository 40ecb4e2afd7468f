"""The pull-request gate's verdict: a saved run against a stored baseline run of the same machine.

``python -m compress compare`` (what ``make pr-gate`` runs after the gate) fails
when:

- a pair breaks a bound of the thresholds files (re-judged on the saved run's
  metrics, the same way the gate's test does), or a pair of the baseline is
  missing from the run (it failed before it was timed, or was removed);
- a pair got slower by more than ``factor``. A compressed pair is judged by its
  latency over its own runtime's fp32 export, both timed in alternating blocks
  in the same test (``latency_ratio``): on this shared machine two runs of an
  unchanged tree moved medians by up to 2.3x (torch eager int8: 62 -> 142 ms)
  while that ratio moved 5.93x -> 5.81x. An fp32 reference has no such partner:
  it is judged by its median over the baseline's, *after* dividing out the
  run-wide drift (the median of the references' ratios: a host that is slower
  today slows every pair alike, which is not a regression of the code);
- or the drift itself exceeds ``drift_factor`` (every pair slower at once: a
  dependency, a runtime setting, or not the machine the baseline was measured on).

Latencies are pytest-benchmark medians of batch-1 runs of one image. The
factors are chosen above the noise band measured on the reference machine
(README, "The merge gate"). The summary is Markdown, fit for a PR comment: what
broke, what got slower or faster, what changed in size or quality, with the
numbers.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from compress import metrics
from compress.judging import thresholds
from compress.storage.runs import pair_name as _key

# Measured here between runs of an unchanged tree (README, "The merge gate"): interleaved ratios
# within 0.9-1.1x of each other in quiet runs, 0.47x at worst under heavy load (resnet18.onnx_dynamic:
# 4.01x -> 1.87x); reference medians drifted up to 2.03x over one day (resnet18 fp32: 4.03 -> 8.20 ms).
DEFAULT_FACTOR = 2.0  # a pair's latency change (see compare) beyond which it fails
DEFAULT_DRIFT_FACTOR = 3.0  # every reference at once (the drift)
NOTABLE_LATENCY = 1.2  # reported as faster / slower (not failed) beyond this, drift divided out
# a metric's change is reported as better / worse at or beyond its descriptor's `notable` absolute change
# (compress.metrics.descriptor: retention and top-1 0.002, size ratio 0.005, an fp32 pair's perplexity 0.5,
# PSNR 0.1 dB, mAP50-95 0.005): quality first, then size, each in the descriptors' order


def notable_metrics() -> list[metrics.Metric]:
    """The descriptors whose changes :func:`compare` reports, in the order it lists them."""
    noted = [d for d in metrics.descriptors().values() if d.notable is not None]
    return sorted(noted, key=lambda d: d.role != "quality")  # stable: the descriptors' order within each


@dataclass
class Verdict:
    """What :func:`compare` found; ``failed`` when anything broke or regressed."""

    pairs: int
    drift: float | None
    factor: float
    drift_factor: float
    broke: list[str] = field(default_factory=list)
    slower: list[dict] = field(default_factory=list)  # beyond factor: fails
    worse: list[str] = field(default_factory=list)  # noted, within tolerance
    better: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    latency_note: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.broke or self.slower) or (self.drift is not None and self.drift > self.drift_factor)


def _is_reference(row: dict) -> bool:
    return bool(row.get("reference", row.get("technique") == "fp32"))


def same_machine(a: dict, b: dict) -> bool:
    """True when two runs' machine records name the same CPU model and core count."""
    return (a.get("cpu"), a.get("cores")) == (b.get("cpu"), b.get("cores"))


def compare(baseline: list[dict], current: list[dict], table: dict, *, factor: float = DEFAULT_FACTOR,
            drift_factor: float = DEFAULT_DRIFT_FACTOR, latency: bool = True) -> Verdict:  # fmt: skip
    """Judge ``current`` rows (one per pair, as :func:`compress.storage.runs.load_run` reads them) against
    ``baseline`` rows and the bounds of ``table``; ``latency=False`` compares no latency (another
    machine's baseline)."""
    if factor <= 1 or drift_factor <= 1:
        raise ValueError(f"latency factors must be > 1, got {factor} and {drift_factor}")
    base = {_key(r): r for r in baseline}
    cur = {_key(r): r for r in current}
    common = [k for k in cur if k in base]
    p50 = {}  # pair -> p50 now / p50 in the baseline
    if latency:
        for k in common:
            a, b = base[k].get("latency_ms"), cur[k].get("latency_ms")
            if a and b:
                p50[k] = b / a
    refs = [r for k, r in p50.items() if _is_reference(cur[k])]
    drift = statistics.median(refs or p50.values()) if p50 else None
    v = Verdict(pairs=len(cur), drift=drift, factor=factor, drift_factor=drift_factor)
    if not latency:
        v.latency_note = "latency not compared: the baseline was measured on another machine"
    for k, row in cur.items():
        try:
            bounds = thresholds.lookup(table, row["model"], row["technique"])
        except thresholds.ThresholdsError as exc:
            v.broke.append(str(exc))
            continue
        v.broke += bounds.violations(row, device=row.get("device", "cpu"))
    for k in base:
        if k not in cur:
            v.broke.append(f"{k}: in the baseline but not in this run (it failed before it was timed, "
                           "was skipped, or is no longer registered)")  # fmt: skip
    v.new = [k for k in cur if k not in base]
    noted = notable_metrics()
    for k in common:
        b, c = base[k], cur[k]
        if k in p50:
            if not _is_reference(c) and b.get("latency_ratio") and c.get("latency_ratio"):
                # a compressed artefact: its latency over its own runtime's fp32, both timed interleaved
                # in one test, moves far less between runs than either median (README, "The merge gate")
                what, before, after = "latency / own fp32 (interleaved)", b["latency_ratio"], c["latency_ratio"]
                change, fmt = after / before, "{:.2f}x"
            else:  # an fp32 reference: its median against the baseline's, the drift of the references divided out
                what, before, after = "p50 ms", b["latency_ms"], c["latency_ms"]
                change, fmt = p50[k] / drift, "{:.3f}"
            entry = {"pair": k, "what": what, "before": fmt.format(before), "after": fmt.format(after),
                     "change": change, "p50_ratio": p50[k]}  # fmt: skip
            desc = f"{k}: {what} {entry['before']} -> {entry['after']} ({change:.2f}x"
            if change > factor:
                v.slower.append(entry)
            elif change > NOTABLE_LATENCY:
                v.worse.append(f"{desc}; fails beyond {factor:.2f}x)")
            elif change < 1 / NOTABLE_LATENCY:
                v.better.append(f"{desc})")
        for d in noted:
            x, y = b.get(d.name), c.get(d.name)
            if x is None or y is None or abs(y - x) < d.notable:
                continue
            line = f"{k}: {d.name} {x:.4f} -> {y:.4f}"
            (v.better if (y > x) == d.higher_is_better else v.worse).append(line)
    return v


def markdown(v: Verdict, *, baseline_label: str, current_label: str) -> str:
    """The verdict as a short Markdown summary for a pull-request comment."""
    head = "FAILED" if v.failed else "passed"
    lines = [f"## compress-bench gate: {head}", "",
             f"{v.pairs} pairs; this run {current_label}; baseline {baseline_label}."]  # fmt: skip
    if v.drift is not None:
        lines.append(f"Latency: a compressed pair by its latency over its own fp32 (timed interleaved in one test), "
                     f"an fp32 reference by its median over the baseline's with the run-wide drift "
                     f"({v.drift:.2f}x, the references' median ratio) divided out; a pair fails beyond "
                     f"{v.factor:.2f}x, the whole run beyond {v.drift_factor:.2f}x.")  # fmt: skip
        if v.drift > v.drift_factor:
            lines.append(f"**Every pair is slower: drift {v.drift:.2f}x > {v.drift_factor:.2f}x.**")
    elif v.latency_note:
        lines.append(f"{v.latency_note.capitalize()}.")
    lines.append("")
    if v.broke:
        lines += ["### Broke", *[f"- {m}" for m in v.broke], ""]
    if v.slower:
        lines += ["### Slower beyond the factor", "", "| pair | measure | before | after | change |",
                  "|---|---|---:|---:|---:|"]  # fmt: skip
        lines += [f"| `{e['pair']}` | {e['what']} | {e['before']} | {e['after']} | {e['change']:.2f}x |"
                  for e in sorted(v.slower, key=lambda e: -e["change"])]  # fmt: skip
        lines.append("")
    if v.worse:
        lines += ["### Worse (within tolerance)", *[f"- {m}" for m in v.worse], ""]
    if v.better:
        lines += ["### Better", *[f"- {m}" for m in v.better], ""]
    if v.new:
        lines += ["### New pairs (no baseline)", *[f"- `{k}`" for k in v.new], ""]
    if not (v.broke or v.slower or v.worse or v.better):
        lines.append("No change beyond the noise band.")
    return "\n".join(lines).rstrip() + "\n"
