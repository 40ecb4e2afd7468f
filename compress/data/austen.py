"""Jane Austen's six novels, as lines of text, for language modelling.

The data: the six novels as the R package ``janeaustenr`` 1.0.0 (Julia Silge,
MIT licence; texts from Project Gutenberg) ships them, one character vector of
lines per novel, in Debian's ``r-cran-janeaustenr`` 1.0.0-1 (bookworm, ``all``):
``r-cran-janeaustenr_1.0.0-1_all.deb``. Its ``data.tar.xz`` holds the R lazy-load
database ``usr/lib/R/site-library/janeaustenr/data/Rdata.{rdb,rdx,rds}``: the
``.rdx`` is a gzip-compressed R serialization of the index (each object's offset
and length in the ``.rdb``), each ``.rdb`` chunk a 4-byte big-endian length and
a zlib-compressed R serialization, parsed by PyPI ``rdata`` (the ``torch`` extra).
Neither R nor dpkg is used: the ``ar`` archive and the xz tarball are read with
the standard library. Nothing is installed; only the ``.deb``'s bytes are read.

Where the ``.deb`` is looked for (offline by default: nothing is downloaded
unless asked for):

1. ``$COMPRESS_BENCH_DATA`` (the CLI's ``--data-dir`` sets it), either the
   directory holding ``r-cran-janeaustenr_1.0.0-1_all.deb`` or its parent with an
   ``austen/`` folder. An explicit path is the only place looked at: when it does
   not exist or holds neither, :class:`DataNotFoundError` names it and what was
   expected in it; there is no fall-back to another copy. Otherwise:
2. ``<cache>/data/austen/`` (``<cache>``: :func:`compress.storage.cache.cache_root`).
   It gets there by the set-up step, :func:`fetch_deb` (or
   ``load_austen(fetch=True)``, or ``python -m compress.data.austen fetch``),
   which runs the ordinary client, ``apt-get download r-cran-janeaustenr=1.0.0-1``
   (no root needed; apt's own configuration and package lists apply), in a fresh
   temporary folder, verifies the SHA-256 and writes the file into the cache
   atomically, under the entry's lock. ``COMPRESS_BENCH_OFFLINE=1`` forbids the
   download.

The ``.deb`` is checked against :data:`DEB_SHA256` and the three R files against
:data:`MEMBERS`; a mismatch raises :class:`DataCorruptError`.

A novel's text is its lines joined with ``"\\n"``, exactly as shipped (no
trailing newline; the lines have no trailing blanks, tabs or ``\\r``; all ASCII
but one ``£`` in Mansfield Park). Words below are whitespace-separated tokens
(``len(text.split())``).

Splits (fixed, by whole lines; ``heldout`` is never used to train or monitor a
model: only its halves serve the adaptation experiment):

- ``heldout``: all of *Persuasion* (:data:`HELD_OUT`), Austen's last completed
  novel, the "later work" a LoRA adaptation experiment adapts to. It is the
  second-shortest novel: *Northanger Abbey* is 33,443 characters shorter
  (holding it out instead would give training 0.9 % more text).
- ``heldout_first`` / ``heldout_second``: *Persuasion* cut at the line boundary
  nearest its character midpoint: with ``lines`` its ``n`` lines and
  ``start(k) = sum(len(lines[i]) + 1 for i < k)`` the offset of line ``k`` in the
  text, ``k`` is the ``1 <= k < n`` minimising ``|2 * start(k) - len(text)|``
  (the smaller ``k`` on a tie); ``heldout_first = lines[:k]``,
  ``heldout_second = lines[k:]`` (the newline between them belongs to neither).
  Adapt on the first half, evaluate on the second. The cut (after line 4,159)
  falls inside a paragraph, mid-sentence: the lines are the Gutenberg text's
  hard wrapping (at most 76 characters), not paragraphs.
- ``valid``: the last ``n // 20`` lines (5 %, rounded down) of each of the five
  other novels, for monitoring the training loss;
- ``train``: the rest of those five novels, ``lines[:n - n // 20]`` of each.
  ``train`` and ``valid`` together are the five novels, whole.

Each split is a tuple of :class:`Segment` (novel, line range, text), in the
novels' publication order (:data:`NOVELS`).

Measured on the release (``python -m compress.data.austen stats``):

=====================  =========  ======  =======
novel / split          chars      lines   words
=====================  =========  ======  =======
sensesensibility         673,687  12,624  118,565
prideprejudice           684,767  13,030  121,567
mansfieldpark            883,278  15,349  159,540
emma                     883,027  16,235  157,441
northangerabbey          433,410   7,856   77,141
persuasion               466,853   8,328   83,283
train                  3,373,422  61,842  601,786
valid                    184,742   3,252   32,468
heldout                  466,853   8,328   83,283
heldout_first            233,408   4,159   41,521
heldout_second           233,444   4,169   41,762
all                    4,025,022  73,422  717,537
=====================  =========  ======  =======

``train`` and ``valid`` add up to the five novels (their characters plus the
five newlines at the cuts), the halves to ``heldout`` (plus one newline).

:attr:`AustenData.digest` is the SHA-256 of the parsed novels (their lines) and
of the splits' line ranges, for result-store keys: it changes when the data or
the split rule does (on the release: ``881dea6da93ef6034406d62db93798b7ff6f23eafc812397cb84bc34efc8e5ee``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import struct
import sys
import tarfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from compress.assets import ENV_DATA, DataCorruptError, DataNotFoundError, RegistryFile, apt_get
from compress.assets import main as assets_main
from compress.data.dataset import Dataset

PACKAGE = "r-cran-janeaustenr"
VERSION = "1.0.0-1"
DEB = "r-cran-janeaustenr_1.0.0-1_all.deb"
DEB_SHA256 = "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95"
DEB_URL = "https://deb.debian.org/debian/pool/main/r/r-cran-janeaustenr/" + DEB
DATA_PREFIX = "./usr/lib/R/site-library/janeaustenr/data/"
# SHA-256 of the R lazy-load files inside the .deb's data.tar.xz.
MEMBERS = {
    "Rdata.rdb": "8fb5198960d0da724b1562f96e4221e5c1b41ff455000280b02c55980c3d8f21",
    "Rdata.rdx": "cab8cbe4ce965d3b42b35c03383bafccc0eb78151f70e4748ead45270470c22f",
    "Rdata.rds": "030c74818c79cfd1bbff2f1b75d4fdecd285c95594f02d623361f8e66d5be9d0",
}  # fmt: skip
SUBDIR = "austen"

#: The R objects, in publication order, with their titles.
TITLES = {
    "sensesensibility": "Sense and Sensibility",
    "prideprejudice": "Pride and Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}
NOVELS = tuple(TITLES)
HELD_OUT = "persuasion"
TRAIN_NOVELS = tuple(n for n in NOVELS if n != HELD_OUT)
VALID_DIVISOR = 20  # valid: the last n // 20 lines (5 %) of each train novel
SPLITS = ("train", "valid", "heldout", "heldout_first", "heldout_second")

CLIENT = apt_get(PACKAGE, VERSION)
APT_COMMAND = CLIENT.command
RDATA_HINT = "reading the Austen novels needs rdata (in compress-bench's torch extra): pip install rdata==1.1.0"

HOW_TO_GET = f"""The Jane Austen novels ({DEB}, Debian's {PACKAGE} {VERSION}) were not found. Any one of these fixes it:
  - on a Debian machine whose apt knows the package (Debian 12 "bookworm" carries it; run apt-get update first):
    python -m compress.data.austen fetch   (runs {APT_COMMAND}, no root needed; the file lands in <cache>/data/{SUBDIR})
  - fetch it yourself ({APT_COMMAND}, or {DEB_URL}; sha256 {DEB_SHA256}),
    put it in a directory and set {ENV_DATA}=/that/directory (or pass --data-dir to python -m compress)"""


FILE = RegistryFile(DEB, DEB_SHA256, f"data/{SUBDIR}", CLIENT, HOW_TO_GET, what=f"Debian's {PACKAGE} {VERSION}")


@dataclass(frozen=True)
class Segment:
    """Whole lines ``start`` (included) to ``stop`` (excluded) of ``novel``, joined with ``"\\n"`` in ``text``."""

    novel: str
    start: int
    stop: int
    text: str

    @property
    def n_lines(self) -> int:
        return self.stop - self.start

    def __len__(self) -> int:
        return len(self.text)


@dataclass(frozen=True)
class AustenData:
    """The six novels (read-only mappings by R name, in :data:`NOVELS` order), the splits, their digest, the source."""

    texts: Mapping[str, str]
    titles: Mapping[str, str]
    train: tuple[Segment, ...]
    valid: tuple[Segment, ...]
    heldout: tuple[Segment, ...]
    heldout_first: tuple[Segment, ...]
    heldout_second: tuple[Segment, ...]
    digest: str
    source: str

    def split(self, name: str) -> list[str]:
        """The texts of ``name``'s segments (one per novel), ``name`` one of :data:`SPLITS`."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; valid: {', '.join(map(repr, SPLITS))}")
        return [s.text for s in getattr(self, name)]


def cache_dir() -> Path:
    """``<cache>/data/austen``: where :func:`fetch_deb` puts the ``.deb``."""
    return FILE.directory()


def resolve_data_dir(path: str | os.PathLike[str]) -> Path:
    """The directory holding the ``.deb`` under an explicitly given ``path``: it or ``path/austen``
    (:class:`DataNotFoundError` naming ``path`` when neither holds it)."""
    return FILE.in_data_dir(path)


def verify_deb(path: Path) -> bytes:
    """The ``.deb``'s bytes, after checking their SHA-256 (:class:`DataCorruptError` if it differs)."""
    return FILE.verify(path)


def check_deb(blob: bytes, origin: str) -> bytes:
    """``blob`` if its SHA-256 is the published ``.deb``'s; :class:`DataCorruptError` naming ``origin`` if not."""
    return FILE.check(blob, origin)


def fetch_deb(*, offline: bool | None = None) -> Path:
    """The verified ``.deb`` in :func:`cache_dir`, downloaded with apt-get when absent: the set-up step
    (:meth:`compress.assets.RegistryFile.fetch`; ``offline`` default: ``$COMPRESS_BENCH_OFFLINE``).

    Raises:
        DataNotFoundError: the ``.deb`` is absent and cannot be downloaded (offline,
            apt-get missing or failed); the message says how to get it and carries apt-get's error.
        DataCorruptError: apt-get delivered a file whose SHA-256 differs (nothing is kept).
    """
    return FILE.fetch(offline=offline)


def find_deb(*, fetch: bool = False) -> Path:
    """The ``.deb``'s path: in ``$COMPRESS_BENCH_DATA`` when set, else in the cache.

    With ``fetch``, a ``.deb`` missing from the cache is downloaded (:func:`fetch_deb`).
    """
    return FILE.find(fetch=fetch)


def read_ar(blob: bytes, *, origin: str = DEB) -> dict[str, bytes]:
    """The members of a Unix ``ar`` archive (a ``.deb``), by name."""
    if not blob.startswith(b"!<arch>\n"):
        raise DataCorruptError(f"{origin}: not an ar archive (starts {blob[:8]!r})")
    members, pos = {}, 8
    while pos < len(blob):
        header = blob[pos : pos + 60]
        if len(header) < 60 or header[58:60] != b"`\n":
            raise DataCorruptError(f"{origin}: bad ar member header at byte {pos}")
        name = header[:16].decode("ascii", "replace").rstrip().rstrip("/")
        try:
            size = int(header[48:58])
        except ValueError:
            raise DataCorruptError(f"{origin}: bad ar member size at byte {pos}") from None
        data = blob[pos + 60 : pos + 60 + size]
        if len(data) != size:
            raise DataCorruptError(f"{origin}: ar member {name} is truncated")
        members[name] = data
        pos += 60 + size + (size & 1)
    return members


def read_members(deb_bytes: bytes, *, origin: str = DEB) -> dict[str, bytes]:
    """The R data files (:data:`MEMBERS`) out of the ``.deb``'s ``data.tar.*``, each checked by SHA-256.

    The published ``.deb`` holds ``data.tar.xz`` (read with the standard library's
    ``lzma``); a ``.gz``, ``.bz2`` or plain one would do too, a ``.zst`` would not.
    """
    members = read_ar(deb_bytes, origin=origin)
    tars = [name for name in members if name.startswith("data.tar")]
    if len(tars) != 1:
        raise DataCorruptError(f"{origin}: expected one data.tar.* member, found {tars or 'none'}")
    out = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(members[tars[0]]), mode="r:*") as tar:
            for name in MEMBERS:
                f = tar.extractfile(DATA_PREFIX + name)
                if f is None:
                    raise KeyError(DATA_PREFIX + name)
                out[name] = f.read()
    except (tarfile.TarError, KeyError, OSError, EOFError) as exc:
        raise DataCorruptError(f"{origin}: cannot read {tars[0]}!{DATA_PREFIX}... ({exc!r})") from exc
    for name, digest in MEMBERS.items():
        got = hashlib.sha256(out[name]).hexdigest()
        if got != digest:
            raise DataCorruptError(
                f"{origin}: {DATA_PREFIX}{name} is not the published one (sha256 {got[:12]}..., expected {digest[:12]}...)"
            )
    return out


