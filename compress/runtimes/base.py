"""The runtime interface and the deployable artefact it runs."""

from __future__ import annotations

import gzip
import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Artefact:
    """What ships: the serialized model bytes and the runtime that executes them."""

    data: bytes
    format: str  # file suffix: "tflite", "onnx", "pt", "pt2"
    runtime: str  # a key of RUNTIMES
    # How the runtime rebuilds what the bytes alone cannot say (e.g. the torch
    # module a state_dict belongs to). Not shipped, not counted, not compared.
    meta: Any = field(default=None, compare=False, repr=False)

    @property
    def nbytes(self) -> int:
        return len(self.data)

    def gzip_nbytes(self) -> int:
        """Bytes after gzip -9 (deterministic: no timestamp): what sparsity buys on the wire."""
        return len(gzip.compress(self.data, compresslevel=9, mtime=0))


class LoadedArtefact(ABC):
    """An artefact loaded in its runtime, ready to predict.

    ``batches``: whether :meth:`predict` runs a batch as one call (False where the code
    was compiled for batch 1 and a batch runs one example at a time).
    """

    batches: bool = True

    @abstractmethod
    def predict(self, x: np.ndarray, batch_size: int = 250) -> np.ndarray:
        """Float outputs for float inputs ``x`` (quantized I/O handled inside)."""

    @abstractmethod
    def single_image_fn(self, x: np.ndarray) -> Callable[[], np.ndarray]:
        """A no-argument function running one batch-1 inference on ``x`` (shape without batch)."""

    def weight_arrays(self) -> list[np.ndarray] | None:
        """Weight tensors of conv and dense layers as stored in the artefact, if readable."""
        return None


class Runtime(ABC):
    name: str
    compiles: bool = False  # load compiles the artefact for this machine: its own cost-profile phase

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def load(self, artefact: Artefact, num_threads: int, device: str = "cpu") -> LoadedArtefact: ...

    def unavailable(self, device: str) -> str | None:
        """Why this runtime cannot run artefacts on ``device`` here (``cpu``, ``cuda``), or None."""
        return None if device == "cpu" else f"the {self.name} runtime runs on cpu only"

    def _check_device(self, device: str) -> None:
        reason = self.unavailable(device)
        if reason:
            raise ValueError(reason)

    def weight_arrays(self, artefact: Artefact) -> list[np.ndarray] | None:
        """The artefact's conv and dense weights as stored (see :meth:`LoadedArtefact.weight_arrays`)."""
        return self.load(artefact, 1).weight_arrays()


RUNTIMES = {
    "litert": "compress.runtimes.litert:LiteRT",
    "torch-eager": "compress.runtimes.torch_eager:TorchEager",
    "torch-inductor": "compress.runtimes.torch_inductor:TorchInductor",
    "onnxruntime": "compress.runtimes.onnxrt:OnnxRuntime",
}


def get_runtime(name: str) -> Runtime:
    try:
        module, cls = RUNTIMES[name].split(":")
    except KeyError:
        raise KeyError(f"unknown runtime {name!r}; valid: {', '.join(RUNTIMES)}") from None
    return getattr(importlib.import_module(module), cls)()
