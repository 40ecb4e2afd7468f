"""Saved runs (compress/storage/runs.py), their plots (compress/reporting/plots.py) and ``python -m compress report``.

The runs here are small pytest-benchmark-shaped JSON files with made-up numbers: these
tests check the reading, merging, Pareto front and the files written, not any model.
"""

import csv
import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import pytest

from compress.reporting import plots
from compress.storage import runs
from compress.cli import main

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def bench(model, technique, median_s, *, family=None, runtime="litert", size_ratio=0.5, retention=0.99,
          latency_ratio=None, **extra):  # fmt: skip
    """One benchmark entry as the gate saves it (extra_info: the pair's metrics)."""
    reference = technique.endswith("fp32")
    info = {"model": model, "technique": technique, "family": family or model, "runtime": runtime,
            "reference": reference, "bytes": int(1000 * size_ratio), "size_ratio": 1.0 if reference else size_ratio,
            "gzip_ratio": 1.0 if reference else size_ratio * 0.9, "accuracy": 0.9 * (1.0 if reference else retention),
            "retention": 1.0 if reference else retention, "device": "cpu",
            "latency_interleaved_ms": {technique: median_s * 1e3}, "cost_s": {"total": 1.5}, **extra}  # fmt: skip
    if latency_ratio is not None:
        info["latency_ratio"] = latency_ratio
    return {"group": None, "name": f"test_pair[{model}.{technique}]", "fullname": f"x::test_pair[{model}.{technique}]",
            "params": {"model": model, "technique": technique}, "extra_info": info,
            "stats": {"min": median_s * 0.9, "max": median_s * 1.2, "median": median_s, "rounds": 100}}  # fmt: skip


def write_run(path, benches, *, commit="a" * 40, when="2026-11-30T09:00:00+00:00", dirty=False, tier="gate",
              cpu="Test CPU 9000", node="box"):  # fmt: skip
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"machine_info": {"node": node, "machine": "x86_64", "cpu": {"brand_raw": cpu, "count": 2}},
            "commit_info": {"id": commit, "dirty": dirty, "branch": "main"}, "benchmarks": benches,
            "datetime": when, "version": "5.3.1", "cost_profile": {"tier": tier, "pairs": {}}}  # fmt: skip
    path.write_text(json.dumps(data))
    return path


def gate_benches(scale=1.0):
    """Two families, three runtimes, references and compressed pairs."""
    return [
        bench("m", "fp32", 0.002 * scale),
        bench("m", "int8", 0.001 * scale, size_ratio=0.25, retention=0.995, latency_ratio=0.5),
        bench("m", "prune50", 0.002 * scale, size_ratio=1.0, retention=0.98, latency_ratio=1.02),
        bench("m", "channels50", 0.0008 * scale, size_ratio=0.4, retention=0.93, latency_ratio=0.4),
        bench("t", "fp32", 0.008 * scale, runtime="torch-eager"),
        bench("t", "int8", 0.04 * scale, runtime="torch-eager", size_ratio=0.26, retention=1.001, latency_ratio=5.0),
        bench("t", "onnx_fp32", 0.003 * scale, runtime="onnxruntime"),
        bench("t", "onnx_int8", 0.002 * scale, runtime="onnxruntime", size_ratio=0.25, retention=0.999,
              latency_ratio=0.66),
    ]  # fmt: skip


# --- reading and merging -------------------------------------------------------------------------------


def test_load_run_gives_one_row_per_benchmark_with_its_latency_and_provenance(tmp_path):
    path = write_run(tmp_path / "Linux" / "0001_run.json", gate_benches(), commit="c" * 40, dirty=True)
    run = runs.load_run(path)
    assert (run.path, run.commit, run.dirty, run.tier) == (path, "c" * 40, True, "gate")
    assert run.datetime == "2026-11-30T09:00:00+00:00"
    assert run.machine == {"cpu": "Test CPU 9000", "cores": 2, "node": "box"}
    assert [runs.pair_name(r) for r in run.rows][:2] == ["m.fp32", "m.int8"] and len(run.rows) == 8
    row = run.rows[1]
    assert row["latency_ms"] == pytest.approx(1.0) and row["commit"] == "c" * 40 and row["run"] == "0001_run.json"
    assert row["latency_ratio"] == 0.5 and row["size_ratio"] == 0.25 and row["cost_s"] == {"total": 1.5}  # every key


