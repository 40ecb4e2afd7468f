"""Object detection: mAP50-95 through ultralytics' own validation code (higher is better).

The outputs are a YOLO detection head's raw predictions ``(N, 4 + classes, anchors)``
as every artefact of :mod:`compress.models.detection.yolo` returns them: box centre, width and
height normalized by the input size (ultralytics' LiteRT export convention, kept
for every runtime so that one int8 scale holds boxes and class scores alike),
then one score per class. The targets are ``(N, T, 6)`` rows ``(image index, class,
x1, y1, x2, y2)``, corners normalized by the input size, padded with class -1.
Both are scored in a ``FRAME``-pixel frame: IoU, hence matching and AP, does not
depend on the scale, but NMS separates classes by offsetting boxes by ``class x
7680``, which needs coordinates of pixel magnitude to keep float32 precision.

Scoring is DetectionValidator's, step for step, calling its code:
``ultralytics.utils.nms.non_max_suppression`` (confidence 0.001, IoU 0.7,
multi-label, at most ``MAX_DET`` boxes an image: COCO's 100), its
``match_predictions`` (greedy, by confidence, at the ten IoU thresholds 0.50:0.95)
and ``ultralytics.utils.metrics.ap_per_class`` (101-point interpolated AP per class);
mAP50-95 is the mean AP over classes and thresholds, mAP50 its first column.
``tests/test_yolo.py`` checks that the value equals ultralytics' own ``model.val()``.

Per-example outcomes are the rows every image contributes, kept so that AP can
be recomputed on any resample of the images: one marker row per image
``(image, -2, -1, 0)``, one row per ground-truth box ``(image, -1, class, 0)`` and
one per detection ``(image, confidence, class, tp)``, ``tp`` the ten thresholds'
matches as a bit mask. mAP is not a mean over images, so its bounds come from a
paired bootstrap over images (:func:`bootstrap`): ``SAMPLES`` resamples of the test
images, the same for both artefacts, each scored by ``ap_per_class``; a bound is the
``CONFIDENCE`` percentile. The seed is fixed: the same outcomes give the same bound.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from compress.judging import stats
from compress.metrics import Detect, Metric, TaskMetric, _register, register

MAP50_95 = register(Metric(
    "map50_95", "mAP50-95", True, "{:.4f}", ceiling=1.0,
    description="mAP50-95 of a detector on its test canvases (ultralytics' validator code)",
    bound=True, confidence=True, notable=0.005, detect=Detect(0.01, "points", False, True), order=130,
))  # fmt: skip
# the first of the ten IoU thresholds (a detector's extra: compress.models.detection.yolo)
MAP50 = register(Metric("map50", "mAP50", True, "{:.4f}", ceiling=1.0, order=140))

FRAME = 640.0  # coordinates are scored in this frame (see above)
MAX_DET = 100  # detections kept per image (COCO's maxDets)
CONF, IOU = 0.001, 0.7  # DetectionValidator's defaults
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
SAMPLES = 200  # bootstrap resamples of the test images (each one ap_per_class per artefact)
COLUMNS = 4  # image, confidence (or MARKER, TARGET), class, tp bits
MARKER, TARGET = -2.0, -1.0  # the confidence column of an image's marker row and of a ground-truth row
_BITS = 1 << np.arange(len(IOU_THRESHOLDS))


def _torch_ultralytics():
    from compress.frameworks import ultralytics

    ultralytics()
    import torch

    return torch


def detections(outputs: np.ndarray) -> list[np.ndarray]:
    """Per image, ``(D, 6)`` rows ``(x1, y1, x2, y2, confidence, class)`` in the ``FRAME`` after
    ultralytics' non-maximum suppression, by descending confidence."""
    torch = _torch_ultralytics()
    from ultralytics.utils.nms import non_max_suppression

    preds = torch.from_numpy(np.array(outputs, dtype=np.float32))
    preds[:, :4] *= FRAME
    kept = non_max_suppression(preds, CONF, IOU, multi_label=True, max_det=MAX_DET)
    return [k[:, :6].numpy() for k in kept]


def image_rows(det: np.ndarray, target: np.ndarray, image: int) -> np.ndarray:
    """The outcome rows of one image (see the module's docstring)."""
    torch = _torch_ultralytics()
    from ultralytics.engine.validator import BaseValidator
    from ultralytics.utils.metrics import box_iou

    target = target[target[:, 1] >= 0].astype(np.float64)
    target[:, 2:6] *= FRAME
    rows = [np.array([[image, MARKER, -1, 0]])]
    rows.append(np.column_stack([np.full(len(target), image), np.full(len(target), TARGET), target[:, 1],
                                 np.zeros(len(target))]))  # fmt: skip
    tp = np.zeros((len(det), len(IOU_THRESHOLDS)), bool)
    if len(det) and len(target):
        iou = box_iou(torch.from_numpy(target[:, 2:6].astype(np.float32)), torch.from_numpy(det[:, :4]))
        validator = SimpleNamespace(iouv=torch.from_numpy(IOU_THRESHOLDS.astype(np.float32)))
        tp = BaseValidator.match_predictions(validator, torch.from_numpy(det[:, 5]),
                                             torch.from_numpy(target[:, 1].astype(np.float32)), iou).numpy()  # fmt: skip
    rows.append(np.column_stack([np.full(len(det), image), det[:, 4], det[:, 5], tp @ _BITS]))
    return np.concatenate(rows).astype(np.float64)


def outcomes_of(predict, x: np.ndarray, targets: np.ndarray, chunk: int = 50) -> np.ndarray:
    """The outcome rows of ``predict`` (an artefact's) on images ``x`` with ``targets``, ``chunk`` at a time."""
    return np.concatenate([MAP.outcomes(predict(x[i : i + chunk]), targets[i : i + chunk])
                           for i in range(0, len(x), chunk)])  # fmt: skip


