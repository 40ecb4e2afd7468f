"""A team's ready ONNX artefact measured as it is (compress/models/vision/ready_onnx.py, examples/team-onnx).

The team's artefact is real: a small torch CNN trained here for one epoch on 4,000 real
Fashion-MNIST training images (seeded, one thread) and exported by ``torch.onnx.export``
(``dynamo=False``) under names of its own (``images`` -> ``scores``). The end-to-end test runs
the example's gate on it from a cold cache, scored on a folder of Fashion-MNIST PNGs
(:class:`compress.data.image_folder.ImageFolder`).
"""

import dataclasses
import re
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from compress import registry
from compress.storage.cache import WeightsCache
from compress.data.fashion_mnist import CLASSES, FASHION_MNIST
from compress.models.vision.ready_onnx import ReadyOnnx, image_input
from compress.runner import Runner, _describe_recipe
from compress.techniques.quantization import Float32Config
from tests.test_data import REAL
from tests.test_plugins import _env, _run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "team-onnx"
TEAM_FILE = EXAMPLE / "thresholds.toml"
TEAM_PAIRS = ("fp32", "onnx_dynamic", "onnx_int8")
REASON = "a ready ONNX artefact is measured as it is; {} needs the model's framework"

needs_real = pytest.mark.skipif(not REAL, reason="trains the team's CNN on real Fashion-MNIST, not installed here")
pytestmark = needs_real


def _cnn():
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),  # 14 x 14
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),  # 7 x 7
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )  # fmt: skip


def _export(net, path: Path, dynamic: bool = True) -> Path:
    import torch

    example = torch.zeros(1, 1, 28, 28)
    axes = {"images": {0: "n"}, "scores": {0: "n"}} if dynamic else None
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no onnxscript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net.eval(), (example,), str(path), dynamo=False, input_names=["images"],
                          output_names=["scores"], dynamic_axes=axes)  # fmt: skip
    return path


@pytest.fixture(scope="module")
def team_net():
    """The team's CNN: one epoch (Adam 2e-3, batch 64) on the first 4,000 training images, seeded, one thread."""
    import torch
    import torch.nn.functional as F

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        net = _cnn()
        x, y = FASHION_MNIST.split("train")
        xt = torch.from_numpy(x[:4000, None].astype(np.float32) / 255)
        yt = torch.from_numpy(y[:4000].astype(np.int64))
        opt = torch.optim.Adam(net.parameters(), 2e-3)
        for idx in torch.randperm(len(xt), generator=torch.Generator().manual_seed(0)).split(64):
            opt.zero_grad()
            F.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
        return net.eval()
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def team_file(team_net, tmp_path_factory) -> Path:
    """The team's artefact: ``model.onnx``, batch axis dynamic."""
    return _export(team_net, tmp_path_factory.mktemp("team") / "model.onnx")


def _image_folder(root: Path, per_class: dict[str, int]) -> Path:
    """Fashion-MNIST PNGs as ``root/<split>/<i>-<class>/<index>.png``: the index prefix keeps the
    sorted folder names in the model's output order."""
    from PIL import Image

    for split, n in per_class.items():
        x, y = FASHION_MNIST.split(split)
        for c, name in enumerate(CLASSES):
            folder = root / split / f"{c}-{name.replace('/', '-')}"
            folder.mkdir(parents=True)
            for i in np.flatnonzero(y == c)[:n]:
                Image.fromarray(x[i]).save(folder / f"{i:05d}.png")
    return root


@pytest.fixture
def registered(monkeypatch, tmp_path):
    """``register(name, factory)``: a model of this test only, and a Runner on a cache of this test's."""
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    def register(name: str, factory) -> Runner:
        registry.register_model(framework="onnx", task="image-classification", dataset="fashion-mnist",
                                tier="unit", name=name)(factory)  # fmt: skip
        return Runner(cache=WeightsCache(tmp_path / "cache"))

    return register


# -- the recipe -------------------------------------------------------------------------


def test_the_file_is_the_fp32_artefact_its_bytes_the_key_its_path_not(team_file, team_net, tmp_path, registered):
    a, b = tmp_path / "a" / "model.onnx", tmp_path / "b" / "model.onnx"
    for p in (a, b):
        p.parent.mkdir()
        shutil.copy(team_file, p)
    recipe = {"now": ReadyOnnx(str(a), FASHION_MNIST, test_size=500)}
    runner = registered("ready_a", lambda: recipe["now"])
    key = runner._model_basis("ready_a")[0]
    res = runner.evaluate("ready_a", "fp32")
    assert runner.artefact("ready_a", Float32Config()).data == team_file.read_bytes()  # byte for byte
    assert (res.size_ratio, res.retention, res.eval_images) == (1.0, 1.0, 500)
    # BatchNorm is folded into the convs: the torch module's parameters less its BatchNorm's
    folded = sum(p.numel() for n, p in team_net.named_parameters() if n.split(".")[0] not in ("1", "5"))
    assert res.parameters == recipe["now"].count_params(team_file.read_bytes()) == folded == 20_490

    recipe["now"] = ReadyOnnx(str(b), FASHION_MNIST, test_size=500)  # the same bytes elsewhere: the same model
    # a recipe is made once a process per registered spec (compress.pair): register the model anew
    registry._MODELS["ready_a"] = dataclasses.replace(registry.get_model("ready_a"))
    assert "path" not in _describe_recipe(recipe["now"])["fields"] and runner._model_basis("ready_a")[0] == key
    import onnx

    changed = onnx.load(str(b))
    changed.doc_string = "retrained"  # any changed byte: measured again
    onnx.save(changed, str(b))
    assert runner._model_basis("ready_a")[0] != key


