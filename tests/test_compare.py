"""The PR gate's verdict (compress/judging/compare.py): bounds re-judged, latency against a baseline with the
run-wide drift divided out. Rows are hand-made here: the tests check the judgement, not any model."""

import pytest

from compress.judging import thresholds
from compress.judging.compare import DEFAULT_FACTOR, compare, markdown, same_machine

TABLE = thresholds.parse("""
[resnet18.fp32]
accuracy = { min = 0.88, last = 0.9 }
[resnet18.int8]
size_ratio = { max = 0.26, last = 0.255 }
retention = { min = 0.99, last = 1.0 }
[resnet18.onnx_fp32]
size_ratio = { max = 1.01, last = 0.998 }
retention = { min = 0.999, last = 1.0 }
""", "t.toml")


def row(technique, ms, **metrics):
    base = {"model": "resnet18", "technique": technique, "latency_ms": ms, "device": "cpu"}
    if technique == "fp32":
        base.update(accuracy=0.9, accuracy_upper=0.905)
    else:
        base.update(size_ratio=0.255 if technique == "int8" else 0.998, retention=1.0, retention_upper=1.004)
    return {**base, **metrics}


BASE = [row("fp32", 5.0), row("int8", 50.0), row("onnx_fp32", 1.0)]


def test_unchanged_run_passes():
    v = compare(BASE, BASE, TABLE)
    assert not v.failed and v.drift == 1.0 and not (v.broke or v.slower or v.worse or v.better)
    assert "passed" in markdown(v, baseline_label="a", current_label="b")


def test_machine_slower_everywhere_is_drift_not_a_regression():
    cur = [row("fp32", 7.0), row("int8", 70.0), row("onnx_fp32", 1.4)]  # 1.4x everywhere
    v = compare(BASE, cur, TABLE)
    assert v.drift == pytest.approx(1.4) and not v.failed and not v.slower


def test_a_reference_slower_than_the_others_fails():
    refs = {"reference": True}
    base = [row("fp32", 5.0), row("onnx_fp32", 1.0, **refs), {**row("fp32", 2.0), "model": "other"}]
    cur = [row("fp32", 5.0 * (DEFAULT_FACTOR + 0.2)), row("onnx_fp32", 1.0, **refs), {**row("fp32", 2.0), "model": "other"}]
    v = compare(base, cur, {**TABLE, "other.fp32": TABLE["resnet18.fp32"]})
    assert v.drift == 1.0 and v.failed and [e["pair"] for e in v.slower] == ["resnet18.fp32"]
    md = markdown(v, baseline_label="a", current_label="b")
    assert "FAILED" in md and "`resnet18.fp32` | p50 ms | 5.000 | 11.000 | 2.20x" in md


def test_a_compressed_pair_is_judged_by_its_interleaved_ratio_not_its_median():
    base = [row("fp32", 5.0), row("int8", 50.0, latency_ratio=10.0), row("onnx_fp32", 1.0)]
    noisy = [row("fp32", 5.0), row("int8", 150.0, latency_ratio=10.5), row("onnx_fp32", 1.0)]  # median 3x, ratio same
    assert not compare(base, noisy, TABLE).failed
    slower = [row("fp32", 5.0), row("int8", 50.0, latency_ratio=10.0 * (DEFAULT_FACTOR + 0.1)), row("onnx_fp32", 1.0)]
    v = compare(base, slower, TABLE)
    assert v.failed and v.slower[0]["pair"] == "resnet18.int8" and "interleaved" in v.slower[0]["what"]


def test_every_pair_slower_beyond_the_drift_factor_fails():
    cur = [row("fp32", 16.0), row("int8", 160.0), row("onnx_fp32", 3.2)]
    v = compare(BASE, cur, TABLE)
    assert v.failed and not v.slower and "Every pair is slower" in markdown(v, baseline_label="a", current_label="b")


def test_bound_broken_is_reported_with_its_file():
    cur = [row("fp32", 5.0), row("int8", 50.0, size_ratio=0.4), row("onnx_fp32", 1.0)]
    v = compare(BASE, cur, TABLE)
    assert v.failed and any("size_ratio" in m and "t.toml" in m for m in v.broke)
    assert any("size_ratio 0.2550 -> 0.4000" in m for m in v.worse)


