"""PNG plots of saved runs, for ``python -m compress report``.

- :func:`tradeoff`: retention (the task metric's: top-1, perplexity, mAP50-95...) against a cost
  (size ratio, latency ratio), one subplot per model family, each point labelled with its technique, the fp32
  references drawn as stars and the Pareto front (:func:`pareto_front`) as a step line.
- :func:`latency_history`: one pair's batch-1 latency across saved runs, in time order.

matplotlib draws with its Agg backend (files only, no display). Each function writes
one PNG and returns a :class:`Plot` (path-like: ``open(plot)`` works) saying what it
drew and what it left out. Axis labels and log scales are the metrics' descriptors'
(:mod:`compress.metrics.descriptor`).
"""

from __future__ import annotations

import logging
import math
import textwrap
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; selected before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from compress import metrics  # noqa: E402

__all__ = ["Plot", "pareto_front", "tradeoff", "latency_history"]

log = logging.getLogger("compress.reporting.plots")

DPI = 110


@dataclass
class Plot:
    """A written PNG: its path, how many pairs it shows, the pairs left out (lacking the
    plotted metric) and, for a trade-off plot, the pairs on each family's Pareto front and
    the y axis' label."""

    path: Path
    plotted: int
    left_out: list[str] = field(default_factory=list)
    front: dict[str, list[str]] = field(default_factory=dict)
    y_label: str = ""

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


def pareto_front(points) -> list[int]:
    """Indices of the non-dominated points of ``points`` (``(x, y)`` pairs: lower x and
    higher y are better), ordered by x. A point is dominated when another is at least as
    good on both and better on one; equal points are all kept. Non-finite points are
    never on the front."""
    pts = [(float(x), float(y)) for x, y in points]
    ok = [i for i, (x, y) in enumerate(pts) if math.isfinite(x) and math.isfinite(y)]
    def dominated(i: int) -> bool:
        return any(pts[j][0] <= pts[i][0] and pts[j][1] >= pts[i][1] and pts[j] != pts[i] for j in ok)

    front = [i for i in ok if not dominated(i)]
    return sorted(front, key=lambda i: (pts[i][0], -pts[i][1], i))


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _name(row: dict) -> str:
    return f"{row.get('model')}.{row.get('technique')}"


def _limits(values, log_scale: bool, pad: float, min_span: float) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if log_scale:
        lo, hi = math.log10(lo), math.log10(hi)
    span = max(hi - lo, min_span)
    mid = (lo + hi) / 2
    lo, hi = min(lo, mid - span / 2) - pad * span, max(hi, mid + span / 2) + pad * span
    return (10**lo, 10**hi) if log_scale else (lo, hi)


# --- label placement ---------------------------------------------------------------------------------


