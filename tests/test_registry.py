import dataclasses

import numpy as np
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
    assert "mobilenetv2" in registry.list_models(tier="full")
    # the gate runs MobileNetV2's pairs on its gate recipe, a model of its own
    assert "mobilenetv2" not in registry.list_models(tier="gate")
    assert "mobilenetv2_gate" in registry.list_models(tier="gate")
    assert "mobilenetv2_gate" not in registry.list_models(tier="full")
    assert "efficientnet_lite0" in registry.list_models(tier="full") and "efficientnet_lite0" in registry.list_models(tier="gate")
    assert "inceptionv3" in registry.list_models(tier="full")
    assert "inceptionv3" not in registry.list_models(tier="gate")
    assert "tiny" in registry.list_models(tier="unit")
    assert "tiny" not in registry.list_models(tier="full") + registry.list_models(tier="gate")
    assert registry.list_models("mobile*", tier="full") == ["mobilenetv2"]


def test_unknown_tier_lists_valid_ones():
    with pytest.raises(UnknownNameError, match="Did you mean 'gate'"):
        registry.list_models(tier="gatee")


def full_model(name: str) -> str:
    """The full model a gate model's recipe cuts down (itself for a model without a gate recipe)."""
    return registry.get_model(name).gate_of or name


def test_gate_is_a_subset_of_full_declared_per_model():
    gate, full = registry.pairs(tier="gate"), registry.pairs(tier="full")
    assert {(full_model(m), t) for m, t in gate} < set(full)
    assert ("efficientnet_lite0", "onnx_int8") in gate and ("efficientnet_lite0", "int8") not in gate
    # MobileNetV2 runs every Keras technique, each in one of its settings
    keras = registry.list_techniques(framework="keras", task="image-classification")
    assert {variant(t) for m, t in gate if m == "mobilenetv2_gate"} == {variant(t) for t in keras}
    assert ("mobilenetv2_gate", "prune80") not in gate and ("mobilenetv2_gate", "prune50") in gate


def test_gate_recipes_cut_only_the_training_budget():
    """A gate recipe is its full recipe with the declared fields replaced: the same architecture,
    data, metric and export path (same recipe type, framework, task), and a model of its own."""
    gated = [m for m in registry.list_models(tier="gate") if registry.get_model(m).gate_of]
    assert {registry.get_model(m).gate_of for m in gated} == {"mobilenetv2", "resnet18", "gpt2", "yolov8n"}
    for m in gated:
        spec, full = registry.get_model(m), registry.get_model(registry.get_model(m).gate_of)
        gate_recipe, full_recipe = spec.recipe(), full.recipe()
        assert type(gate_recipe) is type(full_recipe) and gate_recipe != full_recipe
        assert (spec.framework, spec.task, spec.dataset) == (full.framework, full.task, full.dataset)
        assert spec.family == m != full.family and spec.tier == "gate" and not full.gate
        changed = {f.name for f in dataclasses.fields(full_recipe)
                   if getattr(gate_recipe, f.name) != getattr(full_recipe, f.name)}  # fmt: skip
        assert changed and changed <= {"epochs", "train_size", "fine_tune_size", "canvases", "imgsz", "probe_train_size",
                                      "test_size"}, changed  # fmt: skip
        assert changed <= set(spec.description.split("with ", 1)[1].replace(",", " ").replace("=", " ").split())
    # technique settings: the full recipe's, with the gate's shorter recovery where declared
    assert registry.pair_config("yolov8n_gate", "channels50").fine_tune_epochs == 2.0
    assert registry.pair_config("yolov8n", "channels50").fine_tune_epochs == 4.0
    gate, full = registry.pair_config("resnet18_gate", "prune50"), registry.pair_config("resnet18", "prune50")
    assert (gate.fine_tune_epochs, full.fine_tune_epochs) == (1.0, 3.0)
    assert gate.replace(fine_tune_epochs=3.0) == full and gate.learning_rate == 2e-4  # the model's own rate kept
    assert registry.pair_config("resnet18_gate", "int8") == registry.pair_config("resnet18", "int8")
    assert (registry.pair_config("gpt2_gate", "lora").epochs, registry.pair_config("gpt2", "lora").epochs) == (4.0, 8.0)
    assert len(registry.get_model("resnet18_gate").recipe().data("test")[1]) == 5_000


def test_gate_recipe_declarations_are_validated():
    with pytest.raises(ValueError, match="need gate="):
        registry.register_model(framework="torch", task="x", dataset="y", gate_recipe={"epochs": 1},
                                name="_gate_recipe_no_gate")(lambda: None)  # fmt: skip
    with pytest.raises(ValueError, match="non-empty dict"):
        registry.register_model(framework="torch", task="x", dataset="y", gate=True, gate_recipe={},
                                name="_gate_recipe_empty")(lambda: None)  # fmt: skip
    with pytest.raises(ValueError, match="gate_settings need a gate_recipe"):
        registry.register_model(framework="torch", task="x", dataset="y", gate=True,
                                gate_settings={"Int8Config": {"calibration_size": 8}},
                                name="_gate_settings_alone")(lambda: None)  # fmt: skip
    assert "_gate_recipe_no_gate" not in registry.list_models()


