"""Plain-text tables of results, shared by the CLI and the benchmark summary.

Latency ratios are computed between rows of the same run (same machine, same
session): against the artefact's own fp32 export in the same runtime, and
against the fastest fp32 export the suite has for the model's family (every
runtime, every framework port), so a speedup is never claimed against a weak
baseline such as torch eager at batch 1.
"""

from __future__ import annotations

from compress import metrics

FIRST = (("model", "model", "{}"), ("technique", "technique", "{}"), ("runtime", "runtime", "{}"))
LAST = (("quality_from", "quality", "{}"),)  # where the pair's quality came from (stored or measured)
TEXT = {"model", "technique", "runtime"}  # left-aligned


def columns() -> tuple[tuple[str, str, str], ...]:
    """The text table's columns, ``(row key, heading, format)``: the pair's names, then every metric
    with a column (:mod:`compress.metrics.descriptor`: its ``order``, short heading and format), then
    where its quality came from."""
    shown = sorted((d for d in metrics.descriptors().values() if d.order is not None), key=lambda d: d.order)
    # the ratio to the best fp32 is never timed interleaved: its heading carries the mark
    return (*FIRST, *((d.name, d.column_short + (SEPARATE if d.name == "latency_ratio_best" else ""), d.format)
                      for d in shown), *LAST)  # fmt: skip


# a ratio not timed interleaved with its reference: its cell is marked, and the table says so
SEPARATE = "*"


def with_latency_ratios(rows: list[dict]) -> list[dict]:
    """Add ``latency_ratio`` (vs the same model's fp32 row in the same runtime; a
    row that already has one, timed interleaved with its reference, keeps it) and
    ``latency_ratio_best`` (vs the fastest fp32 row of the model's family), plus
    ``best_fp32`` naming that baseline.

    A row is an fp32 reference when ``reference`` is true (or, for rows without
    the field, when its technique is ``fp32``).
    """

    def is_ref(r):
        return r.get("reference", r.get("technique") == "fp32")

    own, best = {}, {}
    for r in rows:
        lat = r.get("latency_ms")
        if not (lat and is_ref(r)):
            continue
        own[r["model"], r.get("runtime")] = lat
        fam = r.get("family", r["model"])
        if fam not in best or lat < best[fam][0]:
            best[fam] = (lat, f"{r['model']}.{r['technique']}")
    out = []
    for r in rows:
        r, lat = dict(r), r.get("latency_ms")
        base = own.get((r["model"], r.get("runtime")))
        if lat and base and "latency_ratio" not in r:  # keep a ratio measured interleaved
            r["latency_ratio"] = lat / base
            r["latency_ratio_separate"] = not is_ref(r)  # medians of separate tests (a reference's own is 1)
        fam = best.get(r.get("family", r["model"]))
        if lat and fam:
            r["latency_ratio_best"], r["best_fp32"] = lat / fam[0], fam[1]
        out.append(r)
    return out


def slower_than_fp32(rows: list[dict]) -> list[dict]:
    """Compressed rows whose latency exceeds their own runtime's fp32 latency."""
    return [
        r for r in with_latency_ratios(rows)
        if not r.get("reference", r.get("technique") == "fp32") and r.get("latency_ratio", 0) > 1.0
    ]  # fmt: skip


# A size or gzip ratio this close to 1 is no compression (a state_dict also stores names and metadata).
NOTHING = 0.98


def compressed_nothing(rows: list[dict]) -> list[dict]:
    """Compressed rows whose artefact is no smaller than their fp32 one, stored or gzipped
    (torch dynamic int8 quantizes only ``nn.Linear``: on a conv net that is one small layer).
    Adaptation rows (``trainable_fraction``: LoRA, full fine-tuning) compress nothing by design."""
    return [
        r for r in rows
        if not r.get("reference", r.get("technique") == "fp32") and "trainable_fraction" not in r
        and r.get("size_ratio", 0) >= NOTHING and r.get("gzip_ratio", 1.0) >= NOTHING
    ]  # fmt: skip


def format_table(rows: list[dict]) -> str:
    """Render rows (dicts of metrics) as an aligned text table; missing cells show '-'."""
    rows = with_latency_ratios(rows)
    cols = [c for c in columns() if any(r.get(c[0]) is not None for r in rows)]
    cells = [[h for _, h, _ in cols]]
    for r in rows:
        cells.append([(fmt.format(r[k]) + (SEPARATE if k == "latency_ratio" and r.get("latency_ratio_separate") else ""))
                      if r.get(k) is not None else "-" for k, _, fmt in cols])  # fmt: skip
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = []
    for j, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if cols[i][0] in TEXT else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))  # fmt: skip
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    if any(k == "latency_ratio_best" for k, _, _ in cols) or any(r.get("latency_ratio_separate") for r in rows):
        lines.append(f"{SEPARATE} medians of separate tests, not timed interleaved (vs own fp32 is interleaved "
                     f"unless marked; vs best fp32 never is)")  # fmt: skip
    return "\n".join(lines)


def format_slower(rows: list[dict]) -> str:
    """A plain statement of which compressed artefacts are slower than their fp32 export,
    which compressed nothing, and which super-resolution artefacts (fp32 included) score
    below upscaling by the bicubic filter."""
    slow = slower_than_fp32(rows)
    if not slow:
        lines = ["No compressed artefact was slower than its own fp32 export in this run."]
    else:
        lines = ["Slower than their own fp32 export on this machine (batch 1, same run):"]
        for r in sorted(slow, key=lambda r: -r["latency_ratio"]):
            lines.append(f"  {r['model']}.{r['technique']} ({r.get('runtime', '?')}): {r['latency_ratio']:.2f}x")
    same = compressed_nothing(rows)
    if same:
        lines.append("Compressed nothing (size and gzip ratio >= %.2f of their fp32 artefact):" % NOTHING)
        for r in same:
            lines.append(f"  {r['model']}.{r['technique']} ({r.get('runtime', '?')}): size {r['size_ratio']:.3f}")
    below = [r for r in rows if isinstance(r.get("psnr_over_bicubic"), (int, float)) and r["psnr_over_bicubic"] < 0]
    if below:
        lines.append("Below the bicubic floor (PSNR of the same tiles upscaled by the bicubic filter):")
        for r in sorted(below, key=lambda r: r["psnr_over_bicubic"]):
            lines.append(f"  {r['model']}.{r['technique']} ({r.get('runtime', '?')}): {r['psnr_over_bicubic']:+.2f} dB")
    return "\n".join(lines)


def format_planted(rows: dict[str, dict]) -> str:
    """The gate's self-test, one line per model: its fp32 score, the planted regression's retention
    (upper 95% bound) against the loosest floor, and the unresolvable change's against the strictest."""
    lines = []
    for model, r in rows.items():
        w, s = r["wrong"], r["small"]
        lines.append(
            f"{model}: fp32 {r['metric']} {r['baseline']:.4g}; largest half zeroed: retention {w['retention']:.4f}"
            f" (upper {w['retention_upper']:.4f}) vs loosest floor {r['loosest']}: "
            f"{'FAILS, as it must' if r['caught'] else 'PASSED: the gate missed it'}; smallest 1% zeroed: "
            f"{s['retention']:.4f} (upper {s['retention_upper']:.4f}) vs strictest floor {r['strictest']}: "
            f"{'passes, as it must' if r['passed'] else 'FAILED: a change the test set cannot resolve'}"
        )
    return "\n".join(lines)
