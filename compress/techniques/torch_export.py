"""Export of torch models for eager PyTorch: fp32, dynamic int8, float16, bfloat16, PT2E int8.

Every handler ships bytes the ``torch`` runtime (:mod:`compress.runtimes.torch_eager`) loads:

- ``pt``: ``torch.save(state_dict)``. The bytes do not say which module they
  belong to, so the artefact's ``meta`` is a zero-argument callable building
  the module skeleton (the recipe's architecture, resized to the weights'
  shapes, holding zeros) that the state_dict loads into, strictly.
- ``pt2``: ``torch.export.save`` of an ExportedProgram: self-contained.

Measured on this CPU (Xeon with AVX512-FP16/AMX, one thread, batch 1, resnet18
at 32 px): eager float16 compute is slower than float32 (8.4 vs 5.6 ms), so the
float16 artefact stores float16 weights and computes in float32 (upcast at
load), the semantics of TFLite's float16. ``bfloat16`` computes in bfloat16
(9.6 ms: slower too, but that is what the technique measures).
"""

from __future__ import annotations

import copy
import io
import logging
import warnings
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from compress.determinism import torch_threads
from compress.registry import register_handler
from compress.runtimes.base import Artefact
from compress.techniques.quantization import (
    BFloat16Config,
    DynamicRangeConfig,
    Float16Config,
    Float32Config,
    Int8Config,
    Int8WeightOnlyConfig,
    calibration_inputs,
)

log = logging.getLogger(__name__)

__all__ = [
    "skeleton_fn", "quantize_dynamic_linear", "state_dict_bytes", "cast_floats", "pt2e_int8_program",
    "program_bytes",
]  # fmt: skip


def skeleton_fn(model, convert: Callable[[Any], Any] | None = None) -> Callable[[], Any]:
    """A zero-argument callable building an empty module shaped like ``model.native``.

    The recipe builds its architecture, resized to the current weight shapes
    (so a channel-pruned model gets its narrow layers) and filled with zeros:
    every value must then come from the artefact's bytes.

    Args:
        model: a :class:`compress.runner.LoadedModel` of a torch recipe.
        convert: applied to the built module (e.g. dynamic quantization, a dtype cast).
    """
    specs = [(tuple(t.shape), t.detach().cpu().numpy().dtype) for t in model.native.state_dict().values()]
    recipe = model.recipe

    def build():
        module = recipe.load([np.zeros(shape, dtype) for shape, dtype in specs]).eval()
        return convert(module) if convert is not None else module

    return build


def state_dict_bytes(state: dict) -> bytes:
    """``torch.save`` bytes of ``state``.

    Tensors are cloned (no shared storage saved twice); the module versions in
    ``state._metadata`` are kept: a dynamic-quantized Linear reads its format from them.
    """
    import torch

    out = OrderedDict((k, v.detach().clone() if isinstance(v, torch.Tensor) else v) for k, v in state.items())
    if hasattr(state, "_metadata"):
        out._metadata = copy.deepcopy(state._metadata)
    buf = io.BytesIO()
    torch.save(out, buf)
    return buf.getvalue()


def _pt(state: dict, build: Callable[[], Any]) -> Artefact:
    return Artefact(state_dict_bytes(state), format="pt", runtime="torch-eager", meta=build)


@register_handler(Float32Config, "torch", devices=("cpu", "cuda"))
def float32(model, config: Float32Config, ctx) -> Artefact:
    """The state_dict as trained: the reference artefact of a torch model."""
    return _pt(model.native.state_dict(), skeleton_fn(model))


def quantize_dynamic_linear(module):
    """``module`` with every ``nn.Linear`` replaced by a dynamic int8 one (in place).

    Weights become int8 (per-tensor symmetric); activations are quantized at
    run time. ``torch.ao.quantization.quantize_dynamic`` is deprecated but still
    present in torch 2.14 and is what runs fast on CPU: torchao's
    ``Int8DynamicActivationInt8WeightConfig`` measured 3x slower than fp32 in
    eager here (0.86 vs 0.28 ms on an MLP; ``quantize_dynamic``: 0.16 ms). Its
    deprecation warnings are silenced: the choice is deliberate.
    """
    import torch

    with warnings.catch_warnings():
        for category in (DeprecationWarning, UserWarning):
            warnings.filterwarnings("ignore", r".*(torch\.ao\.quantization|quantize_per).*", category)
        return torch.ao.quantization.quantize_dynamic(
            module, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
        )


