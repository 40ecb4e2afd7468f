import math

import numpy as np
import pytest

from compress import registry
from compress.judging import stats, thresholds
from compress.judging.thresholds import ThresholdsError

GOOD = """
[m.int8]
size_ratio = { max = 0.3, last = 0.27 }
retention = { min = 0.99, last = 0.995 }
"""


def test_parse_good_file():
    b = thresholds.parse(GOOD)["m.int8"]
    assert (b["size_ratio"].value, b["size_ratio"].last) == (0.3, 0.27)
    assert (b["retention"].value, b["retention"].kind, b["retention"].last) == (0.99, "min", 0.995)
    assert b.violations({"size_ratio": 0.3, "retention": 0.98, "retention_upper": 0.99}) == []  # inclusive


def test_violations_name_pair_bound_and_value():
    b = thresholds.parse(GOOD)["m.int8"]
    msgs = b.violations({"size_ratio": 0.31, "retention": 0.98, "retention_upper": 0.985, "gzip_ratio": 9.0})
    assert msgs == [
        "m.int8: size_ratio 0.3100 exceeds max 0.3 (last recorded 0.27)",
        "m.int8: retention 0.9800 is below min 0.99 with 95% confidence: its upper 95% bound is 0.9850 "
        "(last recorded 0.995)",
    ]  # gzip_ratio is not bounded for this pair
    assert b.violations({"size_ratio": float("nan"), "retention": 1.0, "retention_upper": 1.0})  # NaN never passes
    assert "retention_upper is NaN" in b.violations(
        {"size_ratio": 0.3, "retention": 1.0, "retention_upper": float("nan")}
    )[0]


def test_accuracy_bounds_are_judged_by_their_upper_confidence_bound():
    b = thresholds.parse("[m.fp32]\naccuracy = { min = 0.88, last = 0.8866 }")["m.fp32"]
    # the point value is below the floor, but not with 95% confidence: pass
    assert b.violations({"accuracy": 0.8799, "accuracy_upper": 0.8851}) == []
    assert b.violations({"accuracy": 0.87, "accuracy_upper": 0.8755}) == [
        "m.fp32: accuracy 0.8700 is below min 0.88 with 95% confidence: its upper 95% bound is 0.8755 "
        "(last recorded 0.8866)"
    ]
    # a point value that passes is not enough either: the verdict needs the upper bound
    assert b.violations({"accuracy": 0.95, "accuracy_upper": 0.87}) != []


def test_a_point_value_without_its_upper_bound_never_passes():
    b = thresholds.parse(GOOD)["m.int8"]
    assert b.violations({"size_ratio": 0.2, "retention": 1.0}) == [
        "m.int8: retention 1.0000 was measured without its per-example outcomes (no retention_upper), "
        "so min 0.99 cannot be judged at 95% confidence (last recorded 0.995)"
    ]
    fp32 = thresholds.parse("[m.fp32]\naccuracy = { min = 0.88 }")["m.fp32"]
    assert "no accuracy_upper" in fp32.violations({"accuracy": 0.95})[0]
    assert "retention was not measured" in b.violations({"size_ratio": 0.2, "retention_upper": 1.0})[0]


def _metrics(compressed: np.ndarray, fp32: np.ndarray) -> dict:
    """What the runner records for a pair: point values and their upper bounds (compress.judging.stats)."""
    r, a = stats.retention_bound(compressed, fp32), stats.accuracy_bound(compressed)
    return {"size_ratio": 0.25, "retention": r.point, "retention_upper": r.upper,
            "accuracy": a.point, "accuracy_upper": a.upper}  # fmt: skip


@pytest.mark.parametrize("drop_images, fails", [(0, False), (1, False), (20, False), (177, True), (200, True)])
def test_gate_end_to_end_on_10000_outcomes(drop_images, fails):
    """fp32: 8,866 of 10,000 right; int8 disagrees on ~2% of the images and gets fewer right."""
    b = thresholds.parse(GOOD)["m.int8"]
    floor_correct = math.ceil(0.99 * 8_866)  # 8,778: the fewest that reach the floor
    correct = floor_correct - drop_images  # 1 image short; 20 (0.2 points); 177 (2 points of 8,866); ...
    fp32 = np.arange(10_000) < 8_866
    compressed = fp32.copy()
    compressed[8_866:8_926] = True  # 60 images only the compressed model gets right
    compressed[: 8_866 + 60 - correct] = False  # the rest of the difference: images only fp32 gets right
    assert compressed.sum() == correct
    msgs = b.violations(_metrics(compressed, fp32))
    assert bool(msgs) == fails, msgs
    if fails:
        assert msgs[0].startswith("m.int8: retention 0.9") and "is below min 0.99 with 95% confidence" in msgs[0]


