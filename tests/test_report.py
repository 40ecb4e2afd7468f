from compress.report import format_table, with_latency_ratios


def test_latency_ratio_is_against_the_same_models_fp32_row():
    rows = with_latency_ratios([
        {"model": "a", "technique": "fp32", "latency_ms": 2.0},
        {"model": "a", "technique": "int8", "latency_ms": 1.0},
        {"model": "b", "technique": "int8", "latency_ms": 5.0},
    ])  # fmt: skip
    assert [r.get("latency_ratio") for r in rows] == [1.0, 0.5, None]


def test_table_shows_only_columns_with_values_and_dashes_for_gaps():
    text = format_table([
        {"model": "a", "technique": "fp32", "size_ratio": 1.0, "latency_ms": 2.0},
        {"model": "a", "technique": "int8", "size_ratio": 0.25},
    ])  # fmt: skip
    lines = text.splitlines()
    assert lines[0].split() == ["model", "technique", "size", "p50", "ms", "vs", "fp32"]
    assert lines[3].split() == ["a", "int8", "0.250", "-", "-"]
