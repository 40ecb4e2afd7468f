"""YOLOv8n, built from ultralytics' own yaml and trained by the suite on real Fashion-MNIST canvases.

The network is ``yolov8n.yaml`` as ultralytics ships it (its ``n`` scale: 3.0 M
parameters with this set's ten classes), trained from scratch by ultralytics' own
trainer (``DetectionTrainer``: its augmentation, its loss, ``deterministic=True``,
a fixed seed, the initial weights seeded too) on the 2,000 training canvases of
:mod:`compress.data.detection_canvas` at ``imgsz`` pixels, for ``epochs`` (8) epochs,
AdamW at ``learning_rate`` 0.004 after one warm-up epoch, with no per-epoch
validation. Eight epochs are all within ultralytics' ``close_mosaic`` (10), so no
mosaic augmentation is used: the canvases are composites already. Measured on the
test canvases (mAP50-95, one run each, 2,000 canvases, 8 epochs, about 215 s):
ultralytics' automatic choice (AdamW at 0.000714, 3 warm-up epochs) 0.560; AdamW at
0.002, 0.660; at 0.004 with one warm-up epoch, 0.673. Twenty epochs on 4,000
canvases (the last ten without mosaic) reached 0.762 on the calib canvases in
1,066 s: five times the cost. What ships is the trainer's EMA of the weights, taken
in float32 from memory (ultralytics' checkpoints store it in half precision).

Every artefact takes float32 ``(N, 3, imgsz, imgsz)`` images in [0, 1] and returns
the detection head's raw predictions with box coordinates normalized by the input
size (:mod:`compress.metrics.detection` scores them). It is exported from
:func:`deploy_module`: the model as ultralytics' exporter prepares it (batch norm
fused, the head in export mode, ``C2f`` on its split forward), wrapped in the
exporter's own ``_NormalizeCoords``. ONNX and LiteRT artefacts are built by
:mod:`compress.techniques.ultralytics_export`.

ultralytics reads its settings from ``$YOLO_CONFIG_DIR`` (set to a folder of the
suite's cache by :func:`compress.frameworks.ultralytics`) and never reaches the
network here: the yaml ships in its wheel, the dataset is on disk, and nothing is
installed at run time (every export dependency is pinned).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np

from compress.data import detection_canvas as canvas
from compress.data.fashion_mnist import CLASSES
from compress.models import torch_common
from compress.models.base import Recipe
from compress.models.detection.yolo_blocks import split_c2f

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def _split(spec: canvas.CanvasSpec, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Model-ready ``(x, targets)`` of a split (memoized: do not write to the arrays)."""
    c = canvas.canvas_set(spec, split)
    x = np.repeat(c.images[:, None].astype(np.float32) / 255.0, 3, axis=1)
    n, size = len(c.images), spec.size
    y = np.zeros((n, spec.max_objects, 6), np.float32)
    y[:, :, 0] = np.arange(n)[:, None]
    y[:, :, 1] = -1  # padding
    slot = np.zeros(n, int)
    for i, cls, *box in c.boxes:
        i = int(i)
        y[i, slot[i], 1:] = (cls, *(np.array(box) / size))
        slot[i] += 1
    return np.ascontiguousarray(x), y


def dataset_dir(spec: canvas.CanvasSpec, names: tuple[str, ...]) -> Path:
    """The ultralytics dataset of ``spec``'s train and calib canvases, written once into the
    cache (atomically, under a lock); its yaml is ``<dir>/data.yaml`` (``val`` is calib)."""
    from compress.storage.cache import atomic_write_dir, cache_root, locked, recipe_key

    key = recipe_key({"spec": asdict(spec), "names": names, "version": canvas.VERSION})
    root = cache_root() / "data" / f"detection-canvases-{key}"
    with locked(root, what=f"the detection canvases {root.name}"):
        if not (root / "data.yaml").exists():
            t0 = time.perf_counter()
            files = canvas.yolo_files(spec)
            files["data.yaml"] = canvas.dataset_yaml(root, names).encode()
            atomic_write_dir(root, files)
            log.info("detection canvases: wrote %d files to %s (%.1f s)", len(files), root, time.perf_counter() - t0)
    return root


