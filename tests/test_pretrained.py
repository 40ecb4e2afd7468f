"""ImageNet-pretrained Keras recipes and ImageNet-style folders, offline.

The weights are a small tf_keras MobileNetV2 (alpha 0.35, 96 px) saved under
Keras' standard file name; the images are scikit-image's real photos laid out
as an ImageNet validation folder.
"""

import numpy as np
import pytest

from compress import registry
from compress.data import DataNotFoundError
from compress.data.imagenet_folder import ImageNetFolder, ImageNetFolderError, read_synsets
from compress.models.vision import keras_pretrained as kp
from compress.models.vision.keras_pretrained import KerasImageNetClassifier

skdata = pytest.importorskip("skimage.data", reason="real photos come from scikit-image")

SMALL = dict(arch="MobileNetV2", input_size=96, arch_kwargs=(("alpha", 0.35),), test_size=None)
SMALL_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96.h5"


def _save(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """root/<class index>/<photos>: 3 cats, 2 espressos, a shuttle, a grey camera; plus clutter."""
    root = tmp_path_factory.mktemp("val")
    cat, coffee = skdata.chelsea(), skdata.coffee()
    _save(root / "281" / "chelsea.jpg", cat)
    _save(root / "281" / "chelsea_flipped.png", cat[:, ::-1])
    _save(root / "281" / "chelsea_crop.jpg", cat[40:, 60:])
    _save(root / "967" / "coffee.jpg", coffee)
    _save(root / "967" / "coffee_flipped.JPEG", coffee[:, ::-1])
    _save(root / "812" / "rocket.png", skdata.rocket())
    _save(root / "0759" / "camera.png", skdata.camera())  # grey, zero-padded class index
    (root / "281" / "notes.txt").write_text("not an image")
    (root / "281" / ".hidden.jpg").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def saved_weights(tmp_path_factory):
    """A MobileNetV2 0.35/96 model's weights, randomised, saved under Keras' file name."""
    recipe = KerasImageNetClassifier(**SMALL)
    model = recipe._build(None)
    rng = np.random.default_rng(7)
    arrays = [rng.normal(0, 0.05, w.shape).astype(np.float32) for w in model.get_weights()]
    model.set_weights(arrays)
    d = tmp_path_factory.mktemp("weights")
    model.save_weights(str(d / recipe.weights_file_name))
    return d, arrays


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    """An empty home (no ~/.keras/models) and neither environment variable set."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.delenv(kp.ENV_WEIGHTS_DIR, raising=False)
    monkeypatch.delenv(kp.ENV_IMAGENET_VAL, raising=False)
    return tmp_path / "home"


# -- the folder ------------------------------------------------------------------


def test_folder_lists_images_in_sorted_order_with_index_labels(photos):
    f = ImageNetFolder(photos)
    assert [p.relative_to(photos).as_posix() for p in f.files] == [
        "281/chelsea.jpg", "281/chelsea_crop.jpg", "281/chelsea_flipped.png",
        "0759/camera.png", "812/rocket.png",
        "967/coffee.jpg", "967/coffee_flipped.JPEG",
    ]  # fmt: skip
    assert f.labels.dtype == np.int64 and f.labels.tolist() == [281, 281, 281, 759, 812, 967, 967]
    assert f.classes == {"281": 281, "0759": 759, "812": 812, "967": 967}


def test_splits_are_round_robin_over_classes(photos):
    f = ImageNetFolder(photos)
    name = lambda idx: [f.files[i].name for i in idx]  # noqa: E731
    assert name(f.indices("calib")) == ["chelsea.jpg", "camera.png", "rocket.png", "coffee.jpg"]
    assert name(f.indices("test")) == ["chelsea_crop.jpg", "coffee_flipped.JPEG", "chelsea_flipped.png"]
    assert name(f.indices("test", limit=2)) == ["chelsea_crop.jpg", "coffee_flipped.JPEG"]
    two = ImageNetFolder(photos, calib_per_class=2)
    assert len(two.indices("calib")) == 6 and len(two.indices("test")) == 1
    none = ImageNetFolder(photos, calib_per_class=0)
    assert len(none.indices("calib")) == 0 and len(none.indices("test")) == 7
    assert sorted(none.indices("all")) == list(range(7))
    with pytest.raises(ValueError, match="'train'"):
        f.indices("train")
    with pytest.raises(ValueError, match="limit"):
        f.indices("test", limit=0)


def test_load_decodes_real_photos_to_uint8_rgb_crops(photos):
    f = ImageNetFolder(photos)
    x, y = f.load("all", 64)
    assert x.shape == (7, 64, 64, 3) and x.dtype == np.uint8
    assert y.tolist() == [281, 759, 812, 967, 281, 967, 281]
    camera = x[1]
    assert np.array_equal(camera[..., 0], camera[..., 1]) and np.array_equal(camera[..., 0], camera[..., 2])
    # The crop is the photo's centre: its mean colour matches the centre of the original.
    cat = skdata.chelsea().astype(np.float64)
    h, w = cat.shape[:2]
    s = round(min(h, w) * 0.875)
    centre = cat[(h - s) // 2 : (h + s) // 2, (w - s) // 2 : (w + s) // 2].mean(axis=(0, 1))
    assert np.abs(x[0].mean(axis=(0, 1)) - centre).max() < 4
    assert not np.array_equal(x[0], x[6])  # the flipped cat is another image...
    assert np.abs(x[6, :, ::-1].astype(int) - x[0]).mean() < 6  # ...of the same pixels
    x2, y2 = f.load("all", 64, workers=1)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)  # deterministic
    xt, yt = f.load("test", 48, limit=2)
    assert xt.shape == (2, 48, 48, 3) and yt.tolist() == [281, 967]


def test_wnid_folders_map_through_the_sorted_wnid_list(tmp_path):
    wnids = [f"n{i:08d}" for i in range(1000)]
    _save(tmp_path / "n00000281" / "a.jpg", skdata.chelsea())
    _save(tmp_path / "n00000967" / "b.jpg", skdata.coffee())
    _save(tmp_path / "42" / "c.png", skdata.rocket())  # index folders may sit beside them
    with pytest.raises(ImageNetFolderError, match="wnids.txt or LOC_synset_mapping.txt"):
        ImageNetFolder(tmp_path)
    shuffled = np.random.default_rng(0).permutation(wnids)  # the index is the *sorted* rank
    (tmp_path / "LOC_synset_mapping.txt").write_text("".join(f"{w} some class, its synonyms\n" for w in shuffled))
    f = ImageNetFolder(tmp_path)
    assert f.labels.tolist() == [42, 281, 967]
    (tmp_path / "LOC_synset_mapping.txt").unlink()
    (tmp_path / "wnids.txt").write_text("\n".join(wnids[:999]))
    with pytest.raises(ImageNetFolderError, match="lists 999 wnids"):
        ImageNetFolder(tmp_path)
    listed = tmp_path / "elsewhere.txt"
    listed.write_text("\n".join(w for w in wnids if w != "n00000967") + "\nn09999999\n")
    with pytest.raises(ImageNetFolderError, match="'n00000967'"):  # not in the list
        ImageNetFolder(tmp_path, synsets=listed)


def test_read_synsets_rejects_malformed_lists(tmp_path):
    bad = tmp_path / "wnids.txt"
    bad.write_text("n01440764 tench\ntench n01443537\n")
    with pytest.raises(ImageNetFolderError, match=r"wnids.txt:2: .*'tench n01443537'"):
        read_synsets(bad)
    bad.write_text("n01440764\n" * 1000)
    with pytest.raises(ImageNetFolderError, match="more than once: n01440764"):
        read_synsets(bad)


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        ImageNetFolder(tmp_path / "missing")
    with pytest.raises(DataNotFoundError, match="no class folders"):
        ImageNetFolder(tmp_path)
    _save(tmp_path / "loose.jpg", skdata.coffee())
    with pytest.raises(DataNotFoundError, match="1 images lie directly in it"):
        ImageNetFolder(tmp_path)
    (tmp_path / "5").mkdir()
    (tmp_path / "5" / "readme.txt").write_text("x")
    with pytest.raises(DataNotFoundError, match="no images"):
        ImageNetFolder(tmp_path)
    (tmp_path / "cats").mkdir()
    (tmp_path / "1000").mkdir()
    with pytest.raises(ImageNetFolderError, match=r"unknown class folder names.*'1000', 'cats'"):
        ImageNetFolder(tmp_path)
    (tmp_path / "cats").rmdir()
    (tmp_path / "1000").rmdir()
    (tmp_path / "005").mkdir()
    with pytest.raises(ImageNetFolderError, match="'005' and '5'.* both class 5"):
        ImageNetFolder(tmp_path)
    (tmp_path / "005").rmdir()
    (tmp_path / "5" / "broken.jpg").write_bytes(b"not a jpeg")
    f = ImageNetFolder(tmp_path, calib_per_class=0)
    with pytest.raises(ImageNetFolderError, match="broken.jpg: cannot decode"):
        f.load("test", 32)


# -- the recipe --------------------------------------------------------------------


def test_weights_file_names_are_keras_own():
    assert kp.weights_file_name("MobileNetV2", 224) == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"
    assert kp.weights_file_name("MobileNetV2", 96, 0.35) == SMALL_FILE
    assert kp.weights_file_name("MobileNetV2", 300, 1.4).endswith("_1.4_224.h5")  # Keras' fallback size
    assert kp.weights_file_name("ResNet50", 224) == "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    assert kp.weights_file_name("InceptionV3", 299) == "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
    with pytest.raises(ValueError, match="'VGG16'"):
        kp.weights_file_name("VGG16", 224)
    with pytest.raises(ValueError, match="'VGG16'"):
        KerasImageNetClassifier("VGG16")


def test_train_loads_the_files_of_the_weights_dir(saved_weights, offline_home, monkeypatch):
    d, arrays = saved_weights
    recipe = KerasImageNetClassifier(**SMALL)
    assert recipe.weights_file_name == SMALL_FILE
    monkeypatch.setenv(kp.ENV_WEIGHTS_DIR, str(d))
    model = recipe.train("mobilenetv2 0.35/96")
    got = recipe.weights(model)
    assert len(got) == len(arrays) and all(np.array_equal(a, b) for a, b in zip(got, arrays, strict=True))
    assert model.output_shape == (None, 1000)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert recipe.count_params(model) == trainable > 1_000_000  # 1.6 M, 1.3 M of them the classifier
    back = recipe.load(got)
    assert all(np.array_equal(a, b) for a, b in zip(back.get_weights(), arrays, strict=True))
    with pytest.raises(ValueError, match="do not fit MobileNetV2"):
        recipe.load(got[:-1])


def test_keras_own_imagenet_path_uses_its_cache_without_network(saved_weights, offline_home):
    """weights="imagenet" with the file in ~/.keras/models: Keras' get_file finds it, no download."""
    d, arrays = saved_weights
    recipe = KerasImageNetClassifier(**SMALL)
    assert "not found" in recipe.unavailable()
    (offline_home / ".keras" / "models").mkdir(parents=True)
    (offline_home / ".keras" / "models" / SMALL_FILE).write_bytes((d / SMALL_FILE).read_bytes())
    assert recipe._weights_source() == ("imagenet", None)
    got = recipe.train("keras cache").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(got, arrays, strict=True))


