"""Shared machinery of torch recipes: weights as arrays, shape-aware loading, a training loop.

Every torch recipe stores its model as the ``state_dict`` values in order
(parameters and buffers), so the weights cache is framework-neutral. Loading
is shape-aware: a channel-pruned model's arrays are narrower than the dense
architecture's, and the modules are resized to match before the values load.
"""

from __future__ import annotations

import math
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from compress.determinism import TORCH_THREADS, torch_threads
from compress.models.base import Recipe


def state_arrays(module) -> list[np.ndarray]:
    """The ``state_dict`` values of ``module`` as numpy arrays, in state_dict order."""
    return [t.detach().cpu().numpy().copy() for t in module.state_dict().values()]


def _resize(module, shapes: dict[str, tuple]) -> None:
    """Resize conv, batch-norm and linear layers so their tensors take ``shapes``."""
    import torch
    from torch import nn

    for prefix, sub in module.named_modules():
        own = {n: shapes.get(f"{prefix}.{n}" if prefix else n) for n, _ in
               [*sub.named_parameters(recurse=False), *sub.named_buffers(recurse=False)]}  # fmt: skip
        changed = {n: s for n, s in own.items() if s is not None and tuple(getattr(sub, n).shape) != s}
        if not changed:
            continue
        for n, s in changed.items():
            old = getattr(sub, n)
            new = torch.empty(s, dtype=old.dtype)
            if isinstance(old, nn.Parameter):
                setattr(sub, n, nn.Parameter(new, requires_grad=old.requires_grad))
            else:
                sub.register_buffer(n, new)
        if isinstance(sub, nn.Conv2d):
            out_c, in_per_group = sub.weight.shape[:2]
            depthwise = sub.groups > 1 and sub.groups == sub.in_channels
            sub.out_channels = out_c
            sub.groups = out_c if depthwise else sub.groups
            sub.in_channels = in_per_group * sub.groups
        elif isinstance(sub, nn.modules.batchnorm._BatchNorm):
            sub.num_features = sub.weight.shape[0]
        elif isinstance(sub, nn.Linear):
            sub.out_features, sub.in_features = sub.weight.shape
        else:
            raise ValueError(f"cannot resize {type(sub).__name__} {prefix!r} to {changed}")


def load_arrays(module, arrays: Sequence[np.ndarray]):
    """Load ``arrays`` (from :func:`state_arrays`) into ``module``, resizing layers if needed.

    Raises:
        ValueError: the number of arrays does not match the state_dict.
    """
    import torch

    keys = list(module.state_dict().keys())
    if len(keys) != len(arrays):
        raise ValueError(f"{len(arrays)} arrays for a state_dict of {len(keys)} tensors")
    _resize(module, {k: tuple(a.shape) for k, a in zip(keys, arrays, strict=True)})
    state = {k: torch.from_numpy(np.array(a)) for k, a in zip(keys, arrays, strict=True)}
    module.load_state_dict(state, strict=True)
    return module


def count_params(module) -> int:
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))


class TorchArrays(Recipe):
    """``weights``, ``load`` and ``count_params`` of a torch recipe with a ``build()``."""

    def weights(self, model) -> list[np.ndarray]:
        return state_arrays(model)

    def load(self, weights):
        """The architecture holding ``weights``; narrower layers if they are channel-pruned."""
        return load_arrays(self.build(), weights).eval()

    def count_params(self, model) -> int:
        return count_params(model)


class TorchFit(Recipe):
    """``fit`` of a torch recipe with ``fine_tune_data()``, ``batch_size``, ``seed`` and ``weight_decay``:
    :func:`fit` on the fine-tune data (``_fit`` on any arrays, for training)."""

    warmup_steps: ClassVar[int] = 0  # linear warm-up steps of the schedule (a recipe's field may set it)

    def fit(self, model, *, epochs: float, learning_rate: float, label: str, callbacks=()) -> None:
        """Fine-tune ``model`` in place on :meth:`fine_tune_data`."""
        self._fit(model, *self.fine_tune_data(), epochs=epochs, learning_rate=learning_rate,
                  label=label, callbacks=callbacks)  # fmt: skip

    def _fit(self, model, x, y, *, epochs: float, learning_rate: float, label: str, callbacks=()) -> None:
        fit(model, x, y, epochs=epochs, learning_rate=learning_rate, batch_size=self.batch_size,
            seed=self.seed, label=label, callbacks=callbacks, weight_decay=self.weight_decay,
            lengths=self.example_lengths(x), loss=self.loss, warmup_steps=self.warmup_steps)  # fmt: skip

    def example_lengths(self, x: np.ndarray) -> np.ndarray | None:
        """Each example's length, when batches should be grouped by it (:func:`batch_order`); None: plain shuffle."""
        return None


def train_on_split(recipe, label: str, start=None, verb: str = "train"):
    """``start()`` (default ``recipe.build``: from scratch; a pretrained model to fine-tune) trained
    on the recipe's ``train`` split for its ``epochs`` at its ``learning_rate`` (``recipe._fit``:
    :func:`fit`); in eval mode. ``verb`` names the fit in progress and log lines."""
    import logging
    import time

    import torch

    torch.use_deterministic_algorithms(True, warn_only=True)
    t0 = time.perf_counter()
    model = (start or recipe.build)()
    recipe._fit(model, *recipe.data("train"), epochs=recipe.epochs, learning_rate=recipe.learning_rate,
                label=f"{verb} {label}")  # fmt: skip
    logging.getLogger(__name__).info("%s %s in %.0f s", verb, label, time.perf_counter() - t0)
    return model.eval()


