"""Object detection: the canvas set, the mAP metric against ultralytics' own validator, its store
format and bootstrap bounds, and the ONNX and LiteRT artefacts of a YOLOv8n trained briefly on
small canvases (64 px, a few hundred: about a minute in all)."""

from __future__ import annotations

import numpy as np
import pytest

from compress.data import detection_canvas as dc
from compress.metrics import detection, get_metric

# one item a canvas at 40-60 px: what a few epochs learn to detect (10 epochs on 768 canvases: mAP50-95 about 0.4)
SMALL = dc.CanvasSpec(size=64, scales=(40, 60), max_objects=1, counts=(("train", 768), ("calib", 32), ("test", 64)))


def test_canvases_are_deterministic_with_boxes_inside_and_real_classes():
    a, b = dc.canvas_set(SMALL, "test"), dc.compose(*_items("test"), SMALL, 64, dc.SPLIT_SEEDS["test"] * 1000 + dc.VERSION)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert a.images.shape == (64, 64, 64) and a.images.dtype == np.uint8
    i, cls, x1, y1, x2, y2 = a.boxes.T
    assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= 64).all() and (y2 <= 64).all()
    assert (x2 - x1 >= 1).all() and (y2 - y1 >= 1).all()
    assert set(np.unique(cls).astype(int)) <= set(range(10)) and len(np.unique(cls)) > 5
    assert set(np.unique(i).astype(int)) == set(range(64))  # every canvas holds an item
    several = dc.canvas_set(dc.CanvasSpec(size=128, max_objects=4, counts=(("test", 50),)), "test")
    per_image = np.bincount(several.boxes[:, 0].astype(int), minlength=50)
    assert per_image.min() >= 1 and per_image.max() > 2  # several items at several scales
    sides = several.boxes[:, 4] - several.boxes[:, 2]
    assert sides.max() > 2 * sides.min()
    # a box's pixels are ink: the item is where its box says
    k = 0
    x1, y1, x2, y2 = a.boxes[k, 2:].astype(int)
    assert a.images[int(a.boxes[k, 0]), y1:y2, x1:x2].max() > dc.INK


def _items(split):
    from compress.data import load_fashion_mnist

    return load_fashion_mnist().split(split)


def test_canvas_spec_rejects_bad_settings():
    with pytest.raises(ValueError, match="scales"):
        dc.CanvasSpec(size=64, scales=(24, 80))
    with pytest.raises(ValueError, match="max_objects"):
        dc.CanvasSpec(max_objects=0)
    with pytest.raises(ValueError, match="unknown split"):
        dc.CanvasSpec(counts=(("val", 3),))


def test_yolo_label_files_hold_normalized_centre_boxes():
    c = dc.canvas_set(SMALL, "calib")
    lines = dc.yolo_labels(c, 0, 64).splitlines()
    boxes = c.boxes_of(0)
    assert len(lines) == len(boxes)
    cls, cx, cy, w, h = (float(v) for v in lines[0].split())
    _, k, x1, y1, x2, y2 = boxes[0]
    assert cls == k and cx == pytest.approx((x1 + x2) / 128, abs=1e-6) and w == pytest.approx((x2 - x1) / 64, abs=1e-6)


def _perfect_outputs(targets: np.ndarray, anchors: int = 84, classes: int = 10) -> np.ndarray:
    """Raw head outputs ``(N, 4 + classes, anchors)`` holding each target box once, sure of its class."""
    out = np.zeros((len(targets), 4 + classes, anchors), np.float32)
    for n, t in enumerate(targets):
        for a, (_, c, x1, y1, x2, y2) in enumerate(t[t[:, 1] >= 0]):
            out[n, :4, a] = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
            out[n, 4 + int(c), a] = 0.9
    return out


