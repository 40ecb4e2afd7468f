"""A team's own prose: one plain text file, split into paragraphs, for a causal language model.

``TextFile("~/team-data/notes.txt")`` reads the file as UTF-8 (a byte-order mark is
dropped, ``\\r\\n`` read as ``\\n``) and cuts it into **paragraphs**: runs of lines
separated by one or more blank lines (lines of spaces and tabs only), each stripped
of the whitespace around it; a paragraph keeps its own line breaks. The examples of
a split are its paragraphs in file order; there are no targets (``None``: a language
model's targets are its examples, shifted by a token).

Splits, by each paragraph's own bytes (:func:`compress.data.dataset.bucket_split`
with a salt of this module's own: 20 % ``test``, 4.5 % ``calib``, the rest ``train``).
Why paragraphs drawn by hash, rather than the file's last tenth as ``test``:

- a team's file grows and gets edited: appending or inserting text, or reordering
  sections, never moves a paragraph between splits, so the cached model and the
  bounds measured on ``test`` stay comparable run after run (a contiguous cut moves
  its boundary with every append, and retrains every model);
- a repeated paragraph (a heading, a boiler-plate line) always lands in one split,
  so ``test`` never scores text that training saw word for word;
- the test split samples the whole file (every chapter, every author of a shared
  document), not only its ending, whose style or topic may be its own.

The price: ``test`` paragraphs sit between ``train`` ones, so a model has read their
neighbours; the score is of text like the training text, not of a later text (the
built-in :data:`compress.data.austen.AUSTEN` holds out a whole novel for that).
A paragraph is a unit of the split, never cut: one longer than a model's context
spreads over several of its blocks.

Every split must hold a paragraph (a :class:`TextFileError` says which is empty and
how many paragraphs the file has); the causal LM also needs a block of tokens of each.

The digest hashes the split rule and every (split, paragraph), in file order, never
the path: the same file moved keeps its cache keys; a changed paragraph changes them.
Loading is lazy and memoized by the file's path, size and modification time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache

from compress.data.dataset import SPLITS, Dataset, DataNotFoundError, bucket_split, resolve

__all__ = ["TextFile", "TextFileError", "paragraphs"]

SALT = b"compress-bench/text-file/v1\0"
BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+")  # one blank line or more between two paragraphs


class TextFileError(ValueError):
    """A text file that cannot serve as a dataset: not UTF-8, no paragraphs, or an empty split."""


def paragraphs(text: str) -> list[str]:
    """The paragraphs of ``text``: the pieces between blank lines, stripped, the empty ones dropped."""
    return [p for p in (piece.strip() for piece in BLANK_LINES.split(text.replace("\r\n", "\n"))) if p]


@dataclass(frozen=True)
class TextFile(Dataset):
    """The paragraphs of one UTF-8 text file, as ``train``, ``calib`` and ``test`` splits.

    Attributes:
        path: the file (``~`` and ``$VARS`` expanded when read).
        test, calib: the fractions of paragraphs the hash draws for ``test`` and ``calib``.
    """

    path: str
    test: float = 0.2
    calib: float = 0.045

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"text file {self.path}"

    # -- the concept -------------------------------------------------------------
    def unavailable(self) -> str | None:
        p = resolve(self.path)
        if not p.exists():
            return f"the text file {p} does not exist (TextFile(path={self.path!r})): put the file there"
        if not p.is_file():
            return f"{p} is not a file (TextFile(path={self.path!r})): a TextFile reads one plain text file"
        return None

    def split(self, name: str) -> tuple[list[str], None]:
        self.check_split(name)
        return list(self._loaded()["splits"][name]), None

    def digest(self) -> str:
        return self._loaded()["digest"]

    # -- reading -------------------------------------------------------------------
    def _loaded(self) -> dict:
        why = self.unavailable()
        if why:
            raise DataNotFoundError(why)
        p = resolve(self.path)
        st = os.stat(p)
        return _load(self, str(p), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=8)
def _load(ds: TextFile, path: str, size: int, mtime_ns: int) -> dict:
    """The split paragraphs and digest of ``ds`` (read again when the file changes)."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise TextFileError(f"{path}: not UTF-8 (byte {exc.start}: {exc.reason}); save it as UTF-8") from None
    paras = paragraphs(text)
    if not paras:
        raise TextFileError(f"{path}: no text (a TextFile needs paragraphs, separated by blank lines)")
    members: dict[str, list[str]] = {s: [] for s in SPLITS}
    for p in paras:
        members[bucket_split(p.encode("utf-8"), SALT, ds.test, ds.calib)].append(p)
    h = hashlib.sha256(b"text-file/v1\0" + json.dumps(["paragraphs", ds.test, ds.calib]).encode() + b"\0")
    for s, items in members.items():
        if not items:
            raise TextFileError(f"{path}: the {s} split is empty ({len(paras)} paragraphs, separated by blank "
                                f"lines); every split needs text: give a longer file, or more paragraphs")  # fmt: skip
        for p in items:
            h.update(f"{s}\0".encode() + p.encode("utf-8") + b"\0")
    return {"splits": {s: tuple(items) for s, items in members.items()}, "digest": h.hexdigest()}
