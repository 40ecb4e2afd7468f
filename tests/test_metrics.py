"""compress.metrics: each task's metric, its direction, its bounds; thresholds on perplexity."""

import math

import numpy as np
import pytest

from compress import metrics, stats, thresholds
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
