"""The merge gate: every registered model x technique pair of the tier.

Each test times batch-1 inference of the pair's shipped artefact (pytest-benchmark)
and asserts the pair's bounds from thresholds.toml: size ratio, retention (judged
at a stated confidence on the per-example outcomes: compress/judging/stats.py), and,
where a technique exists to be faster (channel pruning), ``latency_ratio``: its
latency over the same runtime's fp32 export, timed call by call in alternation with
it in the pair's one timed pass (recorded for every compressed pair, bounded where the file says).
A pair takes the rounds that pin its median (ratio) to within 3% at 95% confidence, from the
noise of its warm-up, within a time cap of about a second (compress/judging/latency.py: Paired); its
benchmark's extra_info records the rounds needed, the cap and the precision reached.
A model served in batches (its recipe's ``throughput_batch``: the language models)
also records each artefact's examples per second at that batch (``throughput``),
where its runtime runs a batch as one call.
"""

from compress.judging import thresholds
from compress.judging.latency import Paired, throughput
from compress.pair import resolve


def test_pair(benchmark, runner, bounds_table, record, pair_profile, runnable, model, technique):
    runnable(model, technique)  # skips saying why; in the gate, missing data or weights fail
    pair = resolve(model, technique)  # spec, recipe, config and chain, resolved once
    result = runner.evaluate(model, technique)
    metrics = result.metrics()
    fn = runner.latency_fn(model, technique)
    reference = pair.reference()
    config = pair.config
    # robust to machine load: a compressed artefact's timed calls alternate with its reference's, in one
    # pass that is both this pair's benchmark and its ratio; rounds sized to the warm-up's noise
    ref_fn = None if config.is_fp32_reference() else runner.latency_fn(model, reference)
    with pair_profile.phase("latency"):
        paired = Paired(fn, ref_fn)  # warmed up, alternating
    spec = pair.spec
    batch = pair.recipe.throughput_batch  # where a model is served in batches
    if batch:
        batch_fn = runner.throughput_fn(model, technique, batch)
        if batch_fn is not None:
            with pair_profile.phase("latency"):
                metrics.update(throughput=throughput(batch_fn, batch), throughput_batch=batch)
    benchmark.extra_info.update(metrics)
    benchmark.extra_info.update(model=model, technique=technique, family=spec.family,
                                reference=config.is_fp32_reference(), reference_technique=reference,
                                config=result.config, model_key=result.model_key,
                                runtime=result.runtime, runtime_version=result.runtime_version,
                                versions=result.versions, machine=result.machine,
                                device=result.device, device_name=result.device_name)  # fmt: skip

    with pair_profile.phase("latency"):
        benchmark.pedantic(fn, setup=paired.setup, rounds=paired.rounds)
        timed = benchmark.stats.stats.data
        benchmark.extra_info.update(latency_rounds=paired.rounds, latency_rounds_needed=paired.needed,
                                    latency_rounds_cap=paired.cap, latency_halfwidth=paired.halfwidth(timed))  # fmt: skip
        if ref_fn is not None:
            ratio, t, t_ref = paired.ratio(timed)
            metrics["latency_ratio"] = ratio
            metrics["latency_interleaved_ms"] = {technique: t * 1e3, reference: t_ref * 1e3}
            benchmark.extra_info.update(latency_ratio=ratio, latency_interleaved_ms=metrics["latency_interleaved_ms"])

    record(f"{model}.{technique}", {**metrics, "model": model, "technique": technique,
                                    "family": spec.family, "runtime": result.runtime, "device": result.device,
                                    "reference": config.is_fp32_reference(),
                                    "latency_ms": benchmark.stats.stats.median * 1e3})  # fmt: skip
    bounds = thresholds.lookup(bounds_table, model, technique)  # after measuring: a new pair shows its numbers
    failures = bounds.violations(metrics, device=result.device)
    assert not failures, "\n".join(failures)
