"""Structured pruning of transformers (heads, FFN neurons) on a small random BERT and GPT-2.

The importance is checked where its answer is known (a head or neurons whose output is
zeroed have none and are removed first), the pruned network is checked for the shapes
it must have and for surviving the weights cache's array round trip, and a CNN is refused.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from compress.models import torch_common  # noqa: E402
from compress.models.text.text_classifier import packed_module  # noqa: E402
from compress.techniques.transformer_prune import (  # noqa: E402
    TransformerPruningConfig,
    encoder_layers,
    prune_units,
    unit_importance,
)

HEADS, HIDDEN, FFN, LAYERS, LENGTH = 4, 32, 64, 2, 16


def small_bert(seed: int = 0):
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=100, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                                  num_attention_heads=HEADS, intermediate_size=FFN,
                                  max_position_embeddings=LENGTH, num_labels=2)  # fmt: skip
    cfg._attn_implementation = "eager"
    return packed_module()(transformers.BertForSequenceClassification(cfg)).eval()


def batches(n: int = 3, size: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        ids = rng.integers(1, 100, size=(size, LENGTH))
        lengths = rng.integers(4, LENGTH + 1, size=size)
        mask = (np.arange(LENGTH)[None] < lengths[:, None]).astype(np.int64)
        out.append((np.stack([ids * mask, mask], axis=1).astype(np.int64), rng.integers(0, 2, size=size)))
    return out


def test_config_is_validated():
    with pytest.raises(ValueError, match="unit must be one of heads, ffn"):
        TransformerPruningConfig("layers")
    with pytest.raises(ValueError, match="fraction"):
        TransformerPruningConfig("heads", 0.95)


def test_a_silenced_head_has_no_importance_and_goes_first():
    model = small_bert()
    d = HIDDEN // HEADS
    with torch.no_grad():  # head 2 of layer 0 contributes nothing: its value rows are zero
        v = encoder_layers(model)[0].attention.self.value
        v.weight[2 * d : 3 * d] = 0
        v.bias[2 * d : 3 * d] = 0
    scores = unit_importance(model, batches(), "heads")
    assert [len(s) for s in scores] == [HEADS] * LAYERS
    assert scores[0][2] == 0 and (np.delete(scores[0], 2) > 0).all() and (scores[1] > 0).all()
    assert all(p.grad is None for p in model.parameters())  # gradients cleared


def test_silenced_ffn_neurons_have_no_importance():
    model = small_bert()
    with torch.no_grad():
        encoder_layers(model)[1].output.dense.weight[:, :5] = 0  # neurons 0-4 reach nothing
    scores = unit_importance(model, batches(), "ffn")
    assert [len(s) for s in scores] == [FFN] * LAYERS
    assert (scores[1][:5] == 0).all() and (scores[1][5:] > 0).all()


@pytest.mark.parametrize("unit, keep, widths", [
    ("heads", [np.array([0, 3]), np.array([1])], lambda L: L.attention.self.query.out_features),
    ("ffn", [np.arange(0, FFN, 2), np.arange(10)], lambda L: L.intermediate.dense.out_features),
])  # fmt: skip
def test_pruned_model_has_the_kept_units_and_survives_the_cache_round_trip(unit, keep, widths):
    model = small_bert()
    x = batches(1)[0][0]
    prune_units(model, unit, keep)
    per_unit = HIDDEN // HEADS if unit == "heads" else 1
    assert [widths(layer) for layer in encoder_layers(model)] == [len(k) * per_unit for k in keep]
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    assert out.shape == (len(x), 2) and torch.isfinite(out).all()
    # what the weights cache does: arrays out, a dense architecture rebuilt to their shapes
    restored = torch_common.load_arrays(small_bert(seed=1), torch_common.state_arrays(model)).eval()
    with torch.no_grad():
        assert torch.equal(restored(torch.from_numpy(x)), out)


def test_pruning_the_heads_keeps_the_kept_heads_outputs():
    """Removing a head whose output is zero changes nothing: the kept heads are the same heads."""
    model = small_bert()
    d = HIDDEN // HEADS
    with torch.no_grad():
        for layer in encoder_layers(model):
            layer.attention.self.value.weight[3 * d :] = 0
            layer.attention.self.value.bias[3 * d :] = 0
    x = torch.from_numpy(batches(1)[0][0])
    with torch.no_grad():
        before = model(x)
    prune_units(model, "heads", [np.array([0, 1, 2])] * LAYERS)
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-5)


def test_a_cnn_is_refused_naming_what_was_looked_for():
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    with pytest.raises(ValueError, match="has none of: BERT-style encoder layers .*; DistilBERT blocks .*; GPT-2 blocks"):
        encoder_layers(cnn)


# -- GPT-2: one fused query/key/value projection, the attention splitting it by a stored width ----------


def small_causal_lm():
    from compress.models.text.causal_lm import CausalLM

    return CausalLM(vocab_size=100, block=LENGTH, layers=LAYERS, width=HIDDEN, heads=HEADS)


def test_gpt2_heads_are_pruned_in_each_block_of_the_fused_projection_and_survive_the_cache():
    """A GPT-2 head whose value rows are zero contributes nothing: its importance is zero, removing
    it keeps the outputs, and the pruned weights load back into the recipe's architecture."""
    recipe = small_causal_lm()
    model = recipe.build()
    d = HIDDEN // HEADS
    with torch.no_grad():
        for layer in encoder_layers(model):  # c_attn rows: query, key, value blocks of HIDDEN each
            layer.attn.c_attn.weight[2 * HIDDEN + 3 * d :] = 0
            layer.attn.c_attn.bias[2 * HIDDEN + 3 * d :] = 0
    rng = np.random.default_rng(0)
    tokens = [(x, x) for x in (rng.integers(0, 100, size=(4, LENGTH)) for _ in range(2))]
    scores = unit_importance(model, tokens, "heads", recipe.loss)
    assert all(s[3] == 0 and (s[:3] > 0).all() for s in scores)
    x = torch.from_numpy(tokens[0][0])
    with torch.no_grad():
        before = model(x)
    prune_units(model, "heads", [np.array([0, 1, 2])] * LAYERS)
    assert all(layer.attn.c_attn.out_features == 3 * 3 * d and layer.attn.c_proj.in_features == 3 * d
               for layer in encoder_layers(model))  # fmt: skip
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-5)
    reloaded = recipe.load(recipe.weights(model))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), before, rtol=1e-5, atol=1e-5)


