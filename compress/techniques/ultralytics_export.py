"""Export of ultralytics detectors (:mod:`compress.models.detection.yolo`) to ONNX and LiteRT.

ONNX (``onnx_fp32``, ``onnx_dynamic``, ``onnx_int8``): :func:`compress.models.detection.yolo.deploy_module`
through the suite's own ONNX export and onnxruntime quantization
(:mod:`compress.techniques.onnx_export`: the same graph options and the same
per-channel u8s8 QDQ as every torch model), calibrated on the model's ``calib``
canvases.

LiteRT (``fp32``, ``dynamic_range``, ``int8``): ultralytics' own LiteRT exporter
(``ultralytics.utils.export.litert.torch2litert``: litert-torch converts the
PyTorch graph, keeping its NCHW input; ai-edge-quantizer quantizes it), as
``model.export(format="litert", quantize=...)`` runs it: ``w8a32`` (int8 weights,
float activations) for ``dynamic_range``, static ``8`` (int8 weights and
activations, float input and output) calibrated on the ``calib`` canvases for
``int8``. The exporter converts the same float graph for every ``quantize`` and then
quantizes the float32 flatbuffer; here the conversion runs once a run (the runner's ``fp32``
artefact) and :func:`quantized` applies the exporter's own quantization steps to it: the bytes
are those of ``torch2litert(..., quantize=...)`` (``tests/test_yolo.py`` checks it), in 0.3 s
instead of 16 s for ``w8a32`` and 16 s instead of 30 s for int8 (YOLOv8n at 64 px, one core). ultralytics exports no float16 LiteRT model (its docstring: a float32
model runs in float16 on a GPU delegate); ``float16`` here is the float32 export
with ai-edge-quantizer's float-casting recipe (float16 weights of every conv,
dequantized at load), the tool ultralytics quantizes with.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

import numpy as np

from compress.registry import export_base, register_handler
from compress.runtimes.base import Artefact
from compress.techniques.onnx_export import OnnxConfig, export_onnx, float_graph, fp32_graph, quantize_onnx
from compress.techniques.quantization import (
    DynamicRangeConfig,
    Float16Config,
    Float32Config,
    Int8Config,
    calibration_inputs,
)
from compress.techniques.tflite import LITERT_CPU

log = logging.getLogger(__name__)

FRAMEWORK = "ultralytics"


@register_handler(OnnxConfig, FRAMEWORK, base=fp32_graph)
def onnx_export(model, config: OnnxConfig, ctx) -> Artefact:
    """The detector's deploy module to ONNX; quantized as ``config.mode`` says."""
    from compress.models.detection.yolo import deploy_module

    recipe = model.recipe
    data = float_graph(model, config, ctx, lambda: export_onnx(deploy_module(model.native, recipe.imgsz),
                                                               recipe.data("calib")[0][:1]))  # fmt: skip
    if config.mode != "fp32":
        calib = calibration_inputs(recipe, config.calibration_size, "onnx int8") if config.mode == "int8" else None
        if calib is not None:
            log.info("onnx int8: calibrating %s on %d canvases of the calib split", model.name, len(calib))
        data = quantize_onnx(data, config.mode, calib, op_types=config.op_types, calibration=config.calibration,
                            symbolic_shapes=False)
    return Artefact(data, format="onnx", runtime="onnxruntime")


class _FromPackages(logging.Filter):
    """Drops records logged through the root logger by the given packages' modules."""

    def __init__(self, *packages: str):
        super().__init__()
        self.parts = tuple(f"/{p}/" for p in packages)

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(part in record.pathname for part in self.parts)


@contextlib.contextmanager
def _quiet_converter():
    """litert-torch logs every op it lowers through JAX on the root logger at INFO, and JAX its
    missing TPU: hundreds of lines a conversion in the live log. Kept out while converting."""
    root, jax_log = logging.getLogger(), logging.getLogger("jax")
    quiet, level = _FromPackages("litert_torch", "jax"), jax_log.level
    root.addFilter(quiet)
    jax_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.removeFilter(quiet)
        jax_log.setLevel(level)


def _litert(model, quantize, calib: np.ndarray | None = None) -> bytes:
    """ultralytics' LiteRT export of ``model`` (``quantize``: None, ``"w8a32"`` or ``8``)."""
    import torch

    from compress.models.detection.yolo import deploy_module

    recipe = model.recipe
    from ultralytics.utils.export.litert import torch2litert

    net = deploy_module(model.native, recipe.imgsz, fmt="litert", normalize=False)
    im = torch.zeros(1, 3, recipe.imgsz, recipe.imgsz)
    batches = None
    if calib is not None:  # the exporter's calibration loader gives uint8 images (it divides by 255)
        batches = [{"img": torch.from_numpy(np.rint(calib[i : i + 1] * 255).astype(np.uint8))} for i in range(len(calib))]
    metadata = {"task": "detect", "names": dict(enumerate(recipe.names)), "imgsz": [recipe.imgsz] * 2}
    with tempfile.TemporaryDirectory(prefix="compress-bench-litert-") as d, _quiet_converter():
        out = torch2litert(net, im, Path(d, "model.pt"), quantize=quantize, calibration_dataset=batches,
                           metadata=metadata)  # fmt: skip
        return Path(out).read_bytes()