@register_handler(DynamicRangeConfig, "torch",
                  why="torch's dynamic int8 Linear kernels (fbgemm, oneDNN) are CPU kernels")  # fmt: skip
def dynamic_range(model, config: DynamicRangeConfig, ctx) -> Artefact:
    """int8 ``nn.Linear`` weights, their inputs quantized at run time; convs stay float32.

    Conv nets have few Linear layers, so their size ratio is close to 1.
    """
    q = quantize_dynamic_linear(copy.deepcopy(model.native).eval())
    return _pt(q.state_dict(), skeleton_fn(model, quantize_dynamic_linear))


@register_handler(Int8WeightOnlyConfig, "torch", devices=("cpu", "cuda"))
def int8_weight_only(model, config: Int8WeightOnlyConfig, ctx) -> Artefact:
    """Every ``nn.Linear`` weight int8 per output channel by torchao (``Int8WeightOnlyConfig``), the rest float32.

    The state_dict holds torchao's quantized tensor subclass (int8 data and float scales), which
    ``torch.load(weights_only=True)`` accepts once torchao is imported; the runtime assigns it into
    the float skeleton. torchao's own Inductor settings are not applied (``set_inductor_config=False``):
    they are process-wide and would change every compiled pair measured after this one. Like torch's
    dynamic int8, a network with few Linear layers (a CNN) has a size ratio close to 1.
    """
    from torchao.quantization import Int8WeightOnlyConfig as TorchaoInt8WeightOnly
    from torchao.quantization import quantize_

    q = copy.deepcopy(model.native).eval()
    quantize_(q, TorchaoInt8WeightOnly(set_inductor_config=False))
    return _pt(q.state_dict(), skeleton_fn(model))


def cast_floats(state: dict, dtype) -> dict:
    """``state`` with every floating tensor cast to ``dtype`` (its ``_metadata`` kept)."""
    out = OrderedDict((k, v.to(dtype) if v.is_floating_point() else v) for k, v in state.items())
    out._metadata = getattr(state, "_metadata", None)
    return out


@register_handler(Float16Config, "torch", devices=("cpu", "cuda"))
def float16(model, config: Float16Config, ctx) -> Artefact:
    """Every floating tensor stored as float16; computed in float32 (upcast at load)."""
    import torch

    return _pt(cast_floats(model.native.state_dict(), torch.float16), skeleton_fn(model))


@register_handler(BFloat16Config, "torch", devices=("cpu", "cuda"))
def bfloat16(model, config: BFloat16Config, ctx) -> Artefact:
    """Every floating tensor stored as bfloat16 and computed in bfloat16.

    The skeleton is cast to bfloat16, so the runtime casts inputs to bfloat16
    and outputs back to float32.
    """
    import torch

    return _pt(
        cast_floats(model.native.state_dict(), torch.bfloat16),
        skeleton_fn(model, lambda m: m.to(torch.bfloat16)),
    )


def _drop_unused_attributes(gm) -> None:
    """Delete parameters and buffers no ``get_attr`` node reads.

    ``convert_pt2e`` folds the quantized weights into new int8 constants but
    leaves the float originals attached: re-exported, they would ship too.
    """
    used = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    names = [k for k, _ in gm.named_parameters()] + [k for k, _ in gm.named_buffers()]
    for name in names:
        if name not in used:
            owner, _, attr = name.rpartition(".")
            delattr(gm.get_submodule(owner) if owner else gm, attr)


def _is_float(node) -> bool:
    """True unless ``node`` is known (its traced value) to be a tensor of another dtype than float."""
    import torch

    val = node.meta.get("val") if hasattr(node, "meta") else None
    return not isinstance(val, torch.Tensor) or val.is_floating_point()


