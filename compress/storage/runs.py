"""Saved runs of the gate: read, merge and follow them across commits.

``make bench`` saves every run as pytest-benchmark JSON under the storage folder
(``$COMPRESS_BENCH_RESULTS``, default ``~/.cache/compress-bench/benchmarks``), one
subfolder per machine (``Linux-CPython-3.11-64bit/0011_<commit>_<date>_<time>.json``).
Each benchmark's ``extra_info`` holds the pair's metrics; ``stats`` its timings (s).

This module reads those files with the standard library only (no framework, no
numpy): ``python -m compress report`` (compress/cli.py) renders them, and
compress/reporting/plots.py draws them.

Example:
    >>> from compress import runs
    >>> run = runs.load_run(runs.latest_run())              # doctest: +SKIP
    >>> rows = runs.merge_runs([runs.load_run(p) for p in ("shard1.json", "shard2.json")])  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

__all__ = [
    "ENV_RESULTS", "Run", "RunFileError", "storage_root", "load_run", "merge_runs",
    "find_runs", "latest_run", "history", "pair_name", "markdown_columns", "format_markdown", "write_csv",
]  # fmt: skip

ENV_RESULTS = "COMPRESS_BENCH_RESULTS"


class RunFileError(ValueError):
    """A saved run that cannot be used (missing, not pytest-benchmark JSON, a pair given twice),
    or no saved run at all. The message names the file(s) and what is wrong."""


@dataclass
class Run:
    """One saved run: its provenance and one row per benchmarked pair."""

    path: Path
    commit: str  # the full commit id ("unknown" when pytest-benchmark had no git information)
    dirty: bool  # uncommitted changes when the run was made
    datetime: str  # ISO 8601, when pytest-benchmark saved the run
    machine: dict  # cpu (brand), cores, node
    tier: str | None = None  # cost_profile.tier (gate, full, ...)
    rows: list[dict] = field(default_factory=list)
    shard: str | None = None  # cost_profile.shard ("1/3") when the run was one shard of a tier

    @property
    def short(self) -> str:
        return self.commit[:8]

    def describe(self) -> str:
        """One line of provenance: file, commit, date, tier, machine."""
        m = self.machine
        where = ", ".join(str(v) for v in (m.get("cpu"), m.get("cores") and f"{m['cores']} cores",
                                            m.get("node") and f"node {m['node']}") if v)  # fmt: skip
        tier = f"tier {self.tier}" + (f" shard {self.shard}" if self.shard else "") if self.tier else "tier ?"
        dirty = " (uncommitted changes)" if self.dirty else ""
        return (f"{self.path}: commit {self.commit}{dirty}, {self.datetime or 'no date'}, {tier}, "
                f"{len(self.rows)} pairs, {where or 'machine unknown'}")


def storage_root(storage: str | os.PathLike | None = None) -> Path:
    """Where pytest-benchmark saves runs: ``storage``, else ``$COMPRESS_BENCH_RESULTS``,
    else ``~/.cache/compress-bench/benchmarks`` (the default tox.ini passes to --benchmark-storage)."""
    if storage:
        return Path(storage).expanduser()
    env = os.environ.get(ENV_RESULTS)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "compress-bench" / "benchmarks"


def pair_name(row: dict) -> str:
    return f"{row.get('model')}.{row.get('technique')}"


def _read_json(path: Path) -> dict:
    if not path.exists():
        raise RunFileError(f"{path}: no such file")
    if not path.is_file():
        raise RunFileError(f"{path}: not a file (give a saved run's .json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunFileError(f"{path}: not a pytest-benchmark run: not JSON ({exc})") from None
    except OSError as exc:
        raise RunFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        what = "a JSON object" if isinstance(data, dict) else f"JSON {type(data).__name__}"
        raise RunFileError(f"{path}: not a pytest-benchmark run: {what} without a 'benchmarks' list")
    return data


def _machine(info) -> dict:
    info = info if isinstance(info, dict) else {}
    cpu = info.get("cpu") if isinstance(info.get("cpu"), dict) else {}
    return {"cpu": cpu.get("brand_raw") or info.get("processor") or info.get("machine"),
            "cores": cpu.get("count"), "node": info.get("node")}  # fmt: skip


def load_run(path: str | os.PathLike) -> Run:
    """Read one saved run. Each row is the benchmark's ``extra_info`` plus ``latency_ms``
    (the median, ms), ``commit`` (full id) and ``run`` (the file name).

    Raises RunFileError naming the file when it is not a pytest-benchmark JSON of this suite.
    """
    path = Path(path)
    data = _read_json(path)
    commit_info = data.get("commit_info") if isinstance(data.get("commit_info"), dict) else {}
    commit = str(commit_info.get("id") or "unknown")
    profile = data.get("cost_profile") if isinstance(data.get("cost_profile"), dict) else {}
    rows = []
    for i, bench in enumerate(data["benchmarks"]):
        name = bench.get("name", f"#{i}") if isinstance(bench, dict) else f"#{i}"
        info = bench.get("extra_info") if isinstance(bench, dict) else None
        if not isinstance(info, dict) or not info.get("model") or not info.get("technique"):
            raise RunFileError(f"{path}: benchmark {name} has no extra_info model and technique: "
                               "not a run of compress-bench's gate")  # fmt: skip
        stats = bench.get("stats")
        median = stats.get("median") if isinstance(stats, dict) else None
        if not isinstance(median, (int, float)) or isinstance(median, bool):
            raise RunFileError(f"{path}: benchmark {name} has no stats.median: not a pytest-benchmark run")
        rows.append({**info, "latency_ms": median * 1e3, "commit": commit, "run": path.name})
    return Run(path=path, commit=commit, dirty=bool(commit_info.get("dirty", False)),
               datetime=str(data.get("datetime") or ""), machine=_machine(data.get("machine_info")),
               tier=profile.get("tier"), rows=rows, shard=profile.get("shard"))  # fmt: skip


def merge_runs(runs: list[Run]) -> list[dict]:
    """The rows of several runs in one list (e.g. the shards of one tier, each saved by
    another CI job), in the order given. A pair found in two runs is an error naming both
    files; the same file given twice counts once."""
    seen: dict[str, Path] = {}
    files: set[Path] = set()
    rows = []
    for run in runs:
        real = Path(run.path).resolve()
        if real in files:
            continue
        files.add(real)
        for row in run.rows:
            key = pair_name(row)
            if key in seen:
                where = f"twice in {run.path}" if seen[key] == run.path else f"in {seen[key]} and in {run.path}"
                raise RunFileError(f"pair {key} is {where}: give the shards of one run, "
                                   "each pair once (report one run at a time to compare runs)")  # fmt: skip
            seen[key] = run.path
            rows.append(row)
    return rows


def _when(path: Path, stamp) -> datetime:
    try:
        when = datetime.fromisoformat(str(stamp))
    except ValueError:  # no datetime field: the file's modification time
        when = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _run_order(run: Run) -> tuple:
    return (_when(run.path, run.datetime), run.path.name)


def find_runs(storage: str | os.PathLike | None = None) -> list[Path]:
    """Every saved run under the storage folder (each machine's subfolder, or the folder
    itself), oldest first by the run's ``datetime`` field."""
    root = storage_root(storage)
    hint = f"run `make bench` first (or give --storage / ${ENV_RESULTS})"
    if not root.is_dir():
        raise RunFileError(f"no saved runs: {root} does not exist; {hint}")
    paths = sorted({*root.glob("*.json"), *root.glob("*/*.json")})
    if not paths:
        raise RunFileError(f"no saved runs: {root} holds no <machine>/*.json; {hint}")
    keyed = []
    for p in paths:
        stamp = _read_json(p).get("datetime")
        keyed.append(((_when(p, stamp), p.name), p))
    return [p for _, p in sorted(keyed)]


