"""Eager PyTorch runtime: ``pt`` (a state_dict plus the skeleton it loads into) and ``pt2`` artefacts.

Threads: ``torch.set_num_threads`` is process-wide. A loaded artefact sets its
thread count before each :meth:`~LoadedTorch.predict` and each run of its
:meth:`~LoadedTorch.single_image_fn` (when it differs), and never restores the
previous value: the suite's processes are single-purpose.
"""

from __future__ import annotations

import functools
import io
import warnings
from typing import Callable

import numpy as np

from compress.runtimes.base import Artefact, LoadedArtefact, Runtime

_WEIGHT_OPS = ("aten.conv1d", "aten.conv2d", "aten.conv3d", "aten.convolution", "aten.linear")
_PACKED = "._packed_params._packed_params"  # dynamic-quantized Linear: (int8 weight, bias)


class TorchEager(Runtime):
    name = "torch-eager"

    def version(self) -> str:
        from importlib.metadata import version

        return version("torch")

    def load(self, artefact: Artefact, num_threads: int = 1) -> "LoadedTorch":
        """Rebuild the module of ``artefact``.

        Raises:
            ValueError: unknown format, or a ``pt`` artefact without its skeleton ``meta``.
        """
        import torch

        if artefact.format == "pt":
            if not callable(artefact.meta):
                raise ValueError(
                    "a 'pt' artefact needs meta: a zero-argument callable building the module "
                    f"its state_dict loads into; got {artefact.meta!r}"
                )
            module = artefact.meta()
            module.load_state_dict(_load_state(artefact.data), strict=True)
        elif artefact.format == "pt2":
            module = torch.export.load(io.BytesIO(artefact.data)).module()
        else:
            raise ValueError(f"the torch runtime runs 'pt' and 'pt2' artefacts, not {artefact.format!r}")
        return LoadedTorch(module.eval() if artefact.format == "pt" else module, artefact, num_threads)


def _load_state(data: bytes) -> dict:
    import torch

    with warnings.catch_warnings():  # torch's own rebuild of quantized tensors uses TypedStorage
        warnings.filterwarnings("ignore", "TypedStorage is deprecated", UserWarning)
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _compute_dtype(module):
    """The dtype of the module's first floating tensor: what inputs are cast to."""
    import torch

    for t in (*module.parameters(), *module.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32


class LoadedTorch(LoadedArtefact):
    def __init__(self, module, artefact: Artefact, num_threads: int):
        self.module = module
        self._artefact = artefact
        self._threads = num_threads
        self.dtype = _compute_dtype(module)

    def _set_threads(self) -> None:
        import torch

        if torch.get_num_threads() != self._threads:
            torch.set_num_threads(self._threads)

    def predict(self, x: np.ndarray, batch_size: int = 250) -> np.ndarray:
        import torch

        self._set_threads()
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                chunk = torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size])).to(self.dtype)
                out.append(self.module(chunk).float().numpy())
        return np.concatenate(out)

    def single_image_fn(self, x: np.ndarray) -> Callable[[], np.ndarray]:
        import torch

        sample = torch.from_numpy(np.ascontiguousarray(x[None])).to(self.dtype)
        module, set_threads, inference_mode = self.module, self._set_threads, torch.inference_mode

        def run() -> np.ndarray:
            set_threads()
            with inference_mode():
                return module(sample).float().numpy()

        return run

    def weight_arrays(self) -> list[np.ndarray]:
        """Conv and linear weights as the artefact stores them (int8 dequantized), in graph order.

        ``pt``: read from the saved state_dict (float16 stays float16, bfloat16
        becomes float32 exactly). ``pt2``: the weight input of each conv/linear
        op, evaluated through its dequantize op from the stored int8 tensor.
        """
        if self._artefact.format == "pt2":
            return _program_weights(self.module)
        return _state_weights(self.module, _load_state(self._artefact.data))


def _to_numpy(t) -> np.ndarray:
    import torch

    if t.is_quantized:
        t = t.dequantize()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16; float32 holds it exactly
        t = t.float()
    return t.detach().cpu().numpy()


def _state_weights(module, state: dict) -> list[np.ndarray]:
    from torch import nn

    arrays = []
    for prefix, sub in module.named_modules():
        if prefix + _PACKED in state:
            arrays.append(_to_numpy(state[prefix + _PACKED][0]))
        elif isinstance(sub, (nn.modules.conv._ConvNd, nn.Linear)):
            arrays.append(_to_numpy(state[f"{prefix}.weight" if prefix else "weight"]))
    return arrays


def _program_weights(gm) -> list[np.ndarray]:
    def value(arg):
        if not hasattr(arg, "op"):  # a literal argument (axis, quant_min, dtype...)
            return arg
        if arg.op == "get_attr":
            return functools.reduce(getattr, arg.target.split("."), gm)
        if arg.op == "call_function" and str(arg.target).startswith("quantized_decomposed.dequantize"):
            return arg.target(*map(value, arg.args), **{k: value(v) for k, v in arg.kwargs.items()})
        raise ValueError(f"weight comes from {arg.op} {arg.target}, not a stored tensor")

    return [
        _to_numpy(value(n.args[1]))
        for n in gm.graph.nodes
        if n.op == "call_function" and str(n.target).rsplit(".", 1)[0] in _WEIGHT_OPS
    ]
