"""A team's trained ONNX graph (``model.onnx``), measured as it is: its own fp32 baseline.

:class:`ReadyOnnx` is the recipe of a model the suite never trains: the team's file is
the model (framework ``onnx``). Its pairs run on that graph in ONNX Runtime:

- ``fp32``: the file itself, byte for byte (:mod:`compress.techniques.onnx_export`): the
  reference of every other pair (size ratio 1, retention 1) and its latency baseline;
- ``onnx_dynamic``, ``onnx_int8``: the graph quantized by the suite's
  ``onnxruntime.quantization`` code, static int8 calibrated on the dataset's ``calib``
  split; ``onnx_fp32`` does not apply (it would be the same bytes as ``fp32``);
- every technique that needs the model's framework (pruning with a fine-tune, torch or
  TFLite quantization) is unsupported, saying so (:meth:`ReadyOnnx.unsupported_steps`).

The examples of the dataset (any image :class:`~compress.data.dataset.Dataset`: uint8
``(N, H, W)`` grey or ``(N, H, W, 3)`` RGB, int64 class targets, such as
:class:`compress.data.image_folder.ImageFolder`) become the graph's float input by
:func:`image_input`: resized to the graph's side (bilinear) where they differ, grey
repeated to RGB or RGB taken to grey (ITU-R 601 luma, as Pillow's ``"L"``), times
``scale``, less ``mean``, over ``std``, in the graph's layout.

Cache keys: the file's path is not part of them; its bytes are (:meth:`ReadyOnnx.source_digest`,
SHA-256), and so are the dataset's digest and the preprocessing fields. A changed file is
measured again; the same file elsewhere (a CI checkout) reuses what was measured.

The "weights" the cache holds are the file's bytes and its top-level initializers decoded
(twice the file's size): a technique that acts on a recipe's weight arrays (the gate's planted
self-test, :mod:`compress.techniques.planted`) changes the initializers, and :meth:`ReadyOnnx.load`
writes them back into the graph; unchanged, the file's own bytes come back.

The graph must take one float32 image tensor of 4 dimensions with a dynamic batch axis
(calibration and evaluation feed batches) and keep its weights inside the file (no external
data); :meth:`ReadyOnnx.train` says which of these a file breaks.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from compress.data.dataset import DataNotFoundError, Dataset, resolve
from compress.recipe import Recipe

log = logging.getLogger(__name__)

__all__ = ["ReadyOnnx", "GraphFile", "image_input", "FRAMEWORK"]

FRAMEWORK = "onnx"
LAYOUTS = ("NCHW", "NHWC")
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, Pillow's RGB -> "L"


@dataclass(frozen=True)
class GraphFile:
    """What the suite reads of an ONNX file: its bytes, their SHA-256 and its image input and output.

    ``input_shape``/``output_shape``: each axis's size, None where it is symbolic (a dynamic batch).
    """

    data: bytes = field(repr=False)
    digest: str
    input_name: str
    input_type: str  # the ONNX element type's name: "FLOAT"
    input_shape: tuple[int | None, ...]
    output_shape: tuple[int | None, ...]
    external: bool  # an initializer keeps its data in another file


def _dims(value_info) -> tuple[int | None, ...]:
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                 for d in value_info.type.tensor_type.shape.dim)  # fmt: skip


@lru_cache(maxsize=4)
def _read(path: str, size: int, mtime_ns: int) -> GraphFile:
    """The file at ``path`` (read again when its size or mtime changes)."""
    import onnx

    data = Path(path).read_bytes()
    model = onnx.load_from_string(data)
    weights = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    if len(inputs) != 1 or not model.graph.output:
        raise ValueError(f"{path}: the graph has {len(inputs)} inputs and {len(model.graph.output)} outputs; "
                         "a ReadyOnnx model takes one image tensor and gives its class scores first")  # fmt: skip
    elem = onnx.TensorProto.DataType.Name(inputs[0].type.tensor_type.elem_type)
    external = any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    return GraphFile(data, hashlib.sha256(data).hexdigest(), inputs[0].name, elem, _dims(inputs[0]),
                     _dims(model.graph.output[0]), external)  # fmt: skip


def image_input(images: Sequence[np.ndarray] | np.ndarray, size: int, channels: int, layout: str = "NCHW",
                scale: float = 1 / 255, mean: tuple[float, ...] = (0.0,),
                std: tuple[float, ...] = (1.0,)) -> np.ndarray:  # fmt: skip
    """uint8 images (``(N, H, W)`` grey, ``(N, H, W, 3)`` RGB, or a sequence of such images of any
    size) as float32 ``(N, channels, size, size)`` (``NCHW``) or ``(N, size, size, channels)``.

    An image of another size is resized (bilinear, Pillow); grey is repeated to 3 channels, RGB
    taken to 1 by its luma; then ``x * scale``, less ``mean``, over ``std`` (one value, or one per
    channel).
    """
    batch = images if isinstance(images, np.ndarray) else [np.asarray(a) for a in images]
    shapes = [batch.shape[1:3]] if isinstance(batch, np.ndarray) else [a.shape[:2] for a in batch]
    if any(s != (size, size) for s in shapes):
        from PIL import Image

        batch = [np.asarray(Image.fromarray(np.asarray(a, np.uint8)).resize((size, size), Image.Resampling.BILINEAR))
                 for a in batch]  # fmt: skip
    x = np.asarray(batch if isinstance(batch, np.ndarray) else np.stack(batch), np.float32)
    x = x[..., None] if x.ndim == 3 else x
    if x.shape[-1] != channels:
        if (x.shape[-1], channels) == (1, 3):
            x = np.repeat(x, 3, axis=-1)
        elif (x.shape[-1], channels) == (3, 1):
            x = (x @ LUMA)[..., None]
        else:
            raise ValueError(f"images of {x.shape[-1]} channels cannot feed a graph of {channels}")
    x = (x * scale - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if layout == "NCHW" else x, np.float32)


@lru_cache(maxsize=6)
def _inputs(dataset: Dataset, digest: str, split: str, limit: int | None, prep: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The graph's input and the targets of ``dataset``'s ``split`` (``digest``: read again when the data change)."""
    examples, targets = dataset.split(split)
    if targets is None:
        raise ValueError(f"{dataset.name} has no targets: a ReadyOnnx model is scored by top-1 on class targets")
    examples, targets = examples[:limit], np.asarray(targets, np.int64)[:limit]
    return image_input(examples, *prep), targets


