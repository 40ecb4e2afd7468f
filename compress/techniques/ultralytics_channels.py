"""Structured (channel) pruning of ultralytics detectors, recovered by ultralytics' own trainer.

The same mechanism as every torch model's (:func:`compress.techniques.torch_channels.channel_pruner`:
torch-pruning's DepGraph, group L1 importance, one shot, ``fraction`` of every group),
with two things a YOLO needs, as torch-pruning's own YOLOv8 example does them:

- every ``C2f`` block becomes a :class:`C2fSplit` first: the same function, with its
  first convolution's two halves as two convolutions, because ``C2f`` chunks that
  convolution's output in two, which the dependency graph cannot follow;
- the ``Detect`` head keeps its output channels (its box distributions, its class
  scores): it is an ignored layer, so its convolutions lose input channels only.

The recovery fine-tune is :meth:`compress.models.yolo.Yolo.fit`: ultralytics' trainer on
the training canvases, without warm-up; the EMA of the weights is what is kept. The
pruned model's arrays are cached like any weights; :meth:`Yolo.load` rebuilds the
split architecture when the arrays are of one (their count says so) and resizes it.
"""

from __future__ import annotations

import copy

import numpy as np

from compress.registry import register_handler
from compress.techniques.channels import ChannelPruningConfig, fine_tune_pruned
from compress.techniques.torch_channels import prune_channels

__all__ = ["C2fSplit", "split_c2f", "prune_detector", "channel_prune"]


def _c2f_split_class():
    import torch
    from torch import nn

    class C2fSplit(nn.Module):
        """ultralytics' ``C2f`` with ``cv1`` as two convolutions (``cv0``: its first half of the
        output channels, ``cv1``: its second), so that nothing chunks a tensor."""

        def __init__(self, c2f):
            super().__init__()
            c = c2f.c
            self.cv0, self.cv1 = copy.deepcopy(c2f.cv1), copy.deepcopy(c2f.cv1)
            for conv, part in ((self.cv0, slice(0, c)), (self.cv1, slice(c, 2 * c))):
                conv.conv.weight = nn.Parameter(c2f.cv1.conv.weight.detach()[part].clone())
                conv.conv.out_channels = c
                bn, src = conv.bn, c2f.cv1.bn
                bn.weight = nn.Parameter(src.weight.detach()[part].clone())
                bn.bias = nn.Parameter(src.bias.detach()[part].clone())
                bn.running_mean = src.running_mean[part].clone()
                bn.running_var = src.running_var[part].clone()
                bn.num_features = c
            self.cv2, self.m = c2f.cv2, c2f.m
            for attr in ("f", "i", "type", "np"):  # ultralytics' routing of its Sequential
                if hasattr(c2f, attr):
                    setattr(self, attr, getattr(c2f, attr))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = [self.cv0(x), self.cv1(x)]
            y.extend(m(y[-1]) for m in self.m)
            return self.cv2(torch.cat(y, 1))

    C2fSplit.__module__ = __name__
    C2fSplit.__qualname__ = "C2fSplit"
    return C2fSplit


def __getattr__(name: str):
    # the class needs torch; defined on first use and kept (ultralytics' trainer pickles the model)
    if name == "C2fSplit":
        cls = _c2f_split_class()
        globals()["C2fSplit"] = cls
        return cls
    raise AttributeError(name)


def split_c2f(model):
    """``model`` with every ``C2f`` replaced by :class:`C2fSplit` (in place; same outputs)."""
    from ultralytics.nn.modules import C2f

    split = globals().get("C2fSplit") or __getattr__("C2fSplit")
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, C2f):
                setattr(parent, name, split(child))
    return model


def prune_detector(native, fraction: float, example):
    """A copy of ``native`` with ``fraction`` of every group's channels removed, its ``C2f`` blocks
    split and its ``Detect`` heads' outputs kept (:func:`compress.techniques.torch_channels.prune_channels`).

    Raises:
        RuntimeError: an output of the pruned model changed shape.
    """
    from compress.models.yolo import detect_heads

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
