"""The recipe contract: what every model recipe provides, and what it may (public API).

A recipe is a frozen dataclass subclassing :class:`Recipe`; every field is part of
the cache key of the weights it trains, so changing a field retrains. The runner,
the techniques and the runtimes call only the members below, without probing: a
required member a recipe lacks raises ``NotImplementedError`` naming it, and every
optional member has one documented default here. Class attributes (``ClassVar``)
are not fields and so not part of the key.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

__all__ = ["Recipe"]


class Recipe:
    """Base class of every model recipe: subclass it (as a frozen dataclass) to add a model.

    Required (the runner needs them for every pair): ``framework``, ``seed``,
    ``batch_size``, :meth:`data`, :meth:`train`, :meth:`weights`, :meth:`load`,
    :meth:`count_params`. Techniques that fine-tune call :meth:`fit`; 2:4 sparsity
    and the torch exports call :meth:`build`. Everything else is optional.
    """

    framework: str  # "keras", "torch" or "ultralytics": selects technique handlers and runtimes
    seed: int
    batch_size: int

    # -- optional class attributes, with their defaults ---------------------------------------
    #: the task metric the model is scored by (:mod:`compress.metrics`): top-1 by default
    metric: ClassVar[str] = "accuracy"
    #: libraries beyond the framework's own whose versions shape the trained weights (a tokenizer)
    libraries: ClassVar[tuple[str, ...]] = ()
    #: technique step types (``"ChannelPruningConfig"``) this model cannot take, each with why
    unsupported: ClassVar[Mapping[str, str]] = {}
    #: a batch size the model is served at: each export's examples/s at it is recorded; None: batch 1 only
    throughput_batch: ClassVar[int | None] = None
    #: a registered model this recipe ports to its own framework (:meth:`port_from` its weights)
    port_of: ClassVar[str | None] = None
    #: a registered model this recipe is distilled from (:meth:`distill_from` its outputs)
    teacher: ClassVar[str | None] = None
    #: attention heads per layer, where the model has them (head pruning says when a fraction removes none)
    heads: ClassVar[int | None] = None
    #: module names LoRA wraps (peft's ``target_modules``) and modules trained whole beside them
    lora_targets: ClassVar[tuple[str, ...]] = ()
    lora_trained: ClassVar[tuple[str, ...]] = ()
    #: a torch model's training loss ``loss(logits, targets)`` (a method may stand here); None: cross-entropy
    loss: ClassVar[Callable[[Any, Any], Any] | None] = None

    # -- required ---------------------------------------------------------------------------
    def _missing(self, member: str):
        return NotImplementedError(f"{type(self).__name__} does not implement Recipe.{member}")

    def data(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Model-ready ``(x, y)`` of ``train`` / ``calib`` / ``test``.

        Layout is the framework's own: NHWC for Keras, NCHW for torch.
        """
        raise self._missing("data")

    def train(self, label: str) -> Any:
        """Build and train (or load pretrained and fit a head); the native model."""
        raise self._missing("train")

    def weights(self, native: Any) -> list[np.ndarray]:
        """Every array needed to restore ``native`` (what the cache stores)."""
        raise self._missing("weights")

    def load(self, weights: Sequence[np.ndarray]) -> Any:
        """The native model holding ``weights``.

        Shape-aware: when the arrays are smaller than the dense architecture's
        (a structurally pruned model), the architecture is rebuilt to match.
        """
        raise self._missing("load")

    def count_params(self, native: Any) -> int:
        """Trainable parameters of ``native``."""
        raise self._missing("count_params")

    def fit(self, native: Any, *, epochs: float, learning_rate: float, label: str,
            callbacks: Sequence[Any] = ()) -> None:  # fmt: skip
        """Fine-tune ``native`` in place on the train split (fractions of epochs allowed)."""
        raise self._missing("fit")

    def build(self) -> Any:
        """The untrained architecture (random weights): what structure-reading techniques inspect."""
        raise self._missing("build")

    # -- optional methods, with their defaults ------------------------------------------------
    def unavailable(self) -> str | None:
        """What this machine lacks to run the model (data, weights, a library), saying how to get it; None: nothing."""
        return None

    def data_source(self) -> Any | None:
        """The :class:`compress.data.dataset.Dataset` that :meth:`data` reads (what ``python -m compress
        data stats MODEL`` prints and ``data fetch MODEL`` fetches); None: the recipe reads its own way."""
        return None

    def source_digest(self) -> str | None:
        """A digest of files outside the recipe's fields that shape its weights (a user's checkpoint,
        a tokenizer made once and kept), part of the weights' cache key; None: none."""
        return None

    def task_logits(self, outputs: np.ndarray) -> np.ndarray:
        """The outputs the task metric scores, from an artefact's outputs (default: all of them)."""
        return outputs

    def extra_metrics(self, predict: Callable[[np.ndarray], np.ndarray],
                      reference: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:  # fmt: skip
        """Model-specific metrics of an artefact (``predict``) against its fp32 reference; default none.

        Both callables load their artefact on first call: a recipe with no metrics of its own costs nothing.
        """
        return {}

    def steps_per_epoch(self) -> int:
        """Optimizer steps of one :meth:`fit` epoch (default: the ``train`` split in ``batch_size`` batches)."""
        return math.ceil(len(self.data("train")[0]) / self.batch_size)

    def port_from(self, recipe: Recipe, native: Any) -> Any:
        """This recipe's native model holding the weights of ``native``, the :attr:`port_of` model's."""
        raise self._missing("port_from")

    def distill_from(self, recipe: Recipe, native: Any, label: str) -> Any:
        """This recipe's native model trained against the outputs of ``native``, the :attr:`teacher`'s."""
        raise self._missing("distill_from")

    def adaptation_data(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Model-ready ``(x, y)`` that adaptation (LoRA) trains on, never the ``test`` split; None: the
        model cannot be adapted."""
        return None

    def adaptation_start(self, native: Any) -> Any:
        """The module adaptation starts from (default: a copy of the trained model)."""
        return copy.deepcopy(native)

    def unsupported_steps(self) -> dict[str, str]:
        """:attr:`unsupported` as ``{step type name: why}``."""
        return dict(self.unsupported)
