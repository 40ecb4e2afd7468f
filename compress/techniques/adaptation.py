"""Adaptation to new data: LoRA adapters (peft) or full fine-tuning, for the same steps.

A recipe that can be adapted names the data: ``adaptation_data()`` gives the
model-ready ``(x, y)`` adaptation trains on (never its ``test`` split), and
``lora_targets`` the module names LoRA wraps (peft's ``target_modules``). It may
also name ``lora_trained`` (modules trained whole beside the adapters, and shipped
with them: a new classification head) and ``adaptation_start(native)`` (the module
adaptation starts from; default a copy of the trained model). GPT-2 adapts its
trained model to the first half of the held-out novel and is scored on the second,
its ``test`` split (:mod:`compress.models.text.causal_lm`); the MiniLM classifier is
fine-tuned from its pretrained encoder by LoRA instead of whole, its fp32 model
being the full fine-tune (:mod:`compress.models.text.text_classifier`).

- ``lora``: every targeted ``nn.Linear`` gets a rank-``rank`` update ``B A`` scaled by
  ``alpha / rank`` (Hu et al., 2021; ``B`` starts at zero, so training starts from the
  model as it is); only ``A`` and ``B`` train. The adapter is then merged into the
  weights (``merge_and_unload``): the model that runs has the fp32 model's shape and
  speed, and later steps of a chain (``lora_dynamic``: merged, then dynamic int8) see
  an ordinary model.
- ``full``: every parameter trains, same data, steps, schedule and seed: the
  comparison LoRA is judged against.

What ships for a LoRA pair is the adapter: :meth:`AdaptationConfig.extra_metrics`
reports its bytes as ``save_pretrained`` writes them (``adapter_model.safetensors``
and ``adapter_config.json``, not the model card; their size depends on the adapter's shapes and
config, not its values) and its trainable parameters, whole and as a fraction of
the model's.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from compress.registry import TechniqueConfig, check_range, register_handler

log = logging.getLogger(__name__)

__all__ = ["AdaptationConfig", "METHODS", "adaptable", "adapter_files", "parameter_counts"]

METHODS = ("lora", "full")


@dataclass(frozen=True)
class AdaptationConfig(TechniqueConfig):
    """Adapt a trained model to its recipe's adaptation data.

    Attributes:
        method: ``"lora"`` (low-rank adapters, merged after training) or ``"full"``
            (every parameter trains).
        rank: LoRA's rank ``r`` (unused by ``full``).
        alpha: LoRA's scale numerator (the update is ``alpha / rank * B A``).
        targets: module names LoRA wraps; empty: the recipe's ``lora_targets``.
        epochs: epochs over the adaptation data (fractions allowed).
        learning_rate: peak rate of the recipe's fit (AdamW, its warm-up and cosine decay).
    """

    method: str = "lora"
    rank: int = 8
    alpha: int = 16
    targets: tuple[str, ...] = ()
    epochs: float = 8.0
    learning_rate: float = 5e-3

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        check_range("rank", self.rank, 1, 4096, integer=True)
        check_range("alpha", self.alpha, 1, 65536, integer=True)
        check_range("epochs", self.epochs, 0.01, 100)
        check_range("learning_rate", self.learning_rate, 1e-7, 1.0)

    def lora_config(self, recipe):
        """peft's ``LoraConfig`` of this config on ``recipe``'s model (no dropout: deterministic)."""
        from peft import LoraConfig

        targets = list(self.targets or recipe.lora_targets)
        if not targets:
            raise ValueError(f"{type(recipe).__name__} names no lora_targets and the config none")
        return LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=0.0, target_modules=targets,
                          modules_to_save=list(recipe.lora_trained) or None)  # fmt: skip

    has_own_metrics: ClassVar[bool] = True

    def extra_metrics(self, model) -> dict:
        """Trainable parameters (whole and as a fraction of the wrapped model's) and, for LoRA,
        the adapter's bytes as ``save_pretrained`` writes them; ``model`` the trained model adapted."""
        work = adaptable(model.native, model.recipe, self)
        trainable, total = parameter_counts(work)
        out = {"trainable_parameters": trainable, "trainable_fraction": round(trainable / total, 6)}
        if self.method == "lora":
            out["adapter_bytes"] = sum(adapter_files(work).values())
        return out


def adaptable(native, recipe, config: AdaptationConfig):
    """A copy of ``native`` (or the recipe's ``adaptation_start``) ready to train: wrapped with LoRA
    adapters (only they and the recipe's ``lora_trained`` modules train), or whole."""
    work = recipe.adaptation_start(native)
    if config.method == "full":
        for p in work.parameters():
            p.requires_grad_(True)
        return work
    from peft import get_peft_model

    return get_peft_model(work, config.lora_config(recipe))


ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")  # what ships (not the model card)


def parameter_counts(module) -> tuple[int, int]:
    """``(trainable, all)`` parameters of ``module`` (a LoRA-wrapped one counts its adapters in both)."""
    params = list(module.parameters())
    return int(sum(p.numel() for p in params if p.requires_grad)), int(sum(p.numel() for p in params))


def adapter_files(peft_model) -> dict[str, int]:
    """``{file: bytes}`` of the adapter's :data:`ADAPTER_FILES` as ``save_pretrained`` writes them
    (to a temporary directory; the README model card it also writes is left out)."""
    with tempfile.TemporaryDirectory() as tmp:
        peft_model.save_pretrained(tmp)
        missing = [f for f in ADAPTER_FILES if not os.path.isfile(os.path.join(tmp, f))]
        if missing:
            raise RuntimeError(f"peft's save_pretrained wrote no {', '.join(missing)} (found: {sorted(os.listdir(tmp))})")
        return {f: os.path.getsize(os.path.join(tmp, f)) for f in ADAPTER_FILES}


def adapt(model, config: AdaptationConfig):
    """``model.native`` (or the recipe's ``adaptation_start``) trained on the recipe's adaptation
    data, a LoRA adapter merged into its weights; in eval mode."""
    recipe = model.recipe
    data = recipe.adaptation_data()
    if data is None:
        raise ValueError(f"{type(recipe).__name__}.adaptation_data() gives none: {model.name} cannot be adapted")
    x, y = data
    work = adaptable(model.native, recipe, config)
    trainable, total = parameter_counts(work)
    log.info("%s: %s adaptation of %d of %d parameters (%.2f%%) on %d examples", model.name, config.method,
             trainable, total, 100 * trainable / total, len(x))  # fmt: skip
    recipe._fit(work, x, y, epochs=config.epochs, learning_rate=config.learning_rate,
                label=f"{config.method} {model.name}")  # fmt: skip
    if config.method == "lora":
        work = work.merge_and_unload()
    return work.eval()


@register_handler(AdaptationConfig, "torch")
def adaptation(model, config: AdaptationConfig, ctx):
    """Transform: the adapted model (a LoRA adapter merged), cached on disk like a trained model."""

    def build() -> list[np.ndarray]:
        return model.recipe.weights(adapt(model, config))

    return ctx.derive(model, config, build, extra_versions=("peft",) if config.method == "lora" else ())