def test_a_technique_needing_the_framework_is_unsupported_saying_why(team_file, registered):
    runner = registered("ready_c", lambda: ReadyOnnx(str(team_file), FASHION_MNIST))
    every = ("fp32", "onnx_fp32", "onnx_dynamic", "onnx_int8")  # the techniques with a handler for ONNX graphs
    assert registry.pairs(tier="unit", model="ready_c") == [("ready_c", t) for t in every]
    for technique, step in (("prune50", "MagnitudePruningConfig"), ("int8", "Int8Config"),
                            ("channels50", "ChannelPruningConfig"), ("inductor_int8", "InductorConfig")):  # fmt: skip
        assert runner.skip_reason("ready_c", technique) == f"ready_c does not support {step}: {REASON.format(step)}"
    assert runner.skip_reason("ready_c", "onnx_fp32") == ("ready_c: the model is an ONNX graph already: its fp32 pair "
                                                          "measures that graph as it is")  # fmt: skip
    assert [runner.skip_reason("ready_c", t) for t in TEAM_PAIRS] == [None, None, None]
    assert [Runner.reference_technique("ready_c", t) for t in TEAM_PAIRS] == ["fp32"] * 3


def test_weights_are_the_file_and_its_initializers_and_load_writes_changed_ones_back(team_file):
    recipe, data = ReadyOnnx(str(team_file), FASHION_MNIST), team_file.read_bytes()
    weights = recipe.weights(data)
    assert weights[0].tobytes() == data and recipe.load(weights) == data  # unchanged: the file's own bytes
    planted = [weights[0], *(np.zeros_like(w) if w.ndim >= 2 else w for w in weights[1:])]
    rebuilt = recipe.load(planted)
    assert rebuilt != data and all(np.array_equal(a, b) for a, b in zip(recipe.weights(rebuilt)[1:], planted[1:]))


def test_a_graph_with_a_fixed_batch_or_a_missing_file_says_what_to_do(team_net, tmp_path):
    fixed = ReadyOnnx(str(_export(team_net, tmp_path / "fixed.onnx", dynamic=False)), FASHION_MNIST)
    with pytest.raises(ValueError, match=r"batch axis is fixed at 1; export it with a dynamic batch axis"):
        fixed.train("fixed")
    none = str(tmp_path / "none.onnx")
    assert ReadyOnnx(none, FASHION_MNIST).unavailable() == (f"the ONNX model {none} (ReadyOnnx(path={none!r})) "
                                                            "does not exist: put the team's model.onnx there")  # fmt: skip


def test_image_input_resizes_converts_and_lays_out_real_images():
    x = FASHION_MNIST.split("test")[0][:4]
    grey = image_input(x, 28, 1)
    assert grey.shape == (4, 1, 28, 28) and grey.dtype == np.float32
    assert np.allclose(grey[:, 0], x / 255, rtol=0, atol=1e-7)
    rgb = image_input(x, 32, 3, layout="NHWC", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert rgb.shape == (4, 32, 32, 3) and np.array_equal(rgb[..., 0], rgb[..., 2])
    back = image_input(np.repeat(x[..., None], 3, axis=-1), 28, 1)  # RGB to grey by its luma
    assert np.allclose(back, grey, atol=1e-6)


# -- the example's gate, end to end -----------------------------------------------------


def test_gate_end_to_end_measures_the_team_onnx_file_as_it_is(team_file, tmp_path):
    """The example's three pairs and the gate's self-test on a cold cache: nothing trained, every pair
    within the team's bounds; the fp32 pair is the file itself."""
    images = _image_folder(tmp_path / "images", {"train": 10, "calib": 50, "test": 200})
    env = _env(EXAMPLE, COMPRESS_BENCH_CACHE=str(tmp_path / "cache"), COMPRESS_BENCH_PREPARE_JOBS="1",
               TEAM_ONNX=str(team_file), TEAM_ONNX_IMAGES=str(images))  # fmt: skip
    t0 = time.perf_counter()
    res = _run([sys.executable, "-m", "pytest", "benchmarks/", "--benchmark-only", "--plugin", "team_onnx",
                "--thresholds", str(TEAM_FILE), "-k", "team_onnx", "-p", "no:cacheprovider",
                "--benchmark-disable-gc"], env, timeout=600)  # fmt: skip
    out = res.stdout + res.stderr
    print(f"team_onnx gate, cold: {time.perf_counter() - t0:.1f} s")
    assert res.returncode == 0, out
    assert re.search(r"\b4 passed\b", out) and not re.search(r"\d+ (failed|skipped)", out), out
    assert re.search(r"^team_onnx: fp32 accuracy .* FAILS, as it must; .* passes, as it must$", res.stdout, re.M), out
    for t in TEAM_PAIRS:  # each pair measured, in the run's summary table
        assert re.search(rf"^team_onnx\s+{t}\s", res.stdout, re.M), t
    # the fp32 row is the file: its parameters, its bytes, size ratios 1
    row = rf"^team_onnx\s+fp32\s+onnxruntime\s+20,490\s+{team_file.stat().st_size:,}\s+1\.000\s+1\.000\s"
    assert re.search(row, res.stdout, re.M), out