def _rdata():
    try:
        import rdata
    except ImportError as exc:
        raise ImportError(f"{RDATA_HINT} ({exc})") from None
    return rdata


def _unserialize(raw: bytes, what: str):
    rdata = _rdata()
    try:
        return rdata.conversion.convert(rdata.parser.parse_data(raw, extension=".rds"))
    except Exception as exc:  # rdata raises many kinds on malformed input
        raise DataCorruptError(f"{what}: not a readable R serialization ({exc!r})") from exc


def parse_lazyload(rdx: bytes, rdb: bytes) -> dict[str, list[str]]:
    """Every object of an R lazy-load database (``.rdx`` index, ``.rdb`` data) as a list of lines.

    Each object must be a character vector without attributes or ``NA``.
    """
    try:
        index = _unserialize(gzip.decompress(rdx), "Rdata.rdx")["variables"]
    except (OSError, EOFError, KeyError, TypeError) as exc:
        raise DataCorruptError(f"Rdata.rdx: not a lazy-load index ({exc!r})") from exc
    out = {}
    for name, pos in index.items():
        offset, length = (int(x) for x in pos)
        chunk = rdb[offset : offset + length]
        if len(chunk) != length or length < 4:
            raise DataCorruptError(f"Rdata.rdb: object {name} at {offset}+{length} is truncated")
        try:
            raw = zlib.decompress(chunk[4:])
        except zlib.error as exc:
            raise DataCorruptError(f"Rdata.rdb: object {name}: {exc}") from exc
        if len(raw) != struct.unpack(">I", chunk[:4])[0]:
            raise DataCorruptError(f"Rdata.rdb: object {name}: length does not match its header")
        value = _unserialize(raw, f"Rdata.rdb: object {name}")
        if getattr(value, "dtype", None) is None or value.dtype.kind != "U" or value.ndim != 1:
            raise DataCorruptError(f"Rdata.rdb: object {name} is not a character vector ({type(value).__name__})")
        lines = [str(line) for line in value]
        if any("\n" in line for line in lines):
            raise DataCorruptError(f"Rdata.rdb: object {name} has a line with a newline in it")
        out[str(name)] = lines
    return out


