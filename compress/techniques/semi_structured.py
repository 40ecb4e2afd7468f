"""2:4 semi-structured sparsity: two of every four consecutive input weights of a Linear layer are zero.

NVIDIA GPUs since Ampere multiply such a matrix on sparse tensor cores; torch
runs it through :func:`torch.sparse.to_sparse_semi_structured` (cuSPARSELt, or
CUTLASS on compute capability 8.x), in float16 or bfloat16.

- Transform :class:`SemiStructuredConfig` (torch): a one-shot magnitude mask
  (the two largest ``|w|`` of each group of four along the input axis are kept)
  on every ``nn.Linear`` but the model's last one (the output head, which the
  usual 2:4 recipes leave dense) whose two dimensions are multiples of
  :data:`ALIGN` (what the kernels take), then a recovery fine-tune with the
  masks fixed (``torch.nn.utils.prune.custom_from_mask``: a pruned weight stays
  zero), made permanent. Cached on disk like a trained model.
- Export :class:`Sparse24Config` (torch): the float16 ``state_dict`` (dense
  storage: the bytes and their gzip are what the zeros save on disk) and a
  skeleton that, on a CUDA device, turns every 2:4 Linear weight into a
  semi-structured sparse tensor after the move (:meth:`Sparse24Skeleton.on_device`).
  On the CPU, torch has no 2:4 kernel: the artefact runs dense, upcast to
  float32 like the ``float16`` artefact (its latency there is the dense model's).

Measured on an NVIDIA H200 (torch 2.11, cuSPARSELt 0.8): ``F.linear`` of a 2:4
float16 weight costs about 1 ms per call whatever its size up to 4,096 x 4,096
(dense: 0.02-0.17 ms), and only at 16,384 x 4,096 with 8,192 tokens does it win
(1.19 vs 1.56 ms); CUTLASS's kernel refuses compute capability 9.0. A small
model's sparse artefact is therefore slower there; the pair reports it.

Example:
    >>> from compress.techniques.semi_structured import two_four_mask
    >>> two_four_mask(torch.tensor([[1., -3., 2., 0.5]]))  # doctest: +SKIP
    tensor([[False,  True,  True, False]])
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any, Callable

from compress.registry import TechniqueConfig, check_range, register_handler
from compress.runtimes.base import Artefact

log = logging.getLogger(__name__)

__all__ = ["SemiStructuredConfig", "Sparse24Config", "Sparse24Skeleton", "two_four_mask",
           "sparse_layers", "is_two_four", "prune_two_four"]  # fmt: skip

ALIGN = 64  # both dimensions of a 2:4 weight: a multiple of 64 suits cuSPARSELt and CUTLASS in float16


@dataclass(frozen=True)
class SemiStructuredConfig(TechniqueConfig):
    """2:4 magnitude pruning of every eligible Linear layer, then a recovery fine-tune with fixed masks.

    Attributes:
        fine_tune_epochs: epochs of recovery fine-tuning (fractions allowed; 0: none).
        learning_rate: fine-tune learning rate.
    """

    fine_tune_epochs: float = 1.0
    learning_rate: float = 1e-3

    def __post_init__(self) -> None:
        check_range("fine_tune_epochs", self.fine_tune_epochs, 0.0, 20)
        check_range("learning_rate", self.learning_rate, 1e-7, 1.0)

    def unsupported_by(self, recipe) -> str | None:
        """A torch model none of whose Linear layers (but the head) 2:4 applies to (the architecture is
        built with random weights to look; the global random state is left as it was)."""
        if recipe.framework != "torch":
            return None
        import torch

        with torch.random.fork_rng():
            layers = sparse_layers(recipe.build())
        if not layers:
            return (f"2:4 sparsity needs Linear layers (but the output head) with both dimensions "
                    f"multiples of {ALIGN}; this model has none")  # fmt: skip
        return None


@dataclass(frozen=True)
class Sparse24Config(TechniqueConfig):
    """float16 weights; on CUDA the 2:4 Linear weights run on torch's semi-structured sparse kernels."""

    stage = "export"


