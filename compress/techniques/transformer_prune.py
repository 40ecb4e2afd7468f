"""Structured pruning of transformer encoders: attention heads or FFN neurons, then a recovery fine-tune.

What is removed is scored by its first-order effect on the loss (Michel et al.,
"Are Sixteen Heads Really Better than One?", 2019; Molchanov et al., 2019):
for a unit ``u`` (a head's slice of the attention context, or one FFN
neuron) with activation ``a_u``, the importance is ``E_x |sum_tokens dL/da_u . a_u|``,
the gradient of the loss with respect to a mask multiplying the unit's output,
accumulated over batches of the ``train`` split (never ``test``). The same
fraction is removed from every layer, so the network stays regular (every
layer the same shape class) and the speedup is real: the query, key and value
projections lose the pruned heads' rows and the output projection their
columns; the FFN's first Linear loses rows and its second columns.

The layers are found by structure (:data:`LAYOUTS`): BERT's naming
(``attention.self.{query,key,value}``, ``attention.output.dense``, ``intermediate.dense``,
``output.dense``), which BERT, RoBERTa and XLM-RoBERTa share, DistilBERT's
(``attention.{q,k,v,out}_lin``, ``ffn.lin1``, ``ffn.lin2``), or GPT-2's blocks
(``attn.c_attn``, whose rows are the query, key and value blocks, ``attn.c_proj``,
``mlp.c_fc``, ``mlp.c_proj``, as ``nn.Linear``); a model with neither is an error
naming what was looked for. The loss is the recipe's (``recipe.loss``: a language
model's next-token loss) or cross-entropy on logits. The pruned model is an
ordinary module with smaller Linear layers: the weights cache stores it as
arrays, and the recipe's shape-aware loading rebuilds it (BERT's and DistilBERT's
attention infer their head count from the projection's width; the GPT-2 recipe sets the width its
attention splits by from the loaded ``c_attn``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from compress.registry import TechniqueConfig, check_range, register_handler

log = logging.getLogger(__name__)

__all__ = ["TransformerPruningConfig", "encoder_layers", "unit_importance", "prune_units"]

UNITS = ("heads", "ffn")


@dataclass(frozen=True)
class TransformerPruningConfig(TechniqueConfig):
    """Remove the least important ``fraction`` of attention heads or FFN neurons of every layer.

    Attributes:
        unit: ``"heads"`` (attention heads) or ``"ffn"`` (intermediate neurons).
        fraction: share removed from every layer, in [0.05, 0.9] (at least one unit is kept).
        importance_batches: batches of the fine-tune data over which importance is accumulated.
        fine_tune_epochs: epochs of recovery fine-tuning after the removal (fractions allowed).
        learning_rate: fine-tune learning rate.
    """

    unit: str = "heads"
    fraction: float = 0.25
    importance_batches: int = 32
    fine_tune_epochs: float = 1.0
    learning_rate: float = 5e-5

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}; got {self.unit!r}")
        check_range("fraction", self.fraction, 0.05, 0.9)
        check_range("importance_batches", self.importance_batches, 1, 10_000, integer=True)
        check_range("fine_tune_epochs", self.fine_tune_epochs, 0.0, 20)
        check_range("learning_rate", self.learning_rate, 1e-7, 1.0)

    def unsupported_by(self, recipe) -> str | None:
        """A fraction that removes no head of a model with few (``recipe.heads`` per layer, where the
        recipe names it): such a pair would be a fine-tune called pruning."""
        heads = recipe.heads
        if self.unit == "heads" and isinstance(heads, int) and int(heads * self.fraction) == 0:
            return (f"removing {self.fraction:.0%} of {heads} attention heads per layer removes none "
                    f"(at least {1 / heads:.0%} is one head)")
        return None


class _Bert:
    """BERT's naming (BERT, RoBERTa, XLM-RoBERTa): separate query/key/value Linears."""

    name = "BERT-style encoder layers (attention.self.query/key/value, attention.output.dense, intermediate.dense, output.dense)"

    @staticmethod
    def matches(sub) -> bool:
        from torch import nn

        att = getattr(sub, "attention", None)
        if att is None or not hasattr(sub, "intermediate") or not hasattr(sub, "output"):
            return False
        sa = getattr(att, "self", None)
        return all(isinstance(getattr(sa, n, None), nn.Linear) for n in ("query", "key", "value")) and \
            isinstance(getattr(getattr(att, "output", None), "dense", None), nn.Linear)  # fmt: skip

    @staticmethod
    def head_size(layer) -> int:
        return int(layer.attention.self.attention_head_size)

    @classmethod
    def units(cls, layer, unit: str) -> int:
        if unit == "heads":
            return layer.attention.self.query.out_features // cls.head_size(layer)
        return layer.intermediate.dense.out_features

    @staticmethod
    def observed(layer, unit: str):
        return layer.attention.output.dense if unit == "heads" else layer.output.dense

    @staticmethod
    def keep(layer, unit: str, idx) -> None:
        if unit == "heads":
            sa = layer.attention.self
            sa.query, sa.key, sa.value = (_keep_rows(getattr(sa, n), idx) for n in ("query", "key", "value"))
            layer.attention.output.dense = _keep_cols(layer.attention.output.dense, idx)
            sa.num_attention_heads = len(idx) // _Bert.head_size(layer)
            sa.all_head_size = len(idx)
        else:
            layer.intermediate.dense = _keep_rows(layer.intermediate.dense, idx)
            layer.output.dense = _keep_cols(layer.output.dense, idx)