def test_gzip_ratio_can_bound_size_where_sparsity_is_the_point():
    b = thresholds.parse("[m.prune50]\ngzip_ratio = { max = 0.7 }\nretention = { min = 0.9 }")["m.prune50"]
    ok = {"size_ratio": 1.0, "retention": 0.95, "retention_upper": 0.96}
    assert b.violations({**ok, "gzip_ratio": 0.69}) == []
    assert b.violations({**ok, "gzip_ratio": 0.71}) == [
        "m.prune50: gzip_ratio 0.7100 exceeds max 0.7 (last recorded None)"
    ]


def _int8(size: str = "{ max = 0.3 }", retention: str = "{ min = 0.9 }", more: str = "") -> str:
    """An [m.int8] entry with these size_ratio and retention tables."""
    return f"[m.int8]\nsize_ratio = {size}\nretention = {retention}\n{more}"


@pytest.mark.parametrize(
    "text, match",
    [
        ("[m.int8\n", "not valid TOML"),
        ("", r"t.toml: no entries; expected one \[model.technique\] table per pair"),
        ("m = 3", "m: expected a table of techniques"),
        ("[m]", r"m: no techniques; expected \[m.<technique>\] tables"),
        ('["m.x".int8]\nretention = { min = 0.9 }', "'m.x': not a model name"),
        ('[m."int8.x"]\nretention = { min = 0.9 }', "'m.int8.x': not a technique name"),
        ("[[m.int8]]\nretention = { min = 0.9 }", "m.int8: expected a table"),
        ("[m]\nint8 = 1", "m.int8: expected a table"),
        ("[m]\nint8 = {}", "m.int8: no bounds; valid: size_ratio, gzip_ratio, retention, accuracy"),
        # a bound kind that does not match its metric
        ("[m.int8]\nretention = { max = 0.3 }", r"m.int8.retention: retention takes a min bound, not a max one "
                                                r"\(it must be reached\): write retention = \{ min = \.\.\., last"),
        (_int8(retention="{ min = 0.9, max = 1.0 }"), "retention takes a min bound, not a max one"),
        (_int8(size="{ min = 0.3 }"),
         r"m.int8.size_ratio: size_ratio takes a max bound, not a min one \(it must not be exceeded\)"),
        ("[m.fp32]\naccuracy = { max = 0.9 }", "accuracy takes a min bound, not a max one"),
        (_int8(size="{ last = 0.3 }"), r"m.int8.size_ratio: missing \{ max"),
        (_int8(retention="0.99"),
         r"m.int8.retention: expected a table retention = \{ min = \.\.\., last = \.\.\. \}, got 0.99"),
        # a misspelt metric, an unknown one
        (_int8(more="retension = { min = 0.9 }"),
         "m.int8.retension: unknown key. Did you mean 'retention'[?] Valid: size_ratio"),
        (_int8(more="latency = 1"), "m.int8.latency: unknown key"),
        # bound values of the wrong type
        (_int8(size="{ max = 'a' }"), "m.int8.size_ratio.max: expected a finite number, got 'a'"),
        (_int8(retention="{ min = '0.99' }"), "m.int8.retention.min: expected a finite number, got '0.99'"),
        (_int8(size="{ max = [0.3] }"), r"m.int8.size_ratio.max: expected a finite number, got \[0.3\]"),
        (_int8(size="{ max = { v = 0.3 } }"), "m.int8.size_ratio.max: expected a finite number"),
        (_int8(size="{ max = nan }"), "m.int8.size_ratio.max: expected a finite number, got nan"),
        (_int8(size="{ max = inf }"), "m.int8.size_ratio.max: expected a finite number, got inf"),
        # `last` of the wrong type or out of range
        (_int8(retention="{ min = 0.99, last = true }"), "m.int8.retention.last: expected a finite"),
        (_int8(size="{ max = 0.3, last = '0.27' }"), "m.int8.size_ratio.last: expected a finite number, got '0.27'"),
        (_int8(size="{ max = 0.3, last = [0.27] }"), "m.int8.size_ratio.last: expected a finite number"),
        (_int8(size="{ max = 0.3, last = 1979-05-27 }"), "m.int8.size_ratio.last: expected a finite number"),
        (_int8(size="{ max = 0.3, last = -0.27 }"),
         r"m.int8.size_ratio.last must be >= 0 \(a measured size_ratio\), got -0.27"),
        ("[m.fp32]\naccuracy = { min = 0.88, last = 88.66 }",
         r"m.fp32.accuracy.last must be in \[0, 1.0\] \(a measured accuracy\)"),
        (_int8(size="{ max = 0.3, maxx = 1 }"), "m.int8.size_ratio.maxx: unknown key"),
        # values out of range
        (_int8(size="{ max = 0 }"), "size_ratio.max must be > 0"),
        (_int8(retention="{ min = 9 }"), r"retention.min must be in \[0, 1.5\]"),
        ("[m.fp32]\naccuracy = { min = -1 }", r"accuracy.min must be in \[0, 1.0\]"),
        ("[m.fp32]\naccuracy = { min = 88 }", r"accuracy.min must be in \[0, 1.0\]"),  # a percentage
        ("[m.fp32]\naccuracy = { min = 1.2 }", r"accuracy.min must be in \[0, 1.0\]"),
    ],
)
def test_malformed_files_name_the_key(text, match):
    with pytest.raises(ThresholdsError, match=match):
        thresholds.parse(text, "t.toml")