def _flatbuffer(tflite: bytes) -> tuple[bytes, list]:
    """``tflite`` split into its flatbuffer and the entries of the zip ultralytics appends to it."""
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(tflite)) as zf:
            entries = [(info, zf.read(info)) for info in zf.infolist()]
    except zipfile.BadZipFile:
        return bytes(tflite), []
    return tflite[: min(info.header_offset for info, _ in entries)], entries


def quantized(fp32: bytes, quantize, calib: np.ndarray | None = None) -> bytes:
    """ultralytics' LiteRT export with ``quantize`` (``"w8a32"`` or ``8``), from its float32 export ``fp32``.

    ``torch2litert`` (ultralytics 8.4.190) converts the float graph, then quantizes that
    flatbuffer with ai-edge-quantizer; these are its steps after the conversion, the recipe, the
    float input and output it keeps, the calibration images (uint8, divided by 255) and the
    metadata entry, so the bytes are the exporter's."""
    import io
    import zipfile

    from ai_edge_quantizer import qtyping, quantizer, recipe

    flat, entries = _flatbuffer(bytes(fp32))
    qt = quantizer.Quantizer(bytearray(flat))
    if quantize == 8:
        if calib is None:
            raise ValueError("static int8 LiteRT export needs calibration canvases")
        qt.load_quantization_recipe(recipe.static_wi8_ai8())
        for op in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
            qt.update_quantization_recipe(regex=".*", operation_name=op, algorithm_key=recipe.AlgorithmName.NO_QUANTIZE)
        samples = [{"args_0": np.rint(calib[i : i + 1] * 255).astype(np.uint8).astype(np.float32) / 255.0}
                   for i in range(len(calib))]  # fmt: skip
        out = qt.quantize(calibration_result=qt.calibrate({"serving_default": samples})).quantized_model
    elif quantize == "w8a32":
        qt.load_quantization_recipe(recipe.dynamic_wi8_afp32())
        out = qt.quantize().quantized_model
    else:
        raise ValueError(f"quantize must be 'w8a32' or 8, got {quantize!r}")
    buf = io.BytesIO()
    buf.write(bytes(out))
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as zf:
        for info, content in entries:
            zf.writestr(info.filename, content)
    return buf.getvalue()


def _float32(model, config, ctx) -> bytes:
    """The model's float32 LiteRT export that ``config``'s artefact starts from: the runner's ``fp32``
    artefact (converted once a run), or a conversion of its own without a runner."""
    return ctx.exported(model, export_base(config, FRAMEWORK)).data if ctx is not None else _litert(model, None)


def _float32_export(config) -> Float32Config:
    """The export the quantized LiteRT artefacts start from (``register_handler``'s ``base``)."""
    return Float32Config()


def fixed_metadata_time(tflite: bytes) -> bytes:
    """``tflite`` with the metadata zip ultralytics appends to it (``metadata.json``) rewritten with a
    fixed timestamp: as exported, every export's bytes differ by the time of day in the zip headers,
    and an artefact's digest is what the result store keys its measurements on. The flatbuffer
    and the metadata's content are unchanged."""
    import io
    import zipfile

    body, entries = _flatbuffer(tflite)
    if not entries:
        return bytes(tflite)  # nothing appended
    buf = io.BytesIO()
    buf.write(body)
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as zf:
        for info, content in entries:
            zf.writestr(zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0)), content,
                        compress_type=zipfile.ZIP_DEFLATED)  # fmt: skip
    return buf.getvalue()


def _artefact(data: bytes) -> Artefact:
    return Artefact(fixed_metadata_time(bytes(data)), format="tflite", runtime="litert")


@register_handler(Float32Config, FRAMEWORK, why=LITERT_CPU)
def float32(model, config: Float32Config, ctx) -> Artefact:
    return _artefact(_litert(model, None))


@register_handler(DynamicRangeConfig, FRAMEWORK, why=LITERT_CPU, base=_float32_export)
def dynamic_range(model, config: DynamicRangeConfig, ctx) -> Artefact:
    return _artefact(quantized(_float32(model, config, ctx), "w8a32"))


@register_handler(Int8Config, FRAMEWORK, why=LITERT_CPU, base=_float32_export)
def int8(model, config: Int8Config, ctx) -> Artefact:
    calib = calibration_inputs(model.recipe, config.calibration_size, "int8")
    log.info("int8: calibrating %s on %d canvases of the calib split", model.name, len(calib))
    return _artefact(quantized(_float32(model, config, ctx), 8, calib))


def float16_weights(tflite: bytes) -> bytes:
    """``tflite`` with float16 weights (ai-edge-quantizer's float casting of every op it supports)."""
    from ai_edge_quantizer import qtyping, quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    qt = quantizer.Quantizer(bytearray(tflite))
    fp16 = qtyping.OpQuantizationConfig(
        weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT),
        compute_precision=qtyping.ComputePrecision.FLOAT,
        explicit_dequantize=True,
    )
    qt.update_quantization_recipe(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                  op_config=fp16, algorithm_key=AlgorithmName.FLOAT_CASTING)  # fmt: skip
    return bytes(qt.quantize().quantized_model)


@register_handler(Float16Config, FRAMEWORK, why=LITERT_CPU, base=_float32_export)
def float16(model, config: Float16Config, ctx) -> Artefact:
    """The float32 export (the runner's ``fp32`` artefact of the model, exported once) with float16 weights."""
    return _artefact(float16_weights(_float32(model, config, ctx)))
