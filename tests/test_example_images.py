"""The image-folder example (``examples/team-images``: ``team_images``, model ``team_folder_cnn``), gated end to end.

A real image folder is written in ``tmp_path`` from Fashion-MNIST: four classes, each a
folder named after its Fashion-MNIST class, in the ``train/``, ``calib/`` and ``test/``
layout, the images of each drawn from the same split of Fashion-MNIST (the first of
each class in the split's order), 1,460 PNGs in all. The gate is then run on the
example from a cold cache, in a subprocess (the registry is process-global): it
trains ``team_folder_cnn`` on the folder and holds every gate pair to the example's
``thresholds.toml``.

The split layout keeps the splits independent of the PNG encoder's bytes (the
``root/<class>/<image>`` layout draws them from each file's bytes, which a zlib
other than this environment's would change; tests/test_image_folder.py covers it).
"""

import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from compress.data import fashion_mnist as fm
from tests.test_plugins import ROOT, _env, _run

EXAMPLE = ROOT / "examples" / "team-images"
TEAM_FILE = EXAMPLE / "thresholds.toml"
PAIRS = ("fp32", "dynamic_range", "onnx_fp32", "onnx_int8")
CLASSES = ("Trouser", "Pullover", "Shirt", "Ankle boot")  # Fashion-MNIST class names: two easy, two confusable
PER_CLASS = {"train": 250, "calib": 15, "test": 100}  # calib: 60 images, onnx_int8 calibrates on 50

# The cold gate trains team_folder_cnn (10 epochs on 1,000 images: 9-12 s on one thread of a loaded
# 2-core machine); the whole test took 15-20 s there (wall), 19 s of CPU with its subprocesses.
needs_fashion_mnist = pytest.mark.skipif(fm.FASHION_MNIST.unavailable() is not None,
                                         reason="builds its image folder from real Fashion-MNIST, not installed here")  # fmt: skip


def write_folder(root: Path, per_class: dict[str, int] = PER_CLASS, classes=CLASSES) -> Path:
    """``root/<split>/<class>/<k>.png``: the first ``per_class[split]`` Fashion-MNIST images of each class
    in ``classes`` from the same split of Fashion-MNIST, as 28 x 28 grey PNGs (lossless: the folder's
    pixels are Fashion-MNIST's)."""
    from PIL import Image

    data = fm.load_fashion_mnist()
    for split, n in per_class.items():
        images, labels = data.split(split)
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for k, i in enumerate(np.flatnonzero(labels == fm.CLASSES.index(name))[:n]):
                Image.fromarray(images[i]).save(folder / f"{k:04d}.png")
    return root


def _gate(cache: Path, images: Path, bounds: Path = TEAM_FILE) -> tuple:
    """The gate on the example's pairs, with ``bounds``, its images at ``images``: (process, wall seconds)."""
    t0 = time.perf_counter()
    res = _run(
        [sys.executable, "-m", "pytest", "benchmarks/", "--benchmark-only", "--plugin", "team_images", "--thresholds", str(bounds), "-k", "team_folder",
         "-p", "no:cacheprovider", "--benchmark-disable-gc"],
        _env(EXAMPLE, COMPRESS_BENCH_CACHE=str(cache), COMPRESS_BENCH_PREPARE_JOBS="1", TEAM_IMAGES=str(images)),
        timeout=600,
    )  # fmt: skip
    return res, time.perf_counter() - t0


@needs_fashion_mnist
def test_gate_end_to_end_trains_team_folder_cnn_on_an_image_folder_and_holds_its_bounds(tmp_path):
    images = write_folder(tmp_path / "team-images")
    res, seconds = _gate(tmp_path / "cache", images)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    # its 4 pairs and the gate's self-test on its model (benchmarks/test_planted.py)
    assert re.search(r"\b5 passed\b", out) and not re.search(r"\d+ (failed|skipped|error)", out), out
    assert re.search(r"^team_folder_cnn: fp32 accuracy .* FAILS, as it must; .* passes, as it must$", res.stdout, re.M), out
    for t in PAIRS:  # each pair measured, in the run's summary table
        assert re.search(rf"^team_folder_cnn\s+{t}\s", res.stdout, re.M), t
    assert any((tmp_path / "cache" / "models").glob("team_folder_cnn-*")), "trained from a cold cache"
    print(f"gate end to end: {seconds:.0f} s")

    # an impossible team bound fails, naming the team's file (warm now: nothing is trained)
    scratch = tmp_path / "scratch.toml"
    text = TEAM_FILE.read_text()
    entry = re.search(r"^\[team_folder_cnn\.onnx_int8\]\n(?:.*\n)*?retention = \{ min = ([0-9.]+),", text, re.M)
    scratch.write_text(text[: entry.start(1)] + "1.5" + text[entry.end(1):])
    res, _ = _gate(tmp_path / "cache", images, scratch)
    out = res.stdout + res.stderr
    assert res.returncode == 1 and re.search(r"\b1 failed, 4 passed\b", out), out
    assert re.search(r"team_folder_cnn\.onnx_int8: retention 1\.0\d+ is below min 1\.5 .*bound set in "
                     + re.escape(str(scratch)) + r"\)", out), out