def test_merge_runs_joins_shards_and_rejects_a_pair_found_in_two_runs(tmp_path):
    benches = gate_benches()
    one = runs.load_run(write_run(tmp_path / "shard1.json", benches[:4]))
    two = runs.load_run(write_run(tmp_path / "shard2.json", benches[4:]))
    merged = runs.merge_runs([one, two])
    assert [runs.pair_name(r) for r in merged] == [runs.pair_name(b["extra_info"]) for b in benches]
    assert len(runs.merge_runs([one, two, runs.load_run(tmp_path / "shard1.json")])) == 8  # same file: once

    again = runs.load_run(write_run(tmp_path / "other.json", benches[3:5]))
    with pytest.raises(runs.RunFileError) as err:
        runs.merge_runs([one, two, again])
    msg = str(err.value)
    assert "m.channels50" in msg and str(tmp_path / "shard1.json") in msg and str(tmp_path / "other.json") in msg


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "without a 'benchmarks' list"),
        ('{"machine_info": {}}', "without a 'benchmarks' list"),
        ('{"benchmarks": {"a": 1}}', "without a 'benchmarks' list"),
        ('{"benchmarks": [{"name": "test_x", "stats": {"median": 1.0}}]}', "test_x has no extra_info model"),
        ('{"benchmarks": [{"name": "test_y", "extra_info": {"model": "m", "technique": "t"}}]}', "no stats.median"),
    ],
)  # fmt: skip
def test_a_file_that_is_not_a_saved_run_is_a_run_file_error_naming_it(tmp_path, content, why):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(runs.RunFileError) as err:
        runs.load_run(path)
    assert isinstance(err.value, ValueError) and str(path) in str(err.value) and why in str(err.value)


def test_a_missing_file_is_a_run_file_error(tmp_path):
    with pytest.raises(runs.RunFileError, match="no such file"):
        runs.load_run(tmp_path / "nope.json")


# --- finding runs and following a pair -----------------------------------------------------------------


def three_runs(storage):
    """Three saved runs in two machine folders; file names do not sort in time order."""
    write_run(storage / "Linux-A" / "0002_bbb.json", gate_benches(1.1), commit="b" * 40,
              when="2026-11-30T08:00:00+00:00")  # fmt: skip
    write_run(storage / "Linux-A" / "0001_ccc.json", gate_benches(1.2), commit="c" * 40,
              when="2026-11-30T10:00:00+00:00", dirty=True)  # fmt: skip
    write_run(storage / "Linux-B" / "0009_aaa.json", gate_benches(1.0), commit="a" * 40,
              when="2026-11-30T06:00:00+00:00", cpu="Other CPU")  # fmt: skip
    return storage


def test_find_runs_orders_every_machines_runs_by_their_datetime(tmp_path, monkeypatch):
    storage = three_runs(tmp_path / "store")
    assert [p.name for p in runs.find_runs(storage)] == ["0009_aaa.json", "0002_bbb.json", "0001_ccc.json"]
    assert runs.latest_run(storage).name == "0001_ccc.json"
    monkeypatch.setenv(runs.ENV_RESULTS, str(storage))
    assert runs.latest_run().name == "0001_ccc.json"


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_no_saved_run_says_run_make_bench_and_where_it_looked(tmp_path, state):
    storage = tmp_path / "store"
    if state == "empty":
        (storage / "Linux").mkdir(parents=True)
    with pytest.raises(runs.RunFileError) as err:
        runs.find_runs(storage)
    assert "make bench" in str(err.value) and str(storage) in str(err.value)


