"""A detection set built from real Fashion-MNIST items composed onto larger canvases.

Each canvas is ``size`` x ``size`` pixels, black, with 1 to ``max_objects`` real
Fashion-MNIST items pasted on it (each resized with Pillow's bilinear filter to a
side drawn from ``scales``, placed where it overlaps an item already there by at
most ``max_overlap`` of its own box, composed by per-pixel maximum: the items are
bright on black). An item's box is the tight box of its pixels brighter than
:data:`INK` after resizing; its class is the item's Fashion-MNIST label (ten
classes). Canvases are greyscale, given to the model as three equal channels.

Splits follow Fashion-MNIST's own (:mod:`compress.data.fashion_mnist`), so no item
is shared between them:

- ``train``: canvases of items from its ``train`` split (what the detector trains and fine-tunes on);
- ``calib``: canvases of items from its ``calib`` split (int8 calibration; never trained on);
- ``test``: canvases of items from its ``test`` split (held out: never trained or calibrated on).

Everything is drawn from ``numpy.random.default_rng`` seeded per split, so the set is
the same on every machine; :func:`canvas_set` builds it (a few seconds), and
:func:`yolo_files` and :func:`dataset_yaml` lay it out as ultralytics reads a dataset
(``images/``, ``labels/`` with normalized ``class cx cy w h`` lines, a dataset yaml).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: A resized item's pixel belongs to its box when brighter than this (of 255).
INK = 24
SPLIT_SEEDS = {"train": 11, "calib": 12, "test": 13}
#: Version of the builder: part of every cache key that depends on the canvases.
VERSION = 1


@dataclass(frozen=True)
class CanvasSpec:
    """How many canvases of which kind each split has (every field shapes the data)."""

    size: int = 128
    scales: tuple[int, int] = (28, 64)  # an item's side in pixels, drawn uniformly in [lo, hi]
    max_objects: int = 4
    max_overlap: float = 0.2
    counts: tuple[tuple[str, int], ...] = (("train", 2000), ("calib", 256), ("test", 500))

    def __post_init__(self) -> None:
        lo, hi = self.scales
        if not 8 <= lo <= hi <= self.size:
            raise ValueError(f"scales must satisfy 8 <= lo <= hi <= size ({self.size}), got {self.scales}")
        if not 1 <= self.max_objects <= 16:
            raise ValueError(f"max_objects must be in [1, 16], got {self.max_objects}")
        if not 0.0 <= self.max_overlap < 1.0:
            raise ValueError(f"max_overlap must be in [0, 1), got {self.max_overlap}")
        for split, n in self.counts:
            if split not in SPLIT_SEEDS or n < 1:
                raise ValueError(f"counts: unknown split {split!r} or count {n} < 1")

    def count(self, split: str) -> int:
        if split not in SPLIT_SEEDS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLIT_SEEDS)}")
        return dict(self.counts).get(split, 0)


@dataclass(frozen=True)
class Canvases:
    """One split: ``images`` uint8 ``(N, S, S)`` and ``boxes`` float32 ``(M, 6)`` rows
    ``(image index, class, x1, y1, x2, y2)`` in pixels (``x2``, ``y2`` exclusive), sorted by image."""

    images: np.ndarray
    boxes: np.ndarray

    def boxes_of(self, i: int) -> np.ndarray:
        return self.boxes[self.boxes[:, 0] == i]


def _overlap(box: np.ndarray, others: list[np.ndarray]) -> float:
    """Largest share of ``box``'s area covered by one of ``others`` (x1, y1, x2, y2)."""
    area = (box[2] - box[0]) * (box[3] - box[1])
    worst = 0.0
    for o in others:
        w = min(box[2], o[2]) - max(box[0], o[0])
        h = min(box[3], o[3]) - max(box[1], o[1])
        if w > 0 and h > 0:
            worst = max(worst, w * h / area)
    return worst


def compose(items: np.ndarray, labels: np.ndarray, spec: CanvasSpec, n: int, seed: int) -> Canvases:
    """``n`` canvases of items drawn from ``items`` (uint8 ``(K, 28, 28)``) and their ``labels``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    s, (lo, hi) = spec.size, spec.scales
    images = np.zeros((n, s, s), np.uint8)
    rows: list[tuple] = []
    for i in range(n):
        placed: list[np.ndarray] = []
        for _ in range(int(rng.integers(1, spec.max_objects + 1))):
            k, side = int(rng.integers(len(items))), int(rng.integers(lo, hi + 1))
            item = np.asarray(Image.fromarray(items[k]).resize((side, side), Image.BILINEAR))
            ys, xs = np.nonzero(item > INK)
            if len(xs) == 0:
                continue
            for _try in range(10):  # a place that leaves the items already there visible
                x, y = (int(v) for v in rng.integers(0, s - side + 1, 2))
                box = np.array([x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1], np.float32)
                if _overlap(box, placed) <= spec.max_overlap and all(_overlap(p, [box]) <= spec.max_overlap
                                                                      for p in placed):  # fmt: skip
                    break
            else:
                continue
            region = images[i, y : y + side, x : x + side]
            np.maximum(region, item, out=region)
            placed.append(box)
            rows.append((i, int(labels[k]), *box))
    return Canvases(images, np.array(rows, np.float32).reshape(-1, 6))


@lru_cache(maxsize=4)
def canvas_set(spec: CanvasSpec, split: str) -> Canvases:
    """The canvases of ``split`` (memoized: do not write to the arrays)."""
    from compress.data import load_fashion_mnist

    n = spec.count(split)
    items, labels = load_fashion_mnist().split(split)
    return compose(items, labels, spec, n, SPLIT_SEEDS[split] * 1_000 + VERSION)


def png(image: np.ndarray) -> bytes:
    """A greyscale canvas as PNG bytes (lossless; what ultralytics reads back is the array)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def yolo_labels(canvases: Canvases, i: int, size: int) -> str:
    """Image ``i``'s label file: ``class cx cy w h`` per box, normalized by ``size``."""
    lines = []
    for _, c, x1, y1, x2, y2 in canvases.boxes_of(i):
        lines.append(f"{int(c)} {(x1 + x2) / 2 / size:.6f} {(y1 + y2) / 2 / size:.6f} "
                     f"{(x2 - x1) / size:.6f} {(y2 - y1) / size:.6f}")  # fmt: skip
    return "\n".join(lines) + ("\n" if lines else "")


def yolo_files(spec: CanvasSpec, splits: tuple[str, ...] = ("train", "calib")) -> dict:
    """The images and label files of ``splits`` as ultralytics lays a dataset out (relative path ->
    bytes); :func:`dataset_yaml` writes the yaml that names them."""
    files: dict[str, bytes] = {}
    for split in splits:
        c = canvas_set(spec, split)
        for i in range(len(c.images)):
            files[f"images/{split}/{i:05d}.png"] = png(c.images[i])
            files[f"labels/{split}/{i:05d}.txt"] = yolo_labels(c, i, spec.size).encode()
    return files


def dataset_yaml(root: Path, names: tuple[str, ...], train: str = "train", val: str = "calib") -> str:
    """An ultralytics dataset yaml for the layout of :func:`yolo_files` under ``root``."""
    lines = [f"path: {root}", f"train: images/{train}", f"val: images/{val}", "names:"]
    lines += [f"  {i}: {name!r}" for i, name in enumerate(names)]
    return "\n".join(lines) + "\n"