def test_perfect_detections_score_one_and_a_real_regression_is_resolved():
    from compress.models.detection.yolo import Yolo

    metric = get_metric("map50_95")
    recipe = Yolo(canvases=SMALL, imgsz=64)
    _, targets = recipe.data("test")
    perfect = metric.outcomes(_perfect_outputs(targets), targets)
    assert metric.examples(perfect) == 64
    # ultralytics' compute_ap closes the precision envelope at recall 1 + 0.01: a perfect detector scores 0.995
    assert metric.value(perfect)[0] == pytest.approx(0.995)
    # shift every box by an eighth of its width (IoU 7/9): its matches fail at the thresholds above 0.75
    shifted_out = _perfect_outputs(targets)
    shifted_out[:, 0] += shifted_out[:, 2] / 8
    shifted = metric.outcomes(shifted_out, targets)
    value, upper = metric.value(shifted)
    assert value == pytest.approx(0.995 * 0.6, abs=0.02) and upper >= value
    retention, upper = metric.retention(shifted, perfect)
    assert retention == pytest.approx(value / 0.995) and upper < 1.0  # the drop is resolved, not noise
    assert metric.retention(perfect, perfect) == (1.0, 1.0)


def test_detection_outcomes_round_trip_the_result_store_and_truncation_is_caught():
    metric = get_metric("map50_95")
    rows = np.array([[0, -2, -1, 0], [0, -1, 3, 0], [0, 0.8, 3, 1023], [1, -2, -1, 0]], float)
    np.testing.assert_array_equal(metric.unpack(metric.pack(rows)), rows)
    stored = metric.pack(rows)
    with pytest.raises(ValueError):
        metric.unpack({**stored, "columns": 3})
    with pytest.raises(ValueError):
        metric.unpack({**stored, "n": 15})
    assert metric.store_key == "rows" and get_metric("accuracy").store_key == "correct"


def test_bootstrap_is_paired_and_deterministic():
    from compress.models.detection.yolo import Yolo

    metric = get_metric("map50_95")
    _, targets = Yolo(canvases=SMALL, imgsz=64).data("test")
    rows = metric.outcomes(_perfect_outputs(targets), targets)
    a = detection.bootstrap(rows, rows, samples=20)
    np.testing.assert_array_equal(a[:, 0], a[:, 1])
    np.testing.assert_array_equal(a, detection.bootstrap(rows, rows, samples=20))
    with pytest.raises(ValueError, match="different numbers of images"):
        detection.bootstrap(rows, rows[rows[:, 0] < 10], samples=2)


def test_bootstrap_columns_are_the_joint_resamples():
    """Each artefact's column, computed once and memoized, is what one loop drawing the same picks
    for both artefacts gives (the paired bootstrap as first written)."""
    from compress.models.detection.yolo import Yolo

    metric = get_metric("map50_95")
    _, targets = Yolo(canvases=SMALL, imgsz=64).data("test")
    rows = metric.outcomes(_perfect_outputs(targets), targets)
    worse = rows[~((rows[:, 1] >= 0) & (rows[:, 0] % 3 == 0))]  # every third image's detections lost
    per = [detection._by_image(r) for r in (worse, rows)]
    rng, joint = np.random.default_rng(7), np.empty((30, 2))
    for s in range(30):
        pick = rng.integers(0, len(per[0]), len(per[0]))
        for j, p in enumerate(per):
            joint[s, j] = detection.ap_table(np.concatenate([p[i] for i in pick])).mean()
    np.testing.assert_array_equal(detection.bootstrap(worse, rows, samples=30, seed=7), joint)
    assert (joint[:, 0] < joint[:, 1]).all()
    np.testing.assert_array_equal(detection.bootstrap(worse, samples=30, seed=7)[:, 0], joint[:, 0])