def float_only(quantizer):
    """``quantizer`` whose annotations leave integer tensors alone.

    X86InductorQuantizer annotates ops by type: an ``add`` or ``mul`` of integer
    tensors (XLM-RoBERTa computes its position ids from the mask so: a cumulative sum,
    times the mask, plus the padding index) would get an int8 observer, and the
    histogram observer fails on integers ("histogram_cpu" not implemented for 'Int').
    Integer tensors are indices, not values to quantize: their edges are dropped
    from every annotation. A network with float tensors only (every CNN here, MiniLM,
    GPT-2) is annotated exactly as before.
    """
    annotate = quantizer.annotate

    def float_annotate(model):
        model = annotate(model)
        for node in model.graph.nodes:
            ann = node.meta.get("quantization_annotation")
            if ann is None:
                continue
            ann.input_qspec_map = {n: q for n, q in ann.input_qspec_map.items() if _is_float(n)}
            if ann.output_qspec is not None and not _is_float(node):
                ann.output_qspec = None
        return model

    quantizer.annotate = float_annotate
    return quantizer


def pt2e_int8_program(module, example: np.ndarray, calib: np.ndarray, batch_size: int = 64):
    """Static int8 ExportedProgram of ``module`` by PT2E with X86InductorQuantizer's default config.

    Per-channel symmetric int8 weights, per-tensor uint8 activations, ranges
    observed on ``calib``; the batch axis stays dynamic.

    Args:
        module: a float module in eval mode (not modified).
        example: an input batch of at least 2 images (a batch of 1 would specialize the batch axis).
        calib: calibration inputs, run in batches of ``batch_size``, on
            :data:`compress.determinism.TORCH_THREADS` threads (same bytes whatever
            ran before).
    """
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    if len(example) < 2:
        raise ValueError(f"example batch must hold at least 2 inputs, got {len(example)}")
    args = (torch.from_numpy(np.ascontiguousarray(example)),)
    dims = ({0: torch.export.Dim("batch", min=1)},)
    # strict=True (dynamo tracing) records a distinct source for each call of a
    # module; non-strict export gives a reused module (resnet's ``relu``) one
    # partition with several outputs, which X86InductorQuantizer rejects.
    exported = torch.export.export(copy.deepcopy(module).eval(), args, dynamic_shapes=dims, strict=True)
    quantizer = float_only(xiq.X86InductorQuantizer()).set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported.module(), quantizer)
    with torch.no_grad(), torch_threads():  # observed ranges depend on the reduction order
        for i in range(0, len(calib), batch_size):
            prepared(torch.from_numpy(np.ascontiguousarray(calib[i : i + batch_size])))
    converted = convert_pt2e(prepared)
    _drop_unused_attributes(converted)
    return torch.export.export(converted, args, dynamic_shapes=dims)


@register_handler(Int8Config, "torch",
                  why="the PT2E program is quantized for the x86 quantizer's CPU kernels")  # fmt: skip
def int8(model, config: Int8Config, ctx) -> Artefact:
    """Static int8 by PT2E (torchao), calibrated on the ``calib`` split, saved as ``.pt2``.

    Run eagerly, the program executes reference quantize/dequantize ops around
    float kernels: a quarter of the size, but about 9x slower than fp32 eager
    (resnet18, one thread, batch 1: 50 vs 5.6 ms). ``torch.compile`` (inductor,
    freezing) of the loaded program runs it in 2.4 ms (compiled fp32: 2.9 ms)
    after compiling for 30 s with a cold inductor cache (87 s under heavier
    load); the eager runtime does not compile (compiled would be another runtime).
    """
    calib_x = model.recipe.data("calib")[0]
    calib = calibration_inputs(model.recipe, config.calibration_size, "int8 (PT2E)")
    log.info("int8 (PT2E): calibrating %s on %d inputs of the calib split", model.name, len(calib))
    program = pt2e_int8_program(model.native, calib_x[:2], calib)
    return Artefact(program_bytes(program), format="pt2", runtime="torch-eager")


_DEBUG_META = ("stack_trace", "from_node", "nn_module_stack", "source_fn_stack", "torch_fn")


def program_bytes(program) -> bytes:
    """``torch.export.save`` bytes of ``program`` without what only debugging needs.

    Source stack traces, node provenance and the example inputs are dropped
    (in place): they do not change what the loaded program computes, and on a
    small model they are most of the file (tiny_torch int8: 78 KB -> 42 KB).
    """
    import torch

    for node in program.graph.nodes:
        for key in _DEBUG_META:
            node.meta.pop(key, None)
    program.example_inputs = None
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()
