"""The techniques with GPU kernels: 2:4 semi-structured sparsity and torchao's int8 weight-only Linear.

The masks, the fixed-mask fine-tune, the export's checks and the CPU path are tested everywhere; the
semi-structured kernels themselves run where torch sees a CUDA device (the GPU machine).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from compress.techniques.semi_structured import (  # noqa: E402
    SemiStructuredConfig,
    Sparse24Config,
    Sparse24Skeleton,
    is_two_four,
    prune_two_four,
    sparse24,
    sparse_layers,
    two_four_mask,
)
from tests.test_causal_lm import needs_novels  # noqa: E402
from tests.test_devices import needs_cuda  # noqa: E402


def _mlp(width=128):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 64), nn.ReLU(), nn.Linear(64, 10))


def test_a_two_four_mask_keeps_the_two_largest_magnitudes_of_each_group_of_four():
    w = torch.tensor([[1.0, -3.0, 2.0, 0.5, 0.0, 0.1, -0.2, 9.0]])
    assert two_four_mask(w).tolist() == [[False, True, True, False, False, False, True, True]]
    assert is_two_four(w * two_four_mask(w)) and not is_two_four(w)
    with pytest.raises(ValueError, match="multiple of 4"):
        two_four_mask(torch.ones(2, 6))


def test_every_aligned_linear_but_the_head_is_a_two_four_layer():
    m = _mlp()
    assert [n for n, _ in sparse_layers(m)] == ["0", "2"]  # "4" is the head (64 -> 10)
    m[0] = nn.Linear(60, 128)  # 60 inputs: not a multiple of 64
    assert [n for n, _ in sparse_layers(m)] == ["2"]


class _Recipe:
    """Fits by plain SGD on a fixed regression target: enough to move every weight."""

    def __init__(self):
        self.steps = 0

    def fit(self, module, epochs, learning_rate, label):
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(256, 64, generator=g), torch.randn(256, 10, generator=g)
        opt = torch.optim.SGD(module.parameters(), lr=learning_rate)
        for _ in range(int(epochs * 10)):
            opt.zero_grad()
            nn.functional.mse_loss(module(x), y).backward()
            opt.step()
            self.steps += 1


def test_the_fine_tune_keeps_the_masks_and_leaves_the_original_alone():
    m = _mlp()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    recipe = _Recipe()
    pruned = prune_two_four(m, recipe, SemiStructuredConfig(fine_tune_epochs=2.0, learning_rate=0.1), "t")
    assert recipe.steps == 20 and not pruned.training
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # original untouched
    assert list(pruned.state_dict()) == list(m.state_dict())  # same layout: the weights cache's order
    for name in ("0", "2"):
        w = pruned.get_submodule(name).weight
        assert is_two_four(w) and float((w == 0).float().mean()) == 0.5
        # the kept weights trained, the pruned ones stayed zero
        kept = two_four_mask(before[f"{name}.weight"])
        assert torch.equal(w != 0, kept) and not torch.equal(w[kept], before[f"{name}.weight"][kept])
    assert not torch.equal(pruned[4].weight, before["4.weight"]) and (pruned[4].weight != 0).all()  # head dense


def test_a_model_without_two_four_layers_is_refused_with_the_reason():
    dense = SimpleNamespace(name="m", native=_mlp(), recipe=None)
    with pytest.raises(ValueError, match=r"0, 2 are not 2:4: put SemiStructuredConfig before it"):
        sparse24(dense, Sparse24Config(), None)
    with pytest.raises(ValueError, match="no Linear layer"):
        prune_two_four(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2)), _Recipe(), SemiStructuredConfig(), "t")


@needs_novels
def test_a_language_model_too_narrow_for_the_kernels_is_skipped_saying_why():
    from compress.runner import Runner

    why = Runner().skip_reason("tiny_lm", "sparse24")  # 32 wide
    assert why == ("tiny_lm: 2:4 sparsity needs Linear layers (but the output head) with both dimensions "
                   "multiples of 64; this model has none")  # fmt: skip
    state = torch.random.get_rng_state()
    Runner().skip_reason("gpt2", "sparse24")  # builds the architecture to look
    assert torch.equal(state, torch.random.get_rng_state())


def _pruned_mlp():
    m = _mlp()
    with torch.no_grad():
        for _, layer in sparse_layers(m):
            layer.weight.mul_(two_four_mask(layer.weight))
    return m.eval()


def test_on_the_cpu_the_skeleton_leaves_the_module_dense():
    m = _pruned_mlp()
    assert Sparse24Skeleton(lambda: m, ("0", "2")).on_device(m, "cpu") is m
    assert type(m[0].weight) is nn.Parameter


@needs_cuda
def test_on_cuda_the_two_four_layers_run_on_semi_structured_kernels():
    from torch.sparse import SparseSemiStructuredTensor

    m = _pruned_mlp().half().cuda()
    x = torch.randn(128, 64, dtype=torch.half, device="cuda")
    with torch.inference_mode():
        dense = m(x)
    Sparse24Skeleton(lambda: m, ("0", "2")).on_device(m, "cuda")
    assert isinstance(m[0].weight, SparseSemiStructuredTensor) and isinstance(m[2].weight, SparseSemiStructuredTensor)
    assert type(m[4].weight) is nn.Parameter  # the head stays dense
    with torch.inference_mode():
        torch.testing.assert_close(m(x), dense, atol=2e-2, rtol=2e-2)


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    from compress.storage.cache import WeightsCache
    from compress.runner import Runner

    return Runner(WeightsCache(tmp_path_factory.mktemp("models")), eval_threads=1)


@needs_novels
def test_int8_weight_only_ships_int8_linear_weights_that_load_into_the_float_skeleton(runner):
    """torchao's quantized tensors survive torch.save and a weights_only load, are assigned into the
    skeleton, and keep the model's perplexity; the weights the metrics read are the dequantized int8."""
    from compress.runtimes.torch_eager import is_subclass

    fp32 = runner.loaded("tiny_lm", _config("fp32"))
    wo = runner.loaded("tiny_lm", _config("int8_weight_only"))
    linears = [m for m in wo.module.modules() if isinstance(m, nn.Linear)]
    assert linears and all(is_subclass(m.weight) for m in linears)
    assert not is_subclass(wo.module.model.transformer.wte.weight)  # the embedding stays float
    ref, got = fp32.weight_arrays(), wo.weight_arrays()
    assert len(got) == len(ref) == len(linears)
    for a, b in zip(ref, got, strict=True):
        step = np.abs(a).max(axis=1, keepdims=True) / 127  # per output channel
        assert a.shape == b.shape and np.all(np.abs(a - b) <= step * 0.5 + 1e-6)
    m = runner.evaluate("tiny_lm", "int8_weight_only").metrics()
    assert m["size_ratio"] < 0.9 and m["retention"] > 0.99


def _config(technique):
    from compress.registry import pair_config

    return pair_config("tiny_lm", technique)