def test_integer_bounds_are_numbers_too():
    b = thresholds.parse(_int8(size="{ max = 1, last = 1 }", retention="{ min = 1, last = 1 }"))["m.int8"]
    assert (b["size_ratio"].value, b["retention"].value, b["retention"].last) == (1.0, 1.0, 1.0)
    assert all(isinstance(x.value, float) for x in b.bounds)


def test_entries_remember_their_file():
    assert thresholds.parse(GOOD, "t.toml")["m.int8"].source == "t.toml"


def test_missing_pair_fails_loudly():
    with pytest.raises(ThresholdsError, match=r"no thresholds for registered pair 'm.fp32'.*\[m.fp32\].*\{ min = "):
        thresholds.lookup(thresholds.parse(GOOD), "m", "fp32")


def test_repository_file_covers_exactly_the_registered_full_tier_pairs():
    """The full tier: every pair of the suite's own models, and the gate's pairs (those of its gate
    recipes' models, and the full models it runs as they are)."""
    from compress.runner import Runner

    table = thresholds.load()
    runner = Runner()
    pairs = {f"{m}.{t}" for tier in ("full", "gate") for m, t in registry.pairs(tier=tier)
             if not runner.skip_reason(m, t)}  # fmt: skip
    assert pairs - set(table) == set(), "registered pairs without thresholds"
    assert set(table) - pairs == set(), "thresholds for pairs that are not registered"
    from compress.metrics import metric_of

    for key, entry in table.items():
        metrics = {b.metric for b in entry.bounds}
        if key.endswith(".fp32"):  # the reference: its ratios are 1 by definition; its task metric is bounded
            assert metric_of(registry.get_model(key.split(".")[0]).recipe()).name in metrics, key
        else:
            assert "retention" in metrics and metrics & {"size_ratio", "gzip_ratio"}, key
        # structured pruning exists to be faster: say by how much (heads50 at 64 tokens saves less than a
        # shared machine's noise moves: thresholds.toml says what was measured)
        # (a gate recipe's model: where it measured well inside the full recipe's bound; see the file)
        if key.endswith((".channels50", ".ffn50")) and not registry.get_model(key.split(".")[0]).gate_of:
            assert "latency_ratio" in metrics, key
        for b in entry.bounds:
            assert b.last is not None, f"{key}.{b.metric}: no last measured value beside the bound"


def _table(text: str) -> dict:
    return thresholds.parse(text, "t.toml")