def test_bootstrap_columns_are_kept_in_the_cache_and_recomputed_when_unreadable(tmp_path, monkeypatch):
    """A column computed once is read back by a process that never computed it (the gate's serial
    pass, the next run); a file that cannot be read is computed again and rewritten."""
    from compress.models.detection.yolo import Yolo

    monkeypatch.setenv("COMPRESS_BENCH_CACHE", str(tmp_path))
    metric = get_metric("map50_95")
    _, targets = Yolo(canvases=SMALL, imgsz=64).data("test")
    rows = metric.outcomes(_perfect_outputs(targets), targets)
    rows = rows[~((rows[:, 1] >= 0) & (rows[:, 0] % 4 == 0))]
    monkeypatch.setattr(detection, "_COLUMNS", {})
    first = detection.bootstrap(rows, samples=12, seed=3)
    (kept,) = (tmp_path / "derived" / "map-bootstrap").glob("*.npy")
    calls = []
    monkeypatch.setattr(detection, "_COLUMNS", {})
    monkeypatch.setattr(detection, "ap_table", lambda r: calls.append(1) or np.zeros((1, 1)))
    np.testing.assert_array_equal(detection.bootstrap(rows, samples=12, seed=3), first)
    assert not calls, "read from the cache, not recomputed"
    kept.write_bytes(b"not an array")
    monkeypatch.setattr(detection, "_COLUMNS", {})
    assert (detection.bootstrap(rows, samples=12, seed=3) == 0).all() and len(calls) == 12  # recomputed
    assert np.load(kept).shape == (12,)


@pytest.fixture(scope="module")
def small_yolo(tmp_path_factory):
    """A YOLOv8n trained by ultralytics' trainer for 10 epochs on 768 small canvases."""
    import os

    from compress.models.detection.yolo import Yolo

    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("COMPRESS_BENCH_CACHE")
    os.environ["COMPRESS_BENCH_CACHE"] = str(cache)
    try:
        recipe = Yolo(canvases=SMALL, imgsz=64, epochs=10)
        yield recipe, recipe.train("small"), cache
    finally:
        if old is None:
            os.environ.pop("COMPRESS_BENCH_CACHE", None)
        else:
            os.environ["COMPRESS_BENCH_CACHE"] = old


def test_the_metric_equals_ultralytics_own_validation(small_yolo):
    """DetectionValidator (``model.val``, square batches as the artefacts see them, COCO's 100
    boxes) and compress.metrics.detection score the same trained model alike."""
    import torch

    from compress.models.detection.yolo import deploy_module

    recipe, model, cache = small_yolo
    root = cache / "test-set"
    files = dc.yolo_files(recipe.canvases, splits=("test",))
    files["data.yaml"] = dc.dataset_yaml(root, recipe.names, train="test", val="test").encode()
    from compress.storage.cache import atomic_write_dir

    atomic_write_dir(root, files)
    from ultralytics.models.yolo.detect import DetectionValidator

    validator = DetectionValidator(save_dir=cache / "val", args=dict(data=str(root / "data.yaml"), imgsz=64, batch=32,
                                   workers=0, device="cpu", plots=False, rect=False, max_det=100, half=False))  # fmt: skip
    theirs = validator(model=model)
    metric = get_metric("map50_95")
    x, targets = recipe.data("test")
    with torch.no_grad():
        outputs = deploy_module(model, recipe.imgsz)(torch.from_numpy(x)).numpy()
    rows = metric.outcomes(outputs, targets)
    ours = detection.ap_table(rows)
    assert theirs["metrics/mAP50-95(B)"] > 0.01, "the small model detects nothing: the comparison would be empty"
    assert float(ours.mean()) == pytest.approx(theirs["metrics/mAP50-95(B)"], abs=1e-4)
    assert float(ours[:, 0].mean()) == pytest.approx(theirs["metrics/mAP50(B)"], abs=1e-4)