@dataclass(frozen=True)
class ReadyOnnx(Recipe):
    """A trained ONNX image classifier, measured as it is (see the module docstring).

    Attributes:
        path: the ``.onnx`` file (``~`` and ``$VARS`` expanded); not in the cache key: its bytes are.
        dataset: the labelled images it is scored on (``test``) and calibrated on (``calib``).
        input_size: the graph's square input side; None: read from the graph's input shape.
        channels: 1 or 3; None: read from the graph's input shape.
        layout: ``"NCHW"`` (torch's exports) or ``"NHWC"`` (TensorFlow's).
        scale, mean, std: the input is ``(pixel * scale - mean) / std`` (``mean``/``std``: one value,
            or one per channel), as the team's training fed it.
        test_size: the first images of the ``test`` split scored (None: all).
    """

    path: str = field(metadata={"key": False})
    dataset: Dataset
    input_size: int | None = None
    channels: int | None = None
    layout: str = "NCHW"
    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    test_size: int | None = None

    framework: ClassVar[str] = FRAMEWORK
    seed: ClassVar[int] = 0  # nothing random: nothing is trained
    batch_size: ClassVar[int] = 250  # evaluation's batch (ONNX Runtime's predict)

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, Dataset):
            raise TypeError("ReadyOnnx dataset must be a compress.data.dataset.Dataset; "
                            f"got {type(self.dataset).__name__}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"ReadyOnnx layout must be one of {', '.join(LAYOUTS)}; got {self.layout!r}")
        if self.channels not in (None, 1, 3):
            raise ValueError(f"ReadyOnnx channels must be 1, 3 or None (the graph's); got {self.channels!r}")
        for name in ("input_size", "test_size"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"ReadyOnnx {name} must be a positive int or None; got {v!r}")
        if not (self.mean and self.std) or 0.0 in self.std:
            raise ValueError(f"ReadyOnnx mean and std need one value or one per channel, no std zero; "
                             f"got mean={self.mean!r}, std={self.std!r}")  # fmt: skip

    # -- the file ------------------------------------------------------------------
    def file(self) -> GraphFile:
        """The graph as the file holds it now.

        Raises:
            DataNotFoundError: there is no file at :attr:`path`.
        """
        p = resolve(self.path)
        try:
            st = os.stat(p)
        except OSError:
            raise DataNotFoundError(self._missing_file(str(p))) from None
        return _read(str(p), st.st_size, st.st_mtime_ns)

    def _missing_file(self, p: str) -> str:
        return f"the ONNX model {p} (ReadyOnnx(path={self.path!r})) does not exist: put the team's model.onnx there"

    def unavailable(self) -> str | None:
        from compress.frameworks import has

        lacking = [m for m in ("onnx", "onnxruntime") if not has(m)]
        if lacking:
            return f"a ReadyOnnx model needs {' and '.join(lacking)} (pip install {' '.join(lacking)})"
        p = resolve(self.path)
        if not p.is_file():
            return self._missing_file(str(p))
        return self.dataset.unavailable()

    def source_digest(self) -> str:
        """SHA-256 of the file's bytes: a changed file is measured again."""
        return self.file().digest

    def input_spec(self) -> tuple[int, int]:
        """``(side, channels)`` of the graph's input: the fields, or the graph's input shape.

        Raises:
            ValueError: the graph's input is not 4-D, or a size it leaves symbolic is not given.
        """
        g = self.file()
        if len(g.input_shape) != 4:
            raise ValueError(f"{self.path}: the graph's input {g.input_name!r} has shape {g.input_shape}; "
                             f"a ReadyOnnx model takes 4-D images ({self.layout})")  # fmt: skip
        c, h = (g.input_shape[1], g.input_shape[2]) if self.layout == "NCHW" else (g.input_shape[3], g.input_shape[1])
        size, channels = self.input_size or h, self.channels or c
        if size is None or channels is None:
            raise ValueError(f"{self.path}: the graph's input {g.input_name!r} {g.input_shape} leaves its side or "
                             "channels symbolic: give ReadyOnnx(input_size=..., channels=...)")  # fmt: skip
        if len(self.mean) not in (1, channels) or len(self.std) not in (1, channels):
            raise ValueError(f"ReadyOnnx mean {self.mean} and std {self.std}: one value each, or one per channel "
                             f"({channels})")  # fmt: skip
        return size, channels

    # -- the recipe contract ---------------------------------------------------------
    def data(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """The graph's float input and int64 targets of ``train`` / ``calib`` / ``test`` (memoized)."""
        prep = (*self.input_spec(), self.layout, self.scale, self.mean, self.std)
        return _inputs(self.dataset, self.dataset.digest(), split, self.test_size if split == "test" else None, prep)

    def train(self, label: str) -> bytes:
        """Nothing is trained: the file's bytes, once checked to be a graph the suite can measure.

        Raises:
            ValueError: weights in external data, an input that is not float32 images with a dynamic
                batch axis, or class scores for another number of classes than the dataset's.
        """
        g, p = self.file(), resolve(self.path)
        if g.external:
            raise ValueError(f"{p}: its weights are in external data files; save the model with its weights "
                             "inside (onnx.save(model, path, save_as_external_data=False))")  # fmt: skip
        if g.input_type != "FLOAT":
            raise ValueError(f"{p}: the graph's input {g.input_name!r} is {g.input_type}; "
                             "a ReadyOnnx model takes float32 images")
        self.input_spec()
        if g.input_shape[0] is not None:
            raise ValueError(f"{p}: the graph's batch axis is fixed at {g.input_shape[0]}; export it with a dynamic "
                             f"batch axis (torch.onnx.export(..., dynamic_axes={{{g.input_name!r}: {{0: 'batch'}}}}))")  # fmt: skip
        classes = self.dataset.classes
        if classes is not None and g.output_shape and g.output_shape[-1] not in (None, len(classes)):
            raise ValueError(f"{p}: the graph scores {g.output_shape[-1]} classes, {self.dataset.name} has "
                             f"{len(classes)}")  # fmt: skip
        log.info("%s: the ready ONNX model %s (%s bytes, sha256 %s) is measured as it is: nothing trained",
                 label, p, f"{len(g.data):,}", g.digest[:12])  # fmt: skip
        return g.data

    def weights(self, native: bytes) -> list[np.ndarray]:
        """The graph's bytes, then its top-level initializers decoded (what a weight-reading technique changes)."""
        from onnx import numpy_helper

        return [np.frombuffer(native, np.uint8), *(numpy_helper.to_array(t) for t in _graph(native).initializer)]

    def load(self, weights: Sequence[np.ndarray]) -> bytes:
        """The graph's bytes; any initializer that differs from the graph's written into it first."""
        import onnx
        from onnx import numpy_helper

        data = np.asarray(weights[0], np.uint8).tobytes()
        model, changed = None, False
        for i, a in enumerate(weights[1:]):
            if model is None:
                model = onnx.load_from_string(data)
            t = model.graph.initializer[i]
            old = numpy_helper.to_array(t)
            if old.dtype != a.dtype or old.shape != a.shape or old.tobytes() != np.asarray(a).tobytes():
                t.CopyFrom(numpy_helper.from_array(np.asarray(a), t.name))
                changed = True
        return model.SerializeToString() if changed else data

    def count_params(self, native: bytes) -> int:
        """Elements of the graph's floating-point initializers (a folded BatchNorm is inside its conv)."""
        from onnx import numpy_helper

        arrays = (numpy_helper.to_array(t) for t in _graph(native).initializer)
        return int(sum(a.size for a in arrays if np.issubdtype(a.dtype, np.floating)))

    def unsupported_steps(self) -> dict[str, str]:
        """Every registered technique step with no handler for an ONNX graph, each saying why."""
        from compress import registry

        out: dict[str, str] = {}
        for name in registry.list_techniques():
            for step in registry.get_technique(name).config.steps():
                kind = type(step).__name__
                if kind in out:
                    continue
                try:
                    registry.handler_for(step, FRAMEWORK)
                except NotImplementedError:
                    out[kind] = f"a ready ONNX artefact is measured as it is; {kind} needs the model's framework"
        return out


def _graph(data: bytes):
    import onnx

    return onnx.load_from_string(data).graph
