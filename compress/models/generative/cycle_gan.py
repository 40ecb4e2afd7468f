"""CycleGAN, trained by the suite: sneakers into ankle boots, on Fashion-MNIST's real images.

The generator is the CycleGAN paper's ResNet generator (Zhu et al. 2017, its
appendix: ``c7s1-k, d2k, d4k, R4k x n, u2k, uk, c7s1-1``: reflection padding,
instance normalisation, ReLU, residual blocks, transposed convolutions, tanh) at
a reduced width (``width`` 16 where the paper has 64) and ``blocks`` residual
blocks (3; the paper has 6 at 128 px), on 28 px greyscale images scaled to
[-1, 1]. The two domains are two Fashion-MNIST classes, unpaired: A = Sneaker
(class 7), B = Ankle boot (class 9), the train split's images of each. The
discriminators are 3-layer PatchGANs. Losses as in the paper: least-squares
adversarial, cycle consistency (``cycle_weight`` 10) and identity (half of it);
Adam at 2e-4, betas (0.5, 0.999). Not as in the paper: no history buffer of
generated images, and a constant rate (a few epochs, not 200).

What ships is the A -> B generator. Its task metric (:mod:`compress.metrics.accuracy`
through :meth:`CycleGan.task_logits`): the share of translated test sneakers
that a fixed judge, a CNN classifier trained by the suite on all ten classes
(:meth:`CycleGan.judge`, cached beside the models, never compressed), labels
Ankle boot. Extra metrics: the translations' PSNR and SSIM against the fp32
generator's, and the judge's score on untranslated sneakers (the floor a
translation must rise above) and on real ankle boots (its ceiling).

Magnitude pruning's recovery fine-tune distils from the generator it is given
(L1 to its translations of the train sneakers): the pruning handlers hand it the
dense trained generator and ramp sparsity from zero during the fine-tune.
Channel pruning does not apply (:attr:`CycleGan.unsupported`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, ClassVar

import numpy as np

from compress.models import torch_common

log = logging.getLogger(__name__)

SNEAKER, ANKLE_BOOT = 7, 9


@lru_cache(maxsize=8)
def _domain(split: str, label: int) -> np.ndarray:
    """Fashion-MNIST images of one class in one split, float32 ``(N, 1, 28, 28)`` in [-1, 1] (memoized: do not write)."""
    from compress.data import load_fashion_mnist

    images, labels = load_fashion_mnist().split(split)
    return np.ascontiguousarray(images[labels == label].astype(np.float32)[:, None] / 127.5 - 1.0)


def to_pixels(images: np.ndarray) -> np.ndarray:
    """Generator outputs in [-1, 1] ``(N, 1, H, W)`` as 8-bit greyscale ``(N, H, W)``."""
    return np.clip(np.rint((np.asarray(images, dtype=np.float32)[:, 0] + 1.0) * 127.5), 0, 255).astype(np.uint8)


def generator(width: int = 16, blocks: int = 3, channels: int = 1):
    """CycleGAN's ResNet generator (reflection padding, instance norm, residual blocks, tanh)."""
    from torch import nn

    class Residual(nn.Module):
        def __init__(self, c: int):
            super().__init__()
            self.body = nn.Sequential(
                nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU(True),
                nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c),
            )  # fmt: skip

        def forward(self, x):
            return x + self.body(x)

    k = width
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(channels, k, 7), nn.InstanceNorm2d(k), nn.ReLU(True),
              nn.Conv2d(k, 2 * k, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * k), nn.ReLU(True),
              nn.Conv2d(2 * k, 4 * k, 3, stride=2, padding=1), nn.InstanceNorm2d(4 * k), nn.ReLU(True),
              *[Residual(4 * k) for _ in range(blocks)],
              nn.ConvTranspose2d(4 * k, 2 * k, 3, stride=2, padding=1, output_padding=1), nn.InstanceNorm2d(2 * k),
              nn.ReLU(True),
              nn.ConvTranspose2d(2 * k, k, 3, stride=2, padding=1, output_padding=1), nn.InstanceNorm2d(k), nn.ReLU(True),
              nn.ReflectionPad2d(3), nn.Conv2d(k, channels, 7), nn.Tanh()]  # fmt: skip
    return nn.Sequential(*layers)


def discriminator(width: int = 16, channels: int = 1):
    """A PatchGAN: 4x4 convolutions, stride 2 then 1, instance norm, LeakyReLU 0.2; one score per patch."""
    from torch import nn

    k = width
    return nn.Sequential(
        nn.Conv2d(channels, k, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True),
        nn.Conv2d(k, 2 * k, 4, stride=2, padding=1), nn.InstanceNorm2d(2 * k), nn.LeakyReLU(0.2, True),
        nn.Conv2d(2 * k, 4 * k, 4, padding=1), nn.InstanceNorm2d(4 * k), nn.LeakyReLU(0.2, True),
        nn.Conv2d(4 * k, 1, 4, padding=1),
    )  # fmt: skip


