"""An ImageNet-style validation folder given by the user: ``root/<class>/<images>``.

Each sub-folder of ``root`` holds the images of one ImageNet-1k class and is
named either

- by the class index, ``0`` .. ``999`` (zero padding allowed: ``007``), in the
  order of the Keras / torchvision output layer; or
- by the class's WordNet id (``n01440764``). The 1000 wnids sorted ascending are
  the Keras / torchvision class order, but neither tf_keras nor torchvision
  ships that list (Keras downloads ``imagenet_class_index.json`` at run time),
  so wnid folders need the list at ``root/wnids.txt`` or
  ``root/LOC_synset_mapping.txt`` (or passed as ``synsets=``): 1000 lines
  whose first word is a wnid, e.g. ``n01440764 tench, Tinca tinca``, the
  format of the Kaggle ImageNet release. A wnid's class index is its rank
  among the 1000 sorted wnids, whatever the line order of the file.

Images are the ``.jpg`` / ``.jpeg`` / ``.png`` files (any case) directly inside
a class folder; other files are ignored. Files are listed in sorted order.

Splits (fixed, deterministic): the image of *rank* r in its class (its position
among the class's sorted file names) belongs to ``calib`` when
``r < calib_per_class`` and to ``test`` otherwise. Both splits are ordered by
``(rank, class index)``, i.e. round-robin over the classes, so any prefix (an
int8 calibration set of N images, a ``limit``) is spread evenly over the
classes instead of covering the first few only.

Decoding: RGB (grey, palette and CMYK images are converted), the shorter side
resized to ``round(size / crop_fraction)`` (bilinear, antialiased), then a
centred ``size x size`` crop; the standard ImageNet evaluation (256 -> 224).

Example:
    >>> folder = ImageNetFolder("/data/imagenet/val")            # doctest: +SKIP
    >>> x, y = folder.load("test", size=224, limit=1000)      # doctest: +SKIP
    >>> x.shape, x.dtype, y.dtype                             # doctest: +SKIP
    ((1000, 224, 224, 3), dtype('uint8'), dtype('int64'))
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from compress.data.fashion_mnist import DataNotFoundError

__all__ = ["ImageNetFolder", "ImageNetFolderError", "read_synsets", "decode_image", "NUM_CLASSES"]

NUM_CLASSES = 1000
SYNSET_FILES = ("wnids.txt", "LOC_synset_mapping.txt")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SPLITS = ("calib", "test", "all")
_WNID = re.compile(r"^n\d{8}$")
_INDEX = re.compile(r"^\d{1,4}$")


class ImageNetFolderError(ValueError):
    """The folder exists but its layout or content is not usable."""


def read_synsets(path: str | os.PathLike) -> dict[str, int]:
    """``{wnid: class index}`` from a list of the 1000 ImageNet-1k wnids.

    Each non-empty line starts with a wnid (``n01440764 tench, Tinca tinca`` or
    just ``n01440764``); the index of a wnid is its rank in sorted order.

    Raises:
        ImageNetFolderError: a line does not start with a wnid, a wnid repeats, or
            the file does not list exactly 1000 of them.
    """
    path = Path(path)
    wnids = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        wnid = line.split()[0]
        if not _WNID.match(wnid):
            raise ImageNetFolderError(f"{path}:{n}: expected a line starting with a wnid like n01440764, got {line!r}")
        wnids.append(wnid)
    if len(set(wnids)) != len(wnids):
        dup = sorted({w for w in wnids if wnids.count(w) > 1})
        raise ImageNetFolderError(f"{path}: wnids listed more than once: {', '.join(dup[:5])}")
    if len(wnids) != NUM_CLASSES:
        raise ImageNetFolderError(
            f"{path}: lists {len(wnids)} wnids; the ImageNet-1k class order needs all {NUM_CLASSES}"
        )
    return {w: i for i, w in enumerate(sorted(wnids))}


def _shown(names: list[str], n: int = 5) -> str:
    more = f" (and {len(names) - n} more)" if len(names) > n else ""
    return ", ".join(repr(x) for x in names[:n]) + more


def decode_image(path: str | os.PathLike, size: int, crop_fraction: float = 0.875) -> np.ndarray:
    """One image as uint8 RGB ``(size, size, 3)``: shorter side resized, centre crop.

    Raises:
        ImageNetFolderError: the file cannot be decoded as an image.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ImportError("reading ImageNet-style folders needs Pillow: pip install pillow") from None

    short = round(size / crop_fraction)
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            if w <= h:
                new = (short, max(short, round(h * short / w)))
            else:
                new = (max(short, round(w * short / h)), short)
            img = img.resize(new, Image.BILINEAR)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ImageNetFolderError(f"{path}: cannot decode image ({exc})") from exc
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


