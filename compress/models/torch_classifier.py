"""torchvision image classifiers trained by the suite on Fashion-MNIST."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from compress.models import torch_common
from compress.models.base import FirstImagesSplits


@lru_cache(maxsize=4)
def _preprocessed(split: str, size: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    from compress.data import load_fashion_mnist

    images, labels = load_fashion_mnist().split(split)
    return to_model_input(images, size, channels), labels.astype(np.int64)


def to_model_input(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, channels, size, size) in [0, 1] (NCHW).

    28 -> 32 is an exact zero-pad; other sizes are bilinear resizes.
    """
    x = images.astype(np.float32)[:, None] / 255.0
    if size == 32:
        x = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    elif size != 28:
        import torch
        import torch.nn.functional as F

        x = np.concatenate([
            F.interpolate(torch.from_numpy(x[i : i + 2048]), size=(size, size), mode="bilinear",
                          align_corners=False).numpy()
            for i in range(0, len(x), 2048)
        ])  # fmt: skip
    if channels != 1:
        x = np.repeat(x, channels, axis=1)
    return np.ascontiguousarray(x)


def _tiny_torch(num_classes: int = 10):
    """A few-thousand-parameter CNN (conv, BatchNorm, depthwise, linear) for unit tests."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 1, stride=2, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes),
    )  # fmt: skip


# arch name -> builder(num_classes) of an nn.Module: architectures besides torchvision's
_ARCHITECTURES: dict[str, Callable[[int], Any]] = {"tiny_torch": _tiny_torch}


def register_architecture(name: str, builder: Callable[[int], Any]) -> None:
    """Let ``TorchImageClassifier(name, ...)`` train ``builder(num_classes)``, an untrained ``nn.Module``.

    For a team's own architecture (a plugin, ``compress/plugins.py``): call it where the
    model is registered, so every process that reads the registry has it. The builder
    runs after the recipe seeds torch. The name is part of the weights' cache key:
    give a changed architecture a new name (or change another recipe field) to retrain.
    """
    if _ARCHITECTURES.get(name, builder) is not builder:
        raise ValueError(f"torch architecture {name!r} is already registered")
    _ARCHITECTURES[name] = builder


@dataclass(frozen=True)
class TorchImageClassifier(FirstImagesSplits, torch_common.TorchArrays, torch_common.TorchFit):
    """Recipe of a ``torchvision.models`` classifier trained from scratch.

    Every field is part of the cache key: change one and the model is retrained.

    Attributes:
        arch: constructor name in ``torchvision.models`` (``"resnet18"``), ``"tiny_torch"``, or
            a name given to :func:`register_architecture`.
        input_size: square input side (28 px images are zero-padded to 32 or resized).
        channels: input channels (grey images repeated: torchvision stems take RGB).
        epochs, batch_size, learning_rate, weight_decay: AdamW, cosine decay.
        train_size: images of the ``train`` split used (None: all 55,000).
        fine_tune_size: images (the first of those) that fine-tunes after a
            transform use (None: all).
        test_size: images of the ``test`` split scored (the first of its 10,000; None: all).
            Fewer images resolve a smaller change less surely: the bounds say what they detect.
        seed: seeds weight init and shuffling.
    """

    arch: str
    input_size: int = 32
    channels: int = 3
    epochs: float = 3
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 5e-4
    train_size: int | None = None
    fine_tune_size: int | None = None
    seed: int = 0
    # at its default, left out of the cache key: weights cached before it existed stay valid
    test_size: int | None = field(default=None, metadata={"key_default": False})
    framework: str = field(default="torch", init=False)

    # -- data (FirstImagesSplits: data, fine_tune_data, steps_per_epoch), NCHW ------
    def _images(self, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
        x, y = _preprocessed(split, self.input_size, self.channels)
        return x[:limit], y[:limit]

    def _limit(self, split: str) -> int | None:
        return {"train": self.train_size, "test": self.test_size}.get(split)

    # -- model -----------------------------------------------------------------
    def build(self):
        """The untrained architecture (deterministic given ``seed``), in eval mode."""
        import torch

        torch.manual_seed(self.seed)
        if self.arch in _ARCHITECTURES:
            return _ARCHITECTURES[self.arch](10).eval()
        import torchvision

        return getattr(torchvision.models, self.arch)(weights=None, num_classes=10).eval()

    def train(self, label: str):
        """Build and train from scratch; returns the trained module in eval mode."""
        return torch_common.train_on_split(self, label)