def detect_heads(model) -> list:
    """The ``Detect`` heads of an ultralytics model."""
    from ultralytics.nn.modules import Detect

    return [m for m in model.modules() if isinstance(m, Detect)]


def deploy_module(native, imgsz: int, *, fmt: str = "onnx", normalize: bool = True):
    """A copy of ``native`` prepared as ultralytics' exporter prepares it for format ``fmt`` (eval,
    float, batch norm fused, the head in export mode, ``C2f`` on its split forward), wrapped in the
    exporter's ``_NormalizeCoords`` when ``normalize`` (its LiteRT export wraps it itself)."""
    from compress.frameworks import ultralytics

    ultralytics()
    from ultralytics.nn.modules import C2f
    from ultralytics.utils.export.engine import _NormalizeCoords

    model = copy.deepcopy(native).cpu().float().eval()
    for p in model.parameters():
        p.requires_grad = False
    model = model.fuse(verbose=False, imgsz=imgsz)
    for m in detect_heads(model):
        m.dynamic, m.export, m.format, m.shape = False, True, fmt, None
    for m in model.modules():
        if isinstance(m, C2f):
            m.forward = m.forward_split
    if not normalize:
        return model
    return _NormalizeCoords(model, imgsz, imgsz, "detect", len(native.names), None).eval()