def test_history_has_one_point_per_run_with_the_pair_in_time_order(tmp_path):
    storage = three_runs(tmp_path / "store")
    write_run(storage / "Linux-A" / "0003_ddd.json", [bench("other", "fp32", 0.001)], commit="d" * 40,
              when="2026-11-30T11:00:00+00:00")  # fmt: skip
    loaded = [runs.load_run(p) for p in reversed(runs.find_runs(storage))]  # any order in, time order out
    points = runs.history("m.int8", loaded)
    assert [p["commit"] for p in points] == ["a" * 8, "b" * 8, "c" * 8]
    assert [p["latency_ms"] for p in points] == pytest.approx([1.0, 1.1, 1.2])
    assert [p["latency_ratio"] for p in points] == [0.5, 0.5, 0.5]
    assert [p["cpu"] for p in points] == ["Other CPU", "Test CPU 9000", "Test CPU 9000"]
    assert points[-1]["dirty"] and points[0]["datetime"] == "2026-11-30T06:00:00+00:00"
    assert [p["latency_ratio"] for p in runs.history("m.fp32", loaded)] == [None] * 3  # a reference: none recorded
    assert runs.history("m.nothing", loaded) == []


# --- Pareto front and plots ----------------------------------------------------------------------------


def test_pareto_front_keeps_the_points_no_other_beats_on_both_axes():
    points = [
        (0.25, 0.99),  # 0: front
        (0.30, 1.00),  # 1: front
        (0.50, 0.98),  # 2: dominated by 0 (smaller and better)
        (1.00, 1.00),  # 3: dominated by 1 (same retention, smaller)
        (0.20, 0.90),  # 4: front (the smallest)
        (0.25, 0.99),  # 5: equal to 0: both kept
        (0.40, 1.01),  # 6: front (the best retention)
        (0.40, 1.00),  # 7: dominated by 6 (same size, worse)
        (math.nan, 2.0),  # 8: never on the front
    ]
    assert plots.pareto_front(points) == [4, 0, 5, 1, 6]
    assert plots.pareto_front([]) == [] and plots.pareto_front([(1.0, 1.0)]) == [0]


def png_ok(path, min_bytes=10_000):
    data = Path(path).read_bytes()
    return data[:8] == PNG_MAGIC and len(data) >= min_bytes


def test_tradeoff_leaves_out_rows_without_the_metric_and_says_so(tmp_path, caplog):
    rows = runs.load_run(write_run(tmp_path / "r.json", gate_benches())).rows
    rows[2] = {k: v for k, v in rows[2].items() if k != "latency_ratio"}  # m.prune50: no ratio recorded
    caplog.set_level(logging.INFO, logger="compress.reporting.plots")
    plot = plots.tradeoff(rows, "latency_ratio", tmp_path / "lat.png", "test")
    assert plot.left_out == ["m.fp32", "m.prune50", "t.fp32", "t.onnx_fp32"]  # references: none until computed
    assert plot.plotted == 4 and png_ok(plot) and "m.prune50" in caplog.text
    size = plots.tradeoff(rows, "size_ratio", tmp_path / "size.png", "test")
    assert size.left_out == [] and size.plotted == 8
    assert size.front == {"m": ["m.int8", "m.fp32"], "t": ["t.onnx_int8", "t.int8"]}


def test_latency_history_draws_a_png(tmp_path):
    points = runs.history("m.int8", [runs.load_run(p) for p in runs.find_runs(three_runs(tmp_path / "s"))])
    plot = plots.latency_history(points, "m.int8", tmp_path / "h.png")
    assert plot.plotted == 3 and png_ok(plot)


# --- python -m compress report -------------------------------------------------------------------------