class ImageNetFolder:
    """The images of an ImageNet-style folder, their labels and fixed splits.

    Args:
        root: the folder holding one sub-folder per class.
        synsets: a wnid list (see :func:`read_synsets`); default: ``root/wnids.txt``
            or ``root/LOC_synset_mapping.txt`` when present. Only needed for wnid folders.
        calib_per_class: images of each class (its first, in sorted order) that
            form the ``calib`` split; the rest form ``test``.

    Raises:
        DataNotFoundError: ``root`` is not a directory, or holds no image.
        ImageNetFolderError: a class folder name is neither a class index in
            0..999 nor a known wnid, wnid folders come without a wnid list, or
            two folders name the same class.
    """

    def __init__(self, root: str | os.PathLike, *, synsets: str | os.PathLike | None = None,
                 calib_per_class: int = 1):  # fmt: skip
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataNotFoundError(f"ImageNet-style folder {str(self.root)!r} does not exist or is not a directory")
        if isinstance(calib_per_class, bool) or not isinstance(calib_per_class, int) or calib_per_class < 0:
            raise ValueError(f"calib_per_class must be an integer >= 0, got {calib_per_class!r}")
        self.calib_per_class = calib_per_class
        self.classes = self._class_indices(synsets)  # folder name -> class index
        files, labels, ranks = [], [], []
        for name, index in sorted(self.classes.items(), key=lambda kv: kv[1]):
            images = sorted(
                e.name
                for e in os.scandir(self.root / name)
                if e.is_file() and not e.name.startswith(".") and e.name.lower().endswith(IMAGE_SUFFIXES)
            )
            files += [self.root / name / f for f in images]
            labels += [index] * len(images)
            ranks += range(len(images))
        if not files:
            raise DataNotFoundError(
                f"no images ({'/'.join(IMAGE_SUFFIXES)}) in the {len(self.classes)} class folders "
                f"of {str(self.root)!r}"
            )
        self.files: tuple[Path, ...] = tuple(files)  # by class index, then file name
        self.labels = np.asarray(labels, dtype=np.int64)
        self.ranks = np.asarray(ranks, dtype=np.int64)

    def _class_indices(self, synsets) -> dict[str, int]:
        dirs = sorted(e.name for e in os.scandir(self.root) if e.is_dir() and not e.name.startswith("."))
        if not dirs:
            loose = [e.name for e in os.scandir(self.root) if e.name.lower().endswith(IMAGE_SUFFIXES)]
            hint = (
                f" ({len(loose)} images lie directly in it: sort them into class folders first)" if loose else ""
            )
            raise DataNotFoundError(
                f"no class folders in {str(self.root)!r}{hint}; expected root/<class index 0..999 "
                f"or wnid>/<images>"
            )
        wnid_dirs = [d for d in dirs if _WNID.match(d)]
        wnid_index: dict[str, int] = {}
        if wnid_dirs:
            path = synsets or next((self.root / f for f in SYNSET_FILES if (self.root / f).is_file()), None)
            if path is None:
                raise ImageNetFolderError(
                    f"class folders of {str(self.root)!r} are WordNet ids ({_shown(wnid_dirs, 2)}) but no "
                    f"wnid list is available offline: put {' or '.join(SYNSET_FILES)} (the 1000 ImageNet-1k "
                    f"wnids, one per line, e.g. 'n01440764 tench, Tinca tinca') in it, or name the "
                    f"folders by class index 0..999"
                )
            wnid_index = read_synsets(path)
        out: dict[str, int] = {}
        bad = []
        for d in dirs:
            if d in wnid_index:
                out[d] = wnid_index[d]
            elif _INDEX.match(d) and int(d) < NUM_CLASSES:
                out[d] = int(d)
            else:
                bad.append(d)
        if bad:
            raise ImageNetFolderError(
                f"unknown class folder names in {str(self.root)!r}: {_shown(bad)}; each must be a class "
                f"index 0..{NUM_CLASSES - 1} or a wnid listed in the wnid list"
            )
        seen: dict[int, str] = {}
        for d, i in out.items():
            if i in seen:
                raise ImageNetFolderError(f"folders {seen[i]!r} and {d!r} of {str(self.root)!r} are both class {i}")
            seen[i] = d
        return out

    def __len__(self) -> int:
        return len(self.files)

    def indices(self, split: str, limit: int | None = None) -> np.ndarray:
        """Positions in :attr:`files` of a split, round-robin over the classes.

        Args:
            split: ``"calib"``, ``"test"`` or ``"all"``.
            limit: keep only the first ``limit`` of them.
        """
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(map(repr, SPLITS))}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
        keep = np.ones(len(self.files), dtype=bool)
        if split == "calib":
            keep = self.ranks < self.calib_per_class
        elif split == "test":
            keep = self.ranks >= self.calib_per_class
        idx = np.flatnonzero(keep)
        idx = idx[np.lexsort((self.labels[idx], self.ranks[idx]))]  # by rank, then class
        return idx[:limit]

    def load(self, split: str, size: int, *, limit: int | None = None, crop_fraction: float = 0.875,
             workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Decoded images and labels of a split.

        Args:
            split: ``"calib"``, ``"test"`` or ``"all"``.
            size: side of the square crop in pixels.
            limit: the first ``limit`` images of the split (see :meth:`indices`).
            crop_fraction: the crop's share of the resized shorter side.
            workers: decoding threads (default: the CPU count).

        Returns:
            ``(images uint8 (N, size, size, 3) RGB, labels int64 (N,))``.

        Raises:
            ImageNetFolderError: an image cannot be decoded (the message names it).
        """
        if not 0 < crop_fraction <= 1:
            raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction!r}")
        idx = self.indices(split, limit)
        out = np.empty((len(idx), size, size, 3), dtype=np.uint8)

        def one(k: int) -> None:
            out[k] = decode_image(self.files[idx[k]], size, crop_fraction)

        with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
            list(pool.map(one, range(len(idx))))  # PIL releases the GIL while decoding
        return out, self.labels[idx].copy()