@dataclass(frozen=True)
class Yolo(Recipe):
    """YOLOv8n (ultralytics' yaml) trained on Fashion-MNIST canvases; its ``detect`` head scored by mAP50-95."""

    framework: str = field(default="ultralytics", init=False)
    metric: ClassVar[str] = "map50_95"
    yaml: str = "yolov8n.yaml"
    canvases: canvas.CanvasSpec = canvas.CanvasSpec()
    imgsz: int = 128
    epochs: int = 8
    batch_size: int = 32
    optimizer: str = "AdamW"
    learning_rate: float = 0.004
    warmup_epochs: float = 1.0
    seed: int = 0
    names: tuple[str, ...] = CLASSES

    def __post_init__(self) -> None:
        if self.imgsz != self.canvases.size:
            raise ValueError(f"imgsz {self.imgsz} must equal the canvases' size {self.canvases.size} "
                             "(ultralytics would letterbox them otherwise)")  # fmt: skip

    # -- data ------------------------------------------------------------------
    def data(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x (N, 3, S, S) float32 in [0, 1], targets (N, T, 6))`` (see :mod:`compress.metrics.detection`)."""
        return _split(self.canvases, split)

    def dataset_yaml(self) -> Path:
        return dataset_dir(self.canvases, self.names) / "data.yaml"

    # -- the model -------------------------------------------------------------
    def build(self):
        """The untrained network of ``yaml`` with this set's classes."""
        from compress.frameworks import ultralytics

        ultralytics()
        from ultralytics.nn.tasks import DetectionModel

        model = DetectionModel(self.yaml, ch=3, nc=len(self.names), verbose=False)
        model.names = dict(enumerate(self.names))
        return model

    def _train_args(self, runs: str, epochs: int, **more) -> dict:
        args = dict(model=self.yaml, data=str(self.dataset_yaml()), epochs=epochs, imgsz=self.imgsz, batch=self.batch_size,
                    workers=0, device="cpu", amp=False, plots=False, val=False, seed=self.seed,
                    optimizer=self.optimizer, lr0=self.learning_rate, warmup_epochs=self.warmup_epochs,
                    deterministic=True, project=runs, name="run", exist_ok=True, verbose=False)  # fmt: skip
        return {**args, **more}

    def _run_trainer(self, start, epochs: int, label: str, **more):
        """``start`` (a DetectionModel) trained by ultralytics' trainer for ``epochs``; the EMA, float32."""
        from compress.frameworks import ultralytics

        ultralytics()
        import torch
        from ultralytics.models.yolo.detect import DetectionTrainer

        t0 = time.perf_counter()

        def progress(trainer) -> None:
            done = trainer.epoch + 1
            left = (time.perf_counter() - t0) / done * (epochs - done)
            log.info("%s: epoch %d/%d, loss %s, about %.0f s left", label, done, epochs,
                     " ".join(f"{k} {float(v):.3f}" for k, v in (trainer.tloss or {}).items()) or "-", left)  # fmt: skip

        with tempfile.TemporaryDirectory(prefix="compress-bench-yolo-") as runs, \
                torch_common.torch_threads(torch_common.TRAIN_THREADS):  # fmt: skip
            trainer = DetectionTrainer(overrides=self._train_args(runs, epochs, **more))
            trainer.add_callback("on_train_epoch_end", progress)
            trainer.model = start  # DetectionTrainer.setup_model keeps a module it is given
            trainer.train()
            model = copy.deepcopy(trainer.ema.ema).float().eval()
        for p in model.parameters():
            p.requires_grad = True
        model.names = dict(enumerate(self.names))
        log.info("%s: %d epochs in %.0f s", label, epochs, time.perf_counter() - t0)
        return model

    def train(self, label: str):
        import torch

        torch.manual_seed(self.seed)  # the initial weights (ultralytics seeds only what it builds itself)
        return self._run_trainer(self.build(), self.epochs, f"train {label}")

    def extra_metrics(self, predict: Callable, reference_predict: Callable) -> dict:
        """mAP50 (the first of the ten IoU thresholds) of the artefact and of its fp32 reference."""
        from compress.metrics.detection import ap_table, outcomes_of

        x, targets = self.data("test")
        return {"map50": float(ap_table(outcomes_of(predict, x, targets))[:, 0].mean()),
                "map50_fp32": float(ap_table(outcomes_of(reference_predict, x, targets))[:, 0].mean())}  # fmt: skip

    def fit(self, native, *, epochs: float, learning_rate: float, label: str, callbacks=()) -> None:
        """Fine-tune ``native`` in place with ultralytics' trainer: ``epochs`` (rounded up to whole
        epochs) at ``learning_rate``, no warm-up; its weights become the trainer's EMA.

        Raises:
            ValueError: ``callbacks`` given (a per-step schedule: ultralytics' trainer runs its own loop).
        """
        if callbacks:
            raise ValueError("a YOLO fine-tune runs ultralytics' trainer: per-step callbacks are not supported")
        whole = max(1, math.ceil(epochs))
        tuned = self._run_trainer(native, whole, label, lr0=learning_rate, warmup_epochs=0.0)
        native.load_state_dict(tuned.state_dict())
        native.eval()

    def weights(self, native) -> list[np.ndarray]:
        return torch_common.state_arrays(native)

    def load(self, weights):
        """The detector holding ``weights``: the dense network, or a channel-pruned one (its
        :class:`~compress.models.detection.yolo_blocks.C2fSplit` blocks, resized to the arrays)."""
        model = self.build()
        if len(weights) != len(model.state_dict()):
            split_c2f(model)
        return torch_common.load_arrays(model, weights).eval()

    def count_params(self, native) -> int:
        """Every parameter, as ultralytics counts them (its trainer freezes the DFL convolution's 16)."""
        return int(sum(p.numel() for p in native.parameters()))


# -- a published (or a user's) checkpoint on its own dataset: the hub tier --------------------------

ENV_WEIGHTS = "COMPRESS_BENCH_YOLO_WEIGHTS"
ENV_DATA = "COMPRESS_BENCH_YOLO_DATA"
ENV_IMGSZ = "COMPRESS_BENCH_YOLO_IMGSZ"


