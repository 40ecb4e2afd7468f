"""Super-resolution generators with real pretrained weights: ESRGAN-slim (npm ``@upscalerjs/esrgan-slim``).

Each generator is the package's own Keras topology (a residual dense network:
64 features, 2 dense blocks of 4 convolutions growing by 4 channels, global
feature fusion, then convolutions and ``UpSampling2D`` by the factor; ~230 k
parameters) read into tf_keras with the package's float32 weights
(:mod:`compress.models.generative.esrgan_assets`). Nothing is trained: the model is the
published one. The input is fixed to one low-resolution tile (static shapes
for LiteRT); pixels go in and come out in [0, 255], as UpscalerJS feeds them.

Data (:mod:`compress.data.sample_photos`): scikit-image's sample photos cut
into tiles, the input downscaled by the factor with a bicubic filter. Metric
(:mod:`compress.metrics.psnr`): PSNR of the luma against the original tile's. Extra metrics,
per artefact (:meth:`EsrganSlim.extra_metrics`): SSIM (luma) against the original,
PSNR and SSIM against the fp32 artefact's output, and the bicubic floor
(``bicubic_psnr``, ``psnr_over_bicubic``: what upscaling the same tiles with
the bicubic filter scores, and how far the artefact is above it).

Magnitude pruning's recovery fine-tune trains on the ``train`` photos with an
L1 loss (as ESRGAN's PSNR-oriented stage). Channel pruning does not apply:
:attr:`EsrganSlim.unsupported` says why.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np

from compress.determinism import set_determinism
from compress.frameworks import tensorflow
from compress.models.vision.keras_classifier import KerasArrays, fit_keras

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EsrganSlim(KerasArrays):
    """Recipe of the ESRGAN-slim x``scale`` generator on scikit-image's photos.

    Every field is part of the cache key.

    Attributes:
        scale: upscaling factor, one of 2, 3, 4, 8 (one generator each).
        hr_tile: side of an original (target) tile in pixels; the input tile is
            ``hr_tile / scale``. 128 gives 49 test tiles (129 at x3: 39).
        batch_size: tiles per fine-tune step and per inference call.
        fine_tune_size: training tiles a fine-tune uses (None: all of the split).
        seed: fine-tune shuffling.
    """

    scale: int = 2
    hr_tile: int = 128
    batch_size: int = 16
    fine_tune_size: int | None = None
    seed: int = 0
    framework: str = field(default="keras", init=False)

    metric: ClassVar[str] = "psnr"
    unsupported: ClassVar[dict[str, str]] = {
        "ChannelPruningConfig": (
            "ESRGAN's dense blocks concatenate every earlier feature map and add residuals across blocks, so "
            "a channel removed from one convolution must go from every concatenation and sum that reads it; "
            "the Keras channel pruner removes filters from chains of convolutions only"
        ),
    }

    def __post_init__(self) -> None:
        from compress.models.generative.esrgan_assets import SCALES

        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale!r}")
        if self.hr_tile % self.scale or self.hr_tile < 8 * self.scale:
            raise ValueError(f"hr_tile must be a multiple of scale {self.scale} and at least {8 * self.scale}, "
                             f"got {self.hr_tile!r}")  # fmt: skip

    @property
    def lr_tile(self) -> int:
        return self.hr_tile // self.scale

    # -- availability and provenance ------------------------------------------------
    def unavailable(self) -> str | None:
        """None when the npm tarball is cached, else how to get it (the pairs are skipped saying so)."""
        from compress.models.generative.esrgan_assets import unavailable

        return unavailable()

    def source_digest(self) -> str:
        """SHA-256 of the npm tarball the weights come from (part of the cache key)."""
        from compress.models.generative.esrgan_assets import SHA256

        return SHA256

    # -- data --------------------------------------------------------------------
    def _tiles(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        from compress.data.sample_photos import tiles

        return tiles(split, self.hr_tile, self.scale)

    def data(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(low-resolution tiles float32 NHWC in [0, 255], original tiles uint8)`` of a split."""
        low, high = self._tiles(split)
        if split == "train" and self.fine_tune_size is not None:
            low, high = low[: self.fine_tune_size], high[: self.fine_tune_size]
        return low.astype(np.float32), high

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data("train")[1]) / self.batch_size)

    # -- model -------------------------------------------------------------------
    def build(self):
        """The package's topology with its input fixed to one ``lr_tile`` square (weights not yet set)."""
        from compress.models.generative.esrgan_assets import read_generator

        tf = tensorflow()
        config, _ = read_generator(self.scale)
        config = json.loads(json.dumps(config))  # a private copy to edit
        inputs = [layer for layer in config["config"]["layers"] if layer["class_name"] == "InputLayer"]
        if len(inputs) != 1:
            raise ValueError(f"ESRGAN-slim x{self.scale}: expected one input layer, found {len(inputs)}")
        inputs[0]["config"]["batch_input_shape"] = [None, self.lr_tile, self.lr_tile, 3]
        return tf.keras.models.model_from_json(json.dumps(config))

    def train(self, label: str):
        """The published generator: the topology holding the package's weights (nothing is trained)."""
        from compress.models.generative.esrgan_assets import read_generator

        _, arrays = read_generator(self.scale)
        model = self.build()
        used = set()
        for layer in model.layers:
            values = []
            for var in layer.weights:
                name = f"{layer.name}/{var.name.split('/')[-1].split(':')[0]}"
                if name not in arrays:
                    raise ValueError(f"ESRGAN-slim x{self.scale}: the package has no weight {name}")
                if tuple(arrays[name].shape) != tuple(var.shape):
                    raise ValueError(f"ESRGAN-slim x{self.scale}: {name} is {arrays[name].shape} in the package, "
                                     f"{tuple(var.shape)} in the model")  # fmt: skip
                values.append(arrays[name])
                used.add(name)
            if values:
                layer.set_weights(values)
        if used != set(arrays):
            raise ValueError(f"ESRGAN-slim x{self.scale}: package weights not in the model: {sorted(set(arrays) - used)}")
        log.info("%s: loaded ESRGAN-slim x%d (%d weights, %d parameters) from npm %s", label, self.scale,
                 len(arrays), self.count_params(model), "@upscalerjs/esrgan-slim@1.0.0")  # fmt: skip
        return model

    def fit(self, model, *, epochs: float, learning_rate: float, label: str, callbacks=()) -> None:
        """Fine-tune ``model`` on the ``train`` tiles with an L1 loss for ``epochs`` (fractions allowed)."""
        tf = tensorflow()
        set_determinism(self.seed)
        x, y = self.data("train")
        fit_keras(model, x, y.astype(np.float32), epochs=epochs, learning_rate=learning_rate,
                  batch_size=self.batch_size, seed=self.seed, label=label, callbacks=callbacks,
                  loss=tf.keras.losses.MeanAbsoluteError(), metrics=())  # fmt: skip

    # -- what the metric does not say ------------------------------------------------
    def upscaled(self, predict: Callable, x: np.ndarray) -> np.ndarray:
        """``predict``'s upscaled tiles of ``x`` as 8-bit pixels (chunks of ``batch_size``)."""
        from compress.metrics.psnr import to_pixels

        return np.concatenate([to_pixels(predict(x[i : i + self.batch_size])) for i in range(0, len(x), self.batch_size)])

    def extra_metrics(self, predict: Callable, reference_predict: Callable) -> dict:
        """SSIM against the originals; PSNR and SSIM against the fp32 artefact's output; the bicubic floor."""
        from compress.data.sample_photos import upscale_bicubic
        from compress.metrics.psnr import psnr_per_image

        x, high = self.data("test")
        out, ref = self.upscaled(predict, x), self.upscaled(reference_predict, x)
        bicubic = upscale_bicubic(self._tiles("test")[0], self.scale)
        psnr = float(psnr_per_image(out, high).mean())
        bicubic_psnr = float(psnr_per_image(bicubic, high).mean())
        return {
            "ssim": mean_ssim(out, high),
            "psnr_vs_fp32": float(psnr_per_image(out, ref).mean()),
            "ssim_vs_fp32": mean_ssim(out, ref),
            "bicubic_psnr": bicubic_psnr,
            "bicubic_ssim": mean_ssim(bicubic, high),
            "psnr_over_bicubic": psnr - bicubic_psnr,
        }


def mean_ssim(images: np.ndarray, targets: np.ndarray) -> float:
    """Mean SSIM (scikit-image's, Gaussian-weighted as in Wang et al. 2004) of 8-bit RGB tiles' luma
    against their targets' (the channel the PSNR is taken on; :func:`compress.metrics.psnr.luma`)."""
    from skimage.metrics import structural_similarity

    from compress.metrics.psnr import luma

    return float(np.mean([structural_similarity(luma(a), luma(b), data_range=255, gaussian_weights=True,
                                                sigma=1.5, use_sample_covariance=False)
                          for a, b in zip(images, targets)]))  # fmt: skip