def report(capsys, *argv):
    code = main(["-q", "report", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_report_merges_shards_into_markdown_csv_and_plots(tmp_path, capsys):
    storage = three_runs(tmp_path / "store")
    benches = gate_benches()
    shard1 = write_run(tmp_path / "shard1.json", benches[:4])
    shard2 = write_run(tmp_path / "shard2.json", benches[4:])
    out = tmp_path / "out"
    code, stdout, err = report(capsys, shard1, shard2, "--out", out, "--pair", "m.int8", "--storage", storage)
    assert code == 0, err
    names = ["report.md", "results.csv", "retention_vs_size.png", "retention_vs_latency.png",
             "latency_history_m.int8.png"]  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for name in names:
        assert f"wrote {out / name}" in stdout
        if name.endswith(".png"):
            assert png_ok(out / name), name

    md = (out / "report.md").read_text()
    header = ("| model | technique | runtime | bytes | size ratio | gzip ratio | top-1 | retention | p50 ms "
              "| vs own fp32 | vs best fp32 |")
    assert header in md
    for b in benches:
        info = b["extra_info"]
        assert f"| {info['model']} | {info['technique']}" in md
    assert "| t | int8 | torch-eager | 260 | 0.260 | 0.234 | 0.9009 | 1.0010 | 40.000 | 5.00x | 13.33x |" in md
    assert "t.int8 (torch-eager): 5.00x" in md  # format_slower's words
    assert str(shard1) in md and str(shard2) in md and "a" * 40 in md and "Test CPU 9000" in md

    with open(out / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [f"{r['model']}.{r['technique']}" for r in table] == [runs.pair_name(b["extra_info"]) for b in benches]
    assert float(table[1]["latency_ms"]) == pytest.approx(1.0) and float(table[1]["latency_ratio"]) == 0.5
    assert float(table[0]["latency_ratio"]) == 1.0  # a reference's own ratio, computed
    assert "cost_s" not in table[0] and "latency_interleaved_ms" not in table[0]  # numbers only


def test_report_without_files_reports_the_latest_saved_run_into_report(tmp_path, capsys, monkeypatch):
    storage = three_runs(tmp_path / "store")
    monkeypatch.setenv(runs.ENV_RESULTS, str(storage))
    monkeypatch.chdir(tmp_path)
    code, stdout, err = report(capsys)
    assert code == 0, err
    assert "0001_ccc.json" in stdout.splitlines()[0]  # the newest by datetime, not by name
    assert "c" * 40 in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.parametrize("case", ["missing", "bad", "duplicate", "unknown pair", "no storage"])
def test_report_errors_are_one_line_and_exit_2(tmp_path, capsys, case):
    storage = three_runs(tmp_path / "store")
    good = write_run(tmp_path / "good.json", gate_benches())
    bad = tmp_path / "bad.json"
    bad.write_text('{"benchmarks": "no"}')
    argv = {
        "missing": [tmp_path / "nope.json"],
        "bad": [bad],
        "duplicate": [good, write_run(tmp_path / "again.json", gate_benches()[:1])],
        "unknown pair": [good, "--pair", "m.int9", "--storage", storage],
        "no storage": ["--storage", tmp_path / "empty"],
    }[case]
    code, stdout, err = report(capsys, *argv, "--out", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and stdout == ""
    assert {"missing": "nope.json: no such file", "bad": "bad.json: not a pytest-benchmark run",
            "duplicate": "pair m.fp32 is in", "unknown pair": "did you mean m.int8",
            "no storage": "make bench"}[case] in err  # fmt: skip
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are checked


def test_report_imports_no_deep_learning_framework(tmp_path):
    storage = three_runs(tmp_path / "store")
    code = ("import sys\nfrom compress.cli import main\n"
            f"rc = main(['-q', 'report', '--storage', {str(storage)!r}, '--out', {str(tmp_path / 'o')!r}])\n"
            "print(rc, sorted(set(sys.modules) & {'torch', 'tensorflow', 'triton', 'onnxruntime'}))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 []"
