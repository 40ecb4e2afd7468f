"""compress.pair: a model x technique pair resolved once into one object."""

import dataclasses

import pytest

from compress import registry
from compress.pair import Pair, resolve, resolve_recipe
from compress.registry import UnknownNameError


def test_a_pair_is_resolved_once_and_its_models_pairs_share_one_recipe(monkeypatch):
    calls = []
    spec = registry.get_model("tiny_torch")
    counted = dataclasses.replace(spec, factory=lambda: calls.append(1) or spec.factory())
    monkeypatch.setitem(registry._MODELS, "tiny_torch", counted)
    a, b = resolve("tiny_torch", "onnx_int8"), resolve("tiny_torch", "onnx_int8")
    assert a is b and isinstance(a, Pair) and a.name == "tiny_torch.onnx_int8"
    assert resolve("tiny_torch", "dynamic_range").recipe is a.recipe and len(calls) == 1
    assert a.config == registry.pair_config("tiny_torch", "onnx_int8") and a.chain[-1] is a.config.steps()[-1]


def test_a_model_registered_again_is_resolved_again(monkeypatch):
    before = resolve("tiny_torch", "fp32")
    spec = registry.get_model("tiny_torch")
    monkeypatch.setitem(registry._MODELS, "tiny_torch", dataclasses.replace(spec))
    after = resolve("tiny_torch", "fp32")
    assert after is not before and after.spec is registry.get_model("tiny_torch")


def test_the_pair_knows_its_reference_chain_and_why_a_step_does_not_apply():
    assert resolve("tiny_torch", "onnx_int8").reference() == "onnx_fp32"
    assert resolve("tiny_torch", "dynamic_range").reference() == "fp32"
    assert resolve("tiny_torch", "fp32").is_reference and not resolve("tiny_torch", "int8").is_reference
    pruned = resolve("tiny_torch", "prune50")
    assert pruned.chain[-1].stage == "export" and len(pruned.chain) == len(pruned.config.steps()) + 1
    assert "does not support ChannelPruningConfig" in resolve("gpt2", "channels50").unsupported()
    assert resolve("gpt2", "fp32").unsupported() is None
    assert "does not apply to keras model 'tiny'" in resolve("tiny", "onnx_int8").not_applicable()
    assert resolve_recipe("gpt2") is resolve("gpt2", "fp32").recipe


def test_unknown_names_fail_naming_the_valid_ones():
    with pytest.raises(UnknownNameError, match="unknown model 'nope'"):
        resolve("nope", "fp32")
    with pytest.raises(UnknownNameError, match="unknown technique 'nope'"):
        resolve("tiny_torch", "nope")