def midpoint_line(lines: list[str]) -> int:
    """The ``k`` (``1 <= k < len(lines)``) whose line starts nearest the middle of ``"\\n".join(lines)``.

    It minimises ``|2 * start(k) - len(text)|``, ``start(k)`` the character offset
    of line ``k``; the smaller ``k`` wins a tie.
    """
    if len(lines) < 2:
        raise ValueError("a text of fewer than two lines has no line boundary to cut at")
    total = sum(len(s) for s in lines) + len(lines) - 1
    best, best_gap, start = 1, None, 0
    for k in range(1, len(lines)):
        start += len(lines[k - 1]) + 1
        gap = abs(2 * start - total)
        if best_gap is None or gap < best_gap:
            best, best_gap = k, gap
    return best


def _segment(novels: dict[str, list[str]], name: str, start: int, stop: int) -> Segment:
    return Segment(name, start, stop, "\n".join(novels[name][start:stop]))


def build_splits(novels: dict[str, list[str]]) -> dict[str, tuple[Segment, ...]]:
    """The fixed splits of the module docstring, from the novels' lines."""
    train, valid = [], []
    for name in TRAIN_NOVELS:
        n = len(novels[name])
        cut = n - n // VALID_DIVISOR
        train.append(_segment(novels, name, 0, cut))
        valid.append(_segment(novels, name, cut, n))
    lines = novels[HELD_OUT]
    k = midpoint_line(lines)
    return {
        "train": tuple(train),
        "valid": tuple(valid),
        "heldout": (_segment(novels, HELD_OUT, 0, len(lines)),),
        "heldout_first": (_segment(novels, HELD_OUT, 0, k),),
        "heldout_second": (_segment(novels, HELD_OUT, k, len(lines)),),
    }