def _ultralytics_dirs() -> tuple[Path, Path]:
    """Where ultralytics downloads weights and datasets: folders of the suite's cache (set in its settings)."""
    from compress.storage.cache import cache_root
    from compress.frameworks import ultralytics

    ultralytics()
    from ultralytics.utils import SETTINGS

    weights, datasets = cache_root() / "ultralytics" / "weights", cache_root() / "ultralytics" / "datasets"
    if SETTINGS.get("weights_dir") != str(weights) or SETTINGS.get("datasets_dir") != str(datasets):
        SETTINGS.update({"weights_dir": str(weights), "datasets_dir": str(datasets)})
    return weights, datasets


@lru_cache(maxsize=2)
def _checkpoint_split(data_yaml: str, imgsz: int, calib_images: int, split: str) -> tuple:
    """``(x, targets, names)`` of a dataset's ``val`` images as ultralytics' validator reads them at
    ``imgsz`` (letterboxed to a square, ``rect=False``): ``calib`` its first ``calib_images``, ``test`` the rest."""
    from compress.frameworks import ultralytics

    ultralytics()
    from ultralytics.cfg import get_cfg
    from ultralytics.data.build import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(data_yaml)
    cfg = get_cfg(overrides={"imgsz": imgsz, "rect": False, "task": "detect"})
    dataset = build_yolo_dataset(cfg, data["val"], 1, data, mode="val", rect=False)
    n = len(dataset)
    if n <= calib_images:
        raise ValueError(f"{data_yaml}: {n} val images, not more than the {calib_images} kept for calibration")
    part = range(calib_images) if split == "calib" else range(calib_images, n)
    items = [dataset[i] for i in part]
    x = np.stack([item["img"].numpy() for item in items]).astype(np.float32) / 255.0
    if x.shape[2:] != (imgsz, imgsz):
        raise ValueError(f"{data_yaml}: images read at {x.shape[2:]}, not {imgsz} square")
    most = max(1, max(len(item["cls"]) for item in items))
    targets = np.zeros((len(items), most, 6), np.float32)
    targets[:, :, 0] = np.arange(len(items))[:, None]
    targets[:, :, 1] = -1
    for k, item in enumerate(items):
        cx, cy, w, h = item["bboxes"].numpy().T  # normalized, in the letterboxed frame
        targets[k, : len(cx), 1] = item["cls"].numpy().ravel()
        targets[k, : len(cx), 2:] = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    return np.ascontiguousarray(x), targets, tuple(data["names"][i] for i in sorted(data["names"]))


