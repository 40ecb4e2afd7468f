"""compress.judging.propose: bounds derived from the drop they must catch, proven on real bootstrap judgements."""

import json

import numpy as np
import pytest

from compress.judging import propose, thresholds
from compress.cli import main
from compress.judging.stats import retention_bound


def _outcomes(n: int, seed: int = 0, disagree: float = 0.03):
    rng = np.random.default_rng(seed)
    fp32 = rng.random(n) < 0.85
    compressed = fp32.copy()
    flip = rng.random(n) < disagree  # a compressed model that disagrees both ways on 3% of examples
    compressed[flip] = ~compressed[flip]
    return compressed, fp32


def _row(compressed, fp32, **more) -> dict:
    est = retention_bound(compressed, fp32)
    return {"model": "m", "technique": "int8", "metric": "accuracy", "accuracy": float(compressed.mean()),
            "baseline_accuracy": float(fp32.mean()), "retention": est.point, "retention_upper": est.upper,
            "eval_images": len(fp32), "size_ratio": 0.26, "sparsity": 0.0, "reference": False, **more}  # fmt: skip


def _judge(floor: float, compressed, fp32) -> list[str]:
    est = retention_bound(compressed, fp32)
    bounds = thresholds.Bounds("m.int8", (thresholds.Bound("retention", "min", floor, None),))
    return bounds.violations({"retention": est.point, "retention_upper": est.upper})


def _plant(compressed, drop_points: float, seed: int = 1):
    """``compressed`` with ``drop_points`` of its examples flipped from correct to wrong."""
    out = compressed.copy()
    k = int(round(drop_points * len(out)))
    idx = np.random.default_rng(seed).choice(np.flatnonzero(out), size=k, replace=False)
    out[idx] = False
    return out


@pytest.mark.parametrize("n", [5_000, 10_000])
def test_the_rules_floor_fails_the_declared_drop_and_passes_the_unchanged_model(n):
    compressed, fp32 = _outcomes(n)
    p = propose.quality_bound("m.int8", "retention", _row(compressed, fp32))
    assert p.resolved and p.detect == 0.01 and p.kind == "min"
    assert _judge(p.value, compressed, fp32) == []  # unchanged: passes
    for seed in range(5):  # a 1-point drop, planted five ways: fails every time
        assert _judge(p.value, _plant(compressed, 0.01, seed), fp32), seed


def test_a_test_set_too_small_for_the_declared_drop_detects_the_smallest_it_resolves():
    compressed, fp32 = _outcomes(300)
    p = propose.quality_bound("m.int8", "retention", _row(compressed, fp32))
    assert not p.resolved and p.detect > 0.01
    assert "the smallest drop this test set resolves" in p.describes()
    assert _judge(p.value, compressed, fp32) == []
    assert _judge(p.value, _plant(compressed, p.detect + 0.01), fp32)


def test_perplexity_and_size_follow_their_own_margins():
    ppl = {"metric": "perplexity", "perplexity": 100.0, "baseline_perplexity": 100.0, "perplexity_lower": 99.0,
           "eval_images": 500}  # fmt: skip
    p = propose.quality_bound("lm.fp32", "perplexity", ppl)
    # 3% worse moves the lower bound to 99 x 1.03 = 101.97: the judge fails above the ceiling one step under it
    assert p.kind == "max" and p.value == 101.96
    s = propose.size_bound("m.int8", "size_ratio", {"size_ratio": 0.2554})
    assert s.value == 0.261 and s.kind == "max"


def test_proposals_compare_with_existing_bounds_and_never_replace_them():
    compressed, fp32 = _outcomes(5_000)
    row = _row(compressed, fp32)
    rule = propose.quality_bound("m.int8", "retention", row).value
    loose = thresholds.parse(f"[m.int8]\nretention = {{ min = {rule - 0.02:.3f}, last = 1.0 }}\n")
    entries, compared, unexplained = propose.propose([row], loose)
    assert entries == [] and unexplained == 1 and compared[0][4] == "looser"
    assert 'NO REASON' in propose.format_report(entries, compared, unexplained)
    why = thresholds.parse(f'[m.int8]\nretention = {{ min = {rule - 0.02:.3f}, last = 1.0, reason = "cross-CPU drift" }}\n')
    _, compared, unexplained = propose.propose([row], why)
    assert unexplained == 0 and "reason: cross-CPU drift" in propose.format_report([], compared, 0)
    strict = thresholds.parse(f"[m.int8]\nretention = {{ min = {rule + 0.001:.3f}, last = 1.0 }}\n")
    assert propose.propose([row], strict)[1][0][4] == "stricter"
    entries, _, _ = propose.propose([row, {**row, "technique": "planted"}], {})
    assert len(entries) == 1  # the self-test's rows are not pairs
    parsed = thresholds.parse(entries[0])["m.int8"]  # the proposal is a valid entry
    assert parsed["retention"].value == rule and parsed["size_ratio"].value == 0.266


def test_a_reason_is_a_non_empty_string_and_is_printed_with_a_violation():
    table = thresholds.parse('[m.int8]\nretention = { min = 0.99, last = 0.995, reason = "int8 kernels differ" }\n')
    out = table["m.int8"].violations({"retention": 0.9, "retention_upper": 0.95})
    assert "looser than the rule because int8 kernels differ" in out[0]
    with pytest.raises(thresholds.ThresholdsError, match="reason must be a non-empty string"):
        thresholds.parse('[m.int8]\nretention = { min = 0.99, last = 0.995, reason = "" }\n')


def test_the_cli_prints_the_proposal_and_check_fails_on_an_unexplained_loose_bound(tmp_path, capsys):
    compressed, fp32 = _outcomes(5_000)
    row = {**_row(compressed, fp32), "model": "mobilenetv2", "technique": "int8"}
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"benchmarks": [{"name": "test_pair[mobilenetv2.int8]", "extra_info": row,
                                               "stats": {"median": 0.001}}]}))  # fmt: skip
    team = tmp_path / "team.toml"
    team.write_text("[mobilenetv2.int8]\nsize_ratio = { max = 0.5, last = 0.26 }\nretention = { min = 0.9, last = 1.0 }\n")
    assert main(["thresholds", "propose", str(run), "--thresholds", str(team)]) == 0
    out = capsys.readouterr().out
    assert "mobilenetv2.int8.retention: min 0.9" in out and "looser" in out
    assert main(["thresholds", "propose", str(run), "--thresholds", str(team), "--check"]) == 1
    assert main(["thresholds", "propose", str(tmp_path / "missing.json")]) == 2
