"""ONNX Runtime (CPU execution provider) for ``onnx`` artefacts.

Sessions run sequentially with ``intra_op_num_threads = num_threads``, one
inter-op thread and every graph optimization (``ORT_ENABLE_ALL``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from compress.runtimes.base import Artefact, LoadedArtefact, Runtime

# op -> index of its weight input; float ops and the integer ops of dynamic quantization
_WEIGHT_OPS = {"Conv": 1, "Gemm": 1, "MatMul": 1, "ConvInteger": 1, "MatMulInteger": 1}


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    def version(self) -> str:
        import onnxruntime

        return onnxruntime.__version__

    def unavailable(self, device: str) -> str | None:
        """``cuda`` needs onnxruntime's CUDAExecutionProvider, which only some of its wheels carry."""
        if device == "cpu":
            return None
        import onnxruntime as ort

        have = ort.get_available_providers()
        if "CUDAExecutionProvider" in have:
            return None
        return (f"onnxruntime {ort.__version__} here has no CUDAExecutionProvider (it has {', '.join(have)}); "
                "the onnxruntime-gpu wheel carries it")  # fmt: skip

    def load(self, artefact: Artefact, num_threads: int = 1, device: str = "cpu") -> "LoadedOnnx":
        """An InferenceSession on the artefact's bytes.

        Raises:
            ValueError: the artefact is not ``onnx``, or ``device`` has no provider here.
        """
        if artefact.format != "onnx":
            raise ValueError(f"onnxruntime runs 'onnx' artefacts, not {artefact.format!r}")
        self._check_device(device)
        return LoadedOnnx(artefact.data, num_threads, device)


PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


def session(data: bytes, num_threads: int, device: str = "cpu"):
    """An InferenceSession: ``num_threads`` intra-op threads, sequential, all optimizations, on ``device``'s provider."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = num_threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(data, so, providers=PROVIDERS[device])


class LoadedOnnx(LoadedArtefact):
    def __init__(self, data: bytes, num_threads: int, device: str = "cpu"):
        self._data = data
        self.session = session(data, num_threads, device)
        self._input = self.session.get_inputs()[0].name
        # what the graph takes: float32 images, int64 token ids
        self._dtype = np.int64 if self.session.get_inputs()[0].type == "tensor(int64)" else np.float32
        self._output = self.session.get_outputs()[0].name

    def predict(self, x: np.ndarray, batch_size: int = 250) -> np.ndarray:
        run, names = self.session.run, [self._output]
        outs = [
            run(names, {self._input: np.ascontiguousarray(x[i : i + batch_size], dtype=self._dtype)})[0]
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(outs).astype(np.float32, copy=False)

    def single_image_fn(self, x: np.ndarray) -> Callable[[], np.ndarray]:
        feed = {self._input: np.ascontiguousarray(x[None], dtype=self._dtype)}
        run, names = self.session.run, [self._output]

        def run_one() -> np.ndarray:
            return run(names, feed)[0]

        return run_one

    def weight_arrays(self) -> list[np.ndarray]:
        """Weights of Conv, Gemm and MatMul (and their integer forms), as stored, dequantized.

        A weight behind a DequantizeLinear (QDQ) is its int8 initializer times
        its (per-channel) scale; an integer op's weight uses the scale
        initializer onnxruntime's dynamic quantizer names ``<weight>_scale``.
        A MatMul of two activations has no weight and is skipped.
        """
        import onnx

        return graph_weights(onnx.load_from_string(self._data))


def _dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int) -> np.ndarray:
    """ONNX DequantizeLinear: ``(q - zero_point) * scale``, per-axis when ``scale`` is 1-D."""
    zp = np.zeros((), np.int64) if zero_point is None else zero_point.astype(np.int64)
    if scale.ndim == 1 and q.ndim > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
        if zp.ndim:
            zp = zp.reshape(shape)
    return ((q.astype(np.int64) - zp) * scale.astype(np.float32)).astype(np.float32)


def graph_weights(model) -> list[np.ndarray]:
    """The weight tensors of ``model``'s conv/gemm/matmul nodes (see :meth:`LoadedOnnx.weight_arrays`).

    Raises:
        ValueError: an integer op's weight has no ``<name>_scale`` initializer.
    """
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}

    def source(name: str) -> str:
        while name in producer and producer[name].op_type == "Identity":
            name = producer[name].input[0]
        return name

    def stored(name: str) -> np.ndarray | None:
        name = source(name)
        if name in inits:
            return inits[name]
        node = producer.get(name)
        if node is None or node.op_type != "DequantizeLinear" or source(node.input[0]) not in inits:
            return None
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        zp = stored(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        return _dequantize(inits[source(node.input[0])], stored(node.input[1]), zp, axis)

    arrays = []
    for node in model.graph.node:
        if node.op_type not in _WEIGHT_OPS or len(node.input) <= _WEIGHT_OPS[node.op_type]:
            continue
        w_name = node.input[_WEIGHT_OPS[node.op_type]]
        w = stored(w_name)
        if w is None:
            continue
        if node.op_type.endswith("Integer"):
            base = source(w_name).removesuffix("_quantized")
            if f"{base}_scale" not in inits:
                raise ValueError(f"{node.op_type} weight {w_name!r} has no {base + '_scale'!r} initializer")
            zp = stored(node.input[3]) if len(node.input) > 3 and node.input[3] else None
            # per-channel integer weights have one scale per output channel:
            # axis 0 of a ConvInteger kernel (O, I, kh, kw), axis 1 of a MatMulInteger B (K, N)
            w = _dequantize(w, inits[f"{base}_scale"], zp, 0 if node.op_type == "ConvInteger" else 1)
        arrays.append(w)
    return arrays