def _overlap(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _label_points(ax, items, fontsize: float = 7.5) -> None:
    """Label ``items`` ((x, y, text, is_reference) in data coordinates) without overlaps.

    Points closer than a few pixels share one label (their techniques, comma-separated).
    Each label takes the first position, by growing distance from its point, that
    overlaps no label, no marker and stays inside the axes; a label placed away from
    its point gets a thin leader line. Call after the figure's layout is final.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    px_per_pt = fig.dpi / 72
    disp = ax.transData.transform([(x, y) for x, y, _, _ in items]) if items else []
    clusters: list[list[int]] = []
    for i, (px, py) in enumerate(disp):
        for c in clusters:
            if any(math.hypot(px - disp[j][0], py - disp[j][1]) <= 9 for j in c):
                c.append(i)
                break
        else:
            clusters.append([i])
    markers = [(px - (9 if items[i][3] else 5), py - (9 if items[i][3] else 5),
                px + (9 if items[i][3] else 5), py + (9 if items[i][3] else 5))
               for i, (px, py) in enumerate(disp)]  # fmt: skip
    a = ax.get_window_extent(renderer)
    axes_box = (a.x0, a.y0, a.x1, a.y1)
    placed: list[tuple] = []
    labels = []
    for c in clusters:
        words = list(dict.fromkeys(items[i][2] for i in c))
        text = "\n".join(textwrap.wrap(", ".join(words), 30, break_on_hyphens=False))
        probe = ax.text(0, 0, text, fontsize=fontsize, transform=None)
        bb = probe.get_window_extent(renderer)
        probe.remove()
        cx, cy = (sum(disp[i][0] for i in c) / len(c), sum(disp[i][1] for i in c) / len(c))
        labels.append((c, text, cx, cy, bb.width + 4, bb.height + 3))
    labels.sort(key=lambda lab: (-lab[4] * lab[5], -lab[3]))  # the biggest labels first
    angles_near = (0, 180, 90, 270, 30, 150, 330, 210)
    angles_far = tuple(range(0, 360, 20))
    for c, text, cx, cy, w, h in labels:
        best = None
        for radius in (4, 9, 15, 22, 30, 40, 52, 66, 82):
            for angle in angles_near if radius < 15 else angles_far:
                dx = radius * px_per_pt * math.cos(math.radians(angle))
                dy = radius * px_per_pt * math.sin(math.radians(angle))
                ha = "left" if dx > 0.3 * abs(dy) else "right" if dx < -0.3 * abs(dy) else "center"
                va = "bottom" if dy > 0.3 * abs(dx) else "top" if dy < -0.3 * abs(dx) else "center"
                x0 = cx + dx - {"left": 0, "right": w, "center": w / 2}[ha]
                y0 = cy + dy - {"bottom": 0, "top": h, "center": h / 2}[va]
                box = (x0, y0, x0 + w, y0 + h)
                outside = w * h - _overlap(box, axes_box)
                cost = outside * 4 + sum(_overlap(box, b) for b in placed) * 2 + sum(_overlap(box, m) for m in markers)
                if cost < 1.0:  # under a pixel: rounding, not an overlap
                    cost = 0.0
                if best is None or cost < best[0]:
                    best = (cost, radius, dx, dy, ha, va, box)
                if cost == 0.0:
                    break
            if best[0] == 0.0:
                break
        _, radius, dx, dy, ha, va, box = best
        placed.append(box)
        x, y = ax.transData.inverted().transform((cx, cy))
        arrow = dict(arrowstyle="-", color="0.45", lw=0.6, shrinkA=0, shrinkB=2) if radius >= 15 else None
        ax.annotate(text, (x, y), xytext=(dx / px_per_pt, dy / px_per_pt), textcoords="offset points",
                    ha=ha, va=va, fontsize=fontsize, zorder=6, arrowprops=arrow,
                    bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.75))  # fmt: skip


# --- retention against a cost ------------------------------------------------------------------------


def tradeoff(rows: list[dict], x: str, path, title: str) -> Plot:
    """Write a PNG of retention (y) against ``x`` (``size_ratio``, ``latency_ratio``...),
    one subplot per model family, and return it as a :class:`Plot`.

    The y axis names the plotted rows' task metric (``perplexity retention (fp32 perplexity /
    perplexity)``), or says ``retention (task metric / fp32)`` where they are of several tasks.

    Points are coloured by runtime and labelled with their technique; fp32 references are
    stars. The step line is each family's Pareto front (lower x, higher retention). Rows
    without a finite ``x`` or retention are left out (listed in ``Plot.left_out``, logged).
    """
    path = Path(path)
    x_metric = metrics.descriptors().get(x)
    log_x = x_metric is not None and x_metric.log_scale
    keep, left_out = [], []
    for r in rows:
        ok = _finite(r.get(x)) and _finite(r.get("retention")) and (not log_x or r[x] > 0)
        (keep if ok else left_out).append(r)
    left_out = [_name(r) for r in left_out]
    if left_out:
        log.info("%s: %d pair(s) left out, no %s or retention: %s", path.name, len(left_out), x, ", ".join(left_out))

    y_label = metrics.retention_label(keep, axis=True)
    families = list(dict.fromkeys(r.get("family") or r.get("model") for r in keep))
    runtimes = sorted({str(r.get("runtime") or "?") for r in keep})
    cmap = plt.get_cmap("tab10")
    colour = {rt: cmap(i % 10) for i, rt in enumerate(runtimes)}
    ncols = 1 if len(families) <= 1 else 2
    nrows = max(1, math.ceil(len(families) / ncols))
    head = 0.85  # inches above the subplots: title and legend
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.4 * ncols, 5.6 * nrows + head), dpi=DPI, squeeze=False)
    fig.suptitle(title, fontsize=13, y=1 - 0.12 / (5.6 * nrows + head))
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(families):]:
        fig.delaxes(ax)
    if not families:
        flat[0].text(0.5, 0.5, f"no pair has {x}", ha="center", va="center", transform=flat[0].transAxes)
        flat[0].set_axis_off()

    front_names: dict[str, list[str]] = {}
    pending = []
    for ax, fam in zip(flat, families, strict=False):
        frows = [r for r in keep if (r.get("family") or r.get("model")) == fam]
        pts = [(float(r[x]), float(r["retention"])) for r in frows]
        refs = [bool(r.get("reference", r.get("technique") == "fp32")) for r in frows]
        for rt in runtimes:
            for is_ref in (False, True):
                sel = [i for i, r in enumerate(frows) if str(r.get("runtime") or "?") == rt and refs[i] == is_ref]
                if not sel:
                    continue
                ax.scatter([pts[i][0] for i in sel], [pts[i][1] for i in sel], color=colour[rt],
                           zorder=4 if is_ref else 3, marker="*" if is_ref else "o", s=190 if is_ref else 38,
                           edgecolors="black" if is_ref else "white", linewidths=0.8 if is_ref else 0.5)  # fmt: skip
        front = pareto_front(pts)
        front_names[fam] = [_name(frows[i]) for i in front]
        fx, fy = [pts[i][0] for i in front], [pts[i][1] for i in front]
        ax.plot(fx, fy, drawstyle="steps-post", color="black", lw=1.4, alpha=0.75, zorder=2)
        ax.scatter(fx, fy, s=120, facecolors="none", edgecolors="black", linewidths=1.0, zorder=5)
        ax.axhline(1.0, color="0.6", lw=0.8, ls=":", zorder=1)
        if log_x:
            ax.axvline(1.0, color="0.6", lw=0.8, ls=":", zorder=1)
            ax.set_xscale("log")
            decades = math.log10(max(p[0] for p in pts)) - math.log10(min(p[0] for p in pts))
            subs = (1.0, 2.0, 3.0, 5.0) if decades > 0.7 else (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
            ax.xaxis.set_major_locator(ticker.LogLocator(subs=subs))
            ax.xaxis.set_minor_locator(ticker.NullLocator())
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}×"))
        ax.set_xlim(*_limits([p[0] for p in pts], log_x, 0.12, 0.3 if log_x else 0.1))
        ax.set_ylim(*_limits([p[1] for p in pts], False, 0.14, 0.01))
        models = list(dict.fromkeys(str(r.get("model")) for r in frows))
        ax.set_title(fam if models == [fam] else f"{fam} ({', '.join(models)})", fontsize=10.5)
        ax.set_xlabel(x_metric.axis_label if x_metric else x, fontsize=9)
        ax.set_ylabel(y_label, fontsize=9)
        ax.grid(True, alpha=0.25)
        ax.tick_params(labelsize=8.5)
        pending.append((ax, [(*pts[i], str(r.get("technique")), refs[i]) for i, r in enumerate(frows)]))

    handles = [Line2D([], [], ls="", marker="o", color=colour[rt], markersize=7, label=rt) for rt in runtimes]
    handles += [Line2D([], [], ls="", marker="*", markerfacecolor="0.85", markeredgecolor="black", markersize=13,
                       label="fp32 reference (ratio 1 by definition)"),
                Line2D([], [], color="black", lw=1.4, marker="o", markerfacecolor="none", markersize=9,
                       label="Pareto front (lower x, higher retention)")]  # fmt: skip
    if families:
        fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 4), fontsize=9, frameon=False,
                   bbox_to_anchor=(0.5, 1 - 0.36 / (5.6 * nrows + head)))  # fmt: skip
    fig.tight_layout(rect=(0, 0, 1, 1 - head / (5.6 * nrows + head)), pad=0.6, h_pad=1.2, w_pad=1.5)
    for ax, items in pending:  # labels last: placement needs the final layout
        _label_points(ax, items)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return Plot(path=path, plotted=len(keep), left_out=left_out, front=front_names, y_label=y_label)


# --- one pair across runs -----------------------------------------------------------------------------


def _when(stamp: str) -> str:
    try:
        t = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return ""
    return (t.astimezone(timezone.utc) if t.tzinfo else t).strftime("%m-%d %H:%M")


def latency_history(points: list[dict], pair: str, path) -> Plot:
    """Write a PNG of ``pair``'s batch-1 median latency (ms) per saved run, in the order of
    ``points`` (``compress.storage.runs.history``: oldest first), ticks labelled with the short
    commit (``+``: uncommitted changes) and date; the interleaved latency ratio against the
    same runtime's fp32 goes on a second axis when the runs recorded it."""
    path = Path(path)
    keep = [p for p in points if _finite(p.get("latency_ms"))]
    left_out = [p.get("run", "?") for p in points if not _finite(p.get("latency_ms"))]
    n = len(keep)
    fig, ax = plt.subplots(figsize=(max(7.5, min(18.0, 0.8 * n + 3.5)), 5.0), dpi=DPI)
    xs = list(range(n))
    lat = [p["latency_ms"] for p in keep]
    handles = [ax.plot(xs, lat, marker="o", color="tab:blue", lw=1.6, label="p50 latency (ms, left axis)")[0]]
    machines = list(dict.fromkeys((p.get("cpu"), p.get("node")) for p in keep))
    if len(machines) > 1:  # one marker per machine: latencies of two machines are not comparable
        for k, m in enumerate(machines):
            sel = [i for i, p in enumerate(keep) if (p.get("cpu"), p.get("node")) == m]
            handles.append(ax.scatter([xs[i] for i in sel], [lat[i] for i in sel], marker="osD^v<>"[k % 7],
                                      s=60, color="tab:blue", edgecolors="black", zorder=4,
                                      label=f"{m[0]} ({m[1]})"))  # fmt: skip
    ax.set_ylim(0, max(lat, default=1.0) * 1.18)
    ax.set_ylabel("batch-1 latency, median (ms)")
    ticks = [f"{p.get('commit', '?')}{'+' if p.get('dirty') else ''}\n{_when(p.get('datetime', ''))}" for p in keep]
    ax.set_xticks(xs, ticks, fontsize=8, rotation=0 if n <= 14 else 60, ha="center" if n <= 14 else "right")
    dirty = any(p.get("dirty") for p in keep)
    ax.set_xlabel("saved run: commit and date (UTC), oldest first" + ("; + = uncommitted changes" if dirty else ""))
    ax.set_xlim(-0.5, max(n - 0.5, 0.5))
    ax.grid(True, axis="y", alpha=0.3)
    ratios = [(i, p["latency_ratio"]) for i, p in enumerate(keep) if _finite(p.get("latency_ratio"))]
    if ratios:
        ax2 = ax.twinx()
        handles.append(ax2.plot([i for i, _ in ratios], [r for _, r in ratios], marker="s", ls="--",
                                color="tab:orange", lw=1.3,
                                label="latency / own runtime's fp32 (×, interleaved; right axis)")[0])  # fmt: skip
        ax2.axhline(1.0, color="tab:orange", lw=0.8, ls=":", alpha=0.8)
        ax2.set_ylim(0, max(1.1, *(r for _, r in ratios)) * 1.18)
        ax2.set_ylabel("latency ratio vs same runtime's fp32 (×)", color="tab:orange")
        ax2.tick_params(axis="y", colors="tab:orange")
    cpu = f" on {machines[0][0]}" if len(machines) == 1 and machines[0][0] else ""
    ax.set_title(f"{pair}: batch-1 latency per saved run{cpu} ({n} runs)", fontsize=11)
    ax.legend(handles=handles, loc="upper left", fontsize=8.5, framealpha=0.85)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return Plot(path=path, plotted=n, left_out=left_out)
