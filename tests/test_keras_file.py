"""A team's trained ``.keras`` file measured by the suite (compress/models/vision/keras_file.py).

The team's model is real: a small Keras CNN trained here for two epochs on 3,000 real
Fashion-MNIST training images and saved with ``model.save("classifier.keras")``; it is scored on
a folder of Fashion-MNIST PNGs (:class:`compress.data.image_folder.ImageFolder`).
"""

import numpy as np
import pytest

from compress import registry
from compress.data.fashion_mnist import FASHION_MNIST
from compress.data.image_folder import ImageFolder
from compress.storage.cache import WeightsCache
from compress.models.vision.keras_file import KerasFile
from compress.runner import Runner
from compress.techniques.quantization import Int8Config
from tests.test_data import REAL
from tests.test_ready_onnx import _image_folder

pytestmark = pytest.mark.skipif(not REAL, reason="trains the team's CNN on real Fashion-MNIST, not installed here")


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """``(classifier.keras, the image folder, the trained model's top-1 on the folder's test split)``."""
    from compress.frameworks import tensorflow

    tf = tensorflow()
    tf.keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("team")
    x, y = FASHION_MNIST.split("train")
    inputs = tf.keras.Input((28, 28, 1))
    h = tf.keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    h = tf.keras.layers.MaxPooling2D()(h)
    h = tf.keras.layers.Conv2D(32, 3, activation="relu")(h)
    h = tf.keras.layers.MaxPooling2D()(h)
    h = tf.keras.layers.Flatten()(h)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(10)(h))
    model.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:3000, ..., None] / 255.0, y[:3000], epochs=2, batch_size=32, verbose=0)
    path = root / "classifier.keras"
    model.save(path)
    folder = ImageFolder(str(_image_folder(root / "images", {"train": 60, "calib": 10, "test": 40})), size=28)
    tx, ty = folder.split("test")
    top1 = float((model.predict(tx[..., None] / 255.0, verbose=0).argmax(1) == ty).mean())
    return path, folder, top1


@pytest.fixture
def runner(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    return Runner(cache=WeightsCache(tmp_path / "cache"))


def _register(name, factory):
    registry.register_model(framework="keras", task="image-classification", dataset="team images",
                            tier="unit", name=name)(factory)  # fmt: skip


def test_the_file_is_scored_as_it_is_and_the_litert_techniques_apply(team, runner):
    path, folder, top1 = team
    _register("team_keras", lambda: KerasFile(str(path), folder))
    fp32 = runner.evaluate("team_keras", "fp32")
    assert fp32.score == pytest.approx(top1, abs=1 / 400) and fp32.eval_images == 400 and top1 > 0.5
    int8 = runner.evaluate("team_keras", "int8", Int8Config(calibration_size=100))  # the folder's 100 calib images
    assert int8.size_ratio < 0.5 and int8.retention > 0.9
    pruned = runner.evaluate("team_keras", "prune50")  # tfmot, fine-tuned on the folder's train split
    assert pruned.sparsity > 0.4 and pruned.retention > 0.8
    channels = runner.evaluate("team_keras", "channels50")  # channels removed from the file's own graph
    assert channels.size_ratio < 0.9 and channels.parameters < fp32.parameters and channels.retention > 0.5
    # nothing trained: the cached weights are the file's
    from compress.frameworks import tensorflow

    saved = tensorflow().keras.models.load_model(path, compile=False).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(runner.model("team_keras").native.get_weights(), saved, strict=True))


def test_the_files_bytes_are_in_the_key_its_path_is_not(team, runner, tmp_path):
    path, folder, _ = team
    copy = tmp_path / "elsewhere.keras"
    copy.write_bytes(path.read_bytes())
    _register("team_a", lambda: KerasFile(str(path), folder))
    _register("team_b", lambda: KerasFile(str(copy), folder))
    basis_a, basis_b = runner._model_basis("team_a")[1], runner._model_basis("team_b")[1]
    assert basis_a["source"] == basis_b["source"] and basis_a["recipe"] == basis_b["recipe"]


def test_a_missing_file_says_what_to_give(tmp_path, team):
    _, folder, _ = team
    why = KerasFile(str(tmp_path / "none.keras"), folder).unavailable()
    assert "does not exist" in why and "model.save" in why
    with pytest.raises(TypeError, match="Dataset"):
        KerasFile("x.keras", "not a dataset")
