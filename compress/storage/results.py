"""The result store: measure once what cannot have changed.

Accuracy and every other metric computed from an artefact's outputs or bytes
(per-example outcomes, weight sparsity, gzip -9 size, model-specific metrics)
are stored on disk, keyed by everything they depend on:

- the artefact's bytes (SHA-256) and, for metrics that compare with the fp32
  artefact, the reference artefact's bytes too;
- the evaluation data (SHA-256 of the model-ready test arrays and labels);
- the runtime and its version, and the evaluation threads;
- the evaluation code: a digest of the source files that produce the outcomes
  (:func:`code_digest`: the runtime's module and the runtimes' base, the task
  metric's module and the metrics' base, the recipe's module, the runner and this
  module), read from the files, so that an edit to any of them measures again;
  :data:`EVAL_VERSION` and the task metric's own ``version``
  (:class:`compress.metrics.TaskMetric`) say so where a change elsewhere changes
  meaning; and the model recipe's description (its task outputs and preprocessing);
- the CPU (kernels differ between instruction sets: int8 outputs may too).

A warm run still rebuilds every artefact with the code under test; only when the
rebuilt bytes and all the rest match is a stored result reused. Latency is never
stored here: it is measured afresh on every run.

Layout: ``$COMPRESS_BENCH_CACHE/results/<key>.json``. Each entry holds its
payload and the SHA-256 of the payload's canonical JSON; an entry that does not
parse, lacks a field or fails its checksum is logged, deleted and recomputed,
never trusted. Writes are atomic (temporary file, fsync, rename), so a process
killed mid-write leaves the old entry or none.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from compress.storage.cache import atomic_write_bytes, cache_root, recipe_key

log = logging.getLogger(__name__)

# Bump when the evaluation code (scoring, task outputs, metrics) changes meaning.
EVAL_VERSION = 1
ENV_NO_STORE = "COMPRESS_BENCH_NO_RESULT_STORE"


def digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def module_source(name: str) -> bytes:
    """The bytes of module ``name``'s source file (imported or not).

    Raises:
        ValueError: no such module, or one without a source file (a builtin or an extension).
    """
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ValueError(f"module {name!r} has no Python source file to digest")
    return Path(spec.origin).read_bytes()


def code_digest(modules) -> str:
    """SHA-256 over the names and source files of ``modules`` (sorted, each once): what a stored
    result's evaluation code was. Read once a process per set of modules."""
    names = tuple(sorted(set(modules)))
    if names not in _CODE:
        h = hashlib.sha256()
        for name in names:
            h.update(name.encode() + b"\0" + digest_bytes(module_source(name)).encode() + b"\0")
        _CODE[names] = h.hexdigest()
    return _CODE[names]


_CODE: dict[tuple[str, ...], str] = {}


def digest_arrays(*arrays: np.ndarray) -> str:
    """SHA-256 over the dtype, shape and bytes of each array, in order."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def pack_bools(x: np.ndarray) -> dict:
    """A boolean vector as JSON: length and base64 of its packed bits."""
    x = np.asarray(x, dtype=bool)
    return {"n": int(x.size), "bits": base64.b64encode(np.packbits(x).tobytes()).decode("ascii")}


def unpack_bools(d: dict) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(d["bits"], validate=True), dtype=np.uint8)
    out = np.unpackbits(raw)[: int(d["n"])].astype(bool)
    if out.size != int(d["n"]):
        raise ValueError(f"{d['n']} outcomes expected, {out.size} stored")
    return out


def pack_floats(x: np.ndarray) -> dict:
    """A float vector as JSON: length and base64 of its little-endian float64 bytes (exact)."""
    x = np.asarray(x, dtype="<f8")
    return {"n": int(x.size), "f8": base64.b64encode(x.tobytes()).decode("ascii")}


def unpack_floats(d: dict) -> np.ndarray:
    out = np.frombuffer(base64.b64decode(d["f8"], validate=True), dtype="<f8").astype(np.float64)
    if out.size != int(d["n"]):
        raise ValueError(f"{d['n']} outcomes expected, {out.size} stored")
    return out


def _canonical(payload: Any) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


class ResultStore:
    """Verified JSON results keyed by a dict of everything they depend on.

    ``enabled=False`` (or ``$COMPRESS_BENCH_NO_RESULT_STORE=1``) measures every
    time and stores nothing.
    """

    def __init__(self, root: Path | None = None, enabled: bool | None = None):
        self.root = (root or cache_root()) / "results"
        self.enabled = enabled if enabled is not None else os.environ.get(ENV_NO_STORE, "") in ("", "0")
        self.hits = self.misses = 0
        self.stored_at: str | None = None  # when the entry the last get() served was measured (UTC), else None

    def path(self, basis: dict) -> Path:
        return self.root / f"{recipe_key(basis)}.json"

    def get(self, basis: dict, required: tuple[str, ...] = ()) -> dict | None:
        """The stored payload for ``basis``, or None when absent or not verifiable."""
        self.stored_at = None
        if not self.enabled:
            return None
        path = self.path(basis)
        if not path.exists():
            self.misses += 1
            return None
        try:
            entry = json.loads(path.read_bytes())
            payload = entry["payload"]
            if digest_bytes(_canonical(payload)) != entry["sha256"]:
                raise ValueError("checksum mismatch")
            if entry.get("basis") != json.loads(_canonical(basis)):
                raise ValueError("stored for another basis")
            missing = [k for k in required if k not in payload]
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
        except Exception as exc:  # any defect means: measure again, never trust
            log.warning("stored result %s is unusable (%s); measuring again", path.name, exc)
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        self.stored_at = entry.get("stored_at", "before stored entries were dated")
        return payload

    def put(self, basis: dict, payload: dict) -> None:
        if not self.enabled:
            return
        import time

        entry = {"basis": json.loads(_canonical(basis)), "payload": payload,
                 "sha256": digest_bytes(_canonical(payload)),
                 "stored_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
        atomic_write_bytes(self.path(basis), json.dumps(entry, sort_keys=True).encode())
