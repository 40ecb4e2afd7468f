"""Torch pruning: gradual L1 unstructured masks made permanent, and DepGraph channel pruning.

The ``tiny_torch`` tests train on real Fashion-MNIST through a Runner on a
temporary cache; the resnet18 / EfficientNet-Lite0 tests are shape and
arithmetic identities, for which random weights are enough.
"""

import copy

import numpy as np
import pytest

from compress.storage.cache import WeightsCache
from compress.models import torch_common
from compress.models.vision.torch_classifier import TorchImageClassifier
from compress.runner import Runner
from compress.techniques.channels import ChannelPruningConfig
from compress.techniques.pruning import MagnitudePruningConfig
from compress.techniques.torch_channels import channel_pruner, output_layers, prune_channels
from compress.techniques.torch_prune import prunable_layers, pruning_schedule
from tests.test_data import needs_real

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
nn = torch.nn

PRUNE = dict(fine_tune_epochs=0.5, ramp_fraction=0.3, frequency=5, learning_rate=5e-3)  # 47 steps, final masks at 15
CHANNELS = ChannelPruningConfig(fraction=0.5, fine_tune_epochs=0.5, learning_rate=5e-3)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Training a tiny net with 2 intra-op threads on a loaded 2-core machine is ~40x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def tiny(cache_dir):
    return Runner(WeightsCache(cache_dir))


def _accuracy(loaded) -> float:
    x, y = loaded.recipe.data("test")
    return float(np.mean(torch_common.predict(loaded.native, x).argmax(axis=1) == y))


def _zeros_per_layer(module) -> dict[str, tuple[int, int]]:
    return {n: (int((m.weight == 0).sum()), m.weight.numel()) for n, m in prunable_layers(module)}


# -- unstructured magnitude pruning -------------------------------------------------


def test_schedule_reaches_final_sparsity_on_an_update_step():
    s = pruning_schedule(MagnitudePruningConfig(final_sparsity=0.8, ramp_fraction=0.3, frequency=7), 100)
    assert s.end_step == 35 and s.end_step % 7 == 0
    updates = [t for t in range(1, 101) if s.updates_at(t)]
    assert updates == [7, 14, 21, 28, 35]
    values = [s.sparsity(t) for t in updates]
    assert values == sorted(values) and values[0] > 0 and values[-1] == pytest.approx(0.8, abs=1e-12)
    with pytest.raises(ValueError, match="too short"):
        pruning_schedule(MagnitudePruningConfig(ramp_fraction=1.0, frequency=7), 100)


def test_prunable_layers_skip_depthwise_convs():
    names = [n for n, _ in prunable_layers(_tiny_torch())]
    assert names == ["0", "6", "11"]  # stem conv, pointwise conv, classifier; not the depthwise "3"


@needs_real
@pytest.mark.parametrize("target", [0.3, 0.7])
def test_magnitude_pruning_is_exact_per_layer_and_survives_the_cache(tiny, cache_dir, target):
    dense = tiny.model("tiny_torch")
    dense_before = [a.copy() for a in dense.recipe.weights(dense.native)]
    cfg = MagnitudePruningConfig(final_sparsity=target, **PRUNE)
    pruned = tiny.transform(dense, cfg)

    zeros = _zeros_per_layer(pruned.native)
    for name, (z, n) in zeros.items():
        assert z == round(target * n), (name, z, n)
    depthwise = pruned.native[3].weight
    assert int((depthwise == 0).sum()) == 0, "depthwise kernels are left unpruned"
    assert not any("mask" in k or "orig" in k for k in pruned.native.state_dict())
    assert all(not m._forward_pre_hooks for m in pruned.native.modules()), "masks are permanent"
    assert all(np.array_equal(a, b) for a, b in zip(dense_before, dense.recipe.weights(dense.native), strict=True))

    warm = Runner(WeightsCache(cache_dir))
    assert warm.weights.load("tiny_torch", pruned.key) is not None, "the pruned weights are cached"
    reloaded = warm.transform(warm.model("tiny_torch"), cfg)
    assert reloaded.key == pruned.key
    assert _zeros_per_layer(reloaded.native) == zeros
    x = dense.recipe.data("test")[0][:64]
    np.testing.assert_array_equal(torch_common.predict(reloaded.native, x), torch_common.predict(pruned.native, x))

    dense_acc, acc = _accuracy(dense), _accuracy(pruned)
    assert dense_acc > 0.6, "trained on real labels: far above chance (0.1)"
    assert acc > 0.4 and acc / dense_acc > (0.9 if target < 0.5 else 0.7), (target, dense_acc, acc)


