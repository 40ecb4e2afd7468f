"""compress.metrics: each task's metric, its direction, its bounds; thresholds on perplexity."""

import math

import numpy as np
import pytest

from compress import metrics
from compress.judging import stats, thresholds
from compress.metrics.perplexity import token_losses


def test_metrics_are_registered_with_their_direction():
    assert metrics.list_metrics() == ["accuracy", "map50_95", "perplexity", "psnr"]
    acc, ppl, psnr, det = (metrics.get_metric(n) for n in ("accuracy", "perplexity", "psnr", "map50_95"))
    assert (acc.higher_is_better, acc.bound_key, acc.kind) == (True, "accuracy_upper", "bools")
    assert (ppl.higher_is_better, ppl.bound_key, ppl.kind) == (False, "perplexity_lower", "floats")
    assert (psnr.higher_is_better, psnr.bound_key, psnr.kind) == (True, "psnr_upper", "floats")
    assert (det.higher_is_better, det.bound_key, det.kind) == (True, "map50_95_upper", "rows")
    with pytest.raises(ValueError, match="unknown task metric 'bleu'; registered: accuracy, map50_95, perplexity, psnr"):
        metrics.get_metric("bleu")


def test_a_recipe_without_a_metric_is_scored_by_top1():
    from compress.recipe import Recipe

    class LM(Recipe):
        metric = "perplexity"

    assert metrics.metric_of(Recipe()).name == "accuracy"
    assert metrics.metric_of(LM()).name == "perplexity"


def test_top1_is_the_statistics_of_issue_8():
    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(400, 10)), rng.integers(0, 10, 400)
    m = metrics.get_metric("accuracy")
    out = m.outcomes(logits, y)
    assert out.dtype == bool and out.tolist() == (logits.argmax(1) == y).tolist()
    ref = out.copy()
    ref[:40] = True
    assert m.value(out) == (stats.accuracy_bound(out).point, stats.accuracy_bound(out).upper)
    est = stats.retention_bound(out, ref)
    assert m.retention(out, ref) == (est.point, est.upper)


def test_token_losses_are_the_next_token_cross_entropy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(3, 9, 17)).astype(np.float32)
    tokens = rng.integers(0, 17, size=(3, 9))
    want = [float(torch.nn.functional.cross_entropy(torch.from_numpy(logits[i, :-1]).double(),
                                                    torch.from_numpy(tokens[i, 1:]))) for i in range(3)]  # fmt: skip
    np.testing.assert_allclose(token_losses(logits, tokens), want, rtol=1e-6)
    # uniform logits over V classes: every token costs log V, perplexity V
    flat = token_losses(np.zeros((2, 5, 17), np.float32), tokens[:2, :5])
    np.testing.assert_allclose(flat, math.log(17))
    with pytest.raises(ValueError, match="do not match"):
        token_losses(logits, tokens[:, :5])


def test_perplexity_and_its_retention_point_the_right_way():
    rng = np.random.default_rng(2)
    ref = rng.normal(4.5, 0.4, size=1000)  # per-block mean losses of the fp32 artefact
    m = metrics.get_metric("perplexity")
    ppl, lower = m.value(ref)
    assert ppl == pytest.approx(math.exp(ref.mean())) and lower < ppl
    # the same outcomes: retention 1, and its upper bound 1 (no difference, no noise)
    assert m.retention(ref, ref) == (pytest.approx(1.0), pytest.approx(1.0))
    # a real regression, 5% more loss on every block: retention exp(-0.05 * mean) far below 0.99
    worse = ref * 1.05
    r, upper = m.retention(worse, ref)
    assert r == pytest.approx(math.exp(-0.05 * ref.mean())) and upper < 0.99
    # a better model: retention above 1
    assert m.retention(ref - 0.1, ref)[0] == pytest.approx(math.exp(0.1))
    # noise the test set cannot resolve: 1.35% more perplexity, with a block-to-block scatter of 0.5 nats
    scatter = rng.normal(0.0, 0.5, size=1000)
    noisy = ref + scatter - scatter.mean() + 0.0135
    r, upper = m.retention(noisy, ref)
    assert r < 0.99 < upper


