"""Movie-review sentiment: Rotten Tomatoes snippets with human sentiment scores, as binary labels.

The data: ``movieReviewSnippets_GroundTruth.txt`` of Hutto & Gilbert's VADER
study (ICWSM 2014): 10,605 sentence-level snippets of rottentomatoes.com
reviews (derived from Pang & Lee's 2004 movie reviews), each with the mean
sentiment rating, from -4 to +4, of at least 20 human raters. It ships, MIT
licensed, in the source distribution of PyPI ``vadersentiment==3.3.2``:
``vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz`` inside
``vaderSentiment-3.3.2.tar.gz``, and ``hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt``
inside that (UTF-8, CRLF lines ``ID<TAB>MEAN-RATING<TAB>TEXT``, IDs 1 to 10,605).
Nothing from the package is imported or installed; only the sdist's bytes are read.

Where the sdist is looked for (offline by default: nothing is downloaded
unless asked for):

1. ``$COMPRESS_BENCH_DATA`` (the CLI's ``--data-dir`` sets it), either the
   directory holding ``vaderSentiment-3.3.2.tar.gz`` or its parent with a
   ``vader-sentiment/`` folder. An explicit path is the only place looked at:
   when it does not exist or holds neither, :class:`DataNotFoundError` names it
   and what was expected in it; there is no fall-back to another copy.
   Otherwise:
2. ``<cache>/data/vader-sentiment/`` (``<cache>``: :func:`compress.storage.cache.cache_root`).
   It gets there by the set-up step, :func:`fetch_sdist` (or
   ``load_sentiment(fetch=True)``, or ``python -m compress.data.sentiment fetch``),
   which runs the ordinary client,
   ``python -m pip download --no-deps --no-binary :all: vadersentiment==3.3.2 -d TMP``
   (pip's own configuration applies: ``PIP_INDEX_URL``, ``PIP_FIND_LINKS``,
   ``PIP_NO_INDEX`` for a local wheelhouse...), verifies the SHA-256 and writes
   it into the cache atomically, under the entry's lock. ``COMPRESS_BENCH_OFFLINE=1``
   forbids the download.

The sdist is checked against :data:`SDIST_SHA256` and the snippets file against
:data:`SNIPPETS_SHA256`; a mismatch raises :class:`DataCorruptError`.

Labels: ``1`` (positive) when the mean rating is > 0, ``0`` (negative) when it
is < 0; the 37 snippets rated exactly 0 are dropped, leaving 10,568.

Splits (fixed; the test split is never used for training or calibration): each
snippet goes by a hash of its text alone, ``b = int(sha256(SPLIT_SALT + text)[:8 bytes]) % 10000``:
``test`` when ``b < 2000`` (20 %), ``calib`` when ``2000 <= b < 2450`` (4.5 %),
``train`` otherwise. It depends neither on the file order nor on a random
generator, and identical texts (the file holds 2 duplicated snippets) always
land in the same split. Within a split, snippets keep the file order.

Measured on the release (``python -m compress.data.sentiment stats``):

=========  ======  ========  ========  ==========
split      count   positive  negative  % positive
=========  ======  ========  ========  ==========
train       7,958     3,951     4,007       49.6
calib         508       261       247       51.4
test        2,102     1,030     1,072       49.0
all        10,568     5,242     5,326       49.6
=========  ======  ========  ========  ==========

The two duplicated snippets are both in ``train`` (two copies each).

:attr:`SentimentData.digest` is the SHA-256 of the parsed splits (texts, labels,
scores, IDs), for result-store keys: it changes when the data or the split rule does
(on the release: ``0931ec81bf5fc8489b45efea0ad00171a70651a7d0cced03499d3dd3e273dcb3``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from compress.assets import ENV_DATA, DataCorruptError, DataNotFoundError, RegistryFile, pip_sdist
from compress.assets import main as assets_main
from compress.data.dataset import Dataset, bucket_split

PACKAGE = "vadersentiment"
VERSION = "3.3.2"
REQUIREMENT = f"{PACKAGE}=={VERSION}"
SDIST = "vaderSentiment-3.3.2.tar.gz"
SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
INNER_TAR = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
MEMBER = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
SNIPPETS_SHA256 = "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350"
N_SNIPPETS = 10_605
SUBDIR = "vader-sentiment"

SPLIT_SALT = b"compress-bench/rt-snippets/v1\0"
SPLIT_BUCKETS = 10_000
TEST_BUCKETS = 2_000  # buckets [0, 2000): test
CALIB_BUCKETS = 450  # buckets [2000, 2450): calib; the rest: train
SPLITS = ("train", "calib", "test")
CLASSES = ("negative", "positive")

CLIENT = pip_sdist(REQUIREMENT)
PIP_COMMAND = CLIENT.command

HOW_TO_GET = f"""The movie-review sentiment data ({SDIST}, the sdist of PyPI {REQUIREMENT}) was not found. Any one of these fixes it:
  - on a machine that reaches PyPI (or with PIP_FIND_LINKS/PIP_INDEX_URL naming a copy):
    python -m compress.data.sentiment fetch   (runs pip download; the file lands in <cache>/data/{SUBDIR})
  - fetch it yourself ({PIP_COMMAND}; sha256 {SDIST_SHA256}), put it in a directory and
    set {ENV_DATA}=/that/directory (or pass --data-dir to python -m compress)"""


@dataclass(frozen=True)
class Split:
    """One split: texts, labels (int64, 1 = positive), mean human ratings, file IDs."""

    texts: tuple[str, ...]
    labels: np.ndarray
    scores: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class SentimentData:
    """The three splits, the digest of their content, and the file they came from."""

    train: Split
    calib: Split
    test: Split
    digest: str
    source: str

    def split(self, name: str) -> tuple[list[str], np.ndarray]:
        """``(texts, labels)`` of ``name`` (``train``, ``calib`` or ``test``)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; valid: 'train', 'calib', 'test'")
        s = getattr(self, name)
        return list(s.texts), s.labels