# -- channel pruning ----------------------------------------------------------------


@needs_real
def test_channel_pruning_shrinks_tiny_torch_and_keeps_it_accurate(tiny, cache_dir):
    dense = tiny.model("tiny_torch")
    pruned = tiny.transform(dense, CHANNELS)
    ratio = dense.recipe.count_params(pruned.native) / dense.recipe.count_params(dense.native)
    assert 0.25 <= ratio <= 0.5, ratio
    assert [m.out_channels for m in pruned.native if isinstance(m, nn.Conv2d)] == [8, 8, 16]
    assert pruned.native[3].groups == 8, "the depthwise conv stays depthwise"

    x = dense.recipe.data("test")[0][:64]
    out = torch_common.predict(pruned.native, x)
    assert out.shape == (64, 10)
    warm = Runner(WeightsCache(cache_dir))
    assert warm.weights.load("tiny_torch", pruned.key) is not None, "the pruned weights are cached"
    reloaded = warm.transform(warm.model("tiny_torch"), CHANNELS)
    assert reloaded.recipe.count_params(reloaded.native) == dense.recipe.count_params(pruned.native)
    np.testing.assert_array_equal(torch_common.predict(reloaded.native, x), out)

    dense_acc, acc = _accuracy(dense), _accuracy(pruned)
    assert acc > 0.4 and acc / dense_acc > 0.75, (dense_acc, acc)


def _deaden(group, dg) -> None:
    """Zero every weight of the channels a pruning group removes, in every layer it touches.

    After this, each removed channel is exactly 0 after its BatchNorm (weight and
    bias 0), so it contributes nothing downstream, and its group importance is 0.
    """
    with torch.no_grad():
        for dep, idxs in group:
            layer, idxs = dep.target.module, list(idxs)
            out = dg.is_out_channel_pruning_fn(dep.handler)
            if isinstance(layer, nn.Conv2d):
                depthwise = layer.groups > 1 and layer.groups == layer.in_channels
                if out or depthwise:
                    layer.weight[idxs] = 0
                    if layer.bias is not None:
                        layer.bias[idxs] = 0
                else:
                    layer.weight[:, idxs] = 0
            elif isinstance(layer, nn.modules.batchnorm._BatchNorm):
                layer.weight[idxs] = 0
                layer.bias[idxs] = 0
            elif isinstance(layer, nn.Linear):
                if out:
                    layer.weight[idxs] = 0
                    if layer.bias is not None:
                        layer.bias[idxs] = 0
                else:
                    layer.weight[:, idxs] = 0


def _with_dead_channels(model, fraction, example):
    """A copy of ``model`` whose channels that pruning at ``fraction`` removes are made dead."""
    dead = copy.deepcopy(model).eval()
    pruner = channel_pruner(dead, fraction, example)
    groups = list(pruner.step(interactive=True))  # importances are ranked before any group is yielded
    assert groups
    for group in groups:
        _deaden(group, pruner.DG)  # and never group.prune(): the copy stays dense
    return dead