def test_unavailable_names_what_is_missing(saved_weights, photos, offline_home, monkeypatch, tmp_path):
    recipe = KerasImageNetClassifier(**SMALL)
    reason = recipe.unavailable()
    assert kp.ENV_WEIGHTS_DIR in reason and SMALL_FILE in reason and "\n" not in reason
    assert f"{kp.WEIGHTS_URL}mobilenet_v2/{SMALL_FILE}" in reason
    monkeypatch.setenv(kp.ENV_WEIGHTS_DIR, str(tmp_path / "empty"))
    assert str(tmp_path / "empty") in recipe.unavailable()
    monkeypatch.setenv(kp.ENV_WEIGHTS_DIR, str(saved_weights[0]))
    assert kp.ENV_IMAGENET_VAL in recipe.unavailable()  # weights found; data not given
    monkeypatch.setenv(kp.ENV_IMAGENET_VAL, str(tmp_path / "nowhere"))
    assert "does not exist" in recipe.unavailable()
    monkeypatch.setenv(kp.ENV_IMAGENET_VAL, str(photos))
    assert recipe.unavailable() is None
    assert "'test' split" in KerasImageNetClassifier(**SMALL, calib_per_class=3).unavailable()


def test_resnet_file_that_keras_would_redownload_is_not_available(offline_home):
    models = offline_home / ".keras" / "models"
    models.mkdir(parents=True)
    (models / "resnet50_weights_tf_dim_ordering_tf_kernels.h5").write_bytes(b"truncated download")
    reason = KerasImageNetClassifier("ResNet50").unavailable()
    assert "does not match Keras' MD5" in reason and "keras-applications/resnet/resnet50_" in reason