# Intra-op threads of every torch fit. Float reductions split over another number
# of threads add up in another order, and over thousands of steps that is another
# model. The runtimes set their own thread counts for inference and do not restore
# them, so without a fixed count a model's weights depended on what the process
# had timed before training it: ResNet18 trained on two threads scored 0.9029 top-1,
# on one 0.9000 (bit-identical to the model cached earlier, which had been trained
# after a one-thread timing). Part of every torch model's cache key; one thread took
# 410 s for ResNet18's 3 epochs here, two 180 s.
TRAIN_THREADS = TORCH_THREADS


def fit(
    module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: float,
    learning_rate: float,
    batch_size: int,
    seed: int,
    label: str,
    callbacks: Sequence[Callable[[int], Any]] = (),
    weight_decay: float = 0.0,
    lengths: np.ndarray | None = None,
    loss: Callable[[Any, Any], Any] | None = None,
    warmup_steps: int = 0,
) -> None:
    """Train ``module`` in place: Adam(W), cosine decay, cross-entropy on logits.

    ``epochs`` may be fractional (that many optimizer steps). ``callbacks`` are
    called with the global step after every optimizer step (pruning schedules
    hook in here). ``lengths`` (one per example) groups each batch from examples
    of similar length (:func:`batch_order`). ``loss(outputs, targets)`` replaces the
    cross-entropy of classification (a language model's next-token loss).
    ``warmup_steps`` > 0 ramps the rate linearly from 0 over that many steps before
    the cosine (0: the cosine from the first step). Shuffling and initial state are seeded by ``seed``, and the
    intra-op thread count is :data:`TRAIN_THREADS` for the whole fit (restored
    after), so the same recipe gives the same weights whatever ran before.
    """
    with torch_threads(TRAIN_THREADS):
        _fit(module, x, y, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
             seed=seed, label=label, callbacks=callbacks, weight_decay=weight_decay, lengths=lengths,
             loss=loss, warmup_steps=warmup_steps)  # fmt: skip


# Examples sorted by length within windows of this many batches (transformers' Trainer uses
# 50 for ``group_by_length``): wide enough that most batches hold near-equal lengths, narrow
# enough that a window is still a random sample of the data.
LENGTH_GROUP_BATCHES = 50


def batch_order(rng: np.random.Generator, n: int, batch_size: int, lengths: np.ndarray | None = None) -> list[np.ndarray]:
    """One epoch's batches of example indices, drawn with ``rng``.

    Without ``lengths``: a random permutation cut into batches. With them,
    length-grouped batches, as transformers' ``group_by_length``: the permutation
    is cut into windows of :data:`LENGTH_GROUP_BATCHES` batches, each window is
    sorted by length and cut into batches, and the batches are shuffled. Every
    example is still seen once per epoch; a model that trims a batch to its
    longest example (text) then computes on about the real tokens instead of
    about twice as many (random batches of 32 movie-review snippets hold 1.9x
    their tokens once padded to the batch's longest).
    """
    order = rng.permutation(n)
    if lengths is None:
        return [np.sort(order[i : i + batch_size]) for i in range(0, n, batch_size)]
    lengths = np.asarray(lengths)
    if lengths.shape != (n,):
        raise ValueError(f"lengths has shape {lengths.shape}; expected ({n},), one per example")
    window = LENGTH_GROUP_BATCHES * batch_size
    batches = []
    for w in range(0, n, window):
        chunk = order[w : w + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [np.sort(chunk[i : i + batch_size]) for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _schedule(opt, total: int, warmup_steps: int):
    """Cosine decay to 0 over ``total`` steps, after a linear warm-up of ``warmup_steps`` (none: torch's
    ``CosineAnnealingLR``, the schedule every model without warm-up was trained with)."""
    import torch

    if warmup_steps <= 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    warm = min(warmup_steps, total - 1) if total > 1 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _fit(module, x, y, *, epochs, learning_rate, batch_size, seed, label, callbacks, weight_decay, lengths,
         loss=None, warmup_steps=0) -> None:  # fmt: skip
    import torch
    import torch.nn.functional as F

    from compress.progress import StepProgress

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    steps_full = math.ceil(len(x) / batch_size)
    total = max(1, round(epochs * steps_full))
    n_epochs = math.ceil(total / steps_full)
    opt = torch.optim.AdamW(module.parameters(), lr=learning_rate, weight_decay=weight_decay)
    sched = _schedule(opt, total, warmup_steps)
    loss_fn = loss or F.cross_entropy
    progress = StepProgress(label, n_epochs, min(steps_full, total))
    module.train()
    step = 0
    try:
        for epoch in range(n_epochs):
            seen, loss_sum = 0, 0.0
            for idx in batch_order(rng, len(x), batch_size, lengths):
                if step >= total:
                    break
                xb, yb = torch.from_numpy(x[idx]), torch.from_numpy(y[idx])
                batch_loss = loss_fn(module(xb), yb)
                opt.zero_grad(set_to_none=True)
                batch_loss.backward()
                opt.step()
                sched.step()
                step += 1
                for cb in callbacks:
                    cb(step)
                seen += len(idx)
                loss_sum += float(batch_loss.detach()) * len(idx)
                progress.step(epoch, float(batch_loss.detach()))
            progress.end_epoch(epoch, loss=loss_sum / max(seen, 1))
    finally:
        progress.close()
        module.eval()


def predict(module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits of ``module`` (eval mode, no grad) for ``x``, batched."""
    import torch

    module.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            out.append(module(torch.from_numpy(x[i : i + batch_size])).float().numpy())
    return np.concatenate(out)
