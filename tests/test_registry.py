import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compress import registry
from compress.registry import UnknownNameError
from compress.techniques.pipeline import PipelineConfig
from compress.techniques.pruning import MagnitudePruningConfig
from compress.techniques.quantization import Float16Config, Int8Config
from tests.strategies import bad_sparsities, sparsities


def test_models_are_registered_once_with_tiers():
    assert "mobilenetv2" in registry.list_models(tier="default")
    assert "tiny" in registry.list_models(tier="unit")
    assert "tiny" not in registry.list_models(tier="default")
    assert registry.list_models("mobile*", tier="default") == ["mobilenetv2"]


def test_unknown_model_lists_valid_names_and_suggests():
    with pytest.raises(UnknownNameError) as err:
        registry.get_model("mobilenetv3")
    msg = str(err.value)
    assert "'mobilenetv3'" in msg and "Did you mean 'mobilenetv2'" in msg and "tiny" in msg


def test_unknown_technique_lists_valid_names():
    with pytest.raises(UnknownNameError, match="prune50_int8"):
        registry.get_technique("int4")


def test_duplicate_registration_is_rejected():
    with pytest.raises(ValueError, match="already registered"):
        registry.register_model(framework="keras", task="x", dataset="y", name="tiny")(lambda: None)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_technique("int8", Int8Config(), "dup")


def test_frameworks_are_derived_from_handlers():
    assert registry.get_technique("prune50_int8").frameworks() == {"keras", "torch"}
    assert registry.get_technique("onnx_int8").frameworks() == {"torch"}
    assert registry.handler_for(Int8Config(), "keras")
    with pytest.raises(NotImplementedError, match="no implementation for 'jax'"):
        registry.handler_for(Int8Config(), "jax")


def test_pairs_cover_every_applicable_combination():
    pairs = registry.pairs(tier="default")
    expected = [
        (m, t)
        for m in registry.list_models(tier="default")
        for t in registry.list_techniques()
        if registry.get_model(m).framework in registry.get_technique(t).frameworks()
    ]
    assert pairs == expected and len(pairs) >= 7


def test_describe_traces_type_version_and_fields():
    d = registry.get_technique("prune50_int8").config.describe()
    assert d["type"] == "PipelineConfig" and d["version"] == 1
    assert [s["type"] for s in d["fields"]["chain"]] == ["MagnitudePruningConfig", "Int8Config"]
    assert d["fields"]["chain"][1]["fields"] == {"calibration_size": 500}


@given(st.integers(1, 5000))
def test_int8_accepts_calibration_sizes_in_range(n):
    assert Int8Config(calibration_size=n).calibration_size == n


@given(st.one_of(st.integers(max_value=0), st.integers(min_value=5001), st.floats(), st.booleans(), st.text()))
def test_int8_rejects_invalid_calibration_sizes_naming_the_field(n):
    with pytest.raises(ValueError, match=r"calibration_size must be an integer in \[1, 5000\]"):
        Int8Config(calibration_size=n)


@given(sparsities)
def test_pruning_accepts_valid_sparsity(s):
    assert MagnitudePruningConfig(final_sparsity=s).final_sparsity == s


@given(bad_sparsities)
def test_pruning_rejects_invalid_sparsity(s):
    with pytest.raises(ValueError, match="final_sparsity must be a number in"):
        MagnitudePruningConfig(final_sparsity=s)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Int8Config().calibration_size = 3


def test_pipeline_rejects_export_before_the_end_and_short_chains():
    with pytest.raises(ValueError, match="only the last step"):
        PipelineConfig((Int8Config(), MagnitudePruningConfig()))
    with pytest.raises(ValueError, match="at least 2 steps"):
        PipelineConfig((Int8Config(),))
    with pytest.raises(ValueError, match="non-pipeline"):
        PipelineConfig((MagnitudePruningConfig(), PipelineConfig((MagnitudePruningConfig(), Float16Config()))))


def test_replace_validates_and_reaches_pipeline_steps():
    p = registry.get_technique("prune50_int8").config.replace(calibration_size=100, final_sparsity=0.6)
    assert p.chain[0].final_sparsity == 0.6 and p.chain[1].calibration_size == 100
    with pytest.raises(UnknownNameError, match="Valid: calibration_size"):
        Int8Config().replace(calib=3)
    with pytest.raises(UnknownNameError, match="no step of this pipeline has field 'alpha'"):
        p.replace(alpha=1)
    with pytest.raises(ValueError, match="calibration_size"):
        p.replace(calibration_size=0)