class _GPT2:
    """GPT-2's naming, its projections as ``nn.Linear`` (:func:`compress.models.text.causal_lm.linear_projections`):
    one fused ``attn.c_attn`` (query, key and value blocks of rows), ``attn.c_proj``, ``mlp.c_fc``, ``mlp.c_proj``."""

    name = "GPT-2 blocks (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj as nn.Linear)"

    @staticmethod
    def matches(sub) -> bool:
        from torch import nn

        attn, mlp = getattr(sub, "attn", None), getattr(sub, "mlp", None)
        return all(isinstance(getattr(m, n, None), nn.Linear) for m, n in
                   ((attn, "c_attn"), (attn, "c_proj"), (mlp, "c_fc"), (mlp, "c_proj")))  # fmt: skip

    @staticmethod
    def head_size(layer) -> int:
        return int(layer.attn.head_dim)

    @classmethod
    def units(cls, layer, unit: str) -> int:
        if unit == "heads":
            return layer.attn.c_proj.in_features // cls.head_size(layer)
        return layer.mlp.c_fc.out_features

    @staticmethod
    def observed(layer, unit: str):
        return layer.attn.c_proj if unit == "heads" else layer.mlp.c_proj

    @staticmethod
    def keep(layer, unit: str, idx) -> None:
        import torch

        if unit == "heads":
            attn = layer.attn
            width = attn.c_proj.in_features  # rows of each of c_attn's query, key and value blocks
            attn.c_attn = _keep_rows(attn.c_attn, torch.cat([idx, idx + width, idx + 2 * width]))
            attn.c_proj = _keep_cols(attn.c_proj, idx)
            attn.split_size = len(idx)  # GPT2Attention splits c_attn's output by it
            attn.num_heads = len(idx) // attn.head_dim
        else:
            layer.mlp.c_fc = _keep_rows(layer.mlp.c_fc, idx)
            layer.mlp.c_proj = _keep_cols(layer.mlp.c_proj, idx)


class _DistilBert:
    """DistilBERT's naming: ``attention.q_lin/k_lin/v_lin/out_lin``, ``ffn.lin1/lin2`` (its attention
    reshapes by head size, so a narrower projection is fewer heads)."""

    name = "DistilBERT blocks (attention.q_lin/k_lin/v_lin/out_lin, ffn.lin1/lin2)"

    @staticmethod
    def matches(sub) -> bool:
        from torch import nn

        att, ffn = getattr(sub, "attention", None), getattr(sub, "ffn", None)
        return all(isinstance(getattr(m, n, None), nn.Linear) for m, n in
                   ((att, "q_lin"), (att, "k_lin"), (att, "v_lin"), (att, "out_lin"), (ffn, "lin1"), (ffn, "lin2")))  # fmt: skip

    @staticmethod
    def head_size(layer) -> int:
        return int(layer.attention.attention_head_size)

    @classmethod
    def units(cls, layer, unit: str) -> int:
        if unit == "heads":
            return layer.attention.q_lin.out_features // cls.head_size(layer)
        return layer.ffn.lin1.out_features

    @staticmethod
    def observed(layer, unit: str):
        return layer.attention.out_lin if unit == "heads" else layer.ffn.lin2

    @staticmethod
    def keep(layer, unit: str, idx) -> None:
        if unit == "heads":
            att = layer.attention
            att.q_lin, att.k_lin, att.v_lin = (_keep_rows(getattr(att, n), idx) for n in ("q_lin", "k_lin", "v_lin"))
            att.out_lin = _keep_cols(att.out_lin, idx)
            att.n_heads = len(idx) // att.attention_head_size
        else:
            layer.ffn.lin1 = _keep_rows(layer.ffn.lin1, idx)
            layer.ffn.lin2 = _keep_cols(layer.ffn.lin2, idx)


LAYOUTS = (_Bert, _DistilBert, _GPT2)


def _layout(module):
    """``(layout, layers)``: the first layout of :data:`LAYOUTS` with layers in ``module``.

    Raises:
        ValueError: none found (the message says what was looked for).
    """
    for layout in LAYOUTS:
        layers = [sub for _, sub in module.named_modules() if layout.matches(sub)]
        if layers:
            return layout, layers
    raise ValueError(
        f"{type(module).__name__} has none of: {'; '.join(lay.name for lay in LAYOUTS)}: structured "
        "transformer pruning does not apply to it"
    )