FILE = RegistryFile(SDIST, SDIST_SHA256, f"data/{SUBDIR}", CLIENT, HOW_TO_GET, what=f"the sdist of PyPI {REQUIREMENT}")


def cache_dir() -> Path:
    """``<cache>/data/vader-sentiment``: where :func:`fetch_sdist` puts the sdist."""
    return FILE.directory()


def resolve_data_dir(path: str | os.PathLike[str]) -> Path:
    """The directory holding the sdist under an explicitly given ``path``: it or ``path/vader-sentiment``
    (:class:`DataNotFoundError` naming ``path`` when neither holds it)."""
    return FILE.in_data_dir(path)


def verify_sdist(path: Path) -> bytes:
    """The sdist's bytes, after checking their SHA-256 (:class:`DataCorruptError` if it differs)."""
    return FILE.verify(path)


def check_sdist(blob: bytes, origin: str) -> bytes:
    """``blob`` if its SHA-256 is the published sdist's; :class:`DataCorruptError` naming ``origin`` if not."""
    return FILE.check(blob, origin)


def fetch_sdist(*, offline: bool | None = None) -> Path:
    """The verified sdist in :func:`cache_dir`, downloaded with pip when absent: the set-up step
    (:meth:`compress.assets.RegistryFile.fetch`; ``offline`` default: ``$COMPRESS_BENCH_OFFLINE``).

    Raises:
        DataNotFoundError: the sdist is absent and cannot be downloaded (offline,
            pip failed); the message says how to get it and carries pip's error.
        DataCorruptError: pip delivered a file whose SHA-256 differs (nothing is kept).
    """
    return FILE.fetch(offline=offline)


def find_sdist(*, fetch: bool = False) -> Path:
    """The sdist's path: in ``$COMPRESS_BENCH_DATA`` when set, else in the cache.

    With ``fetch``, a sdist missing from the cache is downloaded (:func:`fetch_sdist`).
    """
    return FILE.find(fetch=fetch)


def read_snippets_file(sdist_bytes: bytes, *, origin: str = SDIST) -> bytes:
    """The bytes of ``movieReviewSnippets_GroundTruth.txt``, out of the sdist, checked against :data:`SNIPPETS_SHA256`."""
    try:
        with tarfile.open(fileobj=io.BytesIO(sdist_bytes), mode="r:gz") as outer:
            f = outer.extractfile(INNER_TAR)
            if f is None:
                raise KeyError(INNER_TAR)
            with tarfile.open(fileobj=io.BytesIO(f.read()), mode="r:gz") as inner:
                g = inner.extractfile(MEMBER)
                if g is None:
                    raise KeyError(MEMBER)
                raw = g.read()
    except (tarfile.TarError, KeyError, OSError, EOFError) as exc:
        raise DataCorruptError(f"{origin}: cannot read {INNER_TAR}!{MEMBER} ({exc!r})") from exc
    got = hashlib.sha256(raw).hexdigest()
    if got != SNIPPETS_SHA256:
        raise DataCorruptError(
            f"{origin}: {MEMBER} is not the published one (sha256 {got[:12]}..., expected {SNIPPETS_SHA256[:12]}...)"
        )
    return raw


