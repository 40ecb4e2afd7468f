"""Structured (channel) pruning of ultralytics detectors, recovered by ultralytics' own trainer.

The same mechanism as every torch model's (:func:`compress.techniques.torch_channels.channel_pruner`:
torch-pruning's DepGraph, group L1 importance, one shot, ``fraction`` of every group),
with two things a YOLO needs, as torch-pruning's own YOLOv8 example does them:

- every ``C2f`` block becomes a :class:`compress.models.detection.yolo_blocks.C2fSplit` first: the same function, with its
  first convolution's two halves as two convolutions, because ``C2f`` chunks that
  convolution's output in two, which the dependency graph cannot follow;
- the ``Detect`` head keeps its output channels (its box distributions, its class
  scores): it is an ignored layer, so its convolutions lose input channels only.

The recovery fine-tune is :meth:`compress.models.detection.yolo.Yolo.fit`: ultralytics' trainer on
the training canvases, without warm-up; the EMA of the weights is what is kept. The
pruned model's arrays are cached like any weights; :meth:`Yolo.load` rebuilds the
split architecture when the arrays are of one (their count says so) and resizes it.
"""

from __future__ import annotations

import copy

import numpy as np

from compress.models.detection.yolo_blocks import split_c2f
from compress.registry import register_handler
from compress.techniques.channels import ChannelPruningConfig, fine_tune_pruned
from compress.techniques.torch_channels import prune_channels

__all__ = ["prune_detector", "channel_prune"]


def prune_detector(native, fraction: float, example):
    """A copy of ``native`` with ``fraction`` of every group's channels removed, its ``C2f`` blocks
    split and its ``Detect`` heads' outputs kept (:func:`compress.techniques.torch_channels.prune_channels`).

    Raises:
        RuntimeError: an output of the pruned model changed shape.
    """
    from compress.models.detection.yolo import detect_heads

    return prune_channels(split_c2f(copy.deepcopy(native)), fraction, example, keep=detect_heads)


@register_handler(ChannelPruningConfig, "ultralytics")
def channel_prune(model, config: ChannelPruningConfig, ctx):
    """Transform: the channel-pruned detector after its recovery fine-tune (cached on disk)."""

    def build() -> list[np.ndarray]:
        import torch

        # one canvas, for tracing shapes only
        example = torch.from_numpy(np.ascontiguousarray(model.recipe.data("calib")[0][:1]))
        pruned = prune_detector(model.native, config.fraction, example)
        return fine_tune_pruned(model, pruned, config, " of every group, the head's outputs kept")

    return ctx.derive(model, config, build, extra_versions=("torch-pruning",))
