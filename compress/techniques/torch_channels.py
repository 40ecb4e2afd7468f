"""Structured (channel) pruning of torch models with torch-pruning's DepGraph.

torch-pruning traces the model once on an example input and builds its
dependency graph: every tensor slice that must go with a channel (producer
filters and bias, BatchNorm vectors, depthwise filters, consumer input slices,
every branch of a residual add) forms one *group*. Each group loses the same
``fraction`` of its channels (local pruning, one shot), ranked by group L1
importance (``MagnitudeImportance(p=1)``: the L1 norms of the channel's slices
in every layer of the group, averaged). The classifier's outputs are never
pruned (nor those of any layer producing the outputs: :func:`output_layers`),
so the output shape is unchanged; their input features are.

The result is an ordinary, physically smaller dense module of the same classes
(``Conv2d.out_channels``, ``groups``... updated), whose ``state_dict`` keeps its
keys and order, so :func:`compress.models.torch_common.load_arrays` rebuilds it
from the dense architecture and the stored arrays alone.

Example:
    >>> from compress.techniques.torch_channels import prune_channels
    >>> small = prune_channels(model, 0.5, torch.zeros(1, 3, 32, 32))   # doctest: +SKIP
"""

from __future__ import annotations

import copy

import numpy as np

from compress.registry import register_handler
from compress.techniques.channels import ChannelPruningConfig, fine_tune_pruned

__all__ = ["ROUND_TO", "output_layers", "channel_pruner", "prune_channels", "channel_prune"]

# Kept channel counts are rounded down to a multiple of this (torch-pruning's
# ``round_to``); 1 disables rounding, so every group loses exactly ``fraction``.
# Measured on EfficientNet-Lite0 at 64 px (batch 1, one thread, fp32 eager):
# rounding to 8 changed latency by less than the run-to-run noise, and it
# removes extra channels (40 -> 24 instead of 30 at 25%); ResNet widths are
# multiples of 64, where it changes nothing.
ROUND_TO = 1


def output_layers(module, example_inputs) -> list:
    """The layers whose outputs are the model's outputs: pruning their channels would change them.

    These are the ``Conv``/``Linear`` layers reached by walking the autograd graph
    back from the outputs without passing another ``Conv``/``Linear`` (through
    BatchNorm, activations, concatenations...): the classifier of a CNN, both
    heads of a model returning ``cat([probe(f), fc(f)])``.

    Raises:
        ValueError: no such layer (the outputs come from no Conv/Linear).
    """
    import torch
    from torch import nn

    kinds = (nn.modules.conv._ConvNd, nn.Linear)
    producers: dict = {}

    def hook(layer, _inputs, output):
        if isinstance(output, torch.Tensor) and output.grad_fn is not None:
            producers[output.grad_fn] = layer

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, kinds)]
    try:
        with torch.enable_grad():
            out = module(example_inputs.detach().clone().requires_grad_(True))
    finally:
        for h in handles:
            h.remove()
    outs = out if isinstance(out, (tuple, list)) else [out]
    stack = [o.grad_fn for o in outs if isinstance(o, torch.Tensor)]
    found, seen = set(), set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if fn in producers:
            found.add(producers[fn])
        else:
            stack.extend(f for f, _ in fn.next_functions)
    if not found:
        raise ValueError(f"no Conv or Linear layer of {type(module).__name__} produces its outputs")
    return [m for m in module.modules() if m in found]


def channel_pruner(module, fraction: float, example_inputs, *, round_to: int = ROUND_TO,
                   ignored_layers=None):  # fmt: skip
    """A one-shot torch-pruning pruner of ``module`` (which it will modify in place).

    ``pruner.step()`` prunes; ``pruner.step(interactive=True)`` yields the groups
    (``[(dependency, indices), ...]``) to inspect before calling ``group.prune()``.

    Args:
        module: the model, in eval mode (tracing runs one forward pass).
        fraction: share of channels removed from every group, in (0, 1).
        example_inputs: a batch of model inputs for tracing (one image is enough).
        round_to: kept channels are rounded down to a multiple of this (1: no rounding).
        ignored_layers: modules whose outputs keep their width (default:
            :func:`output_layers`, so the model's output shape is unchanged).

    Raises:
        ValueError: ``fraction`` or ``round_to`` out of range.
    """
    import torch_pruning as tp

    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"fraction must be a number in (0, 1), got {fraction!r}")
    if isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1:
        raise ValueError(f"round_to must be a positive integer, got {round_to!r}")
    if ignored_layers is None:
        ignored_layers = output_layers(module, example_inputs)
    return tp.pruner.MagnitudePruner(
        module,
        example_inputs,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=float(fraction),
        ignored_layers=list(ignored_layers),
        round_to=round_to if round_to > 1 else None,
    )


def _shapes(out) -> tuple:
    """The shapes of every tensor in ``out`` (a tensor, or nested tuples and lists of them)."""
    if isinstance(out, (tuple, list)):
        return tuple(s for o in out for s in _shapes(o))
    return (tuple(out.shape),) if hasattr(out, "shape") else ()


def prune_channels(module, fraction: float, example_inputs, *, round_to: int = ROUND_TO, keep=None):
    """A copy of ``module`` with the least important ``fraction`` of each group's channels removed.

    ``module`` itself is not modified. The copy is in eval mode.

    Args:
        module: the dense model.
        fraction: share of channels removed from every group, in (0, 1).
        example_inputs: a batch of model inputs (a tensor), used for tracing.
        round_to: kept channels are rounded down to a multiple of this (1: no rounding).
        keep: a function of the copy returning the modules whose outputs keep their width
            (default: :func:`output_layers`).

    Raises:
        ValueError: ``fraction`` or ``round_to`` out of range; no output layer found.
        RuntimeError: pruning changed the shape of an output.
    """
    import torch

    pruned = copy.deepcopy(module).eval()
    # no_grad, not inference mode: a module that caches tensors (a detection head's anchors) is traced next
    with torch.no_grad():
        before = _shapes(pruned(example_inputs))
    ignored = keep(pruned) if keep is not None else None
    channel_pruner(pruned, fraction, example_inputs, round_to=round_to, ignored_layers=ignored).step()
    pruned.eval()
    with torch.no_grad():
        after = _shapes(pruned(example_inputs))
    if before != after:
        raise RuntimeError(f"channel pruning changed the output shapes from {before} to {after}")
    return pruned


@register_handler(ChannelPruningConfig, "torch")
def channel_prune(model, config: ChannelPruningConfig, ctx):
    """Transform: the channel-pruned, fine-tuned model (cached on disk like a trained model)."""

    def build() -> list[np.ndarray]:
        import torch

        recipe = model.recipe
        # one image, for tracing shapes only (the test split is loaded for evaluation anyway)
        example = torch.from_numpy(np.ascontiguousarray(recipe.data("test")[0][:1]))
        pruned = prune_channels(model.native, config.fraction, example)
        return fine_tune_pruned(model, pruned, config, " of every group")

    # torch-pruning takes part in the cache key once frameworks.versions() reports it.
    return ctx.derive(model, config, build, extra_versions=("torch-pruning",))
