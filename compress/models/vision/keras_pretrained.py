"""tf_keras ImageNet-1k classifiers with Keras' pretrained weights, on a user's validation folder.

Nothing here downloads unless Keras itself must: the weights file is looked for,
in order, in

1. ``$COMPRESS_BENCH_KERAS_WEIGHTS_DIR``: a directory holding files under
   Keras' standard names (:func:`weights_file_name`), loaded directly with
   ``weights=<path>`` (no hash check by Keras; a file whose MD5 differs from
   Keras' release, where Keras records one, is logged as a warning);
2. Keras' own cache, ``~/.keras/models/`` (``/tmp/.keras/models/`` when
   ``~/.keras`` is not writable), loaded by Keras with ``weights="imagenet"``.
   Keras checks the MD5 of ResNet50's and InceptionV3's files and downloads
   them again when it differs, so such files only count as present when they match.

When neither has the file, :meth:`KerasImageNetClassifier.train` lets Keras
download it (machines with network access); :meth:`~KerasImageNetClassifier.unavailable`
reports it missing, so benchmark pairs are skipped rather than downloading.

The images come from ``$COMPRESS_BENCH_IMAGENET_VAL``, an ImageNet-style folder
(see :mod:`compress.data.imagenet_folder`), decoded at the model's input size
and scaled by the architecture's own ``preprocess_input``.

Example:
    >>> recipe = KerasImageNetClassifier("ResNet50", 224)      # doctest: +SKIP
    >>> recipe.unavailable()                                    # doctest: +SKIP
    'set COMPRESS_BENCH_IMAGENET_VAL to an ImageNet-style validation folder ...'
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import numpy as np

from compress.frameworks import tensorflow
from compress.models.base import Recipe

log = logging.getLogger(__name__)

ENV_WEIGHTS_DIR = "COMPRESS_BENCH_KERAS_WEIGHTS_DIR"
ENV_IMAGENET_VAL = "COMPRESS_BENCH_IMAGENET_VAL"
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"

# arch -> (module of tf.keras.applications holding preprocess_input, URL folder of the weights)
ARCHS = {
    "MobileNetV2": ("mobilenet_v2", "mobilenet_v2"),
    "ResNet50": ("resnet50", "resnet"),
    "InceptionV3": ("inception_v3", "inception_v3"),
}
# MD5 that tf_keras' get_file checks (from tf_keras/src/applications/*.py; none for MobileNetV2).
KERAS_MD5 = {
    "resnet50_weights_tf_dim_ordering_tf_kernels.h5": "2cb95161c43110f7111970584f804107",
    "inception_v3_weights_tf_dim_ordering_tf_kernels.h5": "9a0d58056eeedaa3f26cb7ebd46da564",
}
_MOBILENET_V2_ROWS = (96, 128, 160, 192, 224)


def weights_file_name(arch: str, input_size: int, alpha: float = 1.0) -> str:
    """Keras' file name of the ImageNet weights (with the classifier) of ``arch``.

    MobileNetV2 has one file per ``alpha`` and input size; at sizes Keras has
    no file for, it loads the 224 px one (the weights do not depend on the size).

    Raises:
        ValueError: ``arch`` is not one of :data:`ARCHS`.
    """
    if arch == "MobileNetV2":
        rows = input_size if input_size in _MOBILENET_V2_ROWS else 224
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}.h5"
    if arch == "ResNet50":
        return "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    if arch == "InceptionV3":
        return "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
    raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")


def keras_cache_dir() -> Path:
    """Where tf_keras' ``get_file`` keeps downloaded weights (its own fallback rule)."""
    base = Path(os.path.expanduser("~")) / ".keras"
    if not os.access(base, os.W_OK):
        base = Path("/tmp") / ".keras"
    return base / "models"


