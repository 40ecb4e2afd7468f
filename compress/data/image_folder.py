"""A team's labelled images: a folder of class folders, ``root/<class>/<image>``.

``ImageFolder("~/team-images")`` reads every image of every class folder; the
classes are the class folders' names, sorted, and a generic image classifier
builds one output for each. Two layouts:

- ``root/<class>/<image>``: the splits are drawn from each image file's own bytes
  (:func:`compress.data.dataset.bucket_split`: 20 % test, 4.5 % calib, the rest
  train; ``test=``, ``calib=``), so adding, removing or renaming other images never
  moves an image between splits, and identical files always share one;
- ``root/<split>/<class>/<image>``, when the folders of ``root`` are split folders
  only (``train``, ``calib``, ``test``: all three then): the splits as the folders
  say. Every split folder holds the same class folders (one may be empty there).

Images are the files directly inside a class folder ending in ``.png``, ``.jpg``,
``.jpeg``, ``.bmp``, ``.gif`` or ``.webp`` (any case); other files, sub-folders and
hidden entries (``.DS_Store``, ``._x.jpg``) are ignored. Decoding (Pillow): the EXIF
orientation applied, the first frame of an animation, converted to ``mode`` (``"L"``
grey: uint8 ``(N, H, W)``; ``"RGB"``: uint8 ``(N, H, W, 3)``), then, with ``size``,
resized to ``size x size`` (bilinear). Without ``size`` every image must have the
same size: the error names two files that differ.

Order: within a split, round-robin over the classes, each class's images by
relative path (the image of rank r in its class comes at ``(r, class index)``),
as :mod:`compress.data.imagenet_folder` orders its splits: any prefix, such as the
first 500 images that static int8 calibrates on, covers every class evenly
instead of the first classes only.

The digest hashes the classes, the split rule and, per split in order, every
image's class, shape and decoded pixels, never a path: the same folder elsewhere
keeps its cache keys, one changed pixel retrains. Reading is lazy (constructing
reads nothing) and memoized per folder until a file is added, removed or
rewritten (a stamp of every image's relative path, size and mtime).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from compress.data.dataset import SPLITS, Dataset, DataNotFoundError, bucket_split, resolve

__all__ = ["ImageFolder", "ImageFolderError", "IMAGE_SUFFIXES"]

SALT = b"compress-bench/image-folder/v1\0"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MODES = ("L", "RGB")
LAYOUTS = "root/<class>/<image> or root/{train,calib,test}/<class>/<image>"


class ImageFolderError(ValueError):
    """A folder that cannot be read as labelled images: names the folder or file and what is wrong."""


@dataclass(frozen=True)
class ImageFolder(Dataset):
    """Labelled images from class folders (see the module docstring for the layouts).

    Attributes:
        root: the folder (``~`` and ``$VARS`` expanded when read).
        size: resize every image to ``size x size`` (bilinear); None: all images must
            have one size, kept.
        mode: ``"L"`` (grey, uint8 ``(N, H, W)``) or ``"RGB"`` (uint8 ``(N, H, W, 3)``).
        test, calib: the fractions drawn by each file's bytes in the
            ``root/<class>/<image>`` layout (ignored when the folders give the splits).
    """

    root: str
    size: int | None = None
    mode: str = "L"
    test: float = 0.2
    calib: float = 0.045

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"ImageFolder mode must be one of {', '.join(map(repr, MODES))}; got {self.mode!r}")
        if self.size is not None and (not isinstance(self.size, int) or self.size < 1):
            raise ValueError(f"ImageFolder size must be a positive int or None; got {self.size!r}")
        if not (0 < self.test < 1 and 0 < self.calib < 1 and self.test + self.calib < 1):
            raise ValueError(f"ImageFolder test and calib must be fractions in (0, 1) adding up to less than 1; "
                             f"got test={self.test}, calib={self.calib}")  # fmt: skip

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"image folder {self.root}"

    # -- the concept -------------------------------------------------------------
    def unavailable(self) -> str | None:
        p = resolve(self.root)
        where = f"the image folder {p} (ImageFolder(root={self.root!r}))"
        if not p.exists():
            return f"{where} does not exist: put the images there as {LAYOUTS}"
        if not p.is_dir():
            return f"{where} is not a directory: expected {LAYOUTS}"
        if not _subdirs(p):
            return f"{where} holds no class folders: expected {LAYOUTS}"
        return None

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images ``(N, H, W)`` (``"L"``) or ``(N, H, W, 3)`` (``"RGB"``) and int64 class indices;
        read-only (shared by every caller in the process)."""
        self.check_split(name)
        return self._loaded()["splits"][name]

    @property
    def classes(self) -> tuple[str, ...]:
        return self._loaded()["classes"]

    def digest(self) -> str:
        return self._loaded()["digest"]

    def files(self, name: str) -> list[str]:
        """The relative paths of split ``name``'s images, in the order of :meth:`split`."""
        self.check_split(name)
        return list(self._loaded()["files"][name])

    # -- reading -------------------------------------------------------------------
    def _loaded(self) -> dict:
        why = self.unavailable()
        if why:
            raise DataNotFoundError(why)
        p = resolve(self.root)
        _, listing = _scan(p)
        stamp = hashlib.sha256()
        for split, classes in listing.items():
            for cls, rels in classes.items():
                for rel in rels:
                    st = os.stat(p / rel)
                    stamp.update(f"{split}\0{cls}\0{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return _load(self, str(p), stamp.hexdigest())

    def decode(self, raw: bytes, where: Path) -> np.ndarray:
        """One image file's bytes as a uint8 array in this folder's mode and size."""
        from PIL import Image, ImageOps, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(raw)) as img:
                img = ImageOps.exif_transpose(img).convert(self.mode)
                if self.size is not None and img.size != (self.size, self.size):
                    img = img.resize((self.size, self.size), Image.Resampling.BILINEAR)
                return np.asarray(img, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise ImageFolderError(f"{where}: cannot be decoded as an image ({type(exc).__name__}: {exc})") from None


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _subdirs(p: Path) -> list[str]:
    with os.scandir(p) as it:
        return sorted(e.name for e in it if not _hidden(e.name) and e.is_dir())


def _images(p: Path) -> list[str]:
    with os.scandir(p) as it:
        return sorted(e.name for e in it if not _hidden(e.name) and e.name.lower().endswith(IMAGE_SUFFIXES)
                      and e.is_file())  # fmt: skip


def _scan(root: Path) -> tuple[str, dict[str | None, dict[str, list[str]]]]:
    """The layout (``"classes"`` or ``"splits"``) and ``{split or None: {class: [relative path, ...]}}``."""
    top = _subdirs(root)
    if top and set(top) <= set(SPLITS):
        missing = [s for s in SPLITS if s not in top]
        if missing:
            raise ImageFolderError(f"{root} holds the split folders {', '.join(top)} but not {', '.join(missing)}: "
                                   f"the layout root/{{train,calib,test}}/<class>/<image> needs all three")  # fmt: skip
        listing: dict[str | None, dict[str, list[str]]] = {}
        for s in SPLITS:
            classes = _subdirs(root / s)
            if not classes:
                raise ImageFolderError(f"{root / s} holds no class folders: expected {s}/<class>/<image>")
            listing[s] = {c: [f"{s}/{c}/{f}" for f in _images(root / s / c)] for c in classes}
        first = listing["train"]
        for s in SPLITS[1:]:
            if set(listing[s]) != set(first):
                only = sorted(set(listing[s]) ^ set(first))
                raise ImageFolderError(f"{root}: the class folders of {s}/ differ from train/'s ({', '.join(only)} "
                                       f"in one only); every split folder needs the same class folders")  # fmt: skip
        return "splits", listing
    classes = {c: [f"{c}/{f}" for f in _images(root / c)] for c in top}
    empty = [c for c, files in classes.items() if not files]
    if empty:
        raise ImageFolderError(f"{root}: the class folder(s) {', '.join(empty)} hold no images "
                               f"({', '.join(IMAGE_SUFFIXES)}) directly inside; expected {LAYOUTS}")  # fmt: skip
    return "classes", {None: classes}


def _round_robin(by_class: list[list[tuple[int, str, np.ndarray]]]) -> list[tuple[int, str, np.ndarray]]:
    """Each class's images (already by relative path), interleaved: rank 0 of every class, then rank 1, ..."""
    longest = max((len(items) for items in by_class), default=0)
    return [items[r] for r in range(longest) for items in by_class if r < len(items)]


@lru_cache(maxsize=8)
def _load(folder: ImageFolder, root: str, stamp: str) -> dict:
    """The decoded splits, classes and digest of ``folder`` at ``root`` (read again when ``stamp`` changes)."""
    p = Path(root)
    layout, listing = _scan(p)
    classes = tuple(next(iter(listing.values())))
    if len(classes) < 2:
        raise ImageFolderError(f"{p}: one class folder ({classes[0]!r}); a classifier needs two or more")
    paths = [(s, i, rel) for s, by in listing.items() for i, c in enumerate(classes) for rel in by.get(c, [])]
    if not paths:
        raise ImageFolderError(f"{p} holds no images: expected {LAYOUTS}")

    def read(item: tuple[str | None, int, str]) -> tuple[str, int, str, np.ndarray]:
        s, target, rel = item
        raw = (p / rel).read_bytes()
        split = s or bucket_split(raw, SALT, folder.test, folder.calib)
        return split, target, rel, folder.decode(raw, p / rel)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # Pillow decodes without the GIL
        decoded = list(pool.map(read, paths))
    if folder.size is None:
        shapes = {}
        for _, _, rel, a in decoded:
            shapes.setdefault(a.shape, rel)
        if len(shapes) > 1:
            (sa, a), (sb, b) = list(shapes.items())[:2]
            raise ImageFolderError(f"{p}: images differ in size: {a} is {sa[1]}x{sa[0]}, {b} is {sb[1]}x{sb[0]}; "
                                   f"give ImageFolder(size=N) to resize every image to N x N")  # fmt: skip
    rule = ["folders"] if layout == "splits" else ["bytes", folder.test, folder.calib]
    h = hashlib.sha256(b"image-folder/v1\0" + json.dumps([classes, rule]).encode() + b"\0")
    splits, files = {}, {}
    for s in SPLITS:
        by_class: list[list] = [[] for _ in classes]
        for split, target, rel, a in decoded:
            if split == s:
                by_class[target].append((target, rel, a))
        items = _round_robin(by_class)
        if not items:
            how = (f"the {s}/ folder holds no images" if layout == "splits" else
                   f"none of the {len(decoded)} images drew it (fraction {getattr(folder, s, 1 - folder.test - folder.calib)})")
            raise ImageFolderError(f"{p}: the {s} split is empty: {how}; every split needs images")
        for target, _, a in items:
            h.update(f"{s}\0{target}\0{a.shape}\0".encode() + a.tobytes())
        images = np.stack([a for _, _, a in items])
        targets = np.asarray([t for t, _, _ in items], np.int64)
        images.setflags(write=False)
        targets.setflags(write=False)
        splits[s], files[s] = (images, targets), tuple(rel for _, rel, _ in items)
    return {"splits": splits, "files": files, "classes": classes, "digest": h.hexdigest()}
