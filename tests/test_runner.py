"""Runner plumbing that needs no trained model: cache keys, baselines, skips, ratios."""

import time
from dataclasses import dataclass, field

import pytest

from compress.judging import thresholds
from compress.judging.latency import interleaved_ratio, throughput
from compress.runner import Runner, _describe_recipe


@dataclass(frozen=True)
class _Recipe:
    a: int = 1
    added_later: int | None = field(default=None, metadata={"key_default": False})


def test_an_option_added_at_its_default_keeps_the_cache_key():
    assert _describe_recipe(_Recipe()) == {"type": "_Recipe", "fields": {"a": 1}}
    assert _describe_recipe(_Recipe(added_later=5))["fields"] == {"a": 1, "added_later": 5}


@pytest.mark.parametrize(
    ("model", "technique", "reference"),
    [
        ("resnet18", "onnx_int8", "onnx_fp32"),
        ("resnet18", "onnx_dynamic", "onnx_fp32"),
        ("resnet18", "int8", "fp32"),
        ("resnet18", "prune50", "fp32"),
        ("resnet18", "channels50", "fp32"),
        ("mobilenetv2", "prune50_int8", "fp32"),
        ("mobilenetv2", "fp32", "fp32"),
    ],
)
def test_each_artefact_is_compared_with_its_own_runtimes_fp32(model, technique, reference):
    assert Runner.reference_technique(model, technique) == reference


def test_pretrained_pairs_say_why_they_are_skipped(monkeypatch, tmp_path):
    monkeypatch.delenv("COMPRESS_BENCH_IMAGENET_VAL", raising=False)
    monkeypatch.setenv("COMPRESS_BENCH_KERAS_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    reason = Runner().skip_reason("mobilenetv2_imagenet", "int8")
    assert reason and "COMPRESS_BENCH_KERAS_WEIGHTS_DIR" in reason

    from compress.models.vision.keras_pretrained import KerasImageNetClassifier

    monkeypatch.setattr(KerasImageNetClassifier, "unavailable", lambda self: None)
    assert Runner().skip_reason("mobilenetv2_imagenet", "int8") is None
    why = Runner().skip_reason("mobilenetv2_imagenet", "prune50_int8")  # a step of the chain
    assert why and "MagnitudePruningConfig" in why
    assert Runner().skip_reason("mobilenetv2", "prune50_int8") is None


def test_interleaved_ratio_sees_a_twice_slower_function():
    ratio, slow, fast = interleaved_ratio(lambda: time.sleep(0.002), lambda: time.sleep(0.001),
                                          min_rounds=6, budget_s=0.3, warmup_s=0.01)  # fmt: skip
    assert 1.4 < ratio < 3.0 and slow > fast > 0
    with pytest.raises(ValueError, match="rounds"):
        interleaved_ratio(lambda: None, lambda: None, min_rounds=0)


def test_paired_rounds_follow_the_noise_within_the_cap_and_alternate_with_the_reference():
    import itertools

    from compress.judging.latency import Paired

    calls = []
    paired = Paired(lambda: calls.append("fn"), lambda: calls.append("ref"), budget_s=0.05, max_rounds=40)
    assert paired.rounds <= 40
    calls.clear()
    for _ in range(3):
        paired.setup()
        paired.fn()
    assert calls == ["ref", "fn"] * 3 and len(paired.reference_s) == 3
    # a quiet pair stops at the floor; a noisy one takes more rounds, up to the time cap
    quiet = Paired(lambda: time.sleep(0.002), lambda: time.sleep(0.002), min_rounds=5, warmup_s=0.05)
    # 2, 4 and 6 ms in turn: a robust spread whatever number of calls the warm-up fits in (a random
    # choice of two durations could put most draws on one, leaving a median deviation of 0)
    spread = itertools.cycle((1, 2, 3))
    noisy = Paired(lambda: time.sleep(0.002 * next(spread)), lambda: time.sleep(0.002),
                   min_rounds=5, budget_s=0.2, warmup_s=0.1)  # fmt: skip
    assert quiet.needed < noisy.needed and noisy.noise > 0.2
    # rounds follow the need up to the time cap (on a loaded machine the cap, not the need, may bind)
    assert noisy.rounds == min(noisy.cap, noisy.needed) and quiet.rounds >= quiet.needed
    assert 20 <= noisy.cap <= 60  # ~2 x 4 ms a round in 0.2 s
    slow = Paired(lambda: time.sleep(0.01), lambda: time.sleep(0.01), budget_s=0.1, min_rounds=2, warmup_s=0.0)
    assert 2 <= slow.rounds <= 5  # ~20 ms a round in 0.1 s
    with pytest.raises(ValueError, match="nothing was timed"):
        slow.ratio([])
    alone = Paired(lambda: time.sleep(0.001), min_rounds=4, warmup_s=0.02)  # an fp32 reference: no ratio
    alone.setup()
    assert alone.reference_s == [] and alone.halfwidth([0.001] * 8) == 0.0
    with pytest.raises(ValueError, match="precision"):
        Paired(lambda: None, precision=0.0)


def test_throughput_counts_the_examples_of_a_batch_per_second():
    rate = throughput(lambda: time.sleep(0.004), 32, rounds=3, budget_s=0.1)  # 32 examples per ~4 ms call
    assert 2_000 < rate < 8_200
    with pytest.raises(ValueError, match="batch"):
        throughput(lambda: None, 0)


def test_a_latency_bound_fails_when_not_measured_or_exceeded():
    table = thresholds.parse(
        "[m.channels50]\nsize_ratio = { max = 0.5, last = 0.4 }\nretention = { min = 0.9, last = 0.95 }\n"
        "latency_ratio = { max = 0.9, last = 0.6 }\n"
    )
    bounds = thresholds.lookup(table, "m", "channels50")
    ok = {"size_ratio": 0.4, "retention": 0.95, "retention_upper": 0.95}
    assert bounds.violations({**ok, "latency_ratio": 0.6}) == []
    assert "latency_ratio 0.9500 exceeds max 0.9" in bounds.violations({**ok, "latency_ratio": 0.95})[0]
    assert "not measured" in bounds.violations(ok)[0]