def _judge_cnn(num_classes: int = 10):
    """The judge: a small VGG-style CNN for 28 px greyscale images."""
    from torch import nn

    def block(cin: int, cout: int):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]  # fmt: skip

    return nn.Sequential(*block(1, 32), *block(32, 64), nn.Flatten(), nn.Dropout(0.25),
                         nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, num_classes))  # fmt: skip


@dataclass(frozen=True)
class CycleGan(torch_common.TorchArrays):
    """Recipe of a CycleGAN (sneakers -> ankle boots) trained from scratch; ships the A -> B generator.

    Every field is part of the cache key.

    Attributes:
        width, blocks: the generator's base width and residual blocks (discriminators: ``width`` too).
        epochs: passes over the larger domain's train images.
        batch_size, learning_rate: of the GAN's training (Adam, betas 0.5 and 0.999, constant rate).
        cycle_weight: the cycle-consistency weight (identity: half of it).
        judge_epochs: the judge classifier's training (on all 55,000 train images).
        train_size: train images of each domain the GAN trains on (None: all, about 5,500 each).
        fine_tune_size: train sneakers a recovery fine-tune uses (None: all).
        seed: weight init and shuffling.
    """

    width: int = 16
    blocks: int = 3
    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 2e-4
    cycle_weight: float = 10.0
    judge_epochs: int = 2
    train_size: int | None = field(default=None, metadata={"key_default": False})
    fine_tune_size: int | None = None
    seed: int = 0
    framework: str = field(default="torch", init=False)

    source: ClassVar[int] = SNEAKER
    target: ClassVar[int] = ANKLE_BOOT
    unsupported: ClassVar[dict[str, str]] = {
        "ChannelPruningConfig": (
            "the generator's residual blocks add their input to their output and its upsampling is "
            "transposed convolutions between instance norms; the torch channel pruner resizes Conv2d, "
            "BatchNorm and Linear layers only"
        ),
    }

    # -- data: sneakers in, the judge's "ankle boot" label as the target ------------------
    def data(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(sneakers float32 (N, 1, 28, 28) in [-1, 1], N labels Ankle boot)`` of a split."""
        x = _domain(split, self.source)
        if split == "train" and self.fine_tune_size is not None:
            x = x[: self.fine_tune_size]
        return x, np.full(len(x), self.target, dtype=np.int64)

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data("train")[0]) / self.batch_size)

    # -- the judge ------------------------------------------------------------------
    def judge_recipe(self):
        from compress.models.vision.torch_classifier import TorchImageClassifier, _ARCHITECTURES, register_architecture

        if "cyclegan_judge" not in _ARCHITECTURES:
            register_architecture("cyclegan_judge", _judge_cnn)
        return TorchImageClassifier("cyclegan_judge", input_size=28, channels=1, epochs=self.judge_epochs,
                                    batch_size=128, learning_rate=2e-3, seed=self.seed)  # fmt: skip

    def judge(self):
        """The fixed judge (eval mode), trained once and kept in the weights cache under its own key."""
        return _judge(self.judge_recipe())

    def task_logits(self, outputs: np.ndarray) -> np.ndarray:
        """The judge's logits for translated images (generator outputs in [-1, 1], mapped to its [0, 1])."""
        return torch_common.predict(self.judge(), np.ascontiguousarray((np.asarray(outputs, np.float32) + 1) / 2))

    # -- model ------------------------------------------------------------------------
    def build(self):
        """The untrained A -> B generator (deterministic given ``seed``), in eval mode."""
        import torch

        torch.manual_seed(self.seed)
        return generator(self.width, self.blocks).eval()

    def train(self, label: str):
        """Train both generators and both discriminators from scratch; the A -> B generator."""
        import torch
        import torch.nn.functional as F

        from compress.determinism import torch_threads
        from compress.progress import StepProgress

        torch.use_deterministic_algorithms(True, warn_only=True)
        t0 = time.perf_counter()
        with torch_threads(torch_common.TRAIN_THREADS):
            torch.manual_seed(self.seed)
            g_ab, g_ba = generator(self.width, self.blocks), generator(self.width, self.blocks)
            d_a, d_b = discriminator(self.width), discriminator(self.width)
            a, b = _domain("train", self.source)[: self.train_size], _domain("train", self.target)[: self.train_size]
            rng = np.random.default_rng(self.seed)
            steps = math.ceil(max(len(a), len(b)) / self.batch_size)
            betas = (0.5, 0.999)
            opt_g = torch.optim.Adam([*g_ab.parameters(), *g_ba.parameters()], lr=self.learning_rate, betas=betas)
            opt_d = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], lr=self.learning_rate, betas=betas)
            lam = self.cycle_weight
            progress = StepProgress(f"train {label}", self.epochs, steps)
            try:
                for epoch in range(self.epochs):
                    ia, ib = rng.permutation(len(a)), rng.permutation(len(b))
                    total = 0.0
                    for s in range(steps):
                        xa = torch.from_numpy(a[np.take(ia, range(s * self.batch_size, (s + 1) * self.batch_size), mode="wrap")])
                        xb = torch.from_numpy(b[np.take(ib, range(s * self.batch_size, (s + 1) * self.batch_size), mode="wrap")])
                        fake_b, fake_a = g_ab(xa), g_ba(xb)
                        pred_b, pred_a = d_b(fake_b), d_a(fake_a)
                        loss_g = (F.mse_loss(pred_b, torch.ones_like(pred_b)) + F.mse_loss(pred_a, torch.ones_like(pred_a))
                                  + lam * (F.l1_loss(g_ba(fake_b), xa) + F.l1_loss(g_ab(fake_a), xb))
                                  + 0.5 * lam * (F.l1_loss(g_ab(xb), xb) + F.l1_loss(g_ba(xa), xa)))  # fmt: skip
                        opt_g.zero_grad(set_to_none=True)
                        loss_g.backward()
                        opt_g.step()
                        loss_d = 0.0
                        for d, real, fake in ((d_a, xa, fake_a), (d_b, xb, fake_b)):
                            pr, pf = d(real), d(fake.detach())
                            loss_d = loss_d + 0.5 * (F.mse_loss(pr, torch.ones_like(pr)) + F.mse_loss(pf, torch.zeros_like(pf)))
                        opt_d.zero_grad(set_to_none=True)
                        loss_d.backward()
                        opt_d.step()
                        total += float(loss_g.detach())
                        progress.step(epoch, float(loss_g.detach()))
                    progress.end_epoch(epoch, loss=total / steps)
            finally:
                progress.close()
        log.info("trained %s in %.0f s", label, time.perf_counter() - t0)
        return g_ab.eval()

    def fit(self, model, *, epochs: float, learning_rate: float, label: str, callbacks=()) -> None:
        """Recovery fine-tune: L1 to the translations that ``model``, as given, makes of the train sneakers.

        Raises:
            ValueError: ``model`` already has pruned (exactly zero) weights: it cannot teach itself.
        """
        import torch.nn.functional as F
        from torch import nn

        # the effective kernels (under a pruning reparametrization: weight_orig * mask)
        kernels = [m.weight.detach().numpy() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        zeros = sum(int((w == 0).sum()) for w in kernels) / sum(w.size for w in kernels)
        if zeros > 0.01:
            raise ValueError(f"{label}: {zeros:.1%} of the generator's weights are already zero; its recovery "
                             "fine-tune distils from the model it is given, so it must be given the dense one")  # fmt: skip
        x = np.array(self.data("train")[0])
        y = torch_common.predict(model, x)  # the targets: what the model given makes of the train sneakers
        torch_common.fit(model, x, y, epochs=epochs, learning_rate=learning_rate, batch_size=self.batch_size,
                         seed=self.seed, label=label, callbacks=callbacks, loss=F.l1_loss)  # fmt: skip

    # -- what the metric does not say -----------------------------------------------------
    def extra_metrics(self, predict: Callable, reference_predict: Callable) -> dict:
        """Fidelity to the fp32 generator's translations; the judge's floor and ceiling."""
        from compress.metrics.psnr import IDENTICAL_DB

        x, _ = self.data("test")
        out, ref = to_pixels(predict(x)), to_pixels(reference_predict(x))
        mse = ((out.astype(np.float64) - ref) ** 2).reshape(len(out), -1).mean(axis=1)
        with np.errstate(divide="ignore"):
            psnr = np.where(mse == 0, IDENTICAL_DB, 10 * np.log10(255.0**2 / mse))
        real_b = _domain("test", self.target)
        judge = self.judge()
        return {
            "psnr_vs_fp32": float(psnr.mean()),
            "ssim_vs_fp32": _mean_ssim(out, ref),
            "judge_untranslated": float((torch_common.predict(judge, (x + 1) / 2).argmax(1) == self.target).mean()),
            "judge_real_target": float((torch_common.predict(judge, (real_b + 1) / 2).argmax(1) == self.target).mean()),
        }


def _mean_ssim(images: np.ndarray, targets: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(np.mean([structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                                use_sample_covariance=False) for a, b in zip(images, targets)]))  # fmt: skip


@lru_cache(maxsize=2)
def _judge(recipe):
    """The judge classifier of ``recipe`` from the weights cache, trained there once (under its lock)."""
    from compress.storage.cache import WeightsCache, recipe_key

    key = recipe_key({"recipe": recipe, "torch_threads": torch_common.TRAIN_THREADS})
    weights, cached = WeightsCache().get_or_build(
        "cyclegan-judge", key, lambda: recipe.weights(torch_common.train_on_split(recipe, "the CycleGAN judge")),
        {"recipe": repr(recipe)},
    )  # fmt: skip
    model = recipe.load(weights).eval()
    log.info("CycleGAN judge: %s weights %s", "cached" if cached else "trained", key)
    return model
