import pytest

from compress import registry, thresholds
from compress.thresholds import ThresholdsError

GOOD = """
[m.int8]
size_ratio = { max = 0.3, last = 0.27 }
retention = { min = 0.99, last = 0.995 }
"""


def test_parse_good_file():
    b = thresholds.parse(GOOD)["m.int8"]
    assert (b["size_ratio"].value, b["size_ratio"].last) == (0.3, 0.27)
    assert (b["retention"].value, b["retention"].kind, b["retention"].last) == (0.99, "min", 0.995)
    assert b.violations({"size_ratio": 0.3, "retention": 0.99}) == []  # bounds are inclusive


def test_violations_name_pair_bound_and_value():
    b = thresholds.parse(GOOD)["m.int8"]
    msgs = b.violations({"size_ratio": 0.31, "retention": 0.98, "gzip_ratio": 9.0})
    assert msgs == [
        "m.int8: size_ratio 0.3100 exceeds max 0.3 (last recorded 0.27)",
        "m.int8: retention 0.9800 is below min 0.99 (last recorded 0.995)",
    ]  # gzip_ratio is not bounded for this pair
    assert b.violations({"size_ratio": float("nan"), "retention": 1.0})  # NaN never passes


def test_gzip_ratio_can_bound_size_where_sparsity_is_the_point():
    b = thresholds.parse("[m.prune50]\ngzip_ratio = { max = 0.7 }\nretention = { min = 0.9 }")["m.prune50"]
    assert b.violations({"size_ratio": 1.0, "gzip_ratio": 0.69, "retention": 0.95}) == []
    assert b.violations({"size_ratio": 1.0, "gzip_ratio": 0.71, "retention": 0.95}) == [
        "m.prune50: gzip_ratio 0.7100 exceeds max 0.7 (last recorded None)"
    ]


@pytest.mark.parametrize(
    "text, match",
    [
        ("[m.int8\n", "not valid TOML"),
        ("m = 3", "m: expected a table of techniques"),
        ("[m]\nint8 = 1", "m.int8: expected a table"),
        ("[m]\nint8 = {}", "m.int8: no bounds; valid: size_ratio, gzip_ratio, retention, accuracy"),
        ("[m.int8]\nretention = { max = 0.3 }", r"m.int8.retention: missing \{ min"),
        ("[m.int8]\nsize_ratio = { last = 0.3 }\nretention = { min = 0.9 }", r"m.int8.size_ratio: missing \{ max"),
        ("[m.int8]\nsize_ratio = { max = 'a' }\nretention = { min = 0.99 }", "m.int8.size_ratio.max: expected a finite number"),
        ("[m.int8]\nsize_ratio = { max = 0.3 }\nretention = { min = 0.99, last = true }", "m.int8.retention.last: expected a finite"),
        ("[m.int8]\nsize_ratio = { max = 0.3, maxx = 1 }\nretention = { min = 0.9 }", "m.int8.size_ratio.maxx: unknown key"),
        ("[m.int8]\nsize_ratio = { max = 0.3 }\nretention = { min = 0.9 }\nlatency = 1", "m.int8.latency: unknown key"),
        ("[m.int8]\nsize_ratio = { max = 0 }\nretention = { min = 0.9 }", "size_ratio.max must be > 0"),
        ("[m.int8]\nsize_ratio = { max = 1 }\nretention = { min = 9 }", r"retention.min must be in \[0, 1.5\]"),
        ("[m.fp32]\naccuracy = { min = -1 }", r"accuracy.min must be in \[0, 1.5\]"),
    ],
)
def test_malformed_files_name_the_key(text, match):
    with pytest.raises(ThresholdsError, match=match):
        thresholds.parse(text, "t.toml")


def test_missing_pair_fails_loudly():
    with pytest.raises(ThresholdsError, match=r"no thresholds for registered pair 'm.fp32'.*\[m.fp32\].*\{ min = "):
        thresholds.lookup(thresholds.parse(GOOD), "m", "fp32")


def test_repository_file_covers_exactly_the_registered_default_pairs():
    from compress.runner import Runner

    table = thresholds.load()
    runner = Runner()
    pairs = {f"{m}.{t}" for m, t in registry.pairs(tier="default") if not runner.skip_reason(m, t)}
    assert pairs - set(table) == set(), "registered pairs without thresholds"
    assert set(table) - pairs == set(), "thresholds for pairs that are not registered"
    for key, entry in table.items():
        metrics = {b.metric for b in entry.bounds}
        if key.endswith(".fp32"):  # the reference: its ratios are 1 by definition
            assert "accuracy" in metrics, key
        else:
            assert "retention" in metrics and metrics & {"size_ratio", "gzip_ratio"}, key
        if key.endswith(".channels50"):  # structured pruning exists to be faster: say by how much
            assert "latency_ratio" in metrics, key
        for b in entry.bounds:
            assert b.last is not None, f"{key}.{b.metric}: no last measured value beside the bound"
