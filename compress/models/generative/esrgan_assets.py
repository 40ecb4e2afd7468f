"""ESRGAN-slim super-resolution generators from the npm package ``@upscalerjs/esrgan-slim@1.0.0`` (MIT).

The package carries four generators, one per upscaling factor (x2, x3, x4, x8),
each a TensorFlow.js *layers* model: ``models/x<N>/model.json`` (a Keras 2.10
functional topology: convolutions, ReLUs, concatenations and additions of a
residual dense network, then ``UpSampling2D``; ~230 k parameters) and
``models/x<N>/group1-shard1of1.bin`` (the float32 weights, concatenated in the
order of the json's ``weightsManifest``). UpscalerJS feeds them RGB pixels in
[0, 255] and reads the output in [0, 255]. The package also carries
``assets/fixture.png`` and ``assets/samples/<N>x/result.png``: the fixture as
upscaled by UpscalerJS, which the tests compare against.

How the tarball gets here (offline by default: nothing is downloaded unless asked for):

- :func:`fetch_tarball` (or ``python -m compress.models.generative.esrgan_assets fetch``,
  which ``make bench`` and ``make test`` run) runs the ordinary client,
  ``npm pack @upscalerjs/esrgan-slim@1.0.0`` (npm's own configuration applies:
  registry, proxy), which checks the registry's integrity as it downloads; the
  tarball's SHA-512 is checked again against :data:`INTEGRITY` (the registry's
  published ``dist.integrity``) and kept in ``<cache>/pretrained/esrgan-slim-1.0.0/``.
  ``COMPRESS_BENCH_OFFLINE=1`` forbids the download.
- :func:`install_tarball` takes a tarball already on disk instead.

The files are read straight out of the verified tarball (4.4 MB): nothing is
extracted, so there is no directory that a crash could leave half-written.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from compress.assets import AssetsCorruptError, AssetsNotFoundError, RegistryFile, integrity, npm
from compress.assets import main as assets_main

PACKAGE = "@upscalerjs/esrgan-slim"
VERSION = "1.0.0"
SPEC = f"{PACKAGE}@{VERSION}"
TARBALL = "upscalerjs-esrgan-slim-1.0.0.tgz"  # npm pack's own name for it
#: The registry's ``dist.integrity`` of the tarball (``npm view @upscalerjs/esrgan-slim@1.0.0 dist.integrity``).
INTEGRITY = "sha512-DXtwn5SE71+pZKluN/hGeLaZv6ZylyFQYSvMqU08kKCEA5Y9Q1cIIk4EvPTPZw8VqGi2C6F02c8OjhtId4BK2w=="
#: Its SHA-256 (the digest the suite's cache keys use).
SHA256 = "b53070ff01363e74d33138106dcc72b58d341c9fb7e8fd648554a4e7744142b5"
ENTRY = f"esrgan-slim-{VERSION}"
SCALES = (2, 3, 4, 8)


def entry_dir() -> Path:
    """``<cache>/pretrained/esrgan-slim-1.0.0``: where the verified tarball is kept."""
    return FILE.directory()


def how_to_get() -> str:
    return f"""The ESRGAN-slim generators (npm {SPEC}, {TARBALL}) are not in {entry_dir()}. Any one of these fixes it:
  - on a machine that reaches the npm registry (npm installed):
    python -m compress.models.generative.esrgan_assets fetch
  - fetch it yourself (npm pack {SPEC}; integrity {INTEGRITY}), then
    python -m compress.models.generative.esrgan_assets install DIR/{TARBALL}"""


FILE = RegistryFile(TARBALL, INTEGRITY, f"pretrained/{ENTRY}", npm(SPEC), how_to_get,
                    not_found=AssetsNotFoundError, corrupt=AssetsCorruptError)  # fmt: skip


def check_tarball(blob: bytes, origin: str) -> bytes:
    """``blob`` if it is the published tarball (SHA-512 integrity); :class:`AssetsCorruptError` naming ``origin`` if not."""
    return FILE.check(blob, origin)


def fetch_tarball(*, offline: bool | None = None) -> Path:
    """The verified tarball in :func:`entry_dir`, fetched with ``npm pack`` when absent
    (:meth:`compress.assets.RegistryFile.fetch`; ``offline`` default: ``$COMPRESS_BENCH_OFFLINE``).

    Raises:
        AssetsNotFoundError: absent and not downloadable; the message says how to get it
            and carries npm's error.
        AssetsCorruptError: npm delivered other bytes than the published tarball (nothing is kept).
    """
    return FILE.fetch(offline=offline)


def install_tarball(source: str | os.PathLike[str]) -> Path:
    """Copy a tarball already on disk into the cache, after checking its integrity; the cached path."""
    return FILE.install(source)


def tarball_path() -> Path:
    """The cached tarball (never downloads).

    Raises:
        AssetsNotFoundError: it is not cached; the message says how to get it.
    """
    return FILE.find()


def unavailable() -> str | None:
    """None when the tarball is cached, else why not (one line, saying how to get it)."""
    if FILE.path().is_file():
        return None
    return f"{SPEC} is not in {entry_dir()}: run `python -m compress.models.generative.esrgan_assets fetch` (npm registry)"


@lru_cache(maxsize=2)
def _members(path: str, mtime_ns: int, size: int) -> dict[str, bytes]:
    blob = check_tarball(Path(path).read_bytes(), path)
    out = {}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                out[member.name] = tar.extractfile(member).read()
    return out


def read_member(name: str) -> bytes:
    """A file of the verified tarball (``package/...``).

    Raises:
        AssetsNotFoundError: the tarball is not cached.
        AssetsCorruptError: it is not the published one, or has no such file.
    """
    path = tarball_path()
    st = path.stat()
    members = _members(str(path), st.st_mtime_ns, st.st_size)
    try:
        return members[name]
    except KeyError:
        raise AssetsCorruptError(f"{path} has no file {name}") from None


def read_generator(scale: int) -> tuple[dict, dict[str, np.ndarray]]:
    """``(Keras model_config, {weight name: array})`` of the x``scale`` generator.

    The weights are cut out of the shard in the ``weightsManifest``'s order, each
    checked for its dtype (float32 only) and for the shard's length.

    Raises:
        ValueError: ``scale`` is not one of :data:`SCALES`.
        AssetsCorruptError: the json or the shard do not agree.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    folder = f"package/models/x{scale}"
    spec = json.loads(read_member(f"{folder}/model.json"))
    if spec.get("format") != "layers-model":
        raise AssetsCorruptError(f"{folder}/model.json is a {spec.get('format')!r}, not a TF.js layers model")
    weights: dict[str, np.ndarray] = {}
    for group in spec["weightsManifest"]:
        blob = b"".join(read_member(f"{folder}/{p}") for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            if w.get("dtype") != "float32" or "quantization" in w:
                raise AssetsCorruptError(f"{folder}: weight {w['name']} is {w.get('dtype')}, expected plain float32")
            n = int(np.prod(w["shape"])) * 4
            if offset + n > len(blob):
                raise AssetsCorruptError(f"{folder}: the shard ends inside weight {w['name']}")
            weights[w["name"]] = np.frombuffer(blob, dtype="<f4", count=n // 4, offset=offset).reshape(w["shape"]).copy()
            offset += n
        if offset != len(blob):
            raise AssetsCorruptError(f"{folder}: {len(blob) - offset} bytes of the shard belong to no weight")
    return spec["modelTopology"]["model_config"], weights


def main(argv: list[str] | None = None) -> int:
    """``python -m compress.models.generative.esrgan_assets fetch|install TARBALL``: the tarball into the cache, verified."""
    return assets_main(argv, FILE, prog="python -m compress.models.generative.esrgan_assets", doc=__doc__,
                       install=install_tarball, label="esrgan-slim")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