def test_gpt2_ffn_neurons_are_pruned_and_reload():
    recipe = small_causal_lm()
    model = recipe.build()
    rng = np.random.default_rng(1)
    tokens = [(x, x) for x in (rng.integers(0, 100, size=(4, LENGTH)) for _ in range(2))]
    scores = unit_importance(model, tokens, "ffn", recipe.loss)
    assert [len(s) for s in scores] == [4 * HIDDEN] * LAYERS
    keep = [np.sort(np.argsort(-s)[: 2 * HIDDEN]) for s in scores]
    prune_units(model, "ffn", keep)
    assert all(layer.mlp.c_fc.out_features == 2 * HIDDEN for layer in encoder_layers(model))
    x = torch.from_numpy(tokens[0][0])
    with torch.no_grad():
        torch.testing.assert_close(recipe.load(recipe.weights(model))(x), model(x), rtol=1e-5, atol=1e-5)


def test_a_heads_fraction_that_removes_no_head_is_a_skipped_pair_not_a_fine_tune():
    two_heads = small_causal_lm().__class__(heads=2)
    assert "removes none" in TransformerPruningConfig("heads", 0.25).unsupported_by(two_heads)
    assert TransformerPruningConfig("heads", 0.5).unsupported_by(two_heads) is None
    assert TransformerPruningConfig("ffn", 0.25).unsupported_by(two_heads) is None