def test_data_is_the_folder_scaled_by_the_arch_preprocessing(saved_weights, photos, monkeypatch):
    monkeypatch.setenv(kp.ENV_IMAGENET_VAL, str(photos))
    recipe = KerasImageNetClassifier(**SMALL)
    x, y = recipe.data("test")
    raw, labels = ImageNetFolder(photos).load("test", 96)
    assert x.shape == (3, 96, 96, 3) and x.dtype == np.float32 and np.array_equal(y, labels)
    np.testing.assert_allclose(x, raw / 127.5 - 1, atol=1e-6)  # MobileNetV2: [-1, 1]
    xc, yc = recipe.data("calib")
    assert len(xc) == 4 and yc.tolist() == [281, 759, 812, 967]
    caffe = kp.to_model_input(raw, "ResNet50")  # BGR, ImageNet mean subtracted
    np.testing.assert_allclose(caffe, raw[..., ::-1] - np.array([103.939, 116.779, 123.68]), atol=1e-4)
    assert KerasImageNetClassifier(**{**SMALL, "test_size": 2}).data("test")[0].shape[0] == 2
    with pytest.raises(ValueError, match="'train'"):
        recipe.data("train")


def test_fine_tuning_is_declared_unsupported():
    recipe = KerasImageNetClassifier("ResNet50")
    assert set(recipe.unsupported) == {"MagnitudePruningConfig", "ChannelPruningConfig"}
    assert "unsupported" not in [f.name for f in __import__("dataclasses").fields(recipe)]  # not in the cache key
    with pytest.raises(NotImplementedError, match="out of scope"):
        recipe.fit(None, epochs=1, learning_rate=1e-3, label="resnet50_imagenet")
    with pytest.raises(NotImplementedError, match="MagnitudePruningConfig"):
        recipe.steps_per_epoch()


def test_registered_pretrained_models(offline_home):
    expected = {"mobilenetv2_imagenet": ("MobileNetV2", 224, SMALL_FILE.replace("0.35_96", "1.0_224")),
                "resnet50_imagenet": ("ResNet50", 224, "resnet50_weights_tf_dim_ordering_tf_kernels.h5"),
                "inceptionv3_imagenet": ("InceptionV3", 299, "inception_v3_weights_tf_dim_ordering_tf_kernels.h5")}  # fmt: skip
    assert set(expected) <= set(registry.list_models(tier="pretrained"))
    for name, (arch, size, file) in expected.items():
        spec = registry.get_model(name)
        assert (spec.framework, spec.task, spec.dataset) == (
            "keras", "image-classification", "imagenet-val (user-provided)"
        )  # fmt: skip
        recipe = spec.recipe()
        assert (recipe.arch, recipe.input_size, recipe.weights_file_name) == (arch, size, file)
        assert file in recipe.unavailable()  # nothing on disk here: skipped, not downloaded
