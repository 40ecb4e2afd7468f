"""Unstructured magnitude (L1) pruning of torch models, gradual, during a fine-tune.

Every ``nn.Conv2d`` and ``nn.Linear`` weight is pruned per layer (each layer
reaches the same sparsity), except depthwise convolutions (``groups ==
in_channels > 1``): their filters hold only ``k * k`` weights each and tfmot
leaves Keras ``DepthwiseConv2D`` kernels unpruned too, so the Keras and torch
numbers of one technique stay comparable. Biases and BatchNorm are never pruned.

The schedule mirrors tfmot's ``PolynomialDecay`` (power 3): sparsity ramps
from 0 to ``final_sparsity`` over ``ramp_fraction`` of the fine-tune; masks are
recomputed every ``frequency`` optimizer steps from the magnitudes of the
masked weights (so a pruned weight stays pruned), and the last update lands
exactly on ``final_sparsity`` before training ends. Masks live in
``torch.nn.utils.prune`` reparametrizations (``weight = weight_orig * mask``)
and are made permanent with ``prune.remove``: the result is a plain module
whose pruned weights are exact zeros.

Example:
    >>> from compress.techniques.torch_prune import prune_torch
    >>> pruned = prune_torch(model, recipe, MagnitudePruningConfig(0.5), "prune")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass

from compress.registry import register_handler
from compress.techniques.pruning import MagnitudePruningConfig

log = logging.getLogger(__name__)

__all__ = ["PruningSchedule", "pruning_schedule", "prunable_layers", "prune_torch", "magnitude_prune"]


@dataclass(frozen=True)
class PruningSchedule:
    """tfmot's ``PolynomialDecay`` from 0 to ``final_sparsity`` (power 3, begin step 0).

    Attributes:
        final_sparsity: sparsity reached at ``end_step`` and kept afterwards.
        end_step: last mask update; a multiple of ``frequency``.
        frequency: optimizer steps between mask updates.
    """

    final_sparsity: float
    end_step: int
    frequency: int

    def sparsity(self, step: int) -> float:
        """Target sparsity after optimizer step ``step`` (1-based)."""
        progress = min(1.0, max(0.0, step / self.end_step))
        return self.final_sparsity * (1.0 - (1.0 - progress) ** 3)

    def updates_at(self, step: int) -> bool:
        """True when masks are recomputed after optimizer step ``step``."""
        return 0 < step <= self.end_step and step % self.frequency == 0


def pruning_schedule(config: MagnitudePruningConfig, total_steps: int) -> PruningSchedule:
    """The schedule of a fine-tune of ``total_steps`` steps, ending on a mask update.

    Raises:
        ValueError: the fine-tune ends before the final sparsity would be applied.
    """
    ramp = max(1, round(config.ramp_fraction * total_steps))
    end_step = config.frequency * math.ceil(ramp / config.frequency)
    if end_step >= total_steps:
        raise ValueError(
            f"fine-tune of {total_steps} steps is too short to reach final sparsity at step "
            f"{end_step}; raise fine_tune_epochs or lower ramp_fraction / frequency"
        )
    return PruningSchedule(config.final_sparsity, end_step, config.frequency)


def prunable_layers(module) -> list[tuple[str, object]]:
    """``(name, layer)`` of every ``Conv2d`` (depthwise excluded) and ``Linear`` of ``module``."""
    from torch import nn

    out = []
    for name, sub in module.named_modules():
        depthwise = isinstance(sub, nn.Conv2d) and sub.groups > 1 and sub.groups == sub.in_channels
        if isinstance(sub, (nn.Conv2d, nn.Linear)) and not depthwise:
            out.append((name, sub))
    return out


def _steps_per_epoch(recipe) -> int:
    """Optimizer steps of one ``recipe.fit`` epoch (:meth:`compress.models.base.Recipe.steps_per_epoch`)."""
    return int(recipe.steps_per_epoch())


def _update_masks(layers, sparsity: float) -> None:
    """Set each layer's mask to drop its ``round(sparsity * size)`` smallest masked weights."""
    import torch
    from torch.nn.utils import prune

    with torch.no_grad():
        for _, layer in layers:
            weight = layer.weight_orig * layer.weight_mask  # already-pruned weights rank first
            k = round(sparsity * weight.numel())
            mask = prune.L1Unstructured(amount=k).compute_mask(weight, torch.ones_like(weight))
            layer.weight_mask.copy_(mask)


def prune_torch(module, recipe, config: MagnitudePruningConfig, label: str):
    """Prune a copy of ``module`` while fine-tuning it; return the copy with permanent zeros.

    ``module`` itself is not modified. The returned module has the same
    architecture and ``state_dict`` layout as ``module`` (plain ``weight``
    parameters, no masks or hooks), in eval mode.

    Args:
        module: the trained ``nn.Module``.
        recipe: its recipe (``fit``, and ``steps_per_epoch()`` or ``data`` and ``batch_size``).
        config: sparsity, schedule and fine-tune settings.
        label: progress label of the fine-tune.

    Raises:
        ValueError: the model has no prunable layer, or the fine-tune is too short
            for the schedule.
    """
    import torch
    from torch.nn.utils import prune

    work = copy.deepcopy(module)
    layers = prunable_layers(work)
    if not layers:
        raise ValueError(f"{type(module).__name__} has no Conv2d or Linear layer to prune")
    total = max(1, round(config.fine_tune_epochs * _steps_per_epoch(recipe)))  # as torch_common.fit counts
    schedule = pruning_schedule(config, total)
    for _, layer in layers:
        prune.identity(layer, "weight")  # weight_orig (trained) * weight_mask (all ones for now)

    steps = [0]

    def on_step(step: int) -> None:
        steps[0] = step
        if schedule.updates_at(step):
            _update_masks(layers, schedule.sparsity(step))

    recipe.fit(work, epochs=config.fine_tune_epochs, learning_rate=config.learning_rate,
               label=label, callbacks=[on_step])  # fmt: skip
    if steps[0] < schedule.end_step:
        raise RuntimeError(
            f"{label}: the fine-tune ran {steps[0]} steps but the schedule expected {total} "
            f"(final sparsity at step {schedule.end_step}): recipe.steps_per_epoch() disagrees with fit"
        )
    for _, layer in layers:
        prune.remove(layer, "weight")
    # prune.remove re-adds ``weight`` after ``bias``; loading by name into a copy of
    # the original restores its state_dict order (the order the weights cache stores).
    pruned = copy.deepcopy(module)
    with torch.no_grad():
        pruned.load_state_dict(work.state_dict(), strict=True)
    log.info(
        "%s: %d layers pruned to %.0f%% (mask updates every %d steps until step %d of %d)",
        label, len(layers), config.final_sparsity * 100, schedule.frequency, schedule.end_step, total,
    )  # fmt: skip
    return pruned.eval()


@register_handler(MagnitudePruningConfig, "torch")
def magnitude_prune(model, config: MagnitudePruningConfig, ctx):
    """Transform: the pruned, fine-tuned model (cached on disk like a trained model)."""
    label = f"prune {model.name} to {config.final_sparsity:.0%}"
    return ctx.derive(
        model,
        config,
        lambda: model.recipe.weights(prune_torch(model.native, model.recipe, config, label)),
        extra_versions=(),
        handler_version=2,  # 2: schedule counted on the fine-tune images, not the training set
    )
