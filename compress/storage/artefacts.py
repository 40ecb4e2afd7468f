"""Artefacts one gate run has built, shared by its processes for that run only.

The gate builds every artefact with the code under test on every run. Its prepare
workers (:mod:`compress.prepare`) build and evaluate them before timing starts; the
serial pass that times them would otherwise build each again (YOLOv8n's LiteRT
exports take 17-40 s each on two cores). So, while a run lasts, a worker saves each
artefact it builds here and the serial pass loads it instead of rebuilding it:

- The folder is the run's own (``$COMPRESS_BENCH_RUN_ARTEFACTS``, a temporary folder
  the gate makes when it starts and removes when it ends, :func:`run_folder`):
  nothing built by an earlier run, or by other code, is ever loaded.
- An entry is keyed by what built it: the cache key of the weights it was exported
  from, its export step, and the device (:meth:`RunArtefacts.key`).
- Only artefacts whose bytes are the whole artefact are saved (ONNX, LiteRT, exported
  programs); a ``pt`` state_dict needs its skeleton (``Artefact.meta``, a function) and
  is rebuilt, which costs a ``state_dict`` save.
- Writes are atomic (:func:`compress.storage.cache.atomic_write_bytes`), the manifest last, so
  a half-written entry is never read; an entry whose bytes do not match its manifest's
  SHA-256 is rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from compress.runtimes.base import Artefact

log = logging.getLogger(__name__)

ENV = "COMPRESS_BENCH_RUN_ARTEFACTS"


class RunArtefacts:
    """The run's artefact folder ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @classmethod
    def from_env(cls) -> "RunArtefacts | None":
        """The folder ``$COMPRESS_BENCH_RUN_ARTEFACTS`` names, or None outside a gate run."""
        raw = os.environ.get(ENV, "")
        return cls(Path(raw)) if raw else None

    @staticmethod
    def key(weights_key: str, export: dict, device: str) -> str:
        """The entry of the artefact exported by step ``export`` (its ``describe()``) from the
        weights cached under ``weights_key``, for ``device``."""
        from compress.storage.cache import recipe_key

        return recipe_key({"weights": weights_key, "export": export, "device": device})

    def _paths(self, name: str, key: str) -> tuple[Path, Path]:
        stem = self.root / f"{name}-{key}"
        return stem.with_suffix(".bin"), stem.with_suffix(".json")

    def get(self, name: str, key: str) -> Artefact | None:
        """The saved artefact, or None (not saved, or not whole)."""
        data_path, manifest = self._paths(name, key)
        try:
            info = json.loads(manifest.read_text())
            data = data_path.read_bytes()
        except (OSError, ValueError):
            return None
        if hashlib.sha256(data).hexdigest() != info.get("sha256"):
            log.warning("%s: the artefact %s saved this run does not match its manifest; rebuilding it", name, key)
            return None
        return Artefact(data, format=info["format"], runtime=info["runtime"])

    def put(self, name: str, key: str, art: Artefact) -> bool:
        """Save ``art`` when its bytes are the whole artefact (``meta`` None); True when saved."""
        if art.meta is not None:
            return False
        from compress.storage.cache import atomic_write_bytes

        data_path, manifest = self._paths(name, key)
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(data_path, art.data)
        info = {"format": art.format, "runtime": art.runtime, "sha256": hashlib.sha256(art.data).hexdigest()}
        atomic_write_bytes(manifest, json.dumps(info).encode())
        return True


@contextlib.contextmanager
def run_folder() -> Iterator[Path]:
    """A new, empty artefact folder named in ``$COMPRESS_BENCH_RUN_ARTEFACTS`` while the block runs
    (so spawned workers see it too); removed, and the variable restored, at its end."""
    before = os.environ.get(ENV)
    root = Path(tempfile.mkdtemp(prefix="compress-bench-artefacts-"))
    os.environ[ENV] = str(root)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