def _randomize_bn(model, seed=0):
    """Non-trivial BatchNorm statistics and affine parameters (fresh ones are 0 / 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model.eval()


def _tiny_torch():
    return TorchImageClassifier("tiny_torch", input_size=28, channels=1).build()


def _resnet18():
    return TorchImageClassifier("resnet18").build()


def _efficientnet_lite0():
    from compress.models.vision import efficientnet_lite

    return efficientnet_lite.build(10).eval()


def _probe_recipe():
    from compress.models.vision.efficientnet_probe import EfficientNetProbe

    return EfficientNetProbe()


MODELS = {  # name: (factory, input shape (C, H, W), shape-aware load of state arrays)
    "tiny_torch": (_tiny_torch, (1, 28, 28), lambda arrays: torch_common.load_arrays(_tiny_torch(), arrays)),
    "resnet18": (_resnet18, (3, 32, 32), lambda arrays: TorchImageClassifier("resnet18").load(arrays)),
    "efficientnet_lite0": (_efficientnet_lite0, (3, 64, 64),
                           lambda arrays: torch_common.load_arrays(_efficientnet_lite0(), arrays).eval()),
    # the two-headed model (probe and ImageNet classifier) the suite fine-tunes: 1010 outputs
    "efficientnet_lite0_probe": (lambda: _probe_recipe().build(), (3, 64, 64),
                                 lambda arrays: _probe_recipe().load(arrays)),
}  # fmt: skip


def test_output_layers_are_the_heads_whose_width_must_stay():
    resnet, probed = _resnet18(), MODELS["efficientnet_lite0_probe"][0]()
    assert output_layers(_tiny_torch(), torch.zeros(1, 1, 28, 28))[0].out_features == 10
    assert output_layers(resnet, torch.zeros(1, 3, 32, 32)) == [resnet.fc]
    assert output_layers(probed, torch.zeros(1, 3, 64, 64)) == [probed._fc, probed.probe]


@pytest.mark.parametrize("name", ["tiny_torch", "resnet18", "efficientnet_lite0"])
def test_pruning_dead_channels_does_not_change_outputs(name):
    """Arithmetic identity: removing channels that contribute exactly 0 leaves the function unchanged."""
    factory, shape, _ = MODELS[name]
    torch.manual_seed(0)
    model = _randomize_bn(factory())
    x = torch.randn(4, *shape)
    dead = _with_dead_channels(model, 0.5, x[:1])
    pruned = prune_channels(dead, 0.5, x[:1])
    assert torch_common.count_params(pruned) < 0.6 * torch_common.count_params(dead)
    with torch.inference_mode():
        ref, got, live = dead(x), pruned(x), model(x)
    assert got.shape == ref.shape == (4, 10)
    assert not torch.allclose(live, ref, atol=1e-3), "the dead channels did contribute before"
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fraction", [0.25, 0.5])
@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0", "efficientnet_lite0_probe"])
def test_shape_aware_reload_reproduces_pruned_outputs(name, fraction):
    factory, shape, reload = MODELS[name]
    torch.manual_seed(0)
    model = _randomize_bn(factory())
    x = torch.randn(2, *shape)
    pruned = prune_channels(model, fraction, x[:1])
    ratio = torch_common.count_params(pruned) / torch_common.count_params(model)
    assert (1 - fraction) ** 2 * 0.8 < ratio < (1 - fraction) ** 2 * 1.4, ratio  # widths scale by 1 - fraction
    reloaded = reload(torch_common.state_arrays(pruned))
    for (n, a), (_, b) in zip(pruned.named_modules(), reloaded.named_modules(), strict=True):
        if isinstance(a, nn.Conv2d):
            assert (a.in_channels, a.out_channels, a.groups) == (b.in_channels, b.out_channels, b.groups), n
    with torch.inference_mode():
        out = pruned(x)
        assert out.shape == model(x).shape
        assert torch.equal(reloaded(x), out)


@needs_real
def test_schedule_counts_the_fine_tune_images_not_the_training_set(monkeypatch):
    from compress.techniques.torch_prune import prune_torch

    recipe = TorchImageClassifier("tiny_torch", input_size=28, channels=1, batch_size=64,
                                  train_size=2000, fine_tune_size=640)  # fmt: skip
    assert recipe.steps_per_epoch() == 10  # 640 / 64, not 2000 / 64
    config = MagnitudePruningConfig(final_sparsity=0.5, fine_tune_epochs=1.0, ramp_fraction=0.5, frequency=1)
    pruned = prune_torch(recipe.build(), recipe, config, "schedule")
    layer = dict(prunable_layers(pruned))["0"]
    assert int((layer.weight == 0).sum()) == round(0.5 * layer.weight.numel())

    # a recipe whose steps_per_epoch disagrees with what fit runs must not pass silently
    monkeypatch.setattr(TorchImageClassifier, "steps_per_epoch", lambda self: 40)
    with pytest.raises(RuntimeError, match="schedule expected"):
        prune_torch(recipe.build(), recipe, config, "schedule")