def encoder_layers(module) -> list:
    """The transformer layers of ``module`` (BERT-style encoder layers, DistilBERT or GPT-2 blocks), in order.

    Raises:
        ValueError: none found (the message says what was looked for).
    """
    return _layout(module)[1]


def unit_importance(module, batches, unit: str, loss=None) -> list[np.ndarray]:
    """Per layer, the importance of each unit (see the module docstring), from ``(x, y)`` batches.

    ``module`` maps a batch ``x`` to outputs scored by ``loss(outputs, y)`` (default: cross-entropy
    on logits); it is put in eval mode (no dropout) and its parameters' gradients are left as they
    were (cleared).
    """
    import torch
    import torch.nn.functional as F

    loss = loss or F.cross_entropy
    layout, layers = _layout(module)
    scores = [np.zeros(layout.units(layer, unit)) for layer in layers]
    acts: dict[int, torch.Tensor] = {}

    def keep(i):
        def hook(_mod, inputs):
            a = inputs[0]
            a.retain_grad()
            acts[i] = a

        return hook

    handles = [layout.observed(layer, unit).register_forward_pre_hook(keep(i)) for i, layer in enumerate(layers)]
    was_training = module.training
    module.eval()
    try:
        for xb, yb in batches:
            acts.clear()
            loss(module(torch.from_numpy(xb)), torch.from_numpy(yb)).backward()
            for i, layer in enumerate(layers):
                a = acts[i]
                g = (a.grad * a).detach()  # (batch, tokens, width)
                if unit == "heads":
                    g = g.reshape(*g.shape[:2], -1, layout.head_size(layer))  # (batch, tokens, heads, head size)
                    per_example = g.sum(dim=(1, 3))
                else:
                    per_example = g.sum(dim=1)
                scores[i] += per_example.abs().sum(dim=0).double().numpy()
    finally:
        for h in handles:
            h.remove()
        module.zero_grad(set_to_none=True)
        module.train(was_training)
    return scores


def _keep_rows(linear, idx):
    return _sliced(linear, linear.weight.data[idx], None if linear.bias is None else linear.bias.data[idx])


def _keep_cols(linear, idx):
    return _sliced(linear, linear.weight.data[:, idx], None if linear.bias is None else linear.bias.data)


def _sliced(linear, weight, bias):
    from torch import nn

    new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    new.weight.data.copy_(weight)
    if bias is not None:
        new.bias.data.copy_(bias)
    return new.to(linear.weight.device, linear.weight.dtype)


def prune_units(module, unit: str, keep: list[np.ndarray]) -> None:
    """Keep only units ``keep[i]`` (sorted indices) of layer ``i`` of ``module``, in place."""
    import torch

    layout, layers = _layout(module)
    for layer, kept in zip(layers, keep, strict=True):
        if unit == "heads":
            d = layout.head_size(layer)
            idx = torch.from_numpy(np.concatenate([np.arange(h * d, (h + 1) * d) for h in kept]))
        else:
            idx = torch.from_numpy(np.asarray(kept, dtype=np.int64))
        layout.keep(layer, unit, idx)


def prune_transformer(model, config: TransformerPruningConfig):
    """A pruned copy of ``model.native`` (importance on the fine-tune data), not yet fine-tuned."""
    import copy

    from compress.determinism import torch_threads
    from compress.techniques.channels import kept_channels

    recipe = model.recipe
    x, y = recipe.fine_tune_data()
    bs = recipe.batch_size
    batches = [(x[i : i + bs], y[i : i + bs]) for i in range(0, min(len(x), bs * config.importance_batches), bs)]
    pruned = copy.deepcopy(model.native)
    with torch_threads():  # the scores, hence the choice, do not depend on the thread count
        scores = unit_importance(pruned, batches, config.unit, recipe.loss)
    keep = [kept_channels(s, config.fraction) for s in scores]
    prune_units(pruned, config.unit, keep)
    return pruned.eval(), [len(s) for s in scores], [len(k) for k in keep]


@register_handler(TransformerPruningConfig, "torch")
def transformer_prune(model, config: TransformerPruningConfig, ctx):
    """Transform: the structurally pruned, fine-tuned transformer (cached on disk like a trained model)."""

    def build() -> list[np.ndarray]:
        recipe = model.recipe
        pruned, before, after = prune_transformer(model, config)
        what = "attention heads" if config.unit == "heads" else "FFN neurons"
        log.info("%s: %s per layer %s -> %s: %d -> %d parameters", model.name, what, before, after,
                 recipe.count_params(model.native), recipe.count_params(pruned))  # fmt: skip
        if config.fine_tune_epochs > 0:
            recipe.fit(pruned, epochs=config.fine_tune_epochs, learning_rate=config.learning_rate,
                       label=f"prune {config.unit} {model.name} {config.fraction:.0%}")  # fmt: skip
        return recipe.weights(pruned)

    return ctx.derive(model, config, build)
