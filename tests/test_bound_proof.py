"""Every gated quality bound catches the drop it declares: planted in the kept outcomes of a real run.

``results/outcomes/amd-epyc-2core.json`` holds the per-example outcomes of the gate's pairs and of
their fp32 references, from a cold gate on a 2-core AMD EPYC (``python -m compress thresholds
keep-outcomes``). Nothing is trained or run here: the judge only (compress/judging/proof.py).
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from compress import registry
from compress.judging import proof, thresholds

KEPT = Path(__file__).resolve().parent.parent / "results" / "outcomes" / "amd-epyc-2core.json"


@pytest.fixture(scope="module")
def kept():
    return proof.load(KEPT)


@pytest.fixture(scope="module")
def table():
    return thresholds.load_merged()


@pytest.fixture(scope="module")
def verdicts(kept, table):
    return proof.prove(kept, table)


def test_every_gated_pair_with_a_quality_bound_has_kept_outcomes_or_says_why_not(kept, table):
    held = set(kept["pairs"]) | set(kept["not_planted"])
    for model, technique in registry.pairs(tier="gate"):
        key = f"{model}.{technique}"
        bounds = table.get(key)
        metric = registry.get_model(model).recipe().metric
        if bounds is None or not any(b.metric in ("retention", metric) for b in bounds.bounds):
            continue
        assert key in held, (f"{key}: no kept outcomes in {KEPT.name}; after a gate run, keep them with "
                             f"python -m compress thresholds keep-outcomes --out {KEPT.relative_to(KEPT.parents[2])}")  # fmt: skip


def test_unchanged_outcomes_pass_and_a_planted_drop_of_the_declared_size_fails(verdicts):
    found, skipped = verdicts
    assert len(found) >= 30 and all(why for why in skipped.values())
    for v in found:
        assert v.unchanged_passes, f"{v.pair}: {v.metric} {v.kind} {v.bound} fails on its own kept outcomes ({v.value:.4f})"
        if v.reason is None:  # a bound at the rule catches the declared drop
            assert v.planted_fails, (f"{v.pair}: a planted drop of {v.show(v.declared)} passes {v.metric} {v.kind} "
                                     f"{v.bound} (smallest caught: {v.show(v.detectable)})")  # fmt: skip
        else:  # set on a worse run (its reason says so): it still catches a drop, of the size the table gives
            assert v.detectable < 3 * v.declared, (v.pair, v.show(v.detectable))


def test_a_bound_looser_than_the_rule_lets_the_declared_drop_through(kept, table):
    """The proof can fail: the same floors lowered by 2 points no longer catch a 1-point drop."""
    pair = "resnet18_gate.int8"
    b = table[pair]["retention"]
    loose = {pair: thresholds.Bounds(pair, (dataclasses.replace(b, value=b.value - 0.02),))}
    (v,), _ = proof.prove({"pairs": {pair: kept["pairs"][pair]}}, loose)
    assert v.unchanged_passes and not v.planted_fails and v.detectable > v.declared


def test_planting_is_exact_and_seeded():
    out = np.array([True] * 90 + [False] * 10)
    worse = proof.plant("accuracy", out, 0.05)
    assert worse.sum() == 85 and not (worse & ~out).any()  # only correct outcomes turned wrong
    np.testing.assert_array_equal(worse, proof.plant("accuracy", out, 0.05))
    losses = np.log(np.array([100.0, 200.0]))
    np.testing.assert_allclose(np.exp(proof.plant("perplexity", losses, 0.03)), [103.0, 206.0])
    np.testing.assert_allclose(proof.plant("psnr", np.array([30.0, 31.0]), 0.3), [29.7, 30.7])
    with pytest.raises(ValueError, match="ranked over every detection"):
        proof.plant("map50_95", np.zeros((2, 2)), 0.01)
