"""Unstructured magnitude pruning of Keras models with tensorflow-model-optimization."""

from __future__ import annotations

import logging
import math

from compress.frameworks import tensorflow
from compress.registry import register_handler
from compress.techniques.pruning import MagnitudePruningConfig

log = logging.getLogger(__name__)


def pruning_schedule(config: MagnitudePruningConfig, total_steps: int):
    """PolynomialDecay from 0 to ``final_sparsity``, ending on a mask-update step.

    tfmot updates masks only every ``frequency`` steps; an ``end_step`` that is
    not a multiple of it would never apply the final sparsity exactly.
    """
    import tensorflow_model_optimization as tfmot

    ramp = max(1, round(config.ramp_fraction * total_steps))
    end_step = config.frequency * math.ceil(ramp / config.frequency)
    if end_step >= total_steps:
        raise ValueError(
            f"fine-tune of {total_steps} steps is too short to reach final sparsity at step "
            f"{end_step}; raise fine_tune_epochs or lower ramp_fraction / frequency"
        )
    return tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=config.final_sparsity,
        begin_step=0,
        end_step=end_step,
        frequency=config.frequency,
    )


def prune_keras(keras_model, recipe, config: MagnitudePruningConfig, label: str):
    """Prune a copy of ``keras_model`` while fine-tuning; return the stripped model."""
    tf = tensorflow()
    import tensorflow_model_optimization as tfmot

    from compress.determinism import set_determinism

    set_determinism(recipe.seed)
    base = tf.keras.models.clone_model(keras_model)
    base.set_weights(keras_model.get_weights())
    total = max(1, round(config.fine_tune_epochs * recipe.steps_per_epoch()))
    pruned = tfmot.sparsity.keras.prune_low_magnitude(
        base, pruning_schedule=pruning_schedule(config, total)
    )
    recipe.fit(
        pruned,
        epochs=config.fine_tune_epochs,
        learning_rate=config.learning_rate,
        label=label,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
    )
    return tfmot.sparsity.keras.strip_pruning(pruned)


@register_handler(MagnitudePruningConfig, "keras")
def magnitude_prune(model, config: MagnitudePruningConfig, ctx):
    """Transform: the pruned, fine-tuned model (cached on disk like a trained model)."""
    label = f"prune {model.name} to {config.final_sparsity:.0%}"
    return ctx.derive(
        model,
        config,
        lambda: prune_keras(model.native, model.recipe, config, label).get_weights(),
        extra_versions=("tensorflow-model-optimization",),
    )
