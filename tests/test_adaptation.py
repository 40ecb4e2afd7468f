"""Adaptation (compress/techniques/adaptation.py): LoRA adapters and full fine-tuning through the registry."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from compress.storage.cache import WeightsCache  # noqa: E402
from compress.models.text.causal_lm import CausalLM  # noqa: E402
from compress.registry import get_technique, list_techniques  # noqa: E402
from compress.techniques.adaptation import AdaptationConfig, adaptable, adapter_files  # noqa: E402


def _small_lm():
    """The GPT-2 recipe's own architecture at a toy size (Conv1D projections as nn.Linear, wrapped)."""
    return CausalLM(vocab_size=50, block=16, layers=2, width=16, heads=2).build()


def test_bad_configs_are_refused_naming_the_field():
    with pytest.raises(ValueError, match="method"):
        AdaptationConfig("qlora")
    with pytest.raises(ValueError, match="rank"):
        AdaptationConfig(rank=0)

    from compress.recipe import Recipe

    class NoTargets(Recipe):  # the contract's default: no lora_targets
        pass

    with pytest.raises(ValueError, match="lora_targets"):
        AdaptationConfig().lora_config(NoTargets())


def test_lora_trains_only_its_adapters_and_starts_from_the_model_as_it_is():
    native, recipe = _small_lm(), CausalLM()
    ids = torch.randint(0, 50, (2, 16))
    work = adaptable(native, recipe, AdaptationConfig())
    trainable = {n for n, p in work.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    # 2 layers x (c_attn 16->48, attention c_proj 16->16, c_fc 16->64, MLP c_proj 64->16), rank 8: A is 8 x in, B out x 8
    assert sum(p.numel() for p in work.parameters() if p.requires_grad) == 2 * 8 * ((16 + 48) + (16 + 16) + (16 + 64) + (64 + 16))
    with torch.no_grad():  # B starts at zero: the wrapped model computes what the model did
        torch.testing.assert_close(work(ids), native(ids))
    full = adaptable(native, recipe, AdaptationConfig("full"))
    assert all(p.requires_grad for p in full.parameters())
    assert not any(p is q for p, q in zip(full.parameters(), native.parameters())), "a copy, never the model"


def test_merging_computes_what_the_trained_adapter_computed_and_its_bytes_depend_on_shapes_alone():
    native, recipe = _small_lm(), CausalLM()
    ids = torch.randint(0, 50, (2, 16))
    work = adaptable(native, recipe, AdaptationConfig())
    untrained = adapter_files(work)
    with torch.no_grad():
        for n, p in work.named_parameters():
            if "lora_" in n:
                p.normal_(0, 0.1)  # as if trained
        adapted = work(ids)
    trained = adapter_files(work)
    assert trained == untrained and set(trained) == {"adapter_config.json", "adapter_model.safetensors"}
    merged = work.merge_and_unload()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert [t.shape for t in merged.state_dict().values()] == [t.shape for t in native.state_dict().values()]
    with torch.no_grad():
        torch.testing.assert_close(merged(ids), adapted, rtol=1e-4, atol=1e-5)


def test_adaptation_techniques_are_registered_for_language_models_only():
    from compress.registry import list_models

    assert {"lora", "lora_dynamic", "full_ft"} <= set(list_techniques())
    assert get_technique("full_ft").config.method == "full"
    assert [type(s).__name__ for s in get_technique("lora_dynamic").config.steps()] == [
        "AdaptationConfig", "DynamicRangeConfig"]  # fmt: skip
    assert "lora" not in list_techniques(task="image-classification")
    assert "lora" in list_techniques(task="language-modeling")
    assert "gpt2" in list_models()


def _available() -> bool:
    return CausalLM().unavailable() is None


@pytest.mark.skipif(not _available(), reason="the Austen novels are not cached (python -m compress.data.austen fetch)")
def test_adapted_language_models_through_the_runner(tmp_path):
    """tiny_lm on real text: adapted to the first half of the held-out novel, scored on the second;
    the adapter's bytes and trainable share are reported; a merged adapter quantizes like any model."""
    from compress.runner import Runner

    runner = Runner(WeightsCache(tmp_path / "models"), eval_threads=1)
    fp32 = runner.evaluate("tiny_lm", "fp32").metrics()
    lora = runner.evaluate("tiny_lm", "lora").metrics()
    full = runner.evaluate("tiny_lm", "full_ft").metrics()
    chained = runner.evaluate("tiny_lm", "lora_dynamic").metrics()
    assert lora["baseline_perplexity"] == fp32["perplexity"]
    assert 0 < lora["trainable_fraction"] < 0.05 and lora["trainable_parameters"] == 4096
    assert 0 < lora["adapter_bytes"] < fp32["bytes"] / 20
    assert lora["size_ratio"] == pytest.approx(1.0, abs=1e-3), "merged: the fp32 model's shape"
    assert full["trainable_fraction"] == 1.0 and "adapter_bytes" not in full
    # every parameter on the novel's first half helps on its second (names, style) even in 32 steps
    assert full["retention"] > 1.05 and full["perplexity"] < fp32["perplexity"]
    assert lora["perplexity"] != fp32["perplexity"], "the adapter changed the model"
    assert chained["size_ratio"] < 0.7 and chained["trainable_fraction"] == lora["trainable_fraction"]
    assert chained["perplexity"] == pytest.approx(lora["perplexity"], rel=0.02)


def test_a_classifier_adapts_from_its_start_with_a_head_trained_whole_and_merges_to_its_layout():
    """The MiniLM recipe's shape of adaptation on a tiny BERT: LoRA from the recipe's start (not the
    fine-tuned model), the new head trained whole and shipped in the adapter, merged back to the
    layout the weights cache stores."""
    from compress.models.text.text_classifier import TextClassifier, packed_module

    def tiny_bert():
        torch.manual_seed(1)
        cfg = transformers.BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=32, max_position_embeddings=16, num_labels=2)  # fmt: skip
        cfg._attn_implementation = "eager"
        return packed_module()(transformers.BertForSequenceClassification(cfg)).eval()

    class Recipe:
        lora_targets, lora_trained = TextClassifier.lora_targets, TextClassifier.lora_trained
        start = tiny_bert()

        def adaptation_start(self, native):
            return self.start

    tuned = tiny_bert()
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(1.0)  # "fine-tuned": adaptation must not start from it
    x = torch.stack([torch.randint(0, 60, (2, 8)), torch.ones(2, 8, dtype=torch.long)], dim=1)
    with torch.no_grad():
        start_out = Recipe.start(x)
    work = adaptable(tuned, Recipe(), AdaptationConfig())
    trainable = [n for n, p in work.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in trainable) and any("classifier" in n and "lora_" not in n for n in trainable)
    assert not any("embeddings" in n for n in trainable)
    with torch.no_grad():
        torch.testing.assert_close(work(x), start_out)  # the start (B = 0), not the fine-tuned model
        for n, p in work.named_parameters():
            if p.requires_grad:
                p.normal_(0, 0.1)
        adapted = work(x)
    assert adapter_files(work)["adapter_model.safetensors"] > 0
    merged = work.merge_and_unload()
    assert list(merged.state_dict()) == list(tuned.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(merged(x), adapted, rtol=1e-4, atol=1e-5)
