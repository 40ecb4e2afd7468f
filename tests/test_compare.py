"""The PR gate's verdict (compress/compare.py): bounds re-judged, latency against a baseline with the
run-wide drift divided out. Rows are hand-made here: the tests check the judgement, not any model."""

import pytest

from compress import thresholds
from compress.compare import DEFAULT_FACTOR, compare, markdown, same_machine

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