def test_a_perplexity_ceiling_is_judged_by_its_lower_bound():
    b = thresholds.parse("[m.fp32]\nperplexity = { max = 90.0, last = 87.9 }")["m.fp32"]
    assert b["perplexity"].kind == "max"
    assert b.violations({"perplexity": 90.5, "perplexity_lower": 89.0}) == []  # not above 90 with 95% confidence
    assert b.violations({"perplexity": 93.0, "perplexity_lower": 91.2}) == [
        "m.fp32: perplexity 93.0000 exceeds max 90.0 with 95% confidence: its lower 95% bound is 91.2000 "
        "(last recorded 87.9)"
    ]
    assert "no perplexity_lower" in b.violations({"perplexity": 80.0})[0]
    with pytest.raises(thresholds.ThresholdsError, match="perplexity takes a max bound"):
        thresholds.parse("[m.fp32]\nperplexity = { min = 90.0 }")


def test_perplexity_statistics_reject_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        stats.perplexity_bound([4.0])
    with pytest.raises(ValueError, match="finite"):
        stats.perplexity_bound([4.0, float("nan")])
    with pytest.raises(ValueError, match="same examples"):
        stats.loss_retention_bound([1.0, 2.0, 3.0], [1.0, 2.0])


# --- the metric descriptors (compress.metrics.descriptor) ----------------------------------------------


def test_a_task_metric_reads_its_name_label_and_direction_from_its_descriptor():
    for name in metrics.list_metrics():
        m, d = metrics.get_metric(name), metrics.get_descriptor(name)
        assert m.descriptor is d and (m.name, m.label, m.higher_is_better, m.bound_key) == (
            d.name, d.label, d.higher_is_better, d.bound_key)  # fmt: skip
        assert d.bound and d.confidence and d.detect is not None and d.description
    assert metrics.get_descriptor("perplexity").bound_key == "perplexity_lower"
    assert [metrics.get_metric(n).describe(0.5) for n in ("accuracy", "perplexity", "map50_95")] == [
        "top-1 0.5000", "perplexity 0.50", "mAP50-95 0.5000"]  # fmt: skip
    with pytest.raises(ValueError, match="no metric descriptor 'bleu'; registered: accuracy, adapter_bytes"):
        metrics.get_descriptor("bleu")


def test_the_descriptors_order_does_not_follow_the_order_of_imports():
    names = list(metrics.descriptors())
    assert names.index("size_ratio") < names.index("retention") < names.index("accuracy") < names.index("psnr")
    assert names.index("psnr_over_bicubic") < names.index("map50_95") < names.index("latency_ratio")
    metrics.register(metrics.Metric("zzz_early", "zzz", True), module="compress.metrics.accuracy")
    try:  # a built-in module's descriptor keeps its module's place, registered whenever
        names = list(metrics.descriptors())
        assert names.index("accuracy") < names.index("zzz_early") < names.index("perplexity")
    finally:
        metrics.unregister("zzz_early")
    assert "zzz_early" not in metrics.descriptors()


def test_retention_is_named_by_the_rows_task_metric():
    lm, det, top1 = {"metric": "perplexity"}, {"metric": "map50_95"}, {"accuracy": 0.9}  # an older row: no metric key
    assert metrics.retention_label([lm], axis=True) == "perplexity retention (fp32 perplexity / perplexity)"
    assert metrics.retention_label([lm, lm], title=True) == "Perplexity retention"
    assert metrics.retention_label([det], title=True) == "mAP50-95 retention"
    assert metrics.retention_label([top1], title=True) == "Top-1 retention"
    assert metrics.retention_label([top1], axis=True) == "top-1 retention (top-1 / fp32 top-1)"
    assert metrics.retention_label([lm, det]) == "retention (task metric / fp32)"
    assert metrics.retention_label([lm, top1], title=True) == "Retention (task metric / fp32)"


# a new metric is one module: its descriptor, registered there, is all that report, runs, compare,
# thresholds, plots, propose and asv need
BLEU_MODULE = '''
from compress.metrics import Detect, Metric, register

BLEU = register(Metric("bleu", "BLEU", True, "{:.2f}", ceiling=100.0,
                       description="BLEU of the test split's translations", bound=True, confidence=True,
                       notable=0.5, detect=Detect(1.0, "points", False, False), order=125))
'''


