"""GLUE SST-2: binary sentiment of single sentences (Stanford Sentiment Treebank), in GLUE's TSV format.

The data: the SST-2 task of the GLUE benchmark (Wang et al., 2018; Socher et
al., 2013), as GLUE distributes it in :data:`URL`, which unpacks to ``SST-2/``
holding ``train.tsv`` (67,349 rows: sentences and phrases of movie reviews),
``dev.tsv`` (872 sentences) and ``test.tsv`` (no labels: not used). Both files
used are UTF-8, one header line ``sentence<TAB>label``, then one
``SENTENCE<TAB>LABEL`` row per line, labels ``0`` (negative) or ``1`` (positive).
Sentences are lower-cased and tokenized as released (some end with a space);
they are kept byte for byte.

Where the files are looked for (offline by default: nothing is downloaded
unless asked for):

1. ``$COMPRESS_BENCH_SST2``: the ``SST-2/`` directory (holding ``train.tsv``
   and ``dev.tsv``) or the directory it was unzipped into (holding ``SST-2/``).
   An explicit path is the only place looked at: when it does not exist or
   lacks the files, :class:`~compress.data.fashion_mnist.DataNotFoundError`
   names it and what was expected in it; there is no fall-back to another copy.
   Otherwise:
2. ``<cache>/data/sst2/SST-2/`` (``<cache>``: :func:`compress.storage.cache.cache_root`).
   It gets there by the set-up step, :func:`fetch_sst2` (or
   ``python -m compress.data.sst2 fetch``), which downloads :data:`URL` with
   :mod:`urllib`, checks the row counts of the official release
   (:data:`TRAIN_ROWS`, :data:`DEV_ROWS`) and writes both files into a temporary
   directory renamed into place (a reader sees both files or neither), under the
   entry's lock. ``COMPRESS_BENCH_OFFLINE=1`` forbids the download. GLUE
   publishes no digest of the archive, so the row counts and the format are what
   is checked.

Splits (fixed; the ``test`` split is never used for training or calibration):

=========  =====================================  ===========
split      rows                                   on release
=========  =====================================  ===========
train      ``train.tsv`` less its last 1,000 rows      66,349
calib      the last 1,000 rows of ``train.tsv``         1,000
test       ``dev.tsv`` (GLUE's test has no labels)        872
=========  =====================================  ===========

(:data:`CALIB_SIZE` rows go to ``calib``; ``train.tsv`` must have more.) Within
a split, rows keep the file order.

:attr:`SST2Data.digest` is the SHA-256 of the parsed splits (names, labels,
texts, in order), for result-store keys: it changes when the data or the split
rule does.

Example:
    >>> ds = load_sst2()                       # doctest: +SKIP
    >>> texts, labels = ds.split("test")
    >>> len(texts)
    872
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import sys
import urllib.request
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from compress.storage.cache import atomic_write_dir, cache_root, locked
from compress.data.fashion_mnist import ENV_OFFLINE, DataCorruptError, DataNotFoundError

log = logging.getLogger(__name__)

ENV_SST2 = "COMPRESS_BENCH_SST2"
URL = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
FOLDER = "SST-2"  # what the zip unpacks to
FILES = ("train.tsv", "dev.tsv")
HEADER = "sentence\tlabel"
TRAIN_ROWS = 67_349  # rows of the official train.tsv (without its header)
DEV_ROWS = 872
#: Rows at the end of ``train.tsv`` held out as the ``calib`` split.
CALIB_SIZE = 1_000
SPLITS = ("train", "calib", "test")
CLASSES = ("negative", "positive")
DOWNLOAD_TIMEOUT_S = 120

HOW_TO_GET = f"""The GLUE SST-2 data ({FOLDER}/train.tsv and {FOLDER}/dev.tsv) was not found. Any one of these fixes it:
  - on a machine with network access: python -m compress.data.sst2 fetch
    (downloads {URL}; the files land in <cache>/data/sst2/{FOLDER})
  - download {URL} yourself, unzip it, and set {ENV_SST2}=/path/to/{FOLDER}"""


@dataclass(frozen=True)
class Split:
    """One split: texts and labels (int64, 1 = positive)."""

    texts: tuple[str, ...]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class SST2Data:
    """The three splits, the digest of their content, and the directory they came from.

    ``official`` is True when the files have the official release's row counts.
    """

    train: Split
    calib: Split
    test: Split
    digest: str
    source: str
    official: bool

    def split(self, name: str) -> tuple[list[str], np.ndarray]:
        """``(texts, labels)`` of ``name`` (``train``, ``calib`` or ``test``)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; valid: 'train', 'calib', 'test'")
        s = getattr(self, name)
        return list(s.texts), s.labels