def latest_run(storage: str | os.PathLike | None = None) -> Path:
    """The most recent saved run (by its ``datetime``) under the storage folder."""
    return find_runs(storage)[-1]


def history(pair: str, runs: list[Run]) -> list[dict]:
    """One point per run that has ``pair`` (``model.technique``), oldest first: commit (short),
    dirty, datetime, latency_ms (median), latency_ratio (timed interleaved with the same
    runtime's fp32, when recorded), the machine's cpu and node, and the run's file name."""
    points = []
    for run in sorted(runs, key=_run_order):
        for row in run.rows:
            if pair_name(row) == pair:
                points.append({"commit": run.short, "dirty": run.dirty, "datetime": run.datetime,
                               "latency_ms": row.get("latency_ms"), "latency_ratio": row.get("latency_ratio"),
                               "cpu": run.machine.get("cpu"), "node": run.machine.get("node"),
                               "run": run.path.name})  # fmt: skip
                break
    return points


# --- rendering (python -m compress report) -------------------------------------------------------

def markdown_columns(rows: list[dict]) -> list[tuple[str, str]]:
    """The Markdown report's columns, ``(row key, heading)``: the pair's names, then each metric that has
    one (:mod:`compress.metrics.descriptor`: ``markdown``, ``markdown_order``, ``heading``), a metric not
    ``markdown_always`` shown only where a row of ``rows`` has it (a task's metric, an adapter's bytes)."""
    from compress import metrics

    shown = [d for d in metrics.descriptors().values() if d.order is not None and d.markdown
             and (d.markdown_always or any(r.get(d.name) is not None for r in rows))]  # fmt: skip
    shown.sort(key=lambda d: d.order if d.markdown_order is None else d.markdown_order)
    return [("model", "model"), ("technique", "technique"), ("runtime", "runtime"),
            *((d.name, d.column) for d in shown)]