def test_a_gate_recipe_naming_an_unknown_field_says_which_are_valid(monkeypatch):
    from compress.models.vision.torch_classifier import TorchImageClassifier

    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    registry.register_model(framework="torch", task="image-classification", dataset="fashion-mnist", gate=True,
                            gate_recipe={"epoch": 1}, name="_team_cnn")(lambda: TorchImageClassifier("tiny_torch"))  # fmt: skip
    with pytest.raises(UnknownNameError, match="unknown field of TorchImageClassifier in gate_recipe of '_team_cnn' "
                                               "'epoch'. Did you mean 'epochs'"):  # fmt: skip
        registry.get_model("_team_cnn_gate").recipe()
    assert registry.pairs(tier="gate", model="_team_cnn*") == [("_team_cnn_gate", t) for t in
                                                              registry.list_techniques(framework="torch", task="image-classification")]  # fmt: skip


def test_gate_covers_every_technique_handler_of_the_full_tier():
    """Every technique handler (config type x framework) a full-tier pair runs is run by some
    gate pair, so every runtime an export loads in is exercised; every technique name is gated."""

    def handlers(pairs):
        return {(type(step), registry.get_model(m).framework)
                for m, t in pairs for step in registry.get_technique(t).config.steps()}  # fmt: skip

    gate = registry.pairs(tier="gate")
    missing = handlers(registry.pairs(tier="full")) - handlers(gate)
    assert not missing, f"handlers no gate pair runs: {sorted((c.__name__, fw) for c, fw in missing)}"
    # every technique name is gated, or the same technique at another numeric setting is (heads25 by
    # heads50, each of its own task): the gate runs the code of every technique once; settings are
    # the full tier's to sweep
    gated = {variant(t) for _, t in gate}
    ungated = [t for t in registry.list_techniques() if variant(t) not in gated]
    assert not ungated, f"techniques the gate runs in no variant: {ungated}"


def variant(technique: str) -> tuple:
    """What a technique runs, less its numeric settings: step types and their non-numeric fields."""

    def fields(step):
        return tuple((f.name, getattr(step, f.name)) for f in dataclasses.fields(step)
                     if isinstance(getattr(step, f.name), (str, bool)))  # fmt: skip

    return tuple((type(s).__name__, fields(s)) for s in registry.get_technique(technique).config.steps())


def test_every_gate_model_plants_its_self_test_in_one_of_its_gated_fp32_exports():
    for name in registry.list_models(tier="gate"):
        spec = registry.get_model(name)
        assert spec.in_gate(spec.planted_in), (name, spec.planted_in)
        assert registry.pair_config(name, spec.planted_in).is_fp32_reference(), (name, spec.planted_in)
    assert registry.get_model("yolov8n_gate").planted_in == "onnx_fp32"  # not its 16 s LiteRT conversion


def test_technique_variants_differ_only_in_numeric_settings():
    assert variant("heads25") == variant("heads50") != variant("ffn50")
    assert variant("prune50") == variant("prune80") != variant("prune50_int8")
    assert variant("onnx_int8") != variant("onnx_dynamic")


def test_gate_declarations_are_validated():
    with pytest.raises(ValueError, match="only full-tier models join the gate"):
        registry.register_model(framework="keras", task="x", dataset="y", tier="unit", gate=True,
                                name="_gate_unit")(lambda: None)  # fmt: skip
    with pytest.raises(ValueError, match="gate pairs are declared with gate="):
        registry.register_model(framework="keras", task="x", dataset="y", tier="gate",
                                name="_gate_tier")(lambda: None)  # fmt: skip
    with pytest.raises(ValueError, match="tuple of technique names"):
        registry.register_model(framework="keras", task="x", dataset="y", gate="int8",
                                name="_gate_str")(lambda: None)  # fmt: skip


def test_gate_naming_an_inapplicable_technique_is_an_error(monkeypatch):
    spec = registry.get_model("mobilenetv2_gate")
    monkeypatch.setitem(registry._MODELS, "mobilenetv2_gate", dataclasses.replace(spec, gate=("onnx_int8",)))
    with pytest.raises(ValueError, match="'onnx_int8' in the gate, but it does not apply to keras image-classification"):
        registry.pairs(tier="gate")
    monkeypatch.setitem(registry._MODELS, "mobilenetv2_gate", dataclasses.replace(spec, gate=("int4",)))
    with pytest.raises(UnknownNameError, match="unknown technique 'int4'"):
        registry.pairs(tier="gate")


