"""A team's trained Keras image classifier, from its ``.keras`` file, scored on a dataset of its own.

Nothing is trained: the file's weights are the model. Its ``fp32`` pair is the LiteRT
conversion of the file; every Keras technique (LiteRT dynamic-range, float16 and int8,
tfmot magnitude pruning, channel pruning) applies to it, fine-tuning on the dataset's
``train`` split where it fine-tunes, calibrating on ``calib`` where it calibrates::

    from compress.data.image_folder import ImageFolder
    from compress.models.vision.keras_file import KerasFile
    from compress.registry import register_model

    @register_model(framework="keras", task="image-classification", dataset="our photos",
                    gate=("fp32", "int8", "prune50"))
    def our_classifier():
        return KerasFile("models/classifier.keras", ImageFolder("data/photos", size=96, mode="RGB"))

The file's bytes (SHA-256) are in the model's cache key, not its path: a changed file is
measured again. The input is the images resized to the model's input side and channels,
then ``pixel * scale``, less ``mean``, over ``std``, as the team's training fed it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from compress.data.dataset import Dataset, resolve
from compress.determinism import set_determinism
from compress.frameworks import tensorflow
from compress.models.base import FirstImagesSplits
from compress.models.vision.keras_classifier import KerasArrays, fit_keras
from compress.models.vision.ready_onnx import image_input


@lru_cache(maxsize=8)
def _file(path: str, size: int, mtime_ns: int) -> tuple[str, tuple]:
    """``(SHA-256, input shape)`` of a ``.keras`` file (read again when it changes)."""
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    tf = tensorflow()
    model = tf.keras.models.load_model(path, compile=False)
    return digest, tuple(model.input_shape)


@dataclass(frozen=True)
class KerasFile(FirstImagesSplits, KerasArrays):
    """A trained ``.keras`` image classifier (see the module docstring).

    Attributes:
        path: the ``.keras`` file (``~`` and ``$VARS`` expanded); not in the cache key: its bytes are.
        dataset: the labelled images it is scored on (``test``), calibrated on (``calib``) and
            fine-tuned on (``train``).
        scale, mean, std: the input is ``(pixel * scale - mean) / std`` (``mean``/``std``: one value,
            or one per channel).
        logits: the model's outputs are logits (False: probabilities, a softmax last): the
            fine-tunes' cross-entropy reads them so.
        batch_size, seed: fine-tuning's batch and seed.
        fine_tune_size: training images fine-tunes use (None: all).
    """

    path: str = field(metadata={"key": False})
    dataset: Dataset
    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    logits: bool = True
    batch_size: int = 64
    seed: int = 0
    fine_tune_size: int | None = field(default=None, metadata={"key_default": False})
    framework: str = field(default="keras", init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, Dataset):
            raise TypeError(f"KerasFile dataset must be a compress.data.dataset.Dataset; got {type(self.dataset).__name__}")
        if not (self.mean and self.std) or 0.0 in self.std:
            raise ValueError(f"KerasFile mean and std need one value or one per channel, no std zero; "
                             f"got mean={self.mean!r}, std={self.std!r}")  # fmt: skip

    # -- the file ------------------------------------------------------------------
    def _info(self) -> tuple[str, tuple]:
        p = resolve(self.path)
        st = p.stat()
        return _file(str(p), st.st_size, st.st_mtime_ns)

    def unavailable(self) -> str | None:
        from compress.frameworks import has

        if not has("tensorflow"):
            return "a KerasFile model needs TensorFlow (pip install -e .[tf])"
        p = resolve(self.path)
        if not p.is_file():
            return f"the Keras model file {p} does not exist (KerasFile(path=...): a model saved with model.save('x.keras'))"
        return self.dataset.unavailable()

    def source_digest(self) -> str:
        """SHA-256 of the file's bytes: a changed file is measured again."""
        return self._info()[0]

    def input_spec(self) -> tuple[int, int]:
        """``(side, channels)`` of the model's input (``(None, side, side, channels)``).

        Raises:
            ValueError: the input is not square images with a known side and 1 or 3 channels.
        """
        shape = self._info()[1]
        if len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[3] not in (1, 3):
            raise ValueError(f"{self.path}: input shape {shape}; a KerasFile model takes square images "
                             "(None, side, side, 1 or 3) of a fixed side")  # fmt: skip
        return int(shape[1]), int(shape[3])

    # -- the recipe contract ---------------------------------------------------------
    def _images(self, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
        examples, targets = self.dataset.split(split)
        if targets is None:
            raise ValueError(f"{self.dataset.name} has no targets: a KerasFile model is scored by top-1")
        size, channels = self.input_spec()
        x = image_input(examples[:limit], size, channels, "NHWC", self.scale, self.mean, self.std)
        return x, np.asarray(targets, np.int64)[:limit]

    def _limit(self, split: str) -> int | None:
        return None

    def build(self):
        """The model as the file holds it (layer names as saved: the same bytes every load)."""
        tf = tensorflow()
        tf.keras.backend.reset_uids()
        return tf.keras.models.load_model(str(resolve(self.path)), compile=False)

    def train(self, label: str):
        """Nothing is trained: the file's model."""
        set_determinism(self.seed)
        return self.build()

    def fit(self, model, *, epochs: float, learning_rate: float, label: str, callbacks=()) -> None:
        """Fine-tune ``model`` on :meth:`fine_tune_data` for ``epochs`` (a technique's recovery)."""
        loss = tensorflow().keras.losses.SparseCategoricalCrossentropy(from_logits=self.logits)
        fit_keras(model, *self.fine_tune_data(), epochs=epochs, learning_rate=learning_rate, batch_size=self.batch_size,
                  seed=self.seed, label=label, callbacks=callbacks, loss=loss)  # fmt: skip
