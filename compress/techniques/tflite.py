"""Export of Keras models through the TFLite converter (fp32, dynamic-range, float16, int8)."""

from __future__ import annotations

import logging

from compress.frameworks import tensorflow
from compress.registry import register_handler
from compress.runtimes.base import Artefact
from compress.techniques.quantization import (
    DynamicRangeConfig,
    Float16Config,
    Float32Config,
    Int8Config,
    calibration_inputs,
)

log = logging.getLogger(__name__)

LITERT_CPU = "the suite runs LiteRT on its CPU kernels (no GPU delegate)"


def _converter(model):
    tf = tensorflow()
    keras_model = model.native
    spec = tf.TensorSpec((None, *keras_model.input_shape[1:]), tf.float32)
    # The converter saves its trackable as a SavedModel first. Handing it the
    # Keras model makes it trace every layer (16 s for MobileNetV2); a bare
    # module holding only the inference function converts in about 1.5 s.
    holder = tf.Module()
    holder.infer = tf.function(lambda x: keras_model(x, training=False), input_signature=[spec])
    return tf.lite.TFLiteConverter.from_concrete_functions([holder.infer.get_concrete_function()], holder)


def _convert(converter) -> Artefact:
    return Artefact(bytes(converter.convert()), format="tflite", runtime="litert")


@register_handler(Float32Config, "keras", why=LITERT_CPU)
def float32(model, config: Float32Config, ctx) -> Artefact:
    return _convert(_converter(model))


@register_handler(DynamicRangeConfig, "keras", why=LITERT_CPU)
def dynamic_range(model, config: DynamicRangeConfig, ctx) -> Artefact:
    conv = _converter(model)
    conv.optimizations = [tensorflow().lite.Optimize.DEFAULT]
    return _convert(conv)


@register_handler(Float16Config, "keras", why=LITERT_CPU)
def float16(model, config: Float16Config, ctx) -> Artefact:
    tf = tensorflow()
    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    return _convert(conv)


@register_handler(Int8Config, "keras", why=LITERT_CPU)
def int8(model, config: Int8Config, ctx) -> Artefact:
    """Full-integer int8 with int8 input and output, calibrated on the ``calib`` split."""
    tf = tensorflow()
    calib = calibration_inputs(model.recipe, config.calibration_size, "int8")
    log.info("int8: calibrating %s on %d inputs of the calib split", model.name, len(calib))

    def representative():
        for i in range(len(calib)):
            yield [calib[i : i + 1]]

    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return _convert(conv)