def test_unknown_model_lists_valid_names_and_suggests():
    with pytest.raises(UnknownNameError) as err:
        registry.get_model("mobilenetv3")
    msg = str(err.value)
    assert "'mobilenetv3'" in msg and "Did you mean 'mobilenetv2'" in msg and "tiny" in msg
    assert msg.endswith("No plugin was loaded (none named by --plugin, $COMPRESS_BENCH_PLUGINS or a "
                        "compress_bench.plugins entry point): a team's models register when their module is "
                        "imported (README: Your own models).")  # fmt: skip


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
    # onnx: a model that is an ONNX graph already (compress/models/vision/ready_onnx.py) is quantized as it is
    assert registry.get_technique("onnx_int8").frameworks() == {"onnx", "torch", "ultralytics"}
    assert registry.get_technique("int8").frameworks() == {"keras", "torch", "ultralytics"}
    assert registry.handler_for(Int8Config(), "keras")
    with pytest.raises(NotImplementedError, match="no implementation for 'jax'"):
        registry.handler_for(Int8Config(), "jax")


def test_pairs_cover_every_applicable_combination():
    pairs = registry.pairs(tier="full")
    expected = [
        (m, t)
        for m in registry.list_models(tier="full")
        for t in registry.list_techniques()
        if registry.get_model(m).framework in registry.get_technique(t).frameworks()
        and registry.get_technique(t).applies_to(registry.get_model(m).task)
    ]
    assert pairs == expected and len(pairs) >= 7


def test_task_specific_techniques_pair_only_with_their_task():
    full = registry.pairs(tier="full")
    assert ("minilm", "heads25") in full and ("resnet18", "heads25") not in full
    assert registry.get_technique("heads50").tasks == ("text-classification", "language-modeling")
    assert ("gpt2", "full_ft") in full and ("minilm", "full_ft") not in full  # a classifier's is its fp32
    assert "heads25" in registry.list_techniques(framework="torch")
    assert "heads25" not in registry.list_techniques(framework="torch", task="image-classification")


def test_describe_traces_type_version_and_fields():
    d = registry.get_technique("prune50_int8").config.describe()
    assert d["type"] == "PipelineConfig" and d["version"] == 1
    assert [s["type"] for s in d["fields"]["chain"]] == ["MagnitudePruningConfig", "Int8Config"]
    assert d["fields"]["chain"][1]["fields"] == {"calibration_size": 500}


@given(st.integers(1, 100_000))
def test_int8_accepts_calibration_sizes_in_range(n):
    assert Int8Config(calibration_size=n).calibration_size == n


@given(st.one_of(st.integers(max_value=0), st.integers(min_value=100_001), st.floats(), st.booleans(), st.text()))
def test_int8_rejects_invalid_calibration_sizes_naming_the_field(n):
    with pytest.raises(ValueError, match=r"calibration_size must be an integer in \[1, 100000\]"):
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


def test_model_settings_apply_to_every_step_of_that_type_chains_included():
    p50 = registry.pair_config("resnet18", "prune50")
    chain = registry.pair_config("resnet18", "prune50_int8")
    assert isinstance(p50, MagnitudePruningConfig) and p50.learning_rate == 2e-4
    assert chain.steps()[0] == p50  # the chain reuses exactly prune50's fine-tuned model
    assert registry.pair_config("resnet18", "channels50") == registry.get_technique("channels50").config
    assert registry.pair_config("mobilenetv2", "prune50") == registry.get_technique("prune50").config


def test_model_settings_are_validated_when_applied(monkeypatch):
    spec = registry.get_model("resnet18")
    bad = dataclasses.replace(spec, settings=(("MagnitudePruningConfig", (("learning_rat", 1e-4),)),))
    monkeypatch.setitem(registry._MODELS, "resnet18", bad)
    with pytest.raises(UnknownNameError, match="Did you mean 'learning_rate'"):
        registry.pair_config("resnet18", "prune50")
    bad = dataclasses.replace(spec, settings=(("MagnitudePruningConfig", (("learning_rate", 5.0),)),))
    monkeypatch.setitem(registry._MODELS, "resnet18", bad)
    with pytest.raises(ValueError, match="learning_rate must be"):
        registry.pair_config("resnet18", "prune50")


def test_every_model_setting_names_a_config_type_its_pairs_use():
    for m in registry.list_models():
        spec = registry.get_model(m)
        used = {type(s).__name__ for t in registry.list_techniques(framework=spec.framework)
                for s in registry.get_technique(t).config.steps()}  # fmt: skip
        for type_name, _ in spec.settings:
            assert type_name in used, f"{m}: setting for {type_name}, which none of its techniques uses"


def test_calibration_beyond_the_models_calib_split_is_an_error_naming_both_counts():
    from compress.techniques.quantization import calibration_inputs

    class Recipe:
        def data(self, split):
            assert split == "calib"  # never another split
            return np.zeros((30, 2), np.float32), np.zeros(30, np.int64)

    assert len(calibration_inputs(Recipe(), 30)) == 30
    with pytest.raises(ValueError, match="calibration_size 31 is more than the 30 inputs of this model's calib split"):
        calibration_inputs(Recipe(), 31, "int8")