def two_four_mask(weight):
    """Boolean mask keeping the two largest-magnitude weights of each group of 4 along the last axis."""
    import torch

    rows, cols = weight.shape
    if cols % 4:
        raise ValueError(f"a 2:4 mask needs a multiple of 4 input features, got {cols}")
    groups = weight.detach().abs().reshape(rows, cols // 4, 4)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(2, groups.topk(2, dim=2).indices, True)
    return keep.reshape(rows, cols)


def sparse_layers(module) -> list[tuple[str, Any]]:
    """``(name, nn.Linear)`` that 2:4 applies to: every Linear but the last registered one (the output
    head), with both dimensions multiples of :data:`ALIGN`."""
    from torch import nn

    linears = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    return [(n, m) for n, m in linears[:-1] if m.in_features % ALIGN == 0 and m.out_features % ALIGN == 0]


def is_two_four(weight) -> bool:
    """True when every group of 4 consecutive weights along the input axis holds at least two zeros."""
    rows, cols = weight.shape
    if cols % 4:
        return False
    zeros = (weight.detach().reshape(rows, cols // 4, 4) == 0).sum(dim=2)
    return bool((zeros >= 2).all())


def prune_two_four(module, recipe, config: SemiStructuredConfig, label: str):
    """A 2:4-pruned, fine-tuned copy of ``module`` (``module`` itself unchanged), in eval mode.

    Raises:
        ValueError: the model has no Linear layer 2:4 applies to.
    """
    import torch
    from torch.nn.utils import prune

    work = copy.deepcopy(module)
    layers = sparse_layers(work)
    if not layers:
        raise ValueError(f"{type(module).__name__} has no Linear layer (but its last) with both dimensions "
                         f"multiples of {ALIGN}: 2:4 sparsity applies to none")  # fmt: skip
    for _, layer in layers:
        prune.custom_from_mask(layer, "weight", two_four_mask(layer.weight))
    if config.fine_tune_epochs > 0:
        recipe.fit(work, epochs=config.fine_tune_epochs, learning_rate=config.learning_rate, label=label)
    for _, layer in layers:
        prune.remove(layer, "weight")
    pruned = copy.deepcopy(module)  # the original's state_dict order (prune.remove re-adds weight last)
    with torch.no_grad():
        pruned.load_state_dict(work.state_dict(), strict=True)
    log.info("%s: %d Linear layers 2:4 (%s)", label, len(layers), ", ".join(n for n, _ in layers))
    return pruned.eval()


@register_handler(SemiStructuredConfig, "torch")
def semi_structured(model, config: SemiStructuredConfig, ctx):
    """Transform: the 2:4-pruned, fine-tuned model (cached on disk like a trained model)."""
    label = f"prune {model.name} 2:4"
    return ctx.derive(model, config, lambda: model.recipe.weights(prune_two_four(model.native, model.recipe,
                                                                                 config, label)))  # fmt: skip


class Sparse24Skeleton:
    """Builds the module a :class:`Sparse24Config` state_dict loads into, and prepares it for a device.

    Attributes:
        build: zero-argument callable building the empty module.
        layers: names of the Linear layers whose weights are 2:4.
    """

    def __init__(self, build: Callable[[], Any], layers: tuple[str, ...]):
        self.build = build
        self.layers = layers

    def __call__(self):
        return self.build()

    def on_device(self, module, device: str):
        """On ``cuda``: every 2:4 layer's weight as a semi-structured sparse tensor (the module computes in
        float16 there); elsewhere ``module`` unchanged (dense)."""
        if device != "cuda":
            return module
        import torch
        from torch.sparse import to_sparse_semi_structured

        for name in self.layers:
            layer = module.get_submodule(name)
            sparse = to_sparse_semi_structured(layer.weight.detach())
            layer.weight = torch.nn.Parameter(sparse, requires_grad=False)
        return module


@register_handler(Sparse24Config, "torch", devices=("cpu", "cuda"))
def sparse24(model, config: Sparse24Config, ctx) -> Artefact:
    """float16 state_dict of a 2:4-pruned model, run on semi-structured sparse kernels on CUDA.

    Raises:
        ValueError: an eligible Linear weight is not 2:4 (the chain did not prune it so).
    """
    import torch

    from compress.techniques.torch_export import cast_floats, skeleton_fn, state_dict_bytes

    layers = sparse_layers(model.native)
    dense = [name for name, layer in layers if not is_two_four(layer.weight)]
    if not layers or dense:
        raise ValueError(f"{model.name}: Sparse24Config ships 2:4 Linear weights, but "
                         + (f"{', '.join(dense)} {'is' if len(dense) == 1 else 'are'} not 2:4" if dense
                            else "the model has no Linear layer 2:4 applies to")
                         + ": put SemiStructuredConfig before it in the chain")  # fmt: skip
    half = cast_floats(model.native.state_dict(), torch.float16)
    return Artefact(state_dict_bytes(half), format="pt", runtime="torch-eager",
                    meta=Sparse24Skeleton(skeleton_fn(model), tuple(name for name, _ in layers)))  # fmt: skip
