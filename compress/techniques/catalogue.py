"""The technique catalogue: every named technique, registered once.

A technique is a named config. Importing this module registers them and the
framework handlers (which import their frameworks lazily, when applied). The
frameworks a technique applies to are derived from the handlers that exist.
"""

from compress.registry import register_technique
from compress.techniques import (  # noqa: F401  (register handlers)
    adaptation,
    keras_channels,
    onnx_export,
    semi_structured,
    tflite,
    tfmot_prune,
    torch_channels,
    torch_compile,
    torch_export,
    torch_prune,
    transformer_prune,
    ultralytics_channels,
    ultralytics_export,
)
from compress.techniques.adaptation import AdaptationConfig
from compress.techniques.channels import ChannelPruningConfig
from compress.techniques.onnx_export import OnnxConfig
from compress.techniques.pipeline import PipelineConfig
from compress.techniques.pruning import MagnitudePruningConfig
from compress.techniques.quantization import (
    BFloat16Config,
    DynamicRangeConfig,
    Float16Config,
    Float32Config,
    Int8Config,
    Int8WeightOnlyConfig,
)
from compress.techniques.semi_structured import SemiStructuredConfig, Sparse24Config
from compress.techniques.torch_compile import InductorConfig
from compress.techniques.transformer_prune import TransformerPruningConfig

register_technique("fp32", Float32Config(), "no compression: the reference artefact")
register_technique("dynamic_range", DynamicRangeConfig(),
                   "int8 weights, float activations (torch: dynamic int8 Linear layers)")  # fmt: skip
register_technique("float16", Float16Config(), "float16 weights")
register_technique("bfloat16", BFloat16Config(), "bfloat16 weights and compute (torch)")
register_technique("int8", Int8Config(),
                   "static int8 calibrated on `calib` (TFLite: int8 I/O; torch: PT2E x86)")  # fmt: skip
register_technique("inductor_fp32", InductorConfig("fp32"),
                   "torch.export program compiled by Inductor (freezing, C++ wrapper), no quantization")  # fmt: skip
register_technique("inductor_int8", InductorConfig("int8"),
                   "PT2E static int8 (x86) compiled by Inductor to oneDNN int8 kernels")  # fmt: skip
register_technique("onnx_fp32", OnnxConfig("fp32"), "ONNX for onnxruntime, no quantization")
register_technique("onnx_dynamic", OnnxConfig("dynamic"),
                   "ONNX, per-channel int8 weights, activations quantized at run time")  # fmt: skip
register_technique("onnx_int8", OnnxConfig("int8"),
                   "ONNX static int8: QDQ, per-channel int8 weights, uint8 activations")  # fmt: skip
register_technique(
    "prune50", MagnitudePruningConfig(final_sparsity=0.5), "magnitude pruning to 50% sparsity"
)
register_technique(
    "prune80", MagnitudePruningConfig(final_sparsity=0.8), "magnitude pruning to 80% sparsity"
)
register_technique(
    "prune50_int8",
    PipelineConfig((MagnitudePruningConfig(final_sparsity=0.5), Int8Config())),
    "50% magnitude pruning, then int8",
)
register_technique(
    "channels25",
    ChannelPruningConfig(fraction=0.25, fine_tune_epochs=1.0, learning_rate=1e-3),
    "remove 25% of the channels of every prunable layer (L1), fine-tune",
)
register_technique(
    "channels50",
    ChannelPruningConfig(fraction=0.5, fine_tune_epochs=1.0, learning_rate=1e-3),
    "remove 50% of the channels of every prunable layer (L1), fine-tune",
)

_TEXT = ("text-classification",)
_TRANSFORMERS = (*_TEXT, "language-modeling")
register_technique("heads25", TransformerPruningConfig("heads", 0.25),
                   "remove 25% of the attention heads of every layer (loss-gradient importance), fine-tune",
                   tasks=_TRANSFORMERS)  # fmt: skip
register_technique("heads50", TransformerPruningConfig("heads", 0.5),
                   "remove 50% of the attention heads of every layer (loss-gradient importance), fine-tune",
                   tasks=_TRANSFORMERS)  # fmt: skip
register_technique("ffn25", TransformerPruningConfig("ffn", 0.25),
                   "remove 25% of the FFN neurons of every layer (loss-gradient importance), fine-tune",
                   tasks=_TRANSFORMERS)  # fmt: skip
register_technique("ffn50", TransformerPruningConfig("ffn", 0.5),
                   "remove 50% of the FFN neurons of every layer (loss-gradient importance), fine-tune",
                   tasks=_TRANSFORMERS)  # fmt: skip

# Adaptation to new data (the recipe's adaptation_data, never its test split); LoRA's adapter is merged
# after training, so the model that runs has the fp32 shape; what ships is the adapter (its bytes and
# trainable parameters are extra metrics of the pair).
# A classifier's full fine-tune is its fp32 model (full_ft applies to language models: they adapt).
_LM = ("language-modeling",)
register_technique("lora", AdaptationConfig("lora"),
                   "LoRA adapters (peft, rank 8) trained on the adaptation data, then merged",
                   tasks=(*_LM, *_TEXT))  # fmt: skip
register_technique("lora_dynamic", PipelineConfig((AdaptationConfig("lora"), DynamicRangeConfig())),
                   "LoRA adapted and merged, then dynamic int8 Linear layers", tasks=(*_LM, *_TEXT))  # fmt: skip
register_technique("full_ft", AdaptationConfig("full", learning_rate=3e-4),
                   "every parameter fine-tuned on the adaptation data, LoRA's steps: its comparison", tasks=_LM)  # fmt: skip

# Techniques with GPU kernels (torchao's int8 weight-only matmul, torch's 2:4 semi-structured sparse
# kernels): on the language model, whose every projection is an nn.Linear (a CNN's convolutions are
# untouched by either); they run on the CPU too (int8 weight-only through torchao's CPU path, 2:4 dense).
register_technique("int8_weight_only", Int8WeightOnlyConfig(),
                   "int8 Linear weights per output channel (torchao), float activations; CPU and CUDA",
                   tasks=_LM)  # fmt: skip
register_technique("sparse24", PipelineConfig((SemiStructuredConfig(), Sparse24Config())),
                   "2:4 sparsity of every Linear but the head (magnitude, fine-tuned with fixed masks), "
                   "float16; on CUDA torch's semi-structured sparse kernels", tasks=_LM)  # fmt: skip
