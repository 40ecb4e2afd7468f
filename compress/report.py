"""Plain-text tables of results, shared by the CLI and the benchmark summary."""

from __future__ import annotations

COLUMNS = (
    ("model", "model", "{}"),
    ("technique", "technique", "{}"),
    ("bytes", "bytes", "{:,}"),
    ("size_ratio", "size", "{:.3f}"),
    ("gzip_ratio", "gzip", "{:.3f}"),
    ("accuracy", "top-1", "{:.4f}"),
    ("retention", "retention", "{:.4f}"),
    ("sparsity", "sparsity", "{:.3f}"),
    ("latency_ms", "p50 ms", "{:.3f}"),
    ("latency_ratio", "vs fp32", "{:.2f}x"),
)


def with_latency_ratios(rows: list[dict], reference: str = "fp32") -> list[dict]:
    """Add ``latency_ratio``: median latency over the same model's ``reference`` row, same run."""
    ref = {r["model"]: r.get("latency_ms") for r in rows if r.get("technique") == reference}
    out = []
    for r in rows:
        base = ref.get(r["model"])
        lat = r.get("latency_ms")
        out.append({**r, "latency_ratio": lat / base} if lat and base else dict(r))
    return out


def format_table(rows: list[dict]) -> str:
    """Render rows (dicts of metrics) as an aligned text table; missing cells show '-'."""
    rows = with_latency_ratios(rows)
    cols = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    cells = [[h for _, h, _ in cols]]
    for r in rows:
        cells.append([fmt.format(r[k]) if r.get(k) is not None else "-" for k, _, fmt in cols])
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = []
    for j, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
