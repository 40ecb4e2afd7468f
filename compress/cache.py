"""On-disk cache of trained models, outside the repository.

Layout: ``$COMPRESS_BENCH_CACHE`` (default ``~/.cache/compress-bench``) holds
``models/<name>-<key>.npz`` with a ``.json`` manifest beside it. The key is a
hash of the recipe and the library versions that produced the file. A file is
used only when its manifest exists and its SHA-256 matches; anything else
(a crash mid-write, a truncated or corrupt file) is deleted and rebuilt.
Writes are atomic: temporary file, fsync, ``os.replace``; the manifest is
written last, so a file without a manifest is never trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)

ENV_CACHE = "COMPRESS_BENCH_CACHE"


def cache_root() -> Path:
    """The cache directory: ``$COMPRESS_BENCH_CACHE`` or ``~/.cache/compress-bench``."""
    root = os.environ.get(ENV_CACHE)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "compress-bench"


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"type": type(obj).__name__, "fields": _jsonable(dataclasses.asdict(obj))}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in sorted(obj.items())}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def recipe_key(recipe: Any) -> str:
    """A short stable hash of a recipe (dataclasses, dicts, lists, scalars)."""
    blob = json.dumps(_jsonable(recipe), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; cache files are shareable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class WeightsCache:
    """A verified store of weight lists (``list[np.ndarray]``) keyed by recipe."""

    def __init__(self, root: Path | None = None):
        self.root = (root or cache_root()) / "models"

    def paths(self, name: str, key: str) -> tuple[Path, Path]:
        stem = self.root / f"{name}-{key}"
        return stem.with_suffix(".npz"), stem.with_suffix(".json")

    def load(self, name: str, key: str) -> list[np.ndarray] | None:
        """Return the cached weights, or None when absent or not verifiable."""
        data, manifest = self.paths(name, key)
        if not data.exists() and not manifest.exists():
            return None
        try:
            meta = json.loads(manifest.read_text())
            if sha256_file(data) != meta["sha256"]:
                raise ValueError("checksum mismatch")
            with np.load(data, allow_pickle=False) as z:
                return [z[f"w{i}"] for i in range(meta["count"])]
        except Exception as exc:  # any defect means: rebuild, never use
            log.warning("cache entry %s is unusable (%s); rebuilding it", data.name, exc)
            data.unlink(missing_ok=True)
            manifest.unlink(missing_ok=True)
            return None

    def save(self, name: str, key: str, weights: list[np.ndarray], info: dict) -> Path:
        data, manifest = self.paths(name, key)
        buf = io.BytesIO()
        np.savez(buf, **{f"w{i}": np.asarray(w) for i, w in enumerate(weights)})
        blob = buf.getvalue()
        atomic_write_bytes(data, blob)
        meta = {
            "name": name,
            "key": key,
            "count": len(weights),
            "bytes": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **info,
        }
        atomic_write_bytes(manifest, json.dumps(_jsonable(meta), indent=2).encode())
        return data

    def get_or_build(
        self, name: str, key: str, build: Callable[[], list[np.ndarray]], info: dict
    ) -> tuple[list[np.ndarray], bool]:
        """Return ``(weights, cached)``: from the cache, or built and then stored."""
        weights = self.load(name, key)
        if weights is not None:
            return weights, True
        weights = build()
        self.save(name, key, weights, info)
        return weights, False
