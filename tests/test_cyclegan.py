"""CycleGAN: the paper's generator and discriminator, the two Fashion-MNIST domains, the judge's
metric and the recovery fine-tune (tiny widths, a few hundred images: fast)."""

from __future__ import annotations

import numpy as np
import pytest

from compress.models.generative import cycle_gan as cyclegan
from compress.models.generative.cycle_gan import ANKLE_BOOT, SNEAKER, CycleGan


@pytest.fixture
def fake_judge(monkeypatch):
    """A judge that calls an image an ankle boot when its mean brightness is above that of the
    average sneaker: stands in for the trained CNN, whose training is not a unit test."""
    import torch
    from torch import nn

    class Brightness(nn.Module):
        def forward(self, x):
            m = x.mean(dim=(1, 2, 3))
            logits = torch.zeros(len(x), 10)
            logits[:, ANKLE_BOOT] = m - 0.2
            return logits

    judge = Brightness().eval()
    monkeypatch.setattr(CycleGan, "judge", lambda self: judge)
    return judge


def test_the_generator_keeps_the_image_shape_within_tanh():
    import torch

    g = cyclegan.generator(width=16, blocks=3).eval()
    assert sum(p.numel() for p in g.parameters()) == 269_377
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    y = g(x)
    assert y.shape == x.shape and float(y.abs().max()) <= 1
    kinds = {type(m).__name__ for m in g.modules()}
    assert {"ReflectionPad2d", "InstanceNorm2d", "ConvTranspose2d", "Tanh"} <= kinds


def test_the_discriminator_scores_patches():
    import torch

    assert cyclegan.discriminator(8)(torch.zeros(3, 1, 28, 28)).shape == (3, 1, 5, 5)


def test_the_domains_are_two_classes_in_minus_one_to_one():
    recipe = CycleGan()
    x, y = recipe.data("test")
    assert x.shape == (1000, 1, 28, 28) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1
    assert (y == ANKLE_BOOT).all()
    from compress.data import load_fashion_mnist

    images, labels = load_fashion_mnist().split("test")
    np.testing.assert_array_equal(cyclegan.to_pixels(x), images[labels == SNEAKER])
    assert len(recipe.data("calib")[0]) >= 256  # what the registered int8 calibration takes


def test_pixels_map_back_from_tanh_range():
    out = np.array([-1.5, -1.0, 0.0, 1.0]).reshape(1, 1, 1, 4)
    np.testing.assert_array_equal(cyclegan.to_pixels(out), [[[0, 0, 128, 255]]])


def test_translations_are_scored_by_the_judge(fake_judge):
    recipe = CycleGan()
    black, white = -np.ones((1, 1, 28, 28), np.float32), np.ones((1, 1, 28, 28), np.float32)
    logits = recipe.task_logits(np.concatenate([black, white]))
    assert logits.argmax(1).tolist() == [0, ANKLE_BOOT]


def test_a_short_training_runs_and_translates(fake_judge):
    recipe = CycleGan(width=4, blocks=1, epochs=1, batch_size=16, train_size=64)
    g = recipe.train("unit")
    x = recipe.data("test")[0][:8]
    from compress.models import torch_common

    out = torch_common.predict(g, x)
    assert out.shape == x.shape and np.isfinite(out).all()
    arrays = recipe.weights(g)
    np.testing.assert_array_equal(torch_common.predict(recipe.load(arrays), x), out)


def test_recovery_fine_tune_distils_from_the_dense_generator_it_is_given():
    import torch

    from torch.nn.utils import prune

    recipe = CycleGan(width=4, blocks=1, batch_size=16, fine_tune_size=48)
    g = recipe.build()
    for m in g.modules():  # as the pruning handler hands it over: masks in place, all ones at step 0
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            prune.identity(m, "weight")
    steps = []
    recipe.fit(g, epochs=1.0, learning_rate=1e-3, label="unit", callbacks=[steps.append])
    assert steps == [1, 2, 3]
    for m in g.modules():
        if prune.is_pruned(m) and hasattr(m, "weight_orig"):
            prune.remove(m, "weight")
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight[..., 0, :] = 0  # a third of every 3x3 and 7x7 kernel and more: "already pruned"
    with pytest.raises(ValueError, match="already zero"):
        recipe.fit(g, epochs=1.0, learning_rate=1e-3, label="unit")


def test_extra_metrics_against_fp32_and_the_judges_bounds(fake_judge):
    recipe = CycleGan()
    x, _ = recipe.data("test")
    extra = recipe.extra_metrics(lambda a: a, lambda a: a)  # an identity "generator"
    assert extra["psnr_vs_fp32"] == 100.0 and extra["ssim_vs_fp32"] == pytest.approx(1.0)
    assert 0 <= extra["judge_untranslated"] < extra["judge_real_target"] <= 1


def test_channel_pruning_is_skipped_saying_why():
    from compress.runner import Runner

    reason = Runner().skip_reason("cyclegan", "channels50")
    assert reason and "transposed convolutions" in reason
