"""Fashion-MNIST: 60,000 train / 10,000 test grey 28x28 images, 10 classes.

Where the files are looked for:

1. ``$COMPRESS_BENCH_DATA`` (the CLI's ``--data-dir`` sets it), either the
   directory holding the four IDX ``.gz`` files or its parent with a
   ``fashion-mnist/`` folder. An explicit path is the only place looked at:
   when it does not exist or holds neither, :class:`DataNotFoundError` names it
   and what was expected in it; there is no fall-back to another copy.
   Otherwise, in order:
2. ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``);
3. ``<cache>/data/fashion-mnist``, where the files are fetched from the upstream
   release when the machine is online (disable with ``COMPRESS_BENCH_OFFLINE=1``).

Every file is checked against the SHA-256 of its *decompressed* content, so the
Debian files and the upstream ones verify alike.

Splits (fixed; the test split is never used for training or calibration):

- ``train``: 55,000 images of the training file, chosen by a fixed permutation
  (``SPLIT_SEED``);
- ``calib``: the other 5,000 training-file images, held out of training; int8
  calibration sets are its first N images;
- ``test``: all 10,000 images of the test file.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import struct
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from compress.storage.cache import atomic_write_bytes, cache_root, remove_stale_temporaries
from compress.data.dataset import ENV_DATA, ENV_OFFLINE, DataCorruptError, DataNotFoundError, Dataset

log = logging.getLogger(__name__)

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
UPSTREAM = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
SPLIT_SEED = 20_200_523
CALIB_SIZE = 5_000
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

# SHA-256 and length of each file's decompressed content.
FILES = {
    "train-images-idx3-ubyte.gz": ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47_040_016),
    "train-labels-idx1-ubyte.gz": ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60_008),
    "t10k-images-idx3-ubyte.gz": ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7_840_016),
    "t10k-labels-idx1-ubyte.gz": ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10_008),
}  # fmt: skip

HOW_TO_GET = f"""Fashion-MNIST was not found. Any one of these fixes it:
  - on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist  (files land in {SYSTEM_DIR})
  - put the four files {', '.join(FILES)} in a directory and
    set {ENV_DATA}=/that/directory (or pass --data-dir to python -m compress)
  - on a machine with internet access, unset {ENV_OFFLINE}: they are fetched from {UPSTREAM}"""


@dataclass(frozen=True)
class FashionMNIST:
    """Uint8 images ``(N, 28, 28)`` and labels ``(N,)`` for each split."""

    train_images: np.ndarray
    train_labels: np.ndarray
    calib_images: np.ndarray
    calib_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in ("train", "calib", "test"):
            raise ValueError(f"unknown split {name!r}; valid: 'train', 'calib', 'test'")
        return getattr(self, f"{name}_images"), getattr(self, f"{name}_labels")


def candidate_dirs() -> list[Path]:
    """The directories searched: the explicit ones only, when ``$COMPRESS_BENCH_DATA`` is set."""
    if os.environ.get(ENV_DATA):
        user = Path(os.environ[ENV_DATA]).expanduser()
        return [user, user / "fashion-mnist"]
    return [SYSTEM_DIR, cache_root() / "data" / "fashion-mnist"]


def resolve_data_dir(path: str | os.PathLike[str]) -> Path:
    """The directory holding the four files under an explicitly given ``path``.

    That is ``path`` itself or ``path/fashion-mnist``; nothing else is tried.

    Raises:
        DataNotFoundError: ``path`` does not exist, is not a directory, or holds
            neither the four files nor a ``fashion-mnist/`` folder with them; the
            one-line message names ``path`` and what was expected in it.
    """
    given = Path(path).expanduser()
    origin = f"(given by --data-dir or ${ENV_DATA})"
    expected = (
        f"expected the four Fashion-MNIST files ({', '.join(FILES)}) in it "
        f"or in a fashion-mnist/ folder inside it"
    )
    advice = f"fix the path, or unset {ENV_DATA} (drop --data-dir) to use the installed copy"
    if not given.exists():
        raise DataNotFoundError(f"data directory {given} {origin} does not exist; {expected}; {advice}")
    if not given.is_dir():
        raise DataNotFoundError(f"data directory {given} {origin} is not a directory; {expected}; {advice}")
    candidates = [given, given / "fashion-mnist"]
    for d in candidates:
        if all((d / name).is_file() for name in FILES):
            return d
    # Name what is missing where most of the files are.
    best = max(candidates, key=lambda d: sum((d / name).is_file() for name in FILES))
    missing = [name for name in FILES if not (best / name).is_file()]
    raise DataNotFoundError(
        f"data directory {given} {origin} holds neither the four Fashion-MNIST files nor a "
        f"fashion-mnist/ folder with them: {expected} (missing in {best}: {', '.join(missing)}); {advice}"
    )


def read_idx(raw: bytes) -> np.ndarray:
    """Parse an uncompressed IDX file (unsigned-byte data) into an array."""
    if len(raw) < 4:
        raise DataCorruptError("IDX file shorter than its header")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataCorruptError(f"not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) if ndim else 0
    if len(raw) - offset != expected:
        raise DataCorruptError(f"IDX payload has {len(raw) - offset} bytes, header says {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def _read_verified(path: Path) -> bytes:
    digest, length = FILES[path.name]
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise DataCorruptError(f"{path}: cannot decompress ({exc})") from exc
    if len(raw) != length or hashlib.sha256(raw).hexdigest() != digest:
        raise DataCorruptError(
            f"{path}: content does not match the Fashion-MNIST release "
            f"(sha256 {hashlib.sha256(raw).hexdigest()[:12]}..., {len(raw)} bytes; "
            f"expected {digest[:12]}..., {length} bytes). Delete or replace it."
        )
    return raw


def _fetch(dest: Path) -> None:
    if os.environ.get(ENV_OFFLINE, "") not in ("", "0"):
        raise DataNotFoundError(HOW_TO_GET)
    log.info("fetching Fashion-MNIST from %s into %s", UPSTREAM, dest)
    remove_stale_temporaries(dest)  # left by a download that was killed hours ago
    try:
        for name in FILES:
            with urllib.request.urlopen(UPSTREAM + name, timeout=15) as resp:
                atomic_write_bytes(dest / name, resp.read())
            _read_verified(dest / name)
    except (OSError, DataCorruptError) as exc:  # URLError is an OSError
        shutil.rmtree(dest, ignore_errors=True)
        raise DataNotFoundError(f"{HOW_TO_GET}\n(download failed: {exc})") from None


def find_data_dir() -> Path:
    """The directory holding all four files.

    With ``$COMPRESS_BENCH_DATA`` set (non-empty), that path or its
    ``fashion-mnist/`` folder, else :class:`DataNotFoundError` (see
    :func:`resolve_data_dir`). Otherwise the system copy, then the cache's,
    fetched there if needed.
    """
    if os.environ.get(ENV_DATA):
        return resolve_data_dir(os.environ[ENV_DATA])
    for d in candidate_dirs():
        if all((d / name).is_file() for name in FILES):
            return d
    dest = cache_root() / "data" / "fashion-mnist"
    _fetch(dest)
    return dest


@lru_cache(maxsize=2)
def _load(directory: Path) -> FashionMNIST:
    arrays = {name: read_idx(_read_verified(directory / name)) for name in FILES}
    train_x = arrays["train-images-idx3-ubyte.gz"]
    train_y = arrays["train-labels-idx1-ubyte.gz"]
    order = np.random.default_rng(SPLIT_SEED).permutation(len(train_x))
    train_idx, calib_idx = order[:-CALIB_SIZE], order[-CALIB_SIZE:]
    return FashionMNIST(
        train_images=train_x[train_idx],
        train_labels=train_y[train_idx],
        calib_images=train_x[calib_idx],
        calib_labels=train_y[calib_idx],
        test_images=arrays["t10k-images-idx3-ubyte.gz"],
        test_labels=arrays["t10k-labels-idx1-ubyte.gz"],
        source=str(directory),
    )


def load_fashion_mnist() -> FashionMNIST:
    """Load and verify Fashion-MNIST, split into train / calib / test.

    Raises:
        DataNotFoundError: the files are nowhere to be found or fetched; the
            message says how to get them. Or ``$COMPRESS_BENCH_DATA``
            (``--data-dir``) names a path that does not hold them: the message
            names it, and no other copy is used.
        DataCorruptError: a file exists but its content is not the release's.

    Example:
        >>> ds = load_fashion_mnist()          # doctest: +SKIP
        >>> ds.test_images.shape
        (10000, 28, 28)
    """
    return _load(find_data_dir())


class FashionMNISTDataset(Dataset):
    """Fashion-MNIST as a :class:`~compress.data.dataset.Dataset`: uint8 ``(N, 28, 28)`` images, 10 classes.

    The digest hashes the four files' recorded SHA-256 (every read is verified against
    them) and the split rule (seed, calibration size).
    """

    name = "Fashion-MNIST"

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        self.check_split(name)
        return load_fashion_mnist().split(name)

    @property
    def classes(self) -> tuple[str, ...]:
        return CLASSES

    def digest(self) -> str:
        rule = {"files": {k: v[0] for k, v in sorted(FILES.items())}, "seed": SPLIT_SEED, "calib": CALIB_SIZE}
        return hashlib.sha256(repr(rule).encode()).hexdigest()

    def unavailable(self) -> str | None:
        """Why the four files are not on this machine (nothing is downloaded here), or None."""
        if os.environ.get(ENV_DATA):
            try:
                resolve_data_dir(os.environ[ENV_DATA])
            except DataNotFoundError as exc:
                return str(exc)
            return None
        dirs = [*candidate_dirs(), cache_root() / "data" / "fashion-mnist"]
        return None if any(all((d / n).is_file() for n in FILES) for d in dirs) else HOW_TO_GET

    def fetch(self) -> None:
        load_fashion_mnist()


FASHION_MNIST = FashionMNISTDataset()
