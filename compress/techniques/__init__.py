"""The technique catalogue: every named technique, registered once.

A technique is a named config. Importing this package registers them and the
framework handlers (which import their frameworks lazily, when applied).
"""

from compress.registry import register_technique
from compress.techniques import tflite, tfmot_prune  # noqa: F401  (register handlers)
from compress.techniques.pipeline import PipelineConfig
from compress.techniques.pruning import MagnitudePruningConfig
from compress.techniques.quantization import (
    DynamicRangeConfig,
    Float16Config,
    Float32Config,
    Int8Config,
)

register_technique("fp32", Float32Config(), "no compression: the reference artefact")
register_technique("dynamic_range", DynamicRangeConfig(), "int8 weights, float activations")
register_technique("float16", Float16Config(), "float16 weights")
register_technique("int8", Int8Config(), "full-integer int8, calibrated, int8 input/output")
register_technique(
    "prune50", MagnitudePruningConfig(final_sparsity=0.5), "magnitude pruning to 50% sparsity"
)
register_technique(
    "prune80", MagnitudePruningConfig(final_sparsity=0.8), "magnitude pruning to 80% sparsity"
)
register_technique(
    "prune50_int8",
    PipelineConfig((MagnitudePruningConfig(final_sparsity=0.5), Int8Config())),
    "50% magnitude pruning, then full-integer int8",
)