def content_digest(novels: dict[str, list[str]], splits: dict[str, tuple[Segment, ...]]) -> str:
    """SHA-256 (hex) of the novels' lines and the splits' ``(novel, start, stop)`` ranges."""
    doc = {
        "novels": {name: novels[name] for name in NOVELS},
        "splits": {name: [[s.novel, s.start, s.stop] for s in segs] for name, segs in splits.items()},
    }
    blob = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


@lru_cache(maxsize=2)
def _load(path: Path, size: int, mtime_ns: int) -> AustenData:
    files = read_members(verify_deb(path), origin=str(path))
    novels = parse_lazyload(files["Rdata.rdx"], files["Rdata.rdb"])
    if sorted(novels) != sorted(NOVELS):
        raise DataCorruptError(f"{path}: expected the objects {', '.join(sorted(NOVELS))}, found {', '.join(novels)}")
    splits = build_splits(novels)
    return AustenData(
        texts=MappingProxyType({name: "\n".join(novels[name]) for name in NOVELS}),
        titles=MappingProxyType(dict(TITLES)),
        **splits,
        digest=content_digest(novels, splits),
        source=str(path),
    )


def load_austen(*, fetch: bool = False) -> AustenData:
    """Load, verify and split Jane Austen's six novels.

    Args:
        fetch: download the ``.deb`` with apt-get when it is not cached (the
            set-up step, :func:`fetch_deb`); by default nothing is downloaded.

    Raises:
        DataNotFoundError: the ``.deb`` is neither cached nor (with ``fetch``)
            downloadable; the message says how to get it. Or ``$COMPRESS_BENCH_DATA``
            (``--data-dir``) names a path that does not hold it: the message names
            it, and no other copy is used.
        DataCorruptError: the ``.deb`` or an R data file in it is not the published one.
        ImportError: ``rdata`` is not installed (the message says which version to install).

    Example:
        >>> ds = load_austen()                   # doctest: +SKIP
        >>> [s.novel for s in ds.train]
        ['sensesensibility', 'prideprejudice', 'mansfieldpark', 'emma', 'northangerabbey']
        >>> len(ds.texts["persuasion"])
        466853
    """
    path = find_deb(fetch=fetch)
    st = path.stat()
    return _load(path, st.st_size, st.st_mtime_ns)