def cache_dir() -> Path:
    """``<cache>/data/sst2/SST-2``: where :func:`fetch_sst2` puts the files."""
    return cache_root() / "data" / "sst2" / FOLDER


def _has_files(d: Path) -> bool:
    return all((d / name).is_file() for name in FILES)


def resolve_dir(path: str | os.PathLike[str]) -> Path:
    """The directory holding both files under an explicitly given ``path``: it or ``path/SST-2``.

    Raises:
        DataNotFoundError: ``path`` does not exist, is not a directory, or holds
            the files neither itself nor in ``SST-2/``; the message names ``path``.
    """
    given = Path(path).expanduser()
    origin = f"(given by ${ENV_SST2})"
    expected = f"expected {' and '.join(FILES)} (GLUE SST-2, {URL} unzipped) in it or in a {FOLDER}/ folder inside it"
    advice = f"fix the path, or unset {ENV_SST2} to use the cached copy"
    if not given.exists():
        raise DataNotFoundError(f"SST-2 directory {given} {origin} does not exist; {expected}; {advice}")
    if not given.is_dir():
        raise DataNotFoundError(f"SST-2 directory {given} {origin} is not a directory; {expected}; {advice}")
    for d in (given, given / FOLDER):
        if _has_files(d):
            return d
    missing = [name for name in FILES if not (given / name).is_file()]
    raise DataNotFoundError(
        f"SST-2 directory {given} {origin} lacks {', '.join(missing)} (nor has a {FOLDER}/ folder holding both): "
        f"{expected}; {advice}"
    )


def find_sst2() -> Path:
    """The directory holding ``train.tsv`` and ``dev.tsv``: ``$COMPRESS_BENCH_SST2``'s when set, else the cache's.

    Raises:
        DataNotFoundError: not there (nothing is downloaded; the message says how to get it).
    """
    if os.environ.get(ENV_SST2):
        return resolve_dir(os.environ[ENV_SST2])
    d = cache_dir()
    if _has_files(d):
        return d
    raise DataNotFoundError(f"{HOW_TO_GET}\n(looked in {d})")


def parse_tsv(raw: bytes, origin: str) -> tuple[list[str], np.ndarray]:
    """``(texts, labels)`` of a GLUE SST-2 TSV file's bytes; ``origin`` names it in errors.

    Raises:
        DataCorruptError: not UTF-8, a header other than ``sentence<TAB>label``, or a
            row that is not ``SENTENCE<TAB>0|1``; the message names ``origin`` and the line.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataCorruptError(f"{origin}: not UTF-8 ({exc})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    if not lines or lines[0].rstrip("\r") != HEADER:
        got = lines[0].rstrip("\r")[:60] if lines else ""
        raise DataCorruptError(f"{origin} line 1: expected the header {HEADER!r}, got {got!r}")
    texts, labels = [], []
    for n, line in enumerate(lines[1:], 2):
        line = line.rstrip("\r")
        parts = line.split("\t")
        if len(parts) != 2 or parts[1] not in ("0", "1") or not parts[0].strip():
            raise DataCorruptError(
                f"{origin} line {n}: expected SENTENCE<TAB>LABEL with LABEL 0 or 1, got {line[:80]!r}"
            )
        texts.append(parts[0])
        labels.append(int(parts[1]))
    return texts, np.asarray(labels, np.int64)


def read_tsv(path: Path) -> tuple[list[str], np.ndarray]:
    """:func:`parse_tsv` of the file at ``path``."""
    return parse_tsv(Path(path).read_bytes(), str(path))


def build_splits(train: tuple[list[str], np.ndarray], dev: tuple[list[str], np.ndarray],
                 calib_size: int, origin: str) -> dict[str, Split]:  # fmt: skip
    """``train``: ``train.tsv`` less its last ``calib_size`` rows; ``calib``: those rows; ``test``: ``dev.tsv``."""
    texts, labels = train
    if len(texts) <= calib_size:
        raise DataCorruptError(
            f"{origin}/train.tsv has {len(texts)} rows: more than {calib_size} are needed "
            f"(the last {calib_size} are the calib split)"
        )
    cut = len(texts) - calib_size
    return {
        "train": Split(tuple(texts[:cut]), labels[:cut]),
        "calib": Split(tuple(texts[cut:]), labels[cut:]),
        "test": Split(tuple(dev[0]), dev[1]),
    }


def splits_digest(splits: dict[str, Split]) -> str:
    """SHA-256 (hex) of the splits' content: names, labels, texts, in order."""
    doc = {name: [[int(y), t] for y, t in zip(sp.labels, sp.texts)] for name, sp in splits.items()}
    blob = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def _stamp(directory: Path) -> tuple:
    return tuple((name, (directory / name).stat().st_size, (directory / name).stat().st_mtime_ns) for name in FILES)


