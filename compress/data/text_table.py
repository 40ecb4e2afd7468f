"""A team's labelled texts: a CSV or JSON-lines file of text and label, or a saved Hugging Face dataset.

``TextTable("reviews.csv")`` reads the columns ``text`` and ``label`` (other names:
``text=``, ``label=``). A label is any string (or integer); the classes are the
distinct labels, sorted, and a generic text classifier builds one output for
each. The splits come from a column naming each row's split (``split=``, values
``train``, ``calib``, ``test``), or else from each text's own bytes
(:func:`compress.data.dataset.bucket_split`: 20 % test, 4.5 % calib, the rest
train), so reordering or appending rows never moves a text between splits.

Formats, by the path:

- ``*.csv`` (``csv`` module, a header row; UTF-8);
- ``*.jsonl`` / ``*.json`` (one JSON object a line);
- a directory written by ``datasets.Dataset.save_to_disk`` (needs the ``datasets``
  package; a ``DatasetDict`` with ``train``/``validation``/``test`` gives its splits,
  ``validation`` as ``calib``).

The digest hashes the classes, the split rule and every (split, label, text), in
order, never the path: the same file elsewhere keeps its cache keys.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from compress.data.dataset import SPLITS, Dataset, DataNotFoundError, bucket_split, resolve

__all__ = ["TextTable", "TextTableError"]

SALT = b"compress-bench/text-table/v1\0"
HF_SPLITS = {"train": "train", "validation": "calib", "calib": "calib", "test": "test"}


class TextTableError(ValueError):
    """A table that cannot be read as text and label: names the file, the row and what is wrong."""


@dataclass(frozen=True)
class TextTable(Dataset):
    """Texts and labels from one file (or a saved ``datasets`` dataset).

    Attributes:
        path: the file or directory (``~`` and ``$VARS`` expanded when read).
        text, label: the column names of the text and the label.
        split: a column naming each row's split (``train``, ``calib``, ``test``), or None:
            split by the text's own bytes.
        test, calib: the fractions drawn by the text hash when ``split`` is None.
    """

    path: str
    text: str = "text"
    label: str = "label"
    split_column: str | None = None
    test: float = 0.2
    calib: float = 0.045

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"text table {self.path}"

    # -- the concept -------------------------------------------------------------
    def unavailable(self) -> str | None:
        p = resolve(self.path)
        if not p.exists():
            return f"the text table {p} does not exist (TextTable(path={self.path!r})): put the file there"
        return None

    def split(self, name: str) -> tuple[list[str], np.ndarray]:
        self.check_split(name)
        texts, targets = self._loaded()["splits"][name]
        return list(texts), targets

    @property
    def classes(self) -> tuple[str, ...]:
        return self._loaded()["classes"]

    def digest(self) -> str:
        return self._loaded()["digest"]

    # -- reading -------------------------------------------------------------------
    def _loaded(self) -> dict:
        p = resolve(self.path)
        why = self.unavailable()
        if why:
            raise DataNotFoundError(why)
        st = os.stat(p) if p.is_file() else os.stat(next(iter(sorted(p.glob("*"))), p))
        return _load(self, str(p), st.st_size, st.st_mtime_ns)

    def rows(self, p: Path) -> list[tuple[str, str, str | None]]:
        """``(text, label, split or None)`` of every row of the file at ``p``."""
        if p.is_dir():
            return self._hf_rows(p)
        suffix = p.suffix.lower()
        if suffix == ".csv":
            with open(p, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                return [self._row(r, p, i + 2) for i, r in enumerate(reader)]
        if suffix in (".jsonl", ".json"):
            out = []
            with open(p, encoding="utf-8") as f:
                for i, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            obj = json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise TextTableError(f"{p} line {i}: not JSON ({exc.msg})") from None
                        out.append(self._row(obj, p, i))
            return out
        raise TextTableError(f"{p}: a text table is a .csv, .jsonl or .json file, or a saved `datasets` directory")

    def _row(self, r: dict, p: Path, line: int) -> tuple[str, str, str | None]:
        missing = [c for c in (self.text, self.label, self.split_column) if c is not None and c not in r]
        if missing:
            raise TextTableError(f"{p} line {line}: no column {', '.join(map(repr, missing))} "
                                 f"(it has {', '.join(map(repr, r))}); name yours with TextTable(text=..., label=...)")  # fmt: skip
        text, label = r[self.text], r[self.label]
        if not isinstance(text, str) or not text.strip():
            raise TextTableError(f"{p} line {line}: the text is empty or not a string")
        split = None if self.split_column is None else str(r[self.split_column])
        if split is not None and split not in SPLITS:
            raise TextTableError(f"{p} line {line}: split {split!r} is not one of {', '.join(SPLITS)}")
        return text, str(label), split

    def _hf_rows(self, p: Path) -> list[tuple[str, str, str | None]]:
        try:
            import datasets
        except ImportError:
            raise TextTableError(f"{p} is a directory: reading a saved Hugging Face dataset needs the `datasets` "
                                 "package (pip install datasets), or export it to CSV or JSON lines") from None  # fmt: skip
        loaded = datasets.load_from_disk(str(p))
        parts = loaded.items() if isinstance(loaded, datasets.DatasetDict) else [(None, loaded)]
        out = []
        for hf_split, part in parts:
            if hf_split is not None and hf_split not in HF_SPLITS:
                raise TextTableError(f"{p}: split {hf_split!r}; valid: {', '.join(HF_SPLITS)}")
            names = part.features[self.label].names if hasattr(part.features[self.label], "names") else None
            for i, r in enumerate(part):
                row = dict(r)
                if names is not None:
                    row[self.label] = names[row[self.label]]
                text, label, split = self._row(row, p, i + 1)
                out.append((text, label, HF_SPLITS[hf_split] if hf_split else split))
        return out


def _sort_key(label: str):
    return (0, int(label), "") if label.lstrip("-").isdigit() else (1, 0, label)


@lru_cache(maxsize=8)
def _load(table: TextTable, path: str, size: int, mtime_ns: int) -> dict:
    """The parsed splits, classes and digest of ``table`` (re-read when the file changes)."""
    rows = table.rows(Path(path))
    if not rows:
        raise TextTableError(f"{path}: no rows")
    classes = tuple(sorted({label for _, label, _ in rows}, key=_sort_key))
    if len(classes) < 2:
        raise TextTableError(f"{path}: one label ({classes[0]!r}); a classifier needs two or more")
    index = {c: i for i, c in enumerate(classes)}
    members: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    for text, label, split in rows:
        s = split or bucket_split(text.encode("utf-8"), SALT, table.test, table.calib)
        members[s].append((text, index[label]))
    h = hashlib.sha256(b"text-table/v1\0" + json.dumps(classes).encode() + b"\0")
    h.update(json.dumps([table.split_column is not None, table.test, table.calib]).encode())
    splits = {}
    for s, items in members.items():
        if not items:
            raise TextTableError(f"{path}: the {s} split is empty ({len(rows)} rows); every split needs examples")
        texts = tuple(t for t, _ in items)
        targets = np.asarray([y for _, y in items], np.int64)
        for t, y in items:
            h.update(f"{s}\0{y}\0".encode() + t.encode("utf-8") + b"\0")
        splits[s] = (texts, targets)
    return {"splits": splits, "classes": classes, "digest": h.hexdigest()}
