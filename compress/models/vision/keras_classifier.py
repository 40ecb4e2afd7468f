"""Keras image classifiers trained by the suite on Fashion-MNIST."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from compress.determinism import set_determinism
from compress.frameworks import tensorflow
from compress.models.base import FirstImagesSplits, Recipe

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def _preprocessed(split: str, size: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    from compress.data import load_fashion_mnist

    images, labels = load_fashion_mnist().split(split)
    return to_model_input(images, size, channels), labels.astype(np.int64)


def to_model_input(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, size, size, channels) in [0, 1].

    28 -> 32 is an exact zero-pad (no interpolation); larger sizes are
    bilinear resizes.
    """
    x = images.astype(np.float32)[..., None] / 255.0
    if size == 32:
        x = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    elif size != 28:
        tf = tensorflow()
        x = np.concatenate(
            [tf.image.resize(x[i : i + 2048], (size, size)).numpy() for i in range(0, len(x), 2048)]
        )
    if channels != 1:
        x = np.repeat(x, channels, axis=-1)
    return np.ascontiguousarray(x)


class KerasArrays(Recipe):
    """``weights``, ``load`` and ``count_params`` of a Keras recipe with a ``build()``."""

    def weights(self, model) -> list[np.ndarray]:
        return model.get_weights()

    def load(self, weights):
        """The architecture holding ``weights``; rebuilt narrower if they are channel-pruned."""
        return load_keras_weights(self.build(), weights)

    def count_params(self, model) -> int:
        return count_keras_params(model)


@dataclass(frozen=True)
class KerasImageClassifier(FirstImagesSplits, KerasArrays):
    """Recipe of a ``tf_keras.applications`` classifier trained from scratch.

    Every field is part of the cache key: change one and the model is retrained.

    Attributes:
        arch: constructor name in ``tf_keras.applications`` (``"MobileNetV2"``).
        arch_kwargs: extra constructor arguments, as sorted ``(name, value)`` pairs.
        input_size: square input side in pixels (28 px images are padded or resized).
        channels: input channels (grey images are repeated to fill them).
        epochs, batch_size, learning_rate: training schedule (Adam, cosine decay).
        bn_momentum: BatchNorm moving-average momentum. Keras' 0.999 leaves the
            moving statistics unconverged after a short training (the model then
            scores 10% in inference mode); 0.9 converges within an epoch.
        train_size: images of the ``train`` split used (None: all 55,000).
        fine_tune_size: images (the first of those) that fine-tunes after a
            transform use (None: all); large models keep pruning fine-tunes cheap.
        seed: seeds weights init and shuffling.
    """

    arch: str
    arch_kwargs: tuple = ()
    input_size: int = 32
    channels: int = 1
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 2e-3
    bn_momentum: float = 0.9
    train_size: int | None = None
    fine_tune_size: int | None = field(default=None, metadata={"key_default": False})
    seed: int = 0
    framework: str = field(default="keras", init=False)

    # -- data (FirstImagesSplits: data, fine_tune_data, steps_per_epoch) -----------
    def _images(self, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
        x, y = _preprocessed(split, self.input_size, self.channels)
        return x[:limit], y[:limit]

    def _limit(self, split: str) -> int | None:
        return self.train_size if split == "train" else None

    # -- model -----------------------------------------------------------------
    def build(self):
        """The untrained architecture (deterministic given ``seed``).

        Layer-name counters are reset first, so every build gets the same names
        and a converted artefact is byte-identical whatever ran before it.
        """
        tf = tensorflow()
        tf.keras.backend.reset_uids()
        ctor = _CUSTOM.get(self.arch) or getattr(tf.keras.applications, self.arch)
        model = ctor(
            input_shape=(self.input_size, self.input_size, self.channels),
            weights=None,
            classes=10,
            classifier_activation=None,
            **dict(self.arch_kwargs),
        )
        for layer in model.layers:
            if isinstance(layer, tf.keras.layers.BatchNormalization):
                layer.momentum = self.bn_momentum
        return model

    def fit(self, model, *, epochs: float, learning_rate: float, label: str, callbacks=()) -> None:
        """Fine-tune ``model`` on :meth:`fine_tune_data` for ``epochs`` (fractions allowed)."""
        self._fit(model, *self.fine_tune_data(), epochs=epochs, learning_rate=learning_rate,
                  label=label, callbacks=callbacks)  # fmt: skip

    def _fit(self, model, x, y, *, epochs: float, learning_rate: float, label: str, callbacks=()) -> None:
        fit_keras(model, x, y, epochs=epochs, learning_rate=learning_rate, batch_size=self.batch_size,
                  seed=self.seed, label=label, callbacks=callbacks)  # fmt: skip

    def train(self, label: str):
        """Build and train from scratch; returns the trained Keras model."""
        set_determinism(self.seed)
        t0 = time.perf_counter()
        model = self.build()
        self._fit(model, *self.data("train"), epochs=self.epochs, learning_rate=self.learning_rate,
                  label=f"train {label}")  # fmt: skip
        log.info("trained %s in %.0f s", label, time.perf_counter() - t0)
        return model


def load_keras_weights(model, weights):
    """``model`` holding ``weights``; rebuilt narrower first if they are channel-pruned."""
    if [tuple(w.shape) for w in model.get_weights()] != [tuple(w.shape) for w in weights]:
        from compress.models.keras_common import rebuild_for_weights

        model = rebuild_for_weights(model, weights)
    model.set_weights(list(weights))
    return model


def count_keras_params(model) -> int:
    """Trainable parameters of a Keras model."""
    return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))


def fit_keras(model, x, y, *, epochs: float, learning_rate: float, batch_size: int, seed: int,
              label: str, callbacks=(), loss=None, metrics=("accuracy",)) -> None:  # fmt: skip
    """Train a Keras ``model`` on ``(x, y)``: Adam, cosine decay, shuffled with ``seed``.

    ``epochs`` may be fractional (that many steps, spread over whole epochs).
    ``loss`` defaults to cross-entropy on logits.
    """
    from compress.progress import keras_callback

    tf = tensorflow()
    steps_full = math.ceil(len(x) / batch_size)
    total = max(1, round(epochs * steps_full))
    n_epochs = math.ceil(total / steps_full)
    steps = math.ceil(total / n_epochs)
    ds = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size)
    )
    schedule = tf.keras.optimizers.schedules.CosineDecay(learning_rate, n_epochs * steps)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(schedule),
        loss=loss or tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=list(metrics),
    )
    cbs = [*callbacks, keras_callback(label, n_epochs, steps)]
    model.fit(ds, epochs=n_epochs, steps_per_epoch=steps, verbose=0, callbacks=cbs)


def _tiny_cnn(input_shape, weights, classes, classifier_activation, width: int = 16):
    """A few-thousand-parameter CNN (conv, BatchNorm, depthwise, dense) for unit tests."""
    assert weights is None
    keras = tensorflow().keras
    L = keras.layers
    inp = keras.Input(input_shape)
    x = L.Conv2D(width, 3, strides=2, padding="same", use_bias=False)(inp)
    x = L.ReLU()(L.BatchNormalization()(x))
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = L.ReLU()(L.BatchNormalization()(x))
    x = L.Conv2D(2 * width, 1, strides=2, use_bias=False)(x)
    x = L.ReLU()(L.BatchNormalization()(x))
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(classes, activation=classifier_activation)(x)
    return keras.Model(inp, x, name="tiny_cnn")


_CUSTOM = {"tiny_cnn": _tiny_cnn}
