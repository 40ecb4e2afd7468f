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
    assert (b.max_size_ratio, b.min_retention, b.last_size_ratio, b.last_retention) == (0.3, 0.99, 0.27, 0.995)
    assert b.violations(0.3, 0.99) == []


def test_violations_name_pair_bound_and_value():
    b = thresholds.parse(GOOD)["m.int8"]
    msgs = b.violations(0.31, 0.98)
    assert msgs == [
        "m.int8: size_ratio 0.3100 exceeds max 0.3 (last recorded 0.27)",
        "m.int8: retention 0.9800 is below min 0.99 (last recorded 0.995)",
    ]
    assert b.violations(float("nan"), 1.0)  # NaN never passes


@pytest.mark.parametrize(
    "text, match",
    [
        ("[m.int8\n", "not valid TOML"),
        ("m = 3", "m: expected a table of techniques"),
        ("[m]\nint8 = 1", "m.int8: expected a table"),
        ("[m.int8]\nretention = { min = 0.99 }", r"m.int8.size_ratio: missing \{ max"),
        ("[m.int8]\nsize_ratio = { max = 'a' }\nretention = { min = 0.99 }", "m.int8.size_ratio.max: expected a finite number"),
        ("[m.int8]\nsize_ratio = { max = 0.3 }\nretention = { min = 0.99, last = true }", "m.int8.retention.last: expected a finite"),
        ("[m.int8]\nsize_ratio = { max = 0.3, maxx = 1 }\nretention = { min = 0.9 }", "m.int8.size_ratio.maxx: unknown key"),
        ("[m.int8]\nsize_ratio = { max = 0.3 }\nretention = { min = 0.9 }\nlatency = 1", "m.int8.latency: unknown key"),
        ("[m.int8]\nsize_ratio = { max = 0 }\nretention = { min = 0.9 }", "size_ratio.max must be > 0"),
        ("[m.int8]\nsize_ratio = { max = 1 }\nretention = { min = 9 }", r"retention.min must be in \[0, 1.5\]"),
    ],
)
def test_malformed_files_name_the_key(text, match):
    with pytest.raises(ThresholdsError, match=match):
        thresholds.parse(text, "t.toml")


def test_missing_pair_fails_loudly():
    with pytest.raises(ThresholdsError, match=r"no thresholds for registered pair 'm.fp32'.*\[m.fp32\]"):
        thresholds.lookup(thresholds.parse(GOOD), "m", "fp32")


def test_repository_file_covers_exactly_the_registered_default_pairs():
    table = thresholds.load()
    pairs = {f"{m}.{t}" for m, t in registry.pairs(tier="default")}
    assert pairs - set(table) == set(), "registered pairs without thresholds"
    assert set(table) - pairs == set(), "thresholds for pairs that are not registered"
    for b in table.values():
        assert b.last_size_ratio is not None and b.last_retention is not None, f"{b.key}: no last value"