def format_markdown(rows: list[dict], runs: list[Run]) -> str:
    """The report: a Markdown table of ``rows`` (already through
    ``compress.reporting.report.with_latency_ratios``), the "slower than fp32" statement, and the
    runs it came from."""
    from compress.reporting.report import TEXT, format_slower
    from compress.reporting.report import columns as table_columns

    fmts = {key: fmt for key, _, fmt in table_columns()}
    columns = markdown_columns(rows)
    commits = sorted({r.short + ("+" if r.dirty else "") for r in runs})
    tiers = sorted({f"{r.tier}" + (f" shard {r.shard}" if r.shard else "") for r in runs if r.tier})
    lines = ["# compress-bench report", "",
             f"{len(rows)} pairs from {len(runs)} saved run{'s' if len(runs) != 1 else ''} "
             f"(commit {', '.join(commits)}{'; tier ' + ', '.join(tiers) if tiers else ''}). "
             "Latency: batch-1 median of the shipped artefact; *vs own fp32*: over the same runtime's "
             "fp32 export, timed interleaved in the same test; *vs best fp32*: over the fastest fp32 "
             "export of the model's family in the run.", "",
             "| " + " | ".join(h for _, h in columns) + " |",
             "|" + "|".join(":---" if k in TEXT else "---:" for k, _ in columns) + "|"]  # fmt: skip
    for r in rows:
        cells = []
        for key, _ in columns:
            v = r.get(key)
            if key == "technique" and r.get("reference"):
                cells.append(f"{v} (ref.)")
            elif key == "runtime" and r.get("device") not in (None, "cpu"):
                cells.append(f"{v} ({r['device']})")
            elif v is None or isinstance(v, (dict, list)):
                cells.append("–")
            else:
                cells.append(fmts.get(key, "{}").format(v))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Slower or no smaller than fp32", ""]
    for line in format_slower(rows).splitlines():
        lines.append(f"- {line.strip()}" if line.startswith(" ") else f"\n{line}\n")
    lines += ["", "## Source", ""]
    lines += [f"- {r.describe()}" for r in runs]
    if len({(r.machine.get("cpu"), r.machine.get("node")) for r in runs}) > 1:
        lines += ["", "The runs come from different machines: compare latencies only within one run."]
    out = "\n".join(lines)
    while "\n\n\n" in out:
        out = out.replace("\n\n\n", "\n\n")
    return out + "\n"


CSV_FIRST = ("model", "technique", "family", "runtime", "device", "reference")
CSV_LAST = ("commit", "run")


def _numeric(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def write_csv(rows: list[dict], path: str | os.PathLike) -> Path:
    """One line per pair: its names, then every numeric metric found in any row (first-seen
    order; empty where a row lacks it), then the commit and run file it came from."""
    path = Path(path)
    numeric = [k for k in dict.fromkeys(k for r in rows for k in r)
               if k not in CSV_FIRST + CSV_LAST and any(_numeric(r.get(k)) for r in rows)]  # fmt: skip
    cols = [*CSV_FIRST, *numeric, *CSV_LAST]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow(["" if r.get(c) is None or (c in numeric and not _numeric(r.get(c))) else r[c]
                        for c in cols])  # fmt: skip
    return path
