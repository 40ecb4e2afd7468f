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
from typing import Any, Callable

import numpy as np

from compress.runtimes.base import Artefact, LoadedArtefact, Runtime

_WEIGHT_OPS = ("aten.conv1d", "aten.conv2d", "aten.conv3d", "aten.convolution", "aten.linear")
_PACKED = "._packed_params._packed_params"  # dynamic-quantized Linear: (int8 weight, bias)


class TorchEager(Runtime):
    name = "torch-eager"

    def version(self) -> str:
        from importlib.metadata import version

        return version("torch")

    def unavailable(self, device: str) -> str | None:
        return torch_unavailable(device)

    def load(self, artefact: Artefact, num_threads: int = 1, device: str = "cpu") -> "LoadedTorch":
        """Rebuild the module of ``artefact`` on ``device``.

        On ``cuda``, a ``pt`` artefact whose floats are all float16 computes in
        float16 (tensor cores); on the CPU it is upcast to float32 at load
        (float16 compute measured 1.5x slower than float32 here), as TFLite's
        float16 is. bfloat16 computes in bfloat16 on both.

        Raises:
            ValueError: unknown format, a ``pt`` artefact without its skeleton
                ``meta``, or a device torch cannot use here.
        """
        import torch

        self._check_device(device)

        if artefact.format == "pt":
            if not callable(artefact.meta):
                raise ValueError(
                    "a 'pt' artefact needs meta: a zero-argument callable building the module "
                    f"its state_dict loads into; got {artefact.meta!r}"
                )
            module = artefact.meta()
            state = _load_state(artefact.data)
            # a tensor subclass (torchao's int8 weights) replaces the skeleton's float parameter
            module.load_state_dict(state, strict=True, assign=any(map(is_subclass, state.values())))
            floats = [v for v in state.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
            if device == "cuda" and floats and all(v.dtype == torch.float16 for v in floats):
                module = module.half()
        elif artefact.format == "pt2":
            register_quantized_ops()
            module = torch.export.load(io.BytesIO(artefact.data)).module()
        else:
            raise ValueError(f"the torch runtime runs 'pt' and 'pt2' artefacts, not {artefact.format!r}")
        module = module.eval() if artefact.format == "pt" else module
        module = module.to(device)
        layout = memory_format(module) if artefact.format == "pt" else None
        if layout is not None:
            module = module.to(memory_format=layout)
        on_device = getattr(artefact.meta, "on_device", None)  # a skeleton's kernels for the device (2:4)
        if on_device is not None:
            module = on_device(module, device)
        return LoadedTorch(module, artefact, num_threads, device, layout)


def memory_format(module):
    """``torch.channels_last`` for a module with 2-d convolutions (PyTorch's layout for convolutional
    networks: oneDNN's convolutions take NHWC without reordering), else None (the default layout).

    Measured on an AMD EPYC (AVX2), one thread, ResNet18 at 32 px, 256 images a batch: float32 0.52 s
    NCHW, 0.23 s NHWC; bfloat16 (no native bfloat16 arithmetic there) 7.7 s and 2.0 s. The layout
    changes the order of float sums, not the arithmetic: outputs agree to rounding.
    """
    import torch

    if any(isinstance(m, torch.nn.Conv2d) for m in module.modules()):
        return torch.channels_last
    return None


def register_quantized_ops() -> None:
    """Register the ``quantized_decomposed`` operators a PT2E int8 program calls (torchao's pt2e
    package defines them): a process that only loads such a program, one another process built (a
    prepare worker's, :mod:`compress.storage.artefacts`), cannot deserialize it without them."""
    from compress import frameworks

    if frameworks.has("torchao"):
        import torchao.quantization.pt2e  # noqa: F401


def torch_unavailable(device: str) -> str | None:
    """Why torch cannot run on ``device`` here, or None."""
    if device == "cpu":
        return None
    import torch

    if device == "cuda" and torch.cuda.is_available():
        return None
    return f"torch {torch.__version__} sees no {device} device here"


def synchronize(device: str) -> None:
    """Wait for ``device``'s queued work (a timed call must include it)."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def batch1_fn(call: Callable, sample, set_threads: Callable[[], None], context: Callable,
              device: str) -> Callable[[], Any]:  # fmt: skip
    """One timed batch-1 inference of ``call(sample)`` inside ``context()`` on ``set_threads()``'s threads.

    On the CPU it returns the output as float32 numpy; on a GPU it is timed until the device has
    finished (:func:`synchronize`) and leaves the output there, so no copy is timed."""
    if device != "cpu":

        def run_on_device():
            set_threads()
            with context():
                out = call(sample)
            synchronize(device)
            return out

        return run_on_device

    def run() -> np.ndarray:
        set_threads()
        with context():
            return call(sample).float().numpy()

    return run


def _load_state(data: bytes) -> dict:
    import torch

    with warnings.catch_warnings():  # torch's own rebuild of quantized tensors uses TypedStorage
        warnings.filterwarnings("ignore", "TypedStorage is deprecated", UserWarning)
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def as_input(x: np.ndarray, device: str, dtype, layout=None):
    """``x`` as a tensor on ``device``: floating inputs in the compute ``dtype`` (a batch of images in
    ``layout``, a ``torch.memory_format``, when given); integer inputs (token ids) keep their type.
    A new contiguous array: numpy gives an added axis stride 0, and compiled code guards on strides."""
    import torch

    t = torch.from_numpy(np.array(x, order="C", copy=True))
    if not t.is_floating_point():
        return t.to(device)
    t = t.to(device, dtype)
    return t.contiguous(memory_format=layout) if layout is not None and t.dim() == 4 else t


def _compute_dtype(module):
    """The dtype of the module's first floating tensor: what inputs are cast to."""
    import torch

    for t in (*module.parameters(), *module.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32


class LoadedTorch(LoadedArtefact):
    def __init__(self, module, artefact: Artefact, num_threads: int, device: str = "cpu", layout=None):
        self.module = module
        self.layout = layout  # the inputs' torch.memory_format (channels_last for a CNN), or None
        self._artefact = artefact
        self._threads = num_threads
        self.device = device
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
                chunk = as_input(x[i : i + batch_size], self.device, self.dtype, self.layout)
                out.append(self.module(chunk).float().cpu().numpy())
        return np.concatenate(out)

    def single_image_fn(self, x: np.ndarray) -> Callable[[], np.ndarray]:
        import torch

        sample = as_input(x[None], self.device, self.dtype, self.layout)
        return batch1_fn(self.module, sample, self._set_threads, torch.inference_mode, self.device)

    def weight_arrays(self) -> list[np.ndarray]:
        """Conv and linear weights as the artefact stores them (int8 dequantized), in graph order.

        ``pt``: read from the saved state_dict (float16 stays float16, bfloat16
        becomes float32 exactly). ``pt2``: the weight input of each conv/linear
        op, evaluated through its dequantize op from the stored int8 tensor.
        """
        if self._artefact.format == "pt2":
            return _program_weights(self.module)
        return _state_weights(self.module, _load_state(self._artefact.data))


def is_subclass(t) -> bool:
    """True for a tensor of a subclass (torchao's quantized tensors), False for a plain tensor or parameter."""
    import torch

    return isinstance(t, torch.Tensor) and type(t) not in (torch.Tensor, torch.nn.Parameter)


def _to_numpy(t) -> np.ndarray:
    import torch

    if t.is_quantized or is_subclass(t):  # torch's quantized tensors, torchao's int8 (its dequantize)
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