def test_onnx_and_litert_artefacts_agree_with_the_torch_model(small_yolo):
    """Every export handler's artefact runs in its runtime and returns the head's normalized outputs;
    the float ones match torch, the quantized ones keep most of its mAP. Built as a run builds them
    (the runner's exports: the float16 and int8 LiteRT models from the one float32 conversion)."""
    import torch

    from compress.models.detection.yolo import deploy_module
    from compress.runner import LoadedModel, Runner
    from compress.runtimes.base import get_runtime
    from compress.techniques.onnx_export import OnnxConfig
    from compress.techniques.quantization import Float16Config, Float32Config, Int8Config

    recipe, model, _ = small_yolo
    loaded, runner = LoadedModel("small", "ultralytics", recipe, model, "k"), Runner()
    x, targets = recipe.data("test")
    with torch.no_grad():
        reference = deploy_module(model, recipe.imgsz)(torch.from_numpy(x[:5])).numpy()
    metric = get_metric("map50_95")
    for config, tol in ((OnnxConfig("fp32"), 1e-4), (Float32Config(), 1e-4), (Float16Config(), 5e-3)):
        art = runner.exported(loaded, config)
        out = get_runtime(art.runtime).load(art, 1).predict(x[:5], batch_size=5)
        assert out.shape == reference.shape
        np.testing.assert_allclose(out, reference, atol=tol * 64, rtol=tol)
        if isinstance(config, Float16Config):  # every kernel read from its float16 constant: XNNPACK takes
            kernels = get_runtime(art.runtime).load(art, 1).weight_arrays()  # DEQUANTIZE over, and its
            convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())  # outputs are unset memory
            assert len(kernels) == convs and all(k.dtype == np.float16 for k in kernels)
    fp32 = metric.value(metric.outcomes(deploy_module(model, recipe.imgsz)(torch.from_numpy(x)).detach().numpy(),
                                        targets))[0]  # fmt: skip
    for config in (OnnxConfig("int8", calibration_size=32, op_types=("Conv",)), Int8Config(calibration_size=32)):
        art = runner.exported(loaded, config)
        out = get_runtime(art.runtime).load(art, 1).predict(x)
        assert metric.value(metric.outcomes(out, targets))[0] > 0.5 * fp32, type(config).__name__


def test_litert_exports_are_ultralytics_own_bytes_and_a_fixed_batch_graph_runs_one_image_at_a_time(small_yolo):
    from compress.registry import handler_for
    from compress.runner import LoadedModel
    from compress.runtimes.base import get_runtime
    from compress.techniques import ultralytics_export
    from compress.techniques.quantization import Float32Config

    recipe, model, _ = small_yolo
    loaded = LoadedModel("small", "ultralytics", recipe, model, "k")
    art = handler_for(Float32Config(), "ultralytics")(loaded, Float32Config(), None)
    # int8 quantized from the float32 export (converted once a run) is, byte for byte, ultralytics'
    # own int8 export, a conversion of its own: the exporter's steps are the suite's, and every export
    # gives the same bytes (ultralytics' metadata zip timestamped at a fixed time), as the result store
    # keys measurements by the artefact's digest
    calib = recipe.data("calib")[0][:4]
    theirs = ultralytics_export.fixed_metadata_time(ultralytics_export._litert(loaded, 8, calib))
    ours = ultralytics_export.fixed_metadata_time(ultralytics_export.quantized(art.data, 8, calib))
    assert ours == theirs
    assert ultralytics_export._flatbuffer(ours)[1], "the metadata entry is kept"
    loaded = get_runtime("litert").load(art, 1)
    assert not loaded.batches
    x = recipe.data("test")[0][:3]
    together = loaded.predict(x, batch_size=3)
    apart = np.concatenate([loaded.predict(x[i : i + 1]) for i in range(3)])
    np.testing.assert_array_equal(together, apart)


