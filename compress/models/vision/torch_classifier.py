"""torchvision image classifiers trained by the suite on Fashion-MNIST, or on any image dataset.

``TorchImageClassifier(arch)`` trains on Fashion-MNIST; ``TorchImageClassifier(arch,
dataset=ImageFolder("~/team-images"))`` on a team's images (any
:class:`compress.data.dataset.Dataset` whose splits hold uint8 grey ``(N, H, W)`` or
RGB ``(N, H, W, 3)`` images and class indices), with one output per class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from compress.data.dataset import Dataset
from compress.models import torch_common
from compress.models.base import FirstImagesSplits

NUM_CLASSES = 10  # Fashion-MNIST's: the label count when no dataset is given


@lru_cache(maxsize=4)
def _preprocessed(split: str, size: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    from compress.data import load_fashion_mnist

    images, labels = load_fashion_mnist().split(split)
    return to_model_input(images, size, channels), labels.astype(np.int64)


@lru_cache(maxsize=4)
def _dataset_input(dataset: Dataset, split: str, size: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`images_to_model_input` of a dataset's split, and its targets as int64 (memoized per dataset)."""
    images, targets = dataset.split(split)
    if targets is None:
        raise ValueError(f"{dataset.name}: split {split!r} has no targets; an image classifier needs class indices")
    return images_to_model_input(np.asarray(images), size, channels), np.asarray(targets, np.int64)


def images_to_model_input(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """uint8 grey ``(N, H, W)`` or RGB ``(N, H, W, 3)`` -> float32 ``(N, channels, size, size)`` in [0, 1] (NCHW).

    28 x 28 grey images go through :func:`to_model_input`, as Fashion-MNIST does (the
    same images give the same input, whichever dataset holds them). Otherwise RGB
    is averaged to one channel for ``channels=1``, grey repeated for more, and an
    image whose side is not ``size`` is resized (bilinear, as torch's ``interpolate``).
    """
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise ValueError(f"images must be uint8 (N, H, W) grey or (N, H, W, 3) RGB; got {images.dtype} "
                         f"{images.shape}")  # fmt: skip
    if images.ndim == 3 and images.shape[1:] == (28, 28):
        return to_model_input(images, size, channels)
    x = images.astype(np.float32) / 255.0
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    if x.shape[1] == 3 and channels != 3:
        x = x.mean(axis=1, keepdims=True)
    if x.shape[2:] != (size, size):
        x = _resize(x, size)
    if x.shape[1] != channels:
        x = np.repeat(x, channels, axis=1)
    return np.ascontiguousarray(x)


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    """float32 NCHW resized to ``size x size`` (bilinear, ``align_corners=False``), 2,048 images at a time."""
    import torch
    import torch.nn.functional as F

    return np.concatenate([
        F.interpolate(torch.from_numpy(np.ascontiguousarray(x[i : i + 2048])), size=(size, size), mode="bilinear",
                      align_corners=False).numpy()
        for i in range(0, len(x), 2048)
    ])  # fmt: skip


def to_model_input(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, channels, size, size) in [0, 1] (NCHW).

    28 -> 32 is an exact zero-pad; other sizes are bilinear resizes.
    """
    x = images.astype(np.float32)[:, None] / 255.0
    if size == 32:
        x = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    elif size != 28:
        x = _resize(x, size)
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

    Every field is part of the cache key: change one and the model is retrained
    (a dataset enters it as its digest: change an image and the model is retrained).

    Attributes:
        arch: constructor name in ``torchvision.models`` (``"resnet18"``), ``"tiny_torch"``, or
            a name given to :func:`register_architecture`.
        input_size: square input side (28 px images are zero-padded to 32 or resized).
        channels: input channels (grey images repeated: torchvision stems take RGB).
        epochs, batch_size, learning_rate, weight_decay: AdamW, cosine decay.
        train_size: images of the ``train`` split used (None: all; Fashion-MNIST's 55,000).
        fine_tune_size: images (the first of those) that fine-tunes after a
            transform use (None: all).
        test_size: images of the ``test`` split scored (the first; Fashion-MNIST has 10,000; None: all).
            Fewer images resolve a smaller change less surely: the bounds say what they detect.
        seed: seeds weight init and shuffling.
        dataset: the images trained, calibrated and scored on (a
            :class:`~compress.data.dataset.Dataset` of uint8 grey or RGB images, such as
            :class:`~compress.data.image_folder.ImageFolder`): one output per class of
            ``dataset.classes``, images made ``channels x input_size x input_size`` by
            :func:`images_to_model_input`. None: Fashion-MNIST, 10 classes (at None it is
            left out of the cache key: the keys of recipes from before it stay).
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
    dataset: Dataset | None = field(default=None, metadata={"key_default": False})
    framework: str = field(default="torch", init=False)

    # -- data (FirstImagesSplits: data, fine_tune_data, steps_per_epoch), NCHW ------
    def _images(self, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
        if self.dataset is None:
            x, y = _preprocessed(split, self.input_size, self.channels)
        else:
            x, y = _dataset_input(self.dataset, split, self.input_size, self.channels)
        return x[:limit], y[:limit]

    def _limit(self, split: str) -> int | None:
        return {"train": self.train_size, "test": self.test_size}.get(split)

    def unavailable(self) -> str | None:
        """The dataset's :meth:`~compress.data.dataset.Dataset.unavailable` (None without a dataset, as before)."""
        return None if self.dataset is None else self.dataset.unavailable()

    def data_source(self) -> Dataset:
        """The images: ``dataset``, or Fashion-MNIST."""
        from compress.data.fashion_mnist import FASHION_MNIST

        return FASHION_MNIST if self.dataset is None else self.dataset

    # -- model -----------------------------------------------------------------
    def num_classes(self) -> int:
        """Outputs of the classifier: one per class of the dataset (Fashion-MNIST's 10 without one)."""
        return NUM_CLASSES if self.dataset is None else len(self.dataset.classes)

    def build(self):
        """The untrained architecture (deterministic given ``seed``), in eval mode."""
        import torch

        n = self.num_classes()
        torch.manual_seed(self.seed)
        if self.arch in _ARCHITECTURES:
            return _ARCHITECTURES[self.arch](n).eval()
        import torchvision

        return getattr(torchvision.models, self.arch)(weights=None, num_classes=n).eval()

    def train(self, label: str):
        """Build and train from scratch; returns the trained module in eval mode."""
        return torch_common.train_on_split(self, label)