def test_check_registered_names_every_bad_entry_at_once():
    bad = _table(
        "[mobilenetv2.int8]\nsize_ratio = { max = 0.4 }\nretention = { min = 0.99 }\n"  # fine
        "[mobilenet_v2.int8]\nsize_ratio = { max = 0.4 }\nretention = { min = 0.99 }\n"  # unknown model
        "[resnet18.int9]\nsize_ratio = { max = 0.4 }\nretention = { min = 0.99 }\n"  # unknown technique
        "[mobilenetv2.onnx_int8]\nsize_ratio = { max = 0.4 }\nretention = { min = 0.99 }\n"  # torch only
        "[resnet18.channels2]\nsize_ratio = { max = 0.4 }\nretention = { min = 0.99 }\n"
        "[nosuchmodel.nosuchtechnique]\naccuracy = { min = 0.5 }\n"
    )
    with pytest.raises(ThresholdsError) as exc:
        thresholds.check_registered(bad)
    msg = str(exc.value)
    assert msg.startswith("5 thresholds entries name no registered, applicable pair:")
    assert "t.toml: [mobilenet_v2.int8]: unknown model 'mobilenet_v2'. Did you mean 'mobilenetv2'?" in msg
    assert "t.toml: [resnet18.int9]: unknown technique 'int9'. Did you mean 'int8'?" in msg
    assert ("t.toml: [mobilenetv2.onnx_int8]: technique 'onnx_int8' does not apply to keras "
            "image-classification model 'mobilenetv2'.") in msg  # fmt: skip
    assert "t.toml: [resnet18.channels2]: unknown technique 'channels2'. Did you mean 'channels25'?" in msg
    assert ("t.toml: [nosuchmodel.nosuchtechnique]: unknown model 'nosuchmodel'. "
            "unknown technique 'nosuchtechnique'.") in msg  # fmt: skip
    assert "[mobilenetv2.int8]" not in msg
    keras = registry.list_techniques(framework="keras", task="image-classification")
    assert "onnx_int8" not in keras and f"Its techniques: {', '.join(keras)}" in msg


def test_check_registered_accepts_every_tier():
    for model in registry.list_models():
        technique = registry.list_techniques(framework=registry.get_model(model).framework)[0]
        thresholds.check_registered(_table(f"[{model}.{technique}]\naccuracy = {{ min = 0.5 }}"))


def test_load_checks_registration_before_anything_is_trained(tmp_path):
    path = tmp_path / "thresholds.toml"
    path.write_text("[mobilenetv2.int9]\nsize_ratio = { max = 0.4 }\nretention = { min = 0.99 }\n")
    with pytest.raises(ThresholdsError, match=rf"{path}: \[mobilenetv2.int9\]: unknown technique 'int9'"):
        thresholds.load(path)
    assert set(thresholds.load(path, registered=False)) == {"mobilenetv2.int9"}


def test_repository_file_names_only_registered_pairs():
    thresholds.check_registered(thresholds.load(registered=False))


def test_a_bound_scoped_to_a_device_is_asserted_only_there():
    table = thresholds.parse(
        "[m.channels50]\n"
        "size_ratio = { max = 0.3, last = 0.25 }\n"
        'latency_ratio = { max = 0.8, last = 0.49, device = "cpu" }\n'
    )
    b = table["m.channels50"]
    slow = {"size_ratio": 0.25, "latency_ratio": 0.97}  # channel pruning on a GPU at batch 1
    assert b.violations(slow, device="cuda") == []
    assert b.violations(slow) == ["m.channels50: latency_ratio 0.9700 exceeds max 0.8 (last recorded 0.49)"]
    assert b.violations({**slow, "size_ratio": 0.4}, device="cuda")  # unscoped bounds hold everywhere
    with pytest.raises(ThresholdsError, match=r"latency_ratio.device must be one of cpu, cuda, got 'gpu'"):
        thresholds.parse('[m.channels50]\nlatency_ratio = { max = 0.8, device = "gpu" }\n')


def test_a_bound_that_needs_int8_dot_products_is_asserted_only_on_such_a_cpu(monkeypatch):
    import compress.machine

    table = thresholds.parse(
        "[m.int8]\n"
        "size_ratio = { max = 0.3, last = 0.27 }\n"
        'latency_ratio = { max = 0.6, last = 0.29, device = "cpu", needs = "int8-dot-product" }\n'
    )
    b = table["m.int8"]
    slow = {"size_ratio": 0.27, "latency_ratio": 0.9}  # int8 on an AVX2-only CPU
    monkeypatch.setattr(compress.machine, "int8_dot_product", lambda: False)
    assert b.violations(slow) == []
    assert b.violations({**slow, "size_ratio": 0.4})  # the unscoped bound still holds
    monkeypatch.setattr(compress.machine, "int8_dot_product", lambda: True)
    assert b.violations(slow) == ["m.int8: latency_ratio 0.9000 exceeds max 0.6 (last recorded 0.29)"]
    with pytest.raises(ThresholdsError, match=r"latency_ratio.needs must be one of int8-dot-product, got 'vnni'"):
        thresholds.parse('[m.int8]\nlatency_ratio = { max = 0.6, needs = "vnni" }\n')