def test_the_published_checkpoint_is_skipped_offline_saying_how_to_get_it(monkeypatch):
    from compress.models.detection.yolo import ENV_DATA, ENV_WEIGHTS, YoloCheckpoint

    for var in (ENV_WEIGHTS, ENV_DATA, "COMPRESS_BENCH_HUB"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COMPRESS_BENCH_CACHE", "/nonexistent/compress-bench-cache")
    reason = YoloCheckpoint.from_env().unavailable()
    assert "yolov8n.pt" in reason and "coco128.yaml" in reason and "COMPRESS_BENCH_HUB=1" in reason
    assert ENV_WEIGHTS in reason
    monkeypatch.setenv("COMPRESS_BENCH_HUB", "1")
    assert YoloCheckpoint.from_env().unavailable() is None  # ultralytics would download both
    monkeypatch.setenv("COMPRESS_BENCH_YOLO_IMGSZ", "100")
    with pytest.raises(ValueError, match="multiple of 32"):
        YoloCheckpoint.from_env()


def test_a_saved_checkpoint_on_a_local_dataset_runs_the_hub_pairs(small_yolo, monkeypatch, tmp_path):
    """The hub tier's path, end to end, on a locally saved ultralytics checkpoint (half precision, as
    ultralytics saves them) and a local dataset yaml: pairs measured, channel pruning skipped saying why."""
    import copy

    import torch

    from compress.storage.cache import WeightsCache, atomic_write_dir
    from compress.models.detection.yolo import ENV_DATA, ENV_IMGSZ, ENV_WEIGHTS
    from compress.runner import Runner

    recipe, model, cache = small_yolo
    pt = tmp_path / "small.pt"
    torch.save({"model": copy.deepcopy(model).half(), "train_args": {"imgsz": 64}}, pt)
    root = tmp_path / "local-set"
    files = dc.yolo_files(recipe.canvases, splits=("test",))
    files["data.yaml"] = dc.dataset_yaml(root, recipe.names, train="test", val="test").encode()
    atomic_write_dir(root, files)
    monkeypatch.setenv(ENV_WEIGHTS, str(pt))
    monkeypatch.setenv(ENV_DATA, str(root / "data.yaml"))
    monkeypatch.setenv(ENV_IMGSZ, "64")
    monkeypatch.setenv("COMPRESS_BENCH_CACHE", str(cache))
    runner = Runner(cache=WeightsCache(tmp_path / "models"))
    assert runner.skip_reason("yolov8n_coco128", "fp32") is None
    assert "ChannelPruningConfig" in runner.skip_reason("yolov8n_coco128", "channels50")
    x, targets = runner.model("yolov8n_coco128").recipe.data("test")
    assert x.shape == (32, 3, 64, 64)  # 64 test canvases: the first 32 calibrate
    fp32 = runner.evaluate("yolov8n_coco128", "fp32")
    assert fp32.eval_images == 32 and fp32.score > 0.05
    # the checkpoint's half-precision weights, read back in float: the same detections as the model
    int8 = runner.evaluate("yolov8n_coco128", "onnx_int8")
    assert int8.retention > 0.5 and int8.bytes < 0.4 * fp32.bytes


def test_channel_pruning_keeps_the_heads_outputs_and_reloads_from_its_arrays(small_yolo):
    """torch-pruning on the split C2f blocks: fewer parameters, the same output shape and the same
    outputs after a round trip through the weights cache's arrays; the trainer's fine-tune recovers."""
    import torch

    from compress.models.detection.yolo import deploy_module
    from compress.models.detection.yolo_blocks import C2fSplit, split_c2f
    from compress.techniques.ultralytics_channels import prune_detector

    recipe, model, _ = small_yolo
    x, targets = recipe.data("test")
    example = torch.from_numpy(x[:2])
    with torch.no_grad():
        dense_out = model.eval()(example)[0]
        split = split_c2f(__import__("copy").deepcopy(model)).eval()
        np.testing.assert_allclose(split(example)[0].numpy(), dense_out.numpy(), atol=1e-4)  # same function
    assert any(isinstance(m, C2fSplit) for m in split.modules())
    pruned = prune_detector(model, 0.5, example)
    assert recipe.count_params(pruned) < 0.45 * recipe.count_params(model)
    reloaded = recipe.load(recipe.weights(pruned))
    with torch.no_grad():
        a, b = pruned.eval()(example)[0], reloaded(example)[0]
    assert a.shape == dense_out.shape
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    metric = get_metric("map50_95")

    def score(m):
        with torch.no_grad():
            return metric.value(metric.outcomes(deploy_module(m, recipe.imgsz)(torch.from_numpy(x)).numpy(), targets))[0]

    before = score(pruned)
    recipe.fit(pruned, epochs=2, learning_rate=0.002, label="recover")
    assert score(pruned) > before
    with pytest.raises(ValueError, match="callbacks"):
        recipe.fit(pruned, epochs=1, learning_rate=0.002, label="x", callbacks=[lambda step: None])
