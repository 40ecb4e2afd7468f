"""The gate's self-test: a regression planted in a technique fails the gate; a change the test set
cannot resolve passes it.

For every model of the gate (run after its pairs, on the same trained weights), a magnitude
pruner with its sort inverted zeroes the largest half of each weight tensor
(:mod:`compress.techniques.planted`): the model must fail even the loosest retention floor its
gated pairs declare. The same pruner, sorted correctly at 1%, must pass the strictest one (floors
above 1, an adaptation's gain over its base model, do not judge a change of the base model). Both
are judged as every pair is: by the one-sided 95% confidence bound of the paired bootstrap on the
per-example outcomes. The benchmark times the judge itself.
"""

from compress import registry
from compress.judging import thresholds
from compress.techniques import planted


def test_planted_regression(benchmark, runner, bounds_table, record_planted, runnable, gate_model):
    runnable(gate_model, registry.get_model(gate_model).planted_in)  # the gate's own models: missing data or weights fail
    bounds = [b for _, t in registry.pairs(tier="gate", model=gate_model)
              for b in thresholds.lookup(bounds_table, gate_model, t).bounds]  # fmt: skip
    floors = sorted((b for b in bounds if b.metric == "retention" and b.value <= 1.0), key=lambda b: b.value)
    assert floors, f"{gate_model}: no gated pair declares a retention floor of at most 1 to judge a planted change"
    loosest, strictest = floors[0], floors[-1]
    with runner.profile.pair(f"{gate_model}.{planted.TECHNIQUE}"):  # evaluated by a prepare worker, stored
        wrong, unresolvable = planted.evaluate(runner, gate_model)
    judge_wrong = thresholds.Bounds(f"{gate_model}.planted_wrong_half", (loosest,))
    judge_small = thresholds.Bounds(f"{gate_model}.planted_smallest_1pct", (strictest,))
    caught = benchmark.pedantic(judge_wrong.violations, args=(wrong,), rounds=50)  # microseconds a call
    passed = judge_small.violations(unresolvable)
    benchmark.extra_info.update(model=gate_model, technique="planted", family=registry.get_model(gate_model).family,
                                wrong_half=wrong, smallest_1pct=unresolvable,
                                loosest_floor=loosest.value, strictest_floor=strictest.value)  # fmt: skip
    record_planted(gate_model, {"metric": wrong["metric"], "baseline": wrong[f"baseline_{wrong['metric']}"],
                                "wrong": wrong, "small": unresolvable, "loosest": loosest.value,
                                "strictest": strictest.value, "caught": bool(caught), "passed": not passed})  # fmt: skip
    assert caught, (f"{gate_model}: the planted regression (the largest half of every weight tensor zeroed) "
                    f"passed the loosest retention floor {loosest.value}: retention {wrong['retention']:.4f}, "
                    f"upper bound {wrong['retention_upper']:.4f}")  # fmt: skip
    assert not passed, "\n".join(["a change the test set cannot resolve (the smallest 1% of each weight tensor "
                                  "zeroed) failed the strictest floor:", *passed])  # fmt: skip