def _counts(text: str) -> tuple[int, int, int]:
    return len(text), text.count("\n") + 1, len(text.split())  # no line holds a "\n" (checked on loading)


def stats(ds: AustenData) -> list[tuple[str, int, int, int]]:
    """``(name, characters, lines, words)`` per novel, per split (summed over its segments), then ``all``."""
    rows = [(name, *_counts(ds.texts[name])) for name in NOVELS]
    for split in SPLITS:
        counts = [_counts(s.text) for s in getattr(ds, split)]
        rows.append((split, *(sum(c[k] for c in counts) for k in range(3))))
    rows.append(("all", *(sum(r[k] for r in rows[: len(NOVELS)]) for k in (1, 2, 3))))
    return rows


def _print_all() -> None:
    ds = load_austen()
    print(f"source {ds.source}\ndigest {ds.digest}")
    for name, chars, lines, words in stats(ds):
        print(f"{name:16s} {chars:9,d} chars {lines:6,d} lines {words:7,d} words")


def main(argv: list[str] | None = None) -> int:
    """``python -m compress.data.austen fetch|stats``: download and verify the ``.deb``; sizes per novel and split."""
    return assets_main(argv, FILE, _print_all, prog="python -m compress.data.austen", doc=__doc__)


if __name__ == "__main__":
    sys.exit(main())


class AustenDataset(Dataset):
    """The six novels as a :class:`~compress.data.dataset.Dataset` of text segments (no labels).

    Its splits are the causal LM's: ``train`` (five novels less their last 5 %), ``calib``
    (those 5 %), ``adapt`` and ``test`` (the held-out novel's first and second halves).
    """

    name = "Jane Austen's novels"
    splits = ("train", "calib", "adapt", "test")
    SPLIT_OF = {"train": "train", "calib": "valid", "adapt": "heldout_first", "test": "heldout_second"}

    def split(self, name: str) -> tuple[list[str], None]:
        self.check_split(name)
        return load_austen().split(self.SPLIT_OF[name]), None

    def digest(self) -> str:
        return load_austen().digest

    def unavailable(self) -> str | None:
        try:
            import rdata  # noqa: F401
        except ImportError:
            return RDATA_HINT
        try:
            if not find_deb().is_file():
                return HOW_TO_GET
        except DataNotFoundError as exc:
            return str(exc)
        return None

    def fetch(self) -> None:
        load_austen(fetch=True)


AUSTEN = AustenDataset()
