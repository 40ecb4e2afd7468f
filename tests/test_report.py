from compress.reporting.report import format_table, with_latency_ratios


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
    assert lines[0].split() == ["model", "technique", "size", "p50", "ms", "vs", "own", "fp32",
                                "vs", "best", "fp32*"]  # fmt: skip
    assert lines[3].split() == ["a", "int8", "0.250", "-", "-", "-"]
    assert lines[4].startswith("* medians of separate tests, not timed interleaved")


def test_a_ratio_not_timed_interleaved_is_marked_and_a_timed_one_is_not():
    rows = [{"model": "a", "technique": "fp32", "latency_ms": 2.0, "reference": True},
            {"model": "a", "technique": "int8", "latency_ms": 1.0, "reference": False},  # no interleaved ratio
            {"model": "a", "technique": "prune50", "latency_ms": 1.5, "reference": False, "latency_ratio": 0.7,
             "quality_from": "stored 2026-12-07T09:00:00Z"}]  # fmt: skip
    lines = format_table(rows).splitlines()
    assert lines[0].split()[-1] == "quality"
    assert "0.50x*" in lines[3] and "0.70x" in lines[4] and "0.70x*" not in lines[4]
    assert "1.00x*" not in lines[2]  # a reference against itself
    assert lines[4].split()[-1] == "2026-12-07T09:00:00Z" and lines[3].split()[-1] == "-"


def test_best_fp32_is_the_fastest_reference_of_the_family_across_runtimes():
    rows = with_latency_ratios([
        {"model": "t", "technique": "fp32", "runtime": "torch", "latency_ms": 4.0, "reference": True},
        {"model": "t", "technique": "onnx_fp32", "runtime": "onnxruntime", "latency_ms": 2.0,
         "reference": True},
        {"model": "t", "technique": "int8", "runtime": "torch", "latency_ms": 3.0, "reference": False},
        {"model": "t", "technique": "onnx_int8", "runtime": "onnxruntime", "latency_ms": 1.0,
         "reference": False},
        {"model": "t_k", "family": "t", "technique": "fp32", "runtime": "litert", "latency_ms": 2.5,
         "reference": True},
    ])  # fmt: skip
    own = [r["latency_ratio"] for r in rows]
    best = [r["latency_ratio_best"] for r in rows]
    assert own == [1.0, 1.0, 0.75, 0.5, 1.0]
    assert best == [2.0, 1.0, 1.5, 0.5, 1.25]
    assert {r["best_fp32"] for r in rows} == {"t.onnx_fp32"}


def test_slower_artefacts_are_named_plainly():
    from compress.reporting.report import format_slower

    rows = [
        {"model": "m", "technique": "fp32", "runtime": "litert", "latency_ms": 1.0},
        {"model": "m", "technique": "dynamic_range", "runtime": "litert", "latency_ms": 1.7},
        {"model": "m", "technique": "int8", "runtime": "litert", "latency_ms": 0.5},
    ]
    text = format_slower(rows)
    assert "m.dynamic_range (litert): 1.70x" in text and "int8" not in text
    assert "No compressed" in format_slower(rows[::2])


def test_artefacts_that_compress_nothing_are_named_plainly():
    from compress.reporting.report import format_slower

    rows = [
        {"model": "r", "technique": "fp32", "runtime": "torch-eager", "latency_ms": 1.0, "size_ratio": 1.0},
        {"model": "r", "technique": "dynamic_range", "runtime": "torch-eager", "latency_ms": 0.9,
         "size_ratio": 0.9997, "gzip_ratio": 0.9998},
        {"model": "r", "technique": "prune50", "runtime": "torch-eager", "latency_ms": 1.0,
         "size_ratio": 1.0, "gzip_ratio": 0.6},  # smaller on the wire: sparsity is the point
        {"model": "r", "technique": "int8", "runtime": "torch-eager", "latency_ms": 0.5, "size_ratio": 0.26},
    ]  # fmt: skip
    text = format_slower(rows)
    assert "Compressed nothing" in text and "r.dynamic_range (torch-eager): size 1.000" in text
    assert "prune50" not in text and "r.int8" not in text
    assert "Compressed nothing" not in format_slower([rows[0], rows[3]])