@lru_cache(maxsize=4)
def _load(directory: Path, stamp: tuple, calib_size: int) -> SST2Data:
    train, dev = read_tsv(directory / "train.tsv"), read_tsv(directory / "dev.tsv")
    splits = build_splits(train, dev, calib_size, str(directory))
    official = len(train[0]) == TRAIN_ROWS and len(dev[0]) == DEV_ROWS
    return SST2Data(**splits, digest=splits_digest(splits), source=str(directory), official=official)


def load_sst2(directory: str | os.PathLike[str] | None = None) -> SST2Data:
    """Parse and split GLUE SST-2 (memoized while the files are unchanged).

    Args:
        directory: the directory holding ``train.tsv`` and ``dev.tsv`` (or its parent
            with ``SST-2/``); default: :func:`find_sst2`'s. Nothing is downloaded.

    Raises:
        DataNotFoundError: the files are not there; the message names the path
            looked at (``$COMPRESS_BENCH_SST2`` when set) and how to get them.
        DataCorruptError: a malformed file (the message names it and the line), or
            a ``train.tsv`` with no more rows than :data:`CALIB_SIZE`.
    """
    d = resolve_dir(directory) if directory is not None else find_sst2()
    return _load(d.resolve(), _stamp(d), CALIB_SIZE)


def _extract(blob: bytes, origin: str) -> dict[str, bytes]:
    """``{name: bytes}`` of :data:`FILES` out of the zip, each checked (format and official row count)."""
    out = {}
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            for name in FILES:
                out[name] = z.read(f"{FOLDER}/{name}")
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise DataCorruptError(f"{origin}: cannot read {FOLDER}/{' and '.join(FILES)} ({exc!r})") from None
    for name, rows in zip(FILES, (TRAIN_ROWS, DEV_ROWS), strict=True):
        n = len(parse_tsv(out[name], f"{origin}!{FOLDER}/{name}")[0])
        if n != rows:
            raise DataCorruptError(f"{origin}!{FOLDER}/{name} has {n} rows; the official release has {rows}")
    return out


def _complete(d: Path) -> bool:
    """Both files there with the official row counts."""
    if not _has_files(d):
        return False
    try:
        return (len(read_tsv(d / "train.tsv")[0]), len(read_tsv(d / "dev.tsv")[0])) == (TRAIN_ROWS, DEV_ROWS)
    except (OSError, DataCorruptError):
        return False


def fetch_sst2(*, offline: bool | None = None, url: str = URL) -> Path:
    """The cached ``SST-2/`` directory, downloaded from ``url`` when absent: the set-up step.

    Idempotent and safe to run concurrently: under the directory's lock, a copy
    with the official row counts is kept; anything else is replaced.

    Args:
        offline: refuse to download (default: ``$COMPRESS_BENCH_OFFLINE`` is ``1``).
        url: where the zip is (GLUE's own, :data:`URL`).

    Raises:
        DataNotFoundError: absent and not downloadable (offline, network error);
            the message says how to get it.
        DataCorruptError: the download is not a zip holding ``SST-2/train.tsv`` and
            ``SST-2/dev.tsv`` with the official row counts (nothing is kept).
    """
    if offline is None:
        offline = os.environ.get(ENV_OFFLINE, "") not in ("", "0")
    final = cache_dir()
    with locked(final, what="the GLUE SST-2 download"):
        if _complete(final):
            return final
        for stale in final.parent.glob(f".{final.name}.*.tmpdir"):  # killed writers: they are dead
            shutil.rmtree(stale, ignore_errors=True)
        if offline:
            raise DataNotFoundError(f"{HOW_TO_GET}\n({ENV_OFFLINE} forbids downloading it)")
        log.info("downloading %s into %s", url, final)
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
                blob = resp.read()
        except OSError as exc:  # URLError and timeouts are OSErrors
            raise DataNotFoundError(f"{HOW_TO_GET}\n(download of {url} failed: {exc})") from None
        atomic_write_dir(final, _extract(blob, url))
    return final


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m compress.data.sst2", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("fetch", "stats"),
                        help="fetch: download GLUE SST-2 into the cache; stats: counts per split")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "fetch":
            print(fetch_sst2() if not os.environ.get(ENV_SST2) else find_sst2())
            return 0
        ds = load_sst2()
    except (DataNotFoundError, DataCorruptError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"source {ds.source}{'' if ds.official else ' (not the official row counts)'}\ndigest {ds.digest}")
    from compress.data.sentiment import print_stats

    print_stats(ds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
