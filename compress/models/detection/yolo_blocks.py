"""Architecture pieces of the YOLO detectors that the model and its techniques share.

:class:`C2fSplit` is ultralytics' ``C2f`` block with its first convolution's two halves
as two convolutions (``C2f`` chunks that convolution's output in two, which torch-pruning's
dependency graph cannot follow). Channel pruning splits every block before pruning
(:mod:`compress.techniques.ultralytics_channels`); :meth:`compress.models.detection.yolo.Yolo.load`
splits them to restore a pruned detector's arrays.
"""

from __future__ import annotations

import copy

__all__ = ["C2fSplit", "split_c2f"]


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
