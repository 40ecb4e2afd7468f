"""Structured channel pruning of Keras functional models (compress.techniques.keras_channels)."""

import numpy as np
import pytest

from compress.storage.cache import WeightsCache
from compress.frameworks import tensorflow
from compress.models.vision.keras_classifier import KerasImageClassifier
from compress.runner import Runner
from compress.techniques import keras_channels
from compress.techniques.channels import ChannelPruningConfig
from compress.models.keras_common import rebuild_for_weights
from compress.techniques.keras_channels import channel_groups, prune_channels
from compress.techniques.quantization import Float32Config
from tests.test_data import REAL, needs_real

RECIPES = {
    "tiny_cnn": KerasImageClassifier("tiny_cnn", input_size=28),
    "MobileNetV2": KerasImageClassifier("MobileNetV2", (("alpha", 0.35),), input_size=32),
    "ResNet50": KerasImageClassifier("ResNet50", input_size=32),
    "InceptionV3": KerasImageClassifier("InceptionV3", input_size=75),
}


def _out(model, x):
    return model(x, training=False).numpy()


def _class(model, name):
    return type(model.get_layer(name)).__name__


def _calibrate_batchnorm(model, x):
    """Set every BatchNorm's moving statistics to those of ``x`` (one pass, momentum 0).

    A freshly initialised deep network has moving statistics (0, 1) that do not
    match its activations: its outputs vanish. Calibrated, they are of order 1,
    so comparing outputs means something.
    """
    bns = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    model(x, training=True)
    for bn, m in zip(bns, momenta):
        bn.momentum = m


def _kill_channels(model, fraction, seed=0):
    """Make the channels ``prune_channels`` will remove dead; returns ``{producer: dead indices}``.

    Dead filters are zero (the lowest L1 norm), and every BatchNorm of the group
    maps them to exactly 0 (gamma = beta = 0), so removing them is exact.
    """
    rng = np.random.default_rng(seed)
    dead = {}
    for g in channel_groups(model):
        idx = np.sort(rng.choice(g.channels, int(np.floor(g.channels * fraction)), replace=False))
        producer = model.get_layer(g.producer)
        w = producer.get_weights()
        w[0][..., idx] = 0
        w[1:] = [np.where(np.isin(np.arange(len(b)), idx), 0, b) for b in w[1:]]
        producer.set_weights(w)
        for name in g.members:
            layer, kind = model.get_layer(name), _class(model, name)
            variables = ()
            if kind == "BatchNormalization":
                variables = (layer.gamma, layer.beta)
            elif kind == "DepthwiseConv2D" and layer.use_bias:
                variables = (layer.bias,)
            for v in variables:
                if v is not None:
                    a = v.numpy()
                    a[idx] = 0
                    v.assign(a)
        dead[g.producer] = idx
    return dead


@pytest.fixture(scope="module")
def test_images():
    if not REAL:
        pytest.skip("Fashion-MNIST not installed")
    return {size: RECIPES[a].data("test")[0][:48] for a, size in (("tiny_cnn", 28), ("MobileNetV2", 32))}


@pytest.mark.parametrize("arch, fraction", [("tiny_cnn", 0.5), ("MobileNetV2", 0.5), ("MobileNetV2", 0.25)])
def test_removing_dead_channels_leaves_outputs_unchanged(arch, fraction, test_images):
    """An arithmetic identity (random weights are fine): every slice is consistent."""
    dense = RECIPES[arch].build()
    x = test_images[RECIPES[arch].input_size]
    _calibrate_batchnorm(dense, x)
    dead = _kill_channels(dense, fraction)
    kernels = {p: dense.get_layer(p).get_weights()[0] for p in dead}
    pruned = prune_channels(dense, fraction)
    assert pruned.count_params() < dense.count_params()
    fed_by = {c: g.producer for g in channel_groups(dense) for c in g.consumers}
    for p, idx in dead.items():  # exactly the dead filters went, the others kept in order
        want = np.delete(kernels[p], idx, axis=3)
        if p in fed_by:  # also a consumer: its input channels were pruned too
            want = np.delete(want, dead[fed_by[p]], axis=2)
        assert np.array_equal(pruned.get_layer(p).get_weights()[0], want), p
    want = _out(dense, x)
    assert np.abs(want).max() > 0.1 and np.ptp(want, axis=0).max() > 0.1  # outputs are not trivial
    np.testing.assert_allclose(_out(pruned, x), want, rtol=1e-4, atol=1e-5)


def test_pruning_live_channels_changes_outputs(test_images):
    """The control of the identity test: without dead channels, pruning is not a no-op."""
    dense = RECIPES["MobileNetV2"].build()
    x = test_images[32]
    _calibrate_batchnorm(dense, x)
    pruned = prune_channels(dense, 0.5)
    assert not np.allclose(_out(pruned, x), _out(dense, x), rtol=1e-4, atol=1e-5)


# -- structure: which groups, how many parameters ------------------------------------

# MobileNetV2: Conv1, the 16 expand convs, the two project convs not added to a
# residual (blocks 0 and 16), Conv_1. ResNet50: conv1 and the first two convs of
# each of the 16 bottlenecks. InceptionV3: the 5 stem convs and the inner convs
# of branch chains (3 per mixed0-2, 2 in mixed3, 6 per mixed4-7, 4 in mixed8,
# 3 per mixed9-10).
EXPECTED_GROUPS = {"tiny_cnn": 2, "MobileNetV2": 20, "ResNet50": 33, "InceptionV3": 50}


