"""LiteRT (TFLite) runtime: ``ai_edge_litert``'s interpreter (``tf.lite.Interpreter`` is deprecated)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from compress.runtimes.base import Artefact, LoadedArtefact, Runtime
from compress.affine import dequantize, quantize

_WEIGHT_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1}  # op -> weight input index


class LiteRT(Runtime):
    name = "litert"

    def version(self) -> str:
        from importlib.metadata import version

        return version("ai-edge-litert")

    def load(self, artefact: Artefact, num_threads: int = 1, device: str = "cpu") -> "LoadedTFLite":
        self._check_device(device)
        return LoadedTFLite(artefact.data, num_threads)


class LoadedTFLite(LoadedArtefact):
    def __init__(self, data: bytes, num_threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self._data = data
        self._threads = num_threads
        self._make = lambda: Interpreter(model_content=data, num_threads=num_threads)
        self._batch_interp = None
        self._batch = 0
        # a graph traced at a fixed batch (litert-torch: ultralytics' LiteRT export) takes that batch only:
        # resizing its input leaves the rest of the graph at the traced shapes, so it runs at it
        probe = self._make()
        signature = probe.get_input_details()[0]["shape_signature"]
        self._fixed_batch = int(signature[0]) if len(signature) and signature[0] > 0 else None
        self.batches = self._fixed_batch is None

    # Quantized models take and give integers; the caller always sees floats.
    @staticmethod
    def _to_input(x: np.ndarray, detail: dict) -> np.ndarray:
        if np.issubdtype(detail["dtype"], np.integer):
            scale, zp = detail["quantization"]
            return quantize(x, scale, zp, detail["dtype"])
        return x.astype(detail["dtype"], copy=False)

    @staticmethod
    def _from_output(y: np.ndarray, detail: dict) -> np.ndarray:
        if np.issubdtype(detail["dtype"], np.integer):
            scale, zp = detail["quantization"]
            return dequantize(y, scale, zp)
        return y.astype(np.float32, copy=False)

    def _interpreter(self, batch: int, sample_shape: tuple):
        if self._batch_interp is None or self._batch != batch:
            interp = self._batch_interp or self._make()
            interp.resize_tensor_input(interp.get_input_details()[0]["index"], (batch, *sample_shape))
            interp.allocate_tensors()
            self._batch_interp, self._batch = interp, batch
        return self._batch_interp

    def predict(self, x: np.ndarray, batch_size: int = 250) -> np.ndarray:
        batch_size = self._fixed_batch or min(batch_size, len(x))
        interp = self._interpreter(batch_size, x.shape[1:])
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
        outs = []
        for i in range(0, len(x), batch_size):
            chunk = x[i : i + batch_size]
            n = len(chunk)
            if n < batch_size:  # pad the last chunk rather than reallocating
                chunk = np.concatenate([chunk, np.zeros((batch_size - n, *x.shape[1:]), x.dtype)])
            interp.set_tensor(inp["index"], self._to_input(chunk, inp))
            interp.invoke()
            outs.append(self._from_output(interp.get_tensor(out["index"]), out)[:n])
        return np.concatenate(outs)

    def single_image_fn(self, x: np.ndarray) -> Callable[[], np.ndarray]:
        interp = self._make()
        inp = interp.get_input_details()[0]
        interp.resize_tensor_input(inp["index"], (1, *x.shape))
        interp.allocate_tensors()
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
        sample = self._to_input(x[None], inp)
        set_tensor, invoke, get_tensor = interp.set_tensor, interp.invoke, interp.get_tensor
        i_idx, o_idx = inp["index"], out["index"]

        def run() -> np.ndarray:
            set_tensor(i_idx, sample)
            invoke()
            return get_tensor(o_idx)

        return run

    def weight_arrays(self) -> list[np.ndarray]:
        """Kernels of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED ops, as stored.

        A float16 kernel reaches its op through a DEQUANTIZE op; it is read at
        its source, so zeros are counted in the stored (shipped) tensor. The graph is
        read without the default XNNPACK delegate: the delegate takes DEQUANTIZE ops
        over, and its outputs, read before any inference, are unset memory (YOLOv8n
        float16 counted 0.45 zeros in one run and 0.00001 in the next, for the same
        bytes). An op whose "kernel" is computed at run time (another op's output or a
        model input: a product of two activations lowered to FULLY_CONNECTED) has no
        stored weights: it is left out.
        """
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        interp = Interpreter(model_content=self._data,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)  # fmt: skip
        interp.allocate_tensors()
        ops = interp._get_ops_details()
        producer = {o: op for op in ops for o in op["outputs"]}
        inputs = {d["index"] for d in interp.get_input_details()}
        arrays = []
        for op in ops:
            if op["op_name"] not in _WEIGHT_OPS:
                continue
            t = op["inputs"][_WEIGHT_OPS[op["op_name"]]]
            while t in producer and producer[t]["op_name"] == "DEQUANTIZE":
                t = producer[t]["inputs"][0]
            if t < 0 or t in producer or t in inputs:  # computed at run time: no stored kernel
                continue
            arrays.append(np.array(interp.get_tensor(t)))
        return arrays
