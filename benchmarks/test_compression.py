"""The merge gate: every registered model x technique pair of the tier.

Each test times batch-1 inference of the pair's shipped artefact (pytest-benchmark)
and asserts the pair's size-ratio and retention bounds from thresholds.toml.
"""

from compress import thresholds


def test_pair(benchmark, runner, bounds_table, record, model, technique):
    bounds = thresholds.lookup(bounds_table, model, technique)
    result = runner.evaluate(model, technique)
    benchmark.extra_info.update(result.metrics())
    benchmark.extra_info.update(model=model, technique=technique, config=result.config,
                                model_key=result.model_key, runtime=result.runtime,
                                versions=result.versions, machine=result.machine)  # fmt: skip

    benchmark(runner.latency_fn(model, technique))

    record(f"{model}.{technique}", {**result.metrics(), "model": model, "technique": technique,
                                    "latency_ms": benchmark.stats.stats.median * 1e3})  # fmt: skip
    failures = bounds.violations(result.metrics())
    assert not failures, "\n".join(failures)