@dataclass(frozen=True)
class YoloCheckpoint(Recipe):
    """A trained ultralytics detector (``weights``: a ``.pt`` checkpoint) scored on a dataset
    (``data``: an ultralytics dataset yaml) without training: its ``val`` images' first
    ``calib_images`` calibrate, the rest are the test set.

    By default ultralytics' own ``yolov8n.pt`` (COCO) on ``coco128.yaml``: both downloaded by
    ultralytics from its GitHub releases, so only with ``COMPRESS_BENCH_HUB=1`` (the network);
    ``$COMPRESS_BENCH_YOLO_WEIGHTS`` and ``$COMPRESS_BENCH_YOLO_DATA`` name a local checkpoint
    and dataset instead. coco128 is the first 128 images of COCO train2017, which yolov8n.pt
    was trained on: its mAP here is not a held-out one, but every artefact is scored on the
    same images, so retention compares like with like.
    """

    framework: str = field(default="ultralytics", init=False)
    metric: ClassVar[str] = "map50_95"
    unsupported: ClassVar[dict] = {
        "ChannelPruningConfig": "its recovery fine-tune would train on the checkpoint's dataset, whose "
                                "train and val images may be the same (coco128's are)"}  # fmt: skip
    weights_file: str = "yolov8n.pt"
    data_yaml: str = "coco128.yaml"
    imgsz: int = 640
    calib_images: int = 32

    @classmethod
    def from_env(cls) -> "YoloCheckpoint":
        """The checkpoint, dataset and input size ``$COMPRESS_BENCH_YOLO_WEIGHTS``, ``..._DATA`` and
        ``..._IMGSZ`` name (defaults: ``yolov8n.pt``, ``coco128.yaml``, 640).

        Raises:
            ValueError: ``$COMPRESS_BENCH_YOLO_IMGSZ`` is not a positive multiple of 32.
        """
        imgsz = os.environ.get(ENV_IMGSZ) or "640"
        if not imgsz.isdigit() or int(imgsz) % 32 or int(imgsz) == 0:
            raise ValueError(f"{ENV_IMGSZ} must be a positive multiple of 32 (the detector's stride), got {imgsz!r}")
        return cls(weights_file=os.environ.get(ENV_WEIGHTS) or "yolov8n.pt",
                   data_yaml=os.environ.get(ENV_DATA) or "coco128.yaml", imgsz=int(imgsz))  # fmt: skip

    def _local_weights(self) -> Path | None:
        path = Path(self.weights_file).expanduser()
        if path.is_file():
            return path
        cached = _ultralytics_dirs()[0] / self.weights_file
        return cached if path.name == self.weights_file and cached.is_file() else None

    def _local_data(self) -> bool:
        path = Path(self.data_yaml).expanduser()
        if path.suffix not in (".yaml", ".yml"):
            return False
        if path.is_file():
            return True
        return (_ultralytics_dirs()[1] / path.stem).is_dir()  # an ultralytics dataset already downloaded

    def unavailable(self) -> str | None:
        """Why this checkpoint cannot run here, or None. Never downloads."""
        from compress.models.text.hub_text import ENV_HUB, hub_allowed

        try:
            import ultralytics  # noqa: F401
        except ImportError:
            return "ultralytics is not installed (the suite's `detection` extra)"
        missing = [what for what, ok in (("checkpoint " + self.weights_file, self._local_weights()),
                                         ("dataset " + self.data_yaml, self._local_data())) if not ok]  # fmt: skip
        if not missing or hub_allowed():
            return None
        return (f"{' and '.join(missing)} not on this machine: ultralytics downloads them from GitHub; set "
                f"{ENV_HUB}=1 (with the network), or name a local .pt and dataset yaml in {ENV_WEIGHTS} and {ENV_DATA}")

    def _weights_path(self) -> Path:
        local = self._local_weights()
        if local:
            return local
        from ultralytics.utils.downloads import attempt_download_asset

        return Path(attempt_download_asset(str(_ultralytics_dirs()[0] / self.weights_file)))

    def source_digest(self) -> str:
        from compress.storage.cache import sha256_file

        return sha256_file(self._weights_path())

    @property
    def names(self) -> tuple[str, ...]:
        return _checkpoint_split(self.data_yaml, self.imgsz, self.calib_images, "calib")[2]

    def data(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        if split not in ("calib", "test"):
            raise ValueError(f"a checkpoint's dataset has 'calib' and 'test' splits, not {split!r} (nothing is trained)")
        _ultralytics_dirs()
        x, targets, _ = _checkpoint_split(self.data_yaml, self.imgsz, self.calib_images, split)
        return x, targets

    def _checkpoint_model(self):
        from compress.frameworks import ultralytics

        ultralytics()
        from ultralytics.nn.tasks import load_checkpoint

        model, _ = load_checkpoint(self._weights_path())
        return model.float().eval()

    def train(self, label: str):
        """The checkpoint's model as it is (nothing is trained)."""
        model = self._checkpoint_model()
        log.info("%s: read %s (%d parameters)", label, self._weights_path(), self.count_params(model))
        return model

    def weights(self, native) -> list[np.ndarray]:
        return torch_common.state_arrays(native)

    def load(self, weights):
        return torch_common.load_arrays(self._checkpoint_model(), weights).eval()

    def count_params(self, native) -> int:
        return int(sum(p.numel() for p in native.parameters()))
