"""The dataset concept: what every recipe reads its examples and targets through.

A :class:`Dataset` has

- **splits**: ``train`` (what a model trains and fine-tunes on), ``calib`` (what
  static quantization calibrates on, nothing else) and ``test`` (what every pair
  is scored on; never trained or calibrated on);
- **examples and targets** of each split (:meth:`Dataset.split`): texts, images
  or text segments, and their class indices (``None`` where the targets are the
  examples themselves, as for a language model);
- **classes** (:attr:`Dataset.classes`): the label names, in target order; a
  generic recipe takes its label count from them;
- a **digest** (:meth:`Dataset.digest`): SHA-256 of the content, names and split
  rule, not of where the files lie. It goes into every cache key that depends on
  the data: change a file and what was trained on it is trained again;
- a **fetch step** (:meth:`Dataset.fetch`, :meth:`Dataset.unavailable`): what it
  needs when it is not on this machine, said before anything trains.

The generic datasets: :class:`compress.data.text_table.TextTable` (a CSV or JSON-lines
file of text and label), :class:`compress.data.image_folder.ImageFolder` (a folder of
images in the ImageFolder layout) and :class:`compress.data.text_file.TextFile` (a
plain text file, for a causal LM). The built-in data are instances of the same
concept: :data:`compress.data.sentiment.SENTIMENT`, :data:`compress.data.austen.AUSTEN`,
:data:`compress.data.fashion_mnist.FASHION_MNIST`.

A split drawn by :func:`bucket_split` depends on each example's own bytes: neither the
file order nor a random generator moves an example between splits, and identical
examples always land in the same split.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

# The switches and the errors are defined once, in compress.assets (what fetches every
# registry file); re-exported here, the same classes, so every ``except`` keeps working.
from compress.assets import ENV_DATA, ENV_OFFLINE, DataCorruptError, DataNotFoundError

__all__ = ["Dataset", "DataNotFoundError", "DataCorruptError", "ENV_DATA", "ENV_OFFLINE", "SPLITS", "bucket_split", "split_stats", "format_stats", "resolve"]

SPLITS = ("train", "calib", "test")
BUCKETS = 10_000


def bucket_split(key: bytes, salt: bytes, test: float = 0.2, calib: float = 0.045) -> str:
    """``train``, ``calib`` or ``test`` for an example, from its own bytes ``key``.

    ``b = int(sha256(salt + key)[:8 bytes]) % 10000``: ``test`` when ``b < test * 10000``,
    ``calib`` for the next ``calib * 10000`` buckets, ``train`` otherwise.
    """
    h = hashlib.sha256(salt + key).digest()
    b = int.from_bytes(h[:8], "big") % BUCKETS
    n_test, n_calib = round(test * BUCKETS), round(calib * BUCKETS)
    if b < n_test:
        return "test"
    if b < n_test + n_calib:
        return "calib"
    return "train"


def resolve(path: str | os.PathLike[str]) -> Path:
    """``path`` with ``~`` and environment variables expanded (``$TEAM_DATA/reviews.csv``)."""
    return Path(os.path.expandvars(os.path.expanduser(os.fspath(path))))


class Dataset:
    """Splits of examples and targets, their classes, a digest and a fetch step.

    Subclass it and give :meth:`split`, :meth:`digest` and, for a classification
    dataset, :attr:`classes`. Every other member has a default. Loading is lazy:
    constructing a dataset reads nothing, so a plugin that registers a model on one
    stays cheap to import. A recipe field holding a dataset enters the recipe's
    cache key as :meth:`key` (its type and digest), not as its path.
    """

    splits: ClassVar[tuple[str, ...]] = SPLITS
    name: ClassVar[str] = "dataset"  # shown in errors and statistics

    def split(self, name: str) -> tuple[Sequence[Any], np.ndarray | None]:
        """``(examples, targets)`` of split ``name``; targets are class indices, or None."""
        raise NotImplementedError(f"{type(self).__name__} must define split(name)")

    @property
    def classes(self) -> tuple[str, ...] | None:
        """The label names in target order (``targets == i`` is ``classes[i]``); None: no labels."""
        return None

    def digest(self) -> str:
        """SHA-256 (hex) of the content and the split rule: what cache keys hold."""
        raise NotImplementedError(f"{type(self).__name__} must define digest()")

    def unavailable(self) -> str | None:
        """Why the data cannot be read here and how to get them, or None when they can."""
        return None

    def fetch(self) -> None:
        """Bring the data onto this machine; a dataset of local files only checks they are there."""
        why = self.unavailable()
        if why:
            raise DataNotFoundError(why)

    def check_split(self, name: str) -> None:
        """Raise a ValueError naming the valid splits when ``name`` is not one of them."""
        if name not in self.splits:
            raise ValueError(f"unknown split {name!r} of {self.name}; valid: {', '.join(self.splits)}")

    def stats(self) -> list[dict]:
        """Examples per split and, with classes, per class: what ``compress data stats`` prints."""
        return split_stats(self)

    def key(self) -> dict:
        """What a recipe's cache key holds for this dataset: its type and digest."""
        return {"type": type(self).__name__, "digest": self.digest()}


def split_stats(ds: Dataset) -> list[dict]:
    """One row a split and one for all: ``{"split", "count", ["characters",] <class>: count...}``."""
    classes = ds.classes
    rows, total = [], None
    for name in ds.splits:
        examples, targets = ds.split(name)
        row: dict = {"split": name, "count": len(examples)}
        if len(examples) and isinstance(examples[0], str):  # texts: how much text, too
            row["characters"] = sum(map(len, examples))
        if classes is not None and targets is not None:
            counts = np.bincount(np.asarray(targets, np.int64), minlength=len(classes))
            row.update({c: int(n) for c, n in zip(classes, counts)})
        rows.append(row)
        total = {k: (total or {}).get(k, 0) + v for k, v in row.items() if k != "split"}
    rows.append({"split": "all", **(total or {})})
    return rows


def format_stats(ds: Dataset) -> str:
    """:meth:`Dataset.stats` as an aligned text table."""
    rows = ds.stats()
    cols = list(rows[0])
    cells = [cols] + [[f"{r.get(c, 0):,}" if isinstance(r.get(c, 0), int) else str(r[c]) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in cells]
    return "\n".join([f"{ds.name} (digest {ds.digest()[:16]}):", *lines])