def ap_table(rows: np.ndarray) -> np.ndarray:
    """AP ``(classes present, 10 thresholds)`` of outcome ``rows``, by ``ap_per_class``."""
    _torch_ultralytics()
    from ultralytics.utils.metrics import ap_per_class

    det = rows[rows[:, 1] >= 0]
    targets = rows[rows[:, 1] == TARGET, 2]
    if len(targets) == 0:
        raise ValueError("no ground-truth boxes in these outcomes: mAP is undefined")
    tp = (det[:, 3].astype(np.int64)[:, None] & _BITS) > 0
    return ap_per_class(tp, det[:, 1], det[:, 2], targets)[5]


def images(rows: np.ndarray) -> int:
    """How many test images the outcome ``rows`` hold."""
    return int(np.count_nonzero(rows[:, 1] == MARKER))


def _by_image(rows: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(rows[:, 0], kind="stable")
    rows = rows[order]
    cuts = np.flatnonzero(np.diff(rows[:, 0])) + 1
    return np.split(rows, cuts)


def bootstrap(*outcomes: np.ndarray, samples: int = SAMPLES, seed: int = stats.SEED) -> np.ndarray:
    """mAP50-95 of each of ``outcomes`` (same test images) on ``samples`` paired resamples of the
    images: ``(samples, len(outcomes))``.

    Paired: resample ``s`` picks the same images for every artefact (the picks depend only on the
    seed and the number of images), so each artefact's column is computed on its own, once per
    process (:func:`_column`): a pair's value, its retention and its reference's value share them.
    """
    n = images(outcomes[0])
    if any(images(o) != n for o in outcomes):
        raise ValueError(f"outcomes cover different numbers of images: {[images(o) for o in outcomes]}")
    return np.column_stack([_column(o, samples, seed) for o in outcomes])


_COLUMNS: dict[tuple, np.ndarray] = {}  # (outcomes' digest, samples, seed) -> mAP50-95 per resample
_KEPT = 64  # columns kept (200 floats each); the oldest goes first


def _column(rows: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """mAP50-95 of outcome ``rows`` on each of the ``samples`` resamples of :func:`bootstrap`:
    memoized in the process, and kept in the suite's cache (:func:`_stored_column`), as the
    same outcomes are judged again by the gate's serial pass and by every later run."""
    import hashlib

    rows = np.ascontiguousarray(rows, dtype=np.float64)
    key = (hashlib.sha256(rows.tobytes()).hexdigest(), rows.shape, samples, seed)
    if key not in _COLUMNS:
        col = _stored_column(key)
        if col is None:
            per = _by_image(rows)
            n = len(per)
            rng = np.random.default_rng(seed)
            col = np.empty(samples)
            for s in range(samples):
                pick = rng.integers(0, n, n)
                col[s] = ap_table(np.concatenate([per[i] for i in pick])).mean()
            _stored_column(key, col)
        while len(_COLUMNS) >= _KEPT:
            del _COLUMNS[next(iter(_COLUMNS))]
        _COLUMNS[key] = col
    return _COLUMNS[key].copy()


def _stored_column(key: tuple, col: np.ndarray | None = None) -> np.ndarray | None:
    """The column of ``key`` from the cache (``$COMPRESS_BENCH_CACHE/derived/map-bootstrap``), or None;
    with ``col``, store it there. Its file is named by a digest of the key, this module's source and
    the ultralytics version (whose ``ap_per_class`` computes it): a change to either is a new file.
    A file that cannot be read is computed again."""
    import hashlib
    import io
    from importlib.metadata import version

    from compress.storage.cache import atomic_write_bytes, cache_root
    from compress.storage.results import digest_bytes, module_source

    h = hashlib.sha256(repr((key, digest_bytes(module_source(__name__)), version("ultralytics"))).encode())
    path = cache_root() / "derived" / "map-bootstrap" / f"{h.hexdigest()[:32]}.npy"
    if col is not None:
        buf = io.BytesIO()
        np.save(buf, col, allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())
        return col
    try:
        got = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return got if got.shape == (key[2],) and got.dtype == np.float64 else None


class MeanAveragePrecision(TaskMetric):
    descriptor = MAP50_95
    kind = "rows"
    chunk = 50  # images a call

    def outcomes(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        kept = detections(outputs)
        return np.concatenate([image_rows(d, t, int(t[0, 0])) for d, t in zip(kept, targets)])

    def value(self, outcomes: np.ndarray) -> tuple[float, float]:
        point = float(ap_table(outcomes).mean())
        boot = bootstrap(outcomes)[:, 0]
        return point, float(np.quantile(boot, stats.CONFIDENCE))

    def retention(self, outcomes: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
        point = float(ap_table(outcomes).mean() / ap_table(reference).mean())
        boot = bootstrap(outcomes, reference)
        return point, float(np.quantile(boot[:, 0] / boot[:, 1], stats.CONFIDENCE))

    def examples(self, outcomes: np.ndarray) -> int:
        return images(outcomes)

    def pack(self, outcomes: np.ndarray) -> dict:
        from compress.storage.results import pack_floats

        return {"columns": int(outcomes.shape[1]), **pack_floats(outcomes.ravel())}

    def unpack(self, stored: dict) -> np.ndarray:
        from compress.storage.results import unpack_floats

        flat, columns = unpack_floats(stored), int(stored["columns"])
        if columns != COLUMNS or flat.size % columns:
            raise ValueError(f"stored detection outcomes have {flat.size} values in {columns} columns; "
                             f"expected rows of {COLUMNS}")
        return flat.reshape(-1, columns)


MAP = _register(MeanAveragePrecision())