@pytest.mark.parametrize("arch", ["MobileNetV2", "ResNet50", "InceptionV3"])
def test_groups_stop_at_residuals_and_concatenations(arch):
    dense = RECIPES[arch].build()
    groups = channel_groups(dense)
    assert len(groups) == EXPECTED_GROUPS[arch]
    producers = {g.producer for g in groups}
    if arch == "ResNet50":
        assert all(p == "conv1_conv" or p.endswith(("_1_conv", "_2_conv")) for p in producers)
        assert not any(p.endswith(("_0_conv", "_3_conv")) for p in producers)  # feed the Add
    if arch == "MobileNetV2":
        assert {f"block_{i}_expand" for i in range(1, 17)} <= producers
        assert "block_2_project" not in producers  # its output is added to the residual stream
    inside = producers | {m for g in groups for m in g.members}
    assert not any(_class(dense, n) in ("Add", "Concatenate", "Dense") for n in inside)

    params = [dense.count_params()]
    for fraction in (0.25, 0.5):
        pruned = prune_channels(dense, fraction)
        params.append(pruned.count_params())
        assert pruned.name == dense.name and pruned.output_shape == (None, 10)
        joins = 0
        for layer in dense.layers:  # outside the groups, nothing changes width
            if layer.name not in inside:
                assert pruned.get_layer(layer.name).output_shape == layer.output_shape, layer.name
                joins += type(layer).__name__ in ("Add", "Concatenate")
        assert joins > 0
        for g in groups:
            kept = pruned.get_layer(g.producer).filters
            assert kept == g.channels - int(np.floor(g.channels * fraction))
            for m in g.members:
                assert pruned.get_layer(m).output_shape[-1] == kept, m
    assert params[0] > params[1] > params[2], params


def test_tiny_groups_and_layer_settings_are_kept():
    dense = RECIPES["tiny_cnn"].build()
    groups = channel_groups(dense)
    assert len(groups) == EXPECTED_GROUPS["tiny_cnn"]
    first = groups[0]
    assert [_class(dense, m) for m in first.members] == [
        "BatchNormalization", "ReLU", "DepthwiseConv2D", "BatchNormalization", "ReLU"
    ]  # fmt: skip
    assert [_class(dense, c) for c in groups[1].consumers] == ["Dense"]
    dense.get_layer(first.members[0]).epsilon = 1e-2  # a non-default setting must survive
    pruned = prune_channels(dense, 0.5, round_to=4)
    assert [layer.name for layer in pruned.layers] == [layer.name for layer in dense.layers]
    for a, b in zip(dense.layers, pruned.layers):
        if type(a).__name__ == "BatchNormalization":
            assert (b.momentum, b.epsilon) == (a.momentum, a.epsilon) and b.momentum == 0.9
    assert pruned.get_layer(first.producer).filters == 8


def test_bad_arguments_are_rejected():
    tf = tensorflow()
    dense = RECIPES["tiny_cnn"].build()
    for fraction in (0, 1.0, -0.1, True):
        with pytest.raises(ValueError, match="fraction"):
            prune_channels(dense, fraction)
    with pytest.raises(ValueError, match="round_to"):
        prune_channels(dense, 0.5, round_to=0)
    seq = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Conv2D(4, 3)])
    with pytest.raises(TypeError, match="functional"):
        prune_channels(seq, 0.5)
    with pytest.raises(ValueError, match="arrays"):
        rebuild_for_weights(dense, dense.get_weights()[:-1])


# -- restoring a pruned model from its weights ---------------------------------------


@pytest.mark.parametrize("arch", ["tiny_cnn", "MobileNetV2"])
def test_rebuild_for_weights_restores_a_pruned_model(arch, test_images):
    recipe = RECIPES[arch]
    dense = recipe.build()
    pruned = prune_channels(dense, 0.5)
    weights = pruned.get_weights()
    x = test_images[recipe.input_size]
    want = _out(pruned, x)

    rebuilt = rebuild_for_weights(recipe.build(), weights)
    rebuilt.set_weights(weights)
    assert np.array_equal(_out(rebuilt, x), want)

    loaded = recipe.load(weights)  # what the runner does with cached pruned weights
    assert loaded.count_params() == pruned.count_params() < dense.count_params()
    assert np.array_equal(_out(loaded, x), want)


# -- the handler, through the Runner --------------------------------------------------


@needs_real
def test_handler_prunes_fine_tunes_and_caches(tmp_path, monkeypatch):
    # The tiny model was trained at learning rate 1e-2; half its channels gone, a
    # 0.2-epoch fine-tune at the default 5e-4 leaves it near chance (measured 0.12).
    cfg = ChannelPruningConfig(fraction=0.5, fine_tune_epochs=1.0, learning_rate=1e-2)
    runner = Runner(WeightsCache(tmp_path))
    dense = runner.model("tiny")
    pruned = runner.transform(dense, cfg)
    recipe = dense.recipe
    assert recipe.count_params(pruned.native) < 0.6 * recipe.count_params(dense.native)

    acc, n = runner.score("tiny", cfg)  # the pruned model's .tflite, on the whole test split
    base, _ = runner.score("tiny", Float32Config())
    assert n == 10000 and acc > 0.5, (acc, base)  # chance is 0.1

    def fail(*a, **k):
        raise AssertionError("the pruned model should come from the cache")

    monkeypatch.setattr(keras_channels, "prune_channels", fail)
    warm = Runner(WeightsCache(tmp_path))
    again = warm.transform(warm.model("tiny"), cfg)
    assert again.key == pruned.key
    a, b = pruned.native.get_weights(), again.native.get_weights()
    assert len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))