def test_missing_and_new_pairs():
    v = compare(BASE, BASE[:2], TABLE)
    assert v.failed and any("resnet18.onnx_fp32" in m and "not in this run" in m for m in v.broke)
    v = compare(BASE[:2], BASE, TABLE)
    assert not v.failed and v.new == ["resnet18.onnx_fp32"]


def test_unregistered_pair_without_bounds_breaks():
    v = compare(BASE, [*BASE, row("onnx_int8", 0.6)], TABLE)
    assert v.failed and any("no thresholds" in m for m in v.broke)


def test_no_latency_against_another_machine():
    cur = [row("fp32", 50.0), row("int8", 500.0), row("onnx_fp32", 10.0)]
    v = compare(BASE, cur, TABLE, latency=False)
    assert not v.failed and v.drift is None
    assert "another machine" in markdown(v, baseline_label="a", current_label="b")


def test_retention_improvement_is_better():
    v = compare(BASE, [row("fp32", 5.0), row("int8", 50.0, retention=1.01), row("onnx_fp32", 1.0)], TABLE)
    assert not v.failed and any("retention 1.0000 -> 1.0100" in m for m in v.better)


def test_same_machine():
    assert same_machine({"cpu": "X", "cores": 2}, {"cpu": "X", "cores": 2, "node": "other"})
    assert not same_machine({"cpu": "X", "cores": 2}, {"cpu": "X", "cores": 4})


def test_factor_must_exceed_one():
    with pytest.raises(ValueError):
        compare(BASE, BASE, TABLE, factor=1.0)


# --- the command: python -m compress compare ---------------------------------------------------------


def _saved(path, *, scale=1.0, int8_size=0.252, int8_ratio=0.6, when="2026-11-30T09:00:00+00:00"):
    """A saved gate run of three real ResNet18 pairs (made-up numbers), judged against the suite's bounds."""
    from tests.test_runs_report import bench, write_run

    return write_run(path, [
        bench("resnet18", "fp32", 0.008 * scale, runtime="torch-eager", accuracy_upper=0.905),
        bench("resnet18", "onnx_fp32", 0.001 * scale, runtime="onnxruntime", retention_upper=1.001),
        bench("resnet18", "onnx_int8", 0.0006 * scale, runtime="onnxruntime", size_ratio=int8_size, retention=1.0,
              retention_upper=1.002, latency_ratio=int8_ratio),
    ], when=when)  # fmt: skip


def _compare(*args):
    from compress.cli import main

    return main(["compare", *map(str, args)])


def test_compare_command_passes_an_unchanged_run_and_writes_the_summary(tmp_path, capsys):
    base, run = _saved(tmp_path / "base.json"), _saved(tmp_path / "run.json", scale=1.3)  # a slower machine today
    assert _compare(run, "--baseline", base, "--markdown", tmp_path / "pr.md") == 0
    out = capsys.readouterr().out
    assert "compress-bench gate: passed" in out and "drift (1.30x" in out
    assert (tmp_path / "pr.md").read_text() == out.rstrip("\n") + "\n"


def test_compare_command_fails_a_broken_bound_and_a_slower_pair(tmp_path, capsys):
    base = _saved(tmp_path / "base.json")
    assert _compare(_saved(tmp_path / "big.json", int8_size=0.30), "--baseline", base) == 1
    assert "resnet18.onnx_int8: size_ratio 0.3000 exceeds max 0.258" in capsys.readouterr().out
    assert _compare(_saved(tmp_path / "slow.json", int8_ratio=0.6 * 2.5), "--baseline", base) == 1
    assert "`resnet18.onnx_int8` | latency / own fp32 (interleaved) | 0.60x | 1.50x | 2.50x" in capsys.readouterr().out


def test_compare_command_without_a_baseline_judges_bounds_only_and_says_so(tmp_path, capsys):
    assert _compare(_saved(tmp_path / "run.json"), "--baseline", tmp_path / "missing.json") == 0
    out = capsys.readouterr().out
    assert "bounds judged, latency not compared" in out and "Latency not compared: no baseline run." in out


def test_compare_command_on_a_file_that_is_not_a_run_is_one_line(tmp_path, capsys):
    (tmp_path / "x.json").write_text("[]")
    assert _compare(tmp_path / "x.json") == 2
    assert capsys.readouterr().err.startswith("error: ")