@pytest.fixture
def bleu(tmp_path, monkeypatch):
    import importlib
    import sys

    (tmp_path / "bleu_metric.py").write_text(BLEU_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield importlib.import_module("bleu_metric").BLEU
    finally:
        metrics.unregister("bleu")
        sys.modules.pop("bleu_metric", None)


def _mt(technique="fp32", bleu=31.0, **more):
    return {"model": "mt", "technique": technique, "runtime": "torch-eager", "reference": technique == "fp32",
            "metric": "bleu", "bleu": bleu, "baseline_bleu": 31.0, "bleu_upper": bleu + 0.4, "retention": bleu / 31.0,
            "retention_upper": bleu / 31.0 + 0.01, "size_ratio": 1.0 if technique == "fp32" else 0.3,
            "eval_images": 1000, **more}  # fmt: skip


def test_a_metric_registered_in_its_own_module_is_shown_everywhere(bleu, tmp_path):
    from compress.reporting import plots
    from compress.storage import runs
    from compress.reporting.report import columns, format_table

    assert metrics.get_descriptor("bleu") is bleu
    # the text table and the Markdown report: a column at its order (after PSNR), in its format
    keys = [k for k, _, _ in columns()]
    assert keys.index("psnr") < keys.index("bleu") < keys.index("map50_95")
    lines = format_table([_mt(), _mt("int8", 30.456)]).splitlines()
    assert lines[0].split() == ["model", "technique", "runtime", "size", "BLEU", "retention"]
    assert lines[3].split()[4] == "30.46"
    assert ("bleu", "BLEU") in runs.markdown_columns([_mt()])
    assert "bleu" not in dict(runs.markdown_columns([{"model": "m", "technique": "fp32", "accuracy": 0.9}]))
    # the axis of a trade-off plot names it
    plot = plots.tradeoff([_mt(), _mt("int8", 30.0)], "size_ratio", tmp_path / "p.png", "t")
    assert plot.plotted == 2 and plot.y_label == "BLEU retention (BLEU / fp32 BLEU)"


def test_a_metric_registered_in_its_own_module_is_bounded_and_compared(bleu):
    from compress.judging import compare, propose

    assert (thresholds.METRICS["bleu"], thresholds.STATISTICAL["bleu"]) == ("min", "_upper")
    assert list(thresholds.METRICS)[-1] == "bleu"  # after the built-in ones
    table = thresholds.parse("[mt.fp32]\nbleu = { min = 30.0, last = 31.0 }\n[mt.int8]\nretention = { min = 0.95 }")
    b = table["mt.fp32"]
    assert b["bleu"].kind == "min" and b.violations(_mt(bleu=29.8)) == []  # upper bound 30.2 reaches the floor
    assert b.violations(_mt(bleu=29.0)) == [
        "mt.fp32: bleu 29.0000 is below min 30.0 with 95% confidence: its upper 95% bound is 29.4000 "
        "(last recorded 31.0)"
    ]
    with pytest.raises(thresholds.ThresholdsError, match="bleu takes a min bound"):
        thresholds.parse("[mt.fp32]\nbleu = { max = 30.0 }")
    with pytest.raises(thresholds.ThresholdsError, match=r"bleu.min must be in \[0, 100.0\]"):
        thresholds.parse("[mt.fp32]\nbleu = { min = 130.0 }")
    # compare: a change beyond its notable 0.5 is noted, which way by its direction; a smaller one is not
    v = compare.compare([_mt(), _mt("int8", 30.0)], [_mt(bleu=32.0), _mt("int8", 29.8)], table, latency=False)
    assert "mt.fp32: bleu 31.0000 -> 32.0000" in v.better and not any("bleu" in m for m in v.worse)
    v = compare.compare([_mt()], [_mt(bleu=30.2)], table, latency=False)
    assert "mt.fp32: bleu 31.0000 -> 30.2000" in v.worse
    # propose: a floor from its declared drop (1 point, a uniform loss): 31 - 1 + 0.4
    entries, _, _ = propose.propose([_mt()], {})
    assert entries == ["[mt.fp32]\nbleu = { min = 30.4, last = 31.0000 }  # catches a drop of 1 points "
                       "(declared drop); half-width 0.4000 at 95%"]  # fmt: skip


def test_a_metric_registered_in_its_own_module_gets_an_asv_track(bleu, monkeypatch):
    import importlib
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    for name in ("asv_bench.compression", "asv_bench"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    try:
        quality = importlib.import_module("asv_bench.compression").Quality
    finally:
        for name in ("asv_bench.compression", "asv_bench"):
            sys.modules.pop(name, None)
    track = quality.track_bleu
    assert track.__name__ == "track_bleu" and track.unit == "BLEU of the test split's translations"
    assert track(None, {("mt", "fp32"): {"bleu": 31.0}}, "mt", "fp32") == 31.0
    # the built-in tracks keep their names and units (asv's history of them goes on)
    assert quality.track_accuracy.unit == "top-1 on the model's test split"
    assert quality.track_retention.unit == ("vs the fp32 artefact, above 1 better (top-1 ratio; "
                                            "fp32 perplexity / perplexity)")  # fmt: skip


def test_an_unregistered_metric_is_gone_everywhere(bleu):
    from compress.reporting.report import columns

    metrics.unregister("bleu")
    assert "bleu" not in thresholds.METRICS and "bleu" not in [k for k, _, _ in columns()]
    with pytest.raises(thresholds.ThresholdsError, match="unknown key"):
        thresholds.parse("[mt.fp32]\nbleu = { min = 30.0 }")


# keys of a pair's results that no table, bound, comparison, plot or asv track shows: recorded only
RECORDED_ONLY = {
    "metric", "gzip_bytes", "eval_images", "quality_from", "retention_upper",  # compress.runner.PairResult.metrics
    "psnr_vs_fp32", "ssim_vs_fp32", "bicubic_psnr", "bicubic_ssim",  # super-resolution extras
    "judge_untranslated", "judge_real_target",  # CycleGAN's judge
    "map50_fp32", "trainable_parameters", "photos",
}  # fmt: skip


def _extra_keys() -> dict[str, set[str]]:
    """The string keys of the dicts the models' and techniques' ``extra_metrics`` (and the photo agreement
    they return) build, by file."""
    import ast
    from pathlib import Path

    root = Path(metrics.__file__).resolve().parents[1]
    found = {}
    for path in sorted([*root.glob("models/**/*.py"), *root.glob("techniques/*.py")]):
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, ast.FunctionDef) and fn.name in ("extra_metrics", "photo_agreement"):
                keys = {k.value for node in ast.walk(fn) if isinstance(node, ast.Dict) for k in node.keys
                        if isinstance(k, ast.Constant) and isinstance(k.value, str)}  # fmt: skip
                keys |= {node.slice.value for node in ast.walk(fn) if isinstance(node, ast.Subscript)
                         and isinstance(node.ctx, ast.Store) and isinstance(node.slice, ast.Constant)}  # fmt: skip
                found.setdefault(path.name, set()).update(keys)
    return found


def test_every_metric_key_of_the_built_in_recipes_results_has_a_descriptor():
    import dataclasses

    from compress import registry
    from compress.runner import PairResult

    described = metrics.descriptors()
    tasks = {metrics.metric_of(registry.get_model(name).recipe()).name for name in registry.list_models()}
    assert tasks == set(metrics.list_metrics())  # every task metric is some built-in model's
    for task in tasks:
        m = metrics.get_metric(task)
        assert described[task] is m.descriptor
        fields = {f.name: 1 for f in dataclasses.fields(PairResult)}
        result = PairResult(**{**fields, "metric": task, "extra": {}, "quality_from": "measured now"})
        for key, value in result.metrics().items():
            companion = key in (m.bound_key, f"baseline_{task}")  # read with the metric's descriptor
            assert key in described or key in RECORDED_ONLY or companion, f"{task} results: {key} has no descriptor"
    extras = _extra_keys()
    assert {"ssim", "map50", "photo_agreement", "adapter_bytes", "trainable_fraction", "psnr_over_bicubic"} <= {
        k for keys in extras.values() for k in keys}  # fmt: skip
    for file, keys in extras.items():
        for key in sorted(keys - RECORDED_ONLY):
            assert key in described, f"{file}: extra {key} has no descriptor (register one, or add it to RECORDED_ONLY)"
