"""The causal language model: GPT-2 on Jane Austen, scored by perplexity through the one runner."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from compress.storage.cache import WeightsCache  # noqa: E402
from compress.metrics.perplexity import token_losses  # noqa: E402
from compress.models.text.causal_lm import CausalLM, linear_projections, lm_module  # noqa: E402


def _small_gpt2():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=2, n_head=2,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=False)  # fmt: skip
    cfg._attn_implementation = "eager"
    return transformers.GPT2LMHeadModel(cfg).eval()


def test_conv1d_projections_become_equal_linear_layers():
    from transformers.pytorch_utils import Conv1D

    model = _small_gpt2()
    ids = torch.randint(0, 50, (3, 16))
    with torch.no_grad():
        before = model(input_ids=ids).logits
        assert linear_projections(model) == 8  # per layer: c_attn, attention c_proj, c_fc, MLP c_proj
        after = model(input_ids=ids).logits
    assert not any(isinstance(m, Conv1D) for m in model.modules())
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


def test_the_wrapper_gives_the_models_logits_and_the_training_loss_is_the_metric():
    model = _small_gpt2()
    wrapped = lm_module()(model).eval()
    ids = torch.randint(0, 50, (4, 16))
    with torch.no_grad():
        logits = wrapped(ids)
        torch.testing.assert_close(logits, model(input_ids=ids).logits)
        loss = CausalLM().loss(logits, ids)
    # the fit's loss over a batch is the mean of the metric's per-block losses (blocks of equal length)
    assert float(loss) == pytest.approx(token_losses(logits.numpy(), ids.numpy()).mean(), rel=1e-5)


def test_missing_novels_make_the_model_unavailable_saying_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COMPRESS_BENCH_DATA", raising=False)
    reason = CausalLM().unavailable()
    assert reason and "r-cran-janeaustenr" in reason


def _available() -> bool:
    return CausalLM().unavailable() is None


needs_novels = pytest.mark.skipif(not _available(), reason="the Austen novels are not cached "
                                  "(python -m compress.data.austen fetch)")  # fmt: skip


@needs_novels
def test_blocks_of_a_tokenizer_trained_on_train_alone():
    from compress.models.text import causal_lm

    recipe = CausalLM()
    x, y = recipe.data("test")
    assert x.dtype == np.int64 and x.shape[1] == 128 and x is y
    assert 450 < len(x) < 600, "the second half of Persuasion: about 65,000 tokens"
    adapt = recipe.adaptation_data()[0]
    assert 450 < len(adapt) < 600 and not (set(map(bytes, adapt)) & set(map(bytes, x))), "the halves share no block"
    assert len(recipe.data("calib")[0]) == 377 and len(recipe.data("train")[0]) > 7000
    assert x.max() < recipe.vocab_size
    # the tokenizer is a function of the train split: trained again, the same vocabulary
    first = causal_lm.tokenizer(4096).get_vocab()
    causal_lm.tokenizer.cache_clear()
    causal_lm.token_blocks.cache_clear()
    assert causal_lm.tokenizer(4096).get_vocab() == first
    with pytest.raises(ValueError, match="unknown split 'heldout'"):
        recipe.data("heldout")


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    from compress.runner import Runner

    return Runner(WeightsCache(tmp_path_factory.mktemp("models")), eval_threads=1)


@needs_novels
def test_a_trained_model_is_scored_by_perplexity_through_every_runtime(runner):
    """tiny_lm: 20 steps on real text already beat a uniform guess over its 4,096 tokens by 2x;
    each technique's artefact is scored on the held-out novel against the fp32 one."""
    fp32 = runner.evaluate("tiny_lm", "fp32")
    m = fp32.metrics()
    assert m["metric"] == "perplexity" and "accuracy" not in m
    assert m["perplexity"] < 4096 / 2 and m["perplexity_lower"] < m["perplexity"]
    assert m["retention"] == 1.0 and fp32.eval_images == len(runner.model("tiny_lm").recipe.data("test")[0])
    dyn = runner.evaluate("tiny_lm", "dynamic_range").metrics()
    assert dyn["size_ratio"] < 0.7 and 0.99 < dyn["retention"] <= dyn["retention_upper"]
    onnx = runner.evaluate("tiny_lm", "onnx_fp32").metrics()  # the exported graph computes the same model
    assert onnx["perplexity"] == pytest.approx(m["perplexity"], rel=1e-4)
    assert math.isclose(onnx["retention"], 1.0, rel_tol=1e-4)
    # served in batches: a batch of 32 real blocks is one call of each runtime that batches
    from compress.runtimes.torch_inductor import LoadedInductor

    assert runner.model("tiny_lm").recipe.throughput_batch == 32 and not LoadedInductor.batches
    for technique in ("fp32", "onnx_fp32"):
        assert runner.throughput_fn("tiny_lm", technique, 32)().shape == (32, 128, 4096)


@needs_novels
def test_static_onnx_int8_of_a_language_model_keeps_its_perplexity_with_the_transformer_settings(runner):
    """Only MatMul, Gemm and Gather inputs, percentile ranges (the language models' OnnxConfig settings)
    against every quantizable op with min-max ranges, which the residual adds and masks ruin."""
    from compress.registry import pair_config

    import onnx

    def quantized_outputs_of(config) -> list[str]:
        """The op types whose outputs the pair's artefact quantizes (QuantizeLinear inputs)."""
        graph = onnx.load_from_string(runner.artefact("tiny_lm", config).data).graph
        producer = {o: n.op_type for n in graph.node for o in n.output}
        return [producer.get(n.input[0], "input") for n in graph.node if n.op_type == "QuantizeLinear"]

    config = pair_config("tiny_lm", "onnx_int8")
    assert config.op_types == ("MatMul", "Gemm", "Gather") and config.calibration == "percentile"
    kept = runner.evaluate("tiny_lm", "onnx_int8").metrics()
    assert kept["size_ratio"] < 0.4 and kept["retention"] > 0.98
    # the residual stream (Add) and the attention mask (Where) stay float; with every quantizable op
    # (the settings that collapsed GPT-2 to 244.9) they are quantized too
    restricted, every_op = quantized_outputs_of(config), quantized_outputs_of(config.replace(op_types=()))
    assert not {"Add", "Where"} & set(restricted) and {"Add", "Where"} <= set(every_op)
    assert len(restricted) < len(every_op)
