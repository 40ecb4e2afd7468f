"""Regressions planted on purpose, to show that the gate's bounds catch what they claim.

Never registered as a technique (no pair runs it): ``benchmarks/test_planted.py``
applies it to each gate model's trained weights and checks the judge's verdict.

:class:`PlantedPruningConfig` is magnitude pruning with its sort order as a
parameter. With ``largest=True`` it has the bug of a pruner whose sort is
inverted: it zeroes the *largest* ``fraction`` of each weight tensor's entries,
and a model loses what it learnt. With ``largest=False`` it is a correct pruner
at a setting too small to matter (the smallest 1%): a change that the test set
cannot resolve, which must pass. Both act on the recipe's own weight arrays
(``recipe.weights`` / ``recipe.load``), so one handler serves every framework:
every floating-point array of two or more dimensions (convolution and dense
kernels, embeddings); biases, normalization and integer buffers are kept.

Example:
    >>> from compress.techniques.planted import PlantedPruningConfig, planted_chain
    >>> runner.evaluate("resnet18_gate", "fp32", planted_chain(PlantedPruningConfig()))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compress.registry import TechniqueConfig, check_range, register_handler

__all__ = ["PlantedPruningConfig", "WRONG", "UNRESOLVABLE", "TECHNIQUE", "plant", "planted_chain", "evaluate"]

TECHNIQUE = "planted"  # its row in the cost profile and its job in compress.prepare (not a registered technique)


@dataclass(frozen=True)
class PlantedPruningConfig(TechniqueConfig):
    """Zero ``fraction`` of each weight tensor's entries: the largest (``largest=True``: the
    planted bug) or the smallest. No recovery fine-tune."""

    fraction: float = 0.5
    largest: bool = True

    def __post_init__(self) -> None:
        check_range("fraction", self.fraction, 0.0, 1.0)
        if not isinstance(self.largest, bool):
            raise ValueError(f"largest must be a bool, got {self.largest!r}")


WRONG = PlantedPruningConfig(fraction=0.5, largest=True)  # the planted bug: the largest half zeroed
UNRESOLVABLE = PlantedPruningConfig(fraction=0.01, largest=False)  # a correct pruner, at 1%


def evaluate(runner, model: str) -> tuple[dict, dict]:
    """The metrics of ``model``'s fp32 export (the one its registration plants in: ``planted_in``,
    ``fp32`` by default) after :data:`WRONG` and after :data:`UNRESOLVABLE`, judged against its
    fp32 export as any pair is (``runner.evaluate``: stored in its result store)."""
    from compress.registry import get_model, pair_config

    technique = get_model(model).planted_in
    export = pair_config(model, technique)
    if not export.is_fp32_reference():
        raise ValueError(f"{model}: planted_in={technique!r} is not an fp32 export (an fp32 reference technique)")
    # no gzip size: the judge reads quality only, and gzip -9 of a large artefact whose largest half
    # is zeroed is slow (26 s for the team-text MiniLM's 90 MB on a 2-core AMD EPYC)
    return (runner.evaluate(model, technique, planted_chain(WRONG, export), gzip=False).metrics(),
            runner.evaluate(model, technique, planted_chain(UNRESOLVABLE, export), gzip=False).metrics())  # fmt: skip


def planted_chain(step: PlantedPruningConfig, export=None):
    """``step`` then the fp32 export (``export``'s steps; ``Float32Config`` by default): the
    artefact whose quality the judge is shown."""
    from compress.techniques.pipeline import PipelineConfig
    from compress.techniques.quantization import Float32Config

    return PipelineConfig((step, *(export.steps() if export is not None else (Float32Config(),))))


def plant(arrays: list[np.ndarray], step: PlantedPruningConfig) -> list[np.ndarray]:
    """``arrays`` with ``step`` applied to every floating-point array of two or more dimensions."""
    out = []
    for a in arrays:
        a = np.asarray(a)
        k = int(step.fraction * a.size)
        if a.ndim < 2 or not np.issubdtype(a.dtype, np.floating) or k == 0:
            out.append(a)
            continue
        flat = np.abs(a).ravel()
        # the k entries to zero: argpartition on the magnitudes, from the top or the bottom
        idx = np.argpartition(-flat if step.largest else flat, k - 1)[:k]
        b = a.copy().ravel()
        b[idx] = 0
        out.append(b.reshape(a.shape))
    return out


def _apply(m, step: PlantedPruningConfig, runner):
    return runner.derive(m, step, lambda: plant(m.recipe.weights(m.native), step))


for _framework in ("keras", "torch", "ultralytics", "onnx"):  # onnx: a ready graph's initializers (models/ready_onnx)
    register_handler(PlantedPruningConfig, _framework)(_apply)