def parse_snippets(raw: bytes) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(ids, scores, texts)`` of every line ``ID<TAB>MEAN-RATING<TAB>TEXT`` (CRLF or LF ends)."""
    ids, scores, texts = [], [], []
    for n, line in enumerate(raw.decode("utf-8").split("\n"), 1):
        line = line.rstrip("\r")
        if not line:
            continue
        parts = line.split("\t", 2)
        if len(parts) != 3 or not parts[2].strip():
            raise DataCorruptError(f"{MEMBER} line {n}: expected ID<TAB>RATING<TAB>TEXT, got {line[:60]!r}")
        try:
            ids.append(int(parts[0]))
            scores.append(float(parts[1]))
        except ValueError as exc:
            raise DataCorruptError(f"{MEMBER} line {n}: {exc}") from None
        texts.append(parts[2])
    return np.asarray(ids, np.int64), np.asarray(scores, np.float64), texts


def split_of(text: str) -> str:
    """``train``, ``calib`` or ``test``: the fixed split of a snippet, from its text alone."""
    return bucket_split(text.encode("utf-8"), SPLIT_SALT, TEST_BUCKETS / SPLIT_BUCKETS, CALIB_BUCKETS / SPLIT_BUCKETS)


def build_splits(ids: np.ndarray, scores: np.ndarray, texts: list[str]) -> dict[str, Split]:
    """Drop the 0-rated snippets, label by sign, and split by :func:`split_of`."""
    members: dict[str, list[int]] = {name: [] for name in SPLITS}
    for i, (score, text) in enumerate(zip(scores, texts)):
        if score != 0:
            members[split_of(text)].append(i)
    out = {}
    for name, idx in members.items():
        ix = np.asarray(idx, np.int64)
        out[name] = Split(
            texts=tuple(texts[i] for i in idx),
            labels=(scores[ix] > 0).astype(np.int64),
            scores=scores[ix],
            ids=ids[ix],
        )
    return out


def splits_digest(splits: dict[str, Split]) -> str:
    """SHA-256 (hex) of the splits' content: names, IDs, ratings, labels, texts, in order."""
    doc = {
        name: [[int(i), repr(float(s)), int(y), t] for i, s, y, t in zip(sp.ids, sp.scores, sp.labels, sp.texts)]
        for name, sp in splits.items()
    }
    blob = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


@lru_cache(maxsize=2)
def _load(path: Path, size: int, mtime_ns: int) -> SentimentData:
    raw = read_snippets_file(verify_sdist(path), origin=str(path))
    ids, scores, texts = parse_snippets(raw)
    if len(ids) != N_SNIPPETS or not np.array_equal(ids, np.arange(1, N_SNIPPETS + 1)):
        raise DataCorruptError(f"{path}: {MEMBER} has {len(ids)} snippets, expected IDs 1..{N_SNIPPETS}")
    splits = build_splits(ids, scores, texts)
    return SentimentData(**splits, digest=splits_digest(splits), source=str(path))


def load_sentiment(*, fetch: bool = False) -> SentimentData:
    """Load, verify and split the movie-review snippets.

    Args:
        fetch: download the sdist with pip when it is not cached (the set-up
            step, :func:`fetch_sdist`); by default nothing is downloaded.

    Raises:
        DataNotFoundError: the sdist is neither cached nor (with ``fetch``)
            downloadable; the message says how to get it. Or ``$COMPRESS_BENCH_DATA``
            (``--data-dir``) names a path that does not hold it: the message names
            it, and no other copy is used.
        DataCorruptError: the sdist or the snippets file is not the published one.

    Example:
        >>> ds = load_sentiment()                # doctest: +SKIP
        >>> texts, labels = ds.split("test")
        >>> len(texts), int(labels.sum())
        (2102, 1030)
    """
    path = find_sdist(fetch=fetch)
    st = path.stat()
    return _load(path, st.st_size, st.st_mtime_ns)


def stats(ds) -> list[tuple[str, int, int, int]]:
    """``(split, count, positive, negative)`` per split (``train``, ``calib``, ``test``), then ``all``:
    of this data set or of another with the same splits and binary labels (SST-2)."""
    rows = [(n, len(s), int(s.labels.sum()), int(len(s) - s.labels.sum())) for n, s in
            ((n, getattr(ds, n)) for n in SPLITS)]  # fmt: skip
    rows.append(("all", *(sum(r[k] for r in rows) for k in (1, 2, 3))))
    return rows


def _print_all() -> None:
    ds = load_sentiment()
    print(f"source {ds.source}\ndigest {ds.digest}")
    print_stats(ds)


def main(argv: list[str] | None = None) -> int:
    """``python -m compress.data.sentiment fetch|stats``: download and verify the sdist; counts per split."""
    return assets_main(argv, FILE, _print_all, prog="python -m compress.data.sentiment", doc=__doc__)


def print_stats(ds) -> None:
    """:func:`stats` of a labelled text data set (this one, SST-2), a line per split."""
    for name, count, pos, neg in stats(ds):
        print(f"{name:6s} {count:6d} positive {pos:5d} negative {neg:5d} ({100 * pos / count:.1f} % positive)")


if __name__ == "__main__":
    sys.exit(main())


class SentimentDataset(Dataset):
    """The movie-review snippets as a :class:`~compress.data.dataset.Dataset`: texts, 2 classes."""

    name = "movie-review sentiment"

    def split(self, name: str) -> tuple[list[str], np.ndarray]:
        self.check_split(name)
        return load_sentiment().split(name)

    @property
    def classes(self) -> tuple[str, ...]:
        return CLASSES

    def digest(self) -> str:
        return load_sentiment().digest

    def unavailable(self) -> str | None:
        try:
            find_sdist()
        except DataNotFoundError as exc:
            return str(exc)
        return None

    def fetch(self) -> None:
        load_sentiment(fetch=True)


SENTIMENT = SentimentDataset()