@lru_cache(maxsize=8)
def _md5(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _matches_release(path: Path) -> bool:
    """False when Keras records an MD5 for this file name and ``path`` differs from it."""
    expected = KERAS_MD5.get(path.name)
    if expected is None:
        return True
    st = path.stat()
    return _md5(str(path), st.st_mtime_ns, st.st_size) == expected


@lru_cache(maxsize=2)
def _folder(root: str, calib_per_class: int):
    from compress.data.imagenet_folder import ImageNetFolder

    return ImageNetFolder(root, calib_per_class=calib_per_class)


@lru_cache(maxsize=2)
def _preprocessed(root: str, calib_per_class: int, split: str, size: int, limit: int | None,
                  arch: str) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    images, labels = _folder(root, calib_per_class).load(split, size, limit=limit)
    return to_model_input(images, arch), labels


def to_model_input(images: np.ndarray, arch: str, chunk: int = 256) -> np.ndarray:
    """uint8 RGB NHWC -> float32 scaled by ``arch``'s own ``preprocess_input``.

    MobileNetV2 and InceptionV3 scale to [-1, 1]; ResNet50 flips to BGR and
    subtracts the ImageNet mean ("caffe" mode).
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    preprocess = getattr(tensorflow().keras.applications, ARCHS[arch][0]).preprocess_input
    out = np.empty(images.shape, dtype=np.float32)
    for i in range(0, len(images), chunk):  # chunks: no second full-size float copy
        out[i : i + chunk] = preprocess(images[i : i + chunk].astype(np.float32))
    return out


@dataclass(frozen=True)
class KerasImageNetClassifier(Recipe):
    """Recipe of a ``tf_keras.applications`` ImageNet-1k classifier with pretrained weights.

    Nothing is trained: :meth:`train` builds the architecture with the ImageNet
    weights. Fine-tuning is out of scope (no ImageNet training set), so
    :meth:`fit` raises NotImplementedError and techniques that fine-tune are
    listed in :attr:`unsupported`. Every field is part of the cache key.

    Attributes:
        arch: ``"MobileNetV2"``, ``"ResNet50"`` or ``"InceptionV3"``.
        input_size: square input side in pixels (224; 299 for InceptionV3).
        pretrained: ``"imagenet"`` (the file is found as the module docstring says)
            or the path of an ``.h5`` weights file. (Passed to Keras as ``weights=``;
            the field is not named ``weights`` because that is a Recipe method.)
        arch_kwargs: extra constructor arguments as ``(name, value)`` pairs (``alpha``).
        test_size: images of the ``test`` split evaluated (None: all). The split
            is round-robin over classes, so 5,000 is 5 per class; at 224 px they
            take 3 GB as float32.
        calib_per_class: images of each class held out as the ``calib`` split.
        seed, batch_size: what the Recipe protocol asks for (nothing is trained).
    """

    arch: str
    input_size: int = 224
    pretrained: str = "imagenet"
    arch_kwargs: tuple = ()
    test_size: int | None = 5000
    calib_per_class: int = 1
    seed: int = 0
    batch_size: int = 32
    framework: str = field(default="keras", init=False)

    # Technique configs that need fine-tuning (fit) and so cannot apply to this recipe.
    unsupported: ClassVar[dict[str, str]] = dict.fromkeys(
        ("MagnitudePruningConfig", "ChannelPruningConfig"),
        "pruning fine-tunes the model, and ImageNet models are not fine-tuned here (no ImageNet training set)")

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.pretrained != "imagenet" and not str(self.pretrained).endswith(".h5"):
            raise ValueError(f"pretrained must be 'imagenet' or the path of an .h5 file, got {self.pretrained!r}")

    # -- where things are ----------------------------------------------------------
    @property
    def weights_file_name(self) -> str:
        return weights_file_name(self.arch, self.input_size, dict(self.arch_kwargs).get("alpha", 1.0))

    def _weights_source(self) -> tuple[str | None, str | None]:
        """``(what to pass as weights=, None)`` when found offline, else ``(None, reason)``."""
        if self.pretrained != "imagenet":
            path = Path(self.pretrained).expanduser()
            return (str(path), None) if path.is_file() else (None, f"weights file {str(path)!r} does not exist")
        name = self.weights_file_name
        user_dir = os.environ.get(ENV_WEIGHTS_DIR)
        if user_dir:
            path = Path(user_dir).expanduser() / name
            if path.is_file():
                if not _matches_release(path):
                    log.warning("%s is not Keras' release of %s (MD5 differs); using it anyway", path, name)
                return str(path), None
        cached = keras_cache_dir() / name
        if cached.is_file() and _matches_release(cached):
            return "imagenet", None
        where = f"${ENV_WEIGHTS_DIR} ({user_dir})" if user_dir else f"a directory named by ${ENV_WEIGHTS_DIR}"
        stale = " (the file there does not match Keras' MD5)" if cached.is_file() else ""
        return None, (
            f"Keras ImageNet weights {name} not found in {where} nor in {cached.parent}{stale}; "
            f"fetch {WEIGHTS_URL}{ARCHS[self.arch][1]}/{name} into either"
        )

    def source_digest(self) -> str:
        """MD5 of the weights file this recipe loads: part of the cache key, so that
        swapping the file never reuses weights cached from the old one."""
        source, reason = self._weights_source()
        if reason:
            raise FileNotFoundError(reason)
        path = keras_cache_dir() / self.weights_file_name if source == "imagenet" else Path(source)
        st = path.stat()
        return _md5(str(path), st.st_mtime_ns, st.st_size)

    def unavailable(self) -> str | None:
        """None when the weights and the images are both on disk, else why not (one line).

        Never downloads. The benchmark gate skips the model's pairs with this reason.
        """
        _, reason = self._weights_source()
        if reason:
            return reason
        root = os.environ.get(ENV_IMAGENET_VAL)
        if not root:
            return (
                f"set {ENV_IMAGENET_VAL} to an ImageNet-style validation folder "
                f"(root/<class index 0..999 or wnid>/<JPEG/PNG images>)"
            )
        try:
            folder = _folder(root, self.calib_per_class)
        except (OSError, ValueError) as exc:
            return f"{ENV_IMAGENET_VAL}: {exc}"
        for split in ("calib", "test"):
            if not len(folder.indices(split)):
                return f"{ENV_IMAGENET_VAL}: {root!r} has no images for the {split!r} split"
        return None

    # -- data ------------------------------------------------------------------
    def data(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Model-ready ``(x float32 NHWC, y int64)`` of ``calib`` or ``test``.

        Raises:
            ValueError: ``split`` is ``train`` (there is no ImageNet training set here).
            DataNotFoundError: ``$COMPRESS_BENCH_IMAGENET_VAL`` is unset or not a folder.
        """
        if split not in ("calib", "test"):
            raise ValueError(
                f"split {split!r} is not available for {self.arch} on ImageNet: only 'calib' and "
                f"'test' (from ${ENV_IMAGENET_VAL}); fine-tuning is not supported"
            )
        root = os.environ.get(ENV_IMAGENET_VAL)
        if not root:
            from compress.data import DataNotFoundError

            raise DataNotFoundError(f"set {ENV_IMAGENET_VAL} to an ImageNet-style validation folder")
        limit = self.test_size if split == "test" else None
        return _preprocessed(root, self.calib_per_class, split, self.input_size, limit, self.arch)

    # -- model -----------------------------------------------------------------
    def _build(self, weights: str | None):
        tf = tensorflow()
        tf.keras.backend.reset_uids()  # same layer names whatever was built before
        ctor = getattr(tf.keras.applications, self.arch)
        return ctor(
            weights=weights,
            input_shape=(self.input_size, self.input_size, 3),
            classes=1000,
            classifier_activation=None,
            **dict(self.arch_kwargs),
        )

    def train(self, label: str):
        """The model with its ImageNet weights (nothing is trained).

        Loads the file found by :meth:`unavailable`'s rules; when there is none,
        ``weights="imagenet"`` makes Keras download it (needs network access).
        """
        source, reason = self._weights_source()
        if source is None:
            if self.pretrained != "imagenet":
                raise FileNotFoundError(reason)
            log.warning("%s: %s; asking Keras to download it", label, reason)
            source = "imagenet"
        log.info("%s: loading %s ImageNet weights from %s", label, self.arch,
                 keras_cache_dir() / self.weights_file_name if source == "imagenet" else source)  # fmt: skip
        return self._build(source)

    def weights(self, model) -> list[np.ndarray]:
        return model.get_weights()

    def load(self, weights):
        """The architecture holding ``weights`` (dense only: structured pruning is unsupported)."""
        model = self._build(None)
        want = [tuple(w.shape) for w in model.get_weights()]
        got = [tuple(w.shape) for w in weights]
        if want != got:
            raise ValueError(
                f"{len(got)} weight arrays do not fit {self.arch} at {self.input_size} px "
                f"({len(want)} arrays expected, first mismatch at "
                f"{next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))})"
            )
        model.set_weights(list(weights))
        return model

    def count_params(self, model) -> int:
        from compress.models.vision.keras_classifier import count_keras_params

        return count_keras_params(model)

    def fit(self, model, *, epochs: float, learning_rate: float, label: str, callbacks=()) -> None:
        """Not supported: there is no ImageNet training set here, so nothing is fine-tuned.

        Raises:
            NotImplementedError: always; techniques that fine-tune (see
                :attr:`unsupported`) cannot apply to this recipe.
        """
        raise self._no_fine_tuning(label)

    def steps_per_epoch(self) -> int:
        """Not supported, like :meth:`fit` (there is no training split to step through).

        Raises:
            NotImplementedError: always.
        """
        raise self._no_fine_tuning(self.arch)

    def _no_fine_tuning(self, label: str) -> NotImplementedError:
        return NotImplementedError(
            f"{label}: fine-tuning {self.arch} on ImageNet is out of scope (no training set); "
            f"techniques {', '.join(self.unsupported)} do not apply to pretrained ImageNet models"
        )
