"""ImageFolder (compress/data/image_folder.py) and TorchImageClassifier on it, on small folders of real
Fashion-MNIST images (PNG and BMP are lossless: a folder's pixels are Fashion-MNIST's)."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from compress.data import fashion_mnist as fm
from compress.data.dataset import DataNotFoundError, bucket_split
from compress.data.image_folder import SALT, ImageFolder, ImageFolderError
from compress.models.vision.torch_classifier import TorchImageClassifier, images_to_model_input, to_model_input
from compress.runner import _describe_recipe

pytestmark = pytest.mark.skipif(fm.FASHION_MNIST.unavailable() is not None,
                                reason="the folders are written from real Fashion-MNIST, not installed here")  # fmt: skip

NAMES = ("Trouser", "Bag", "Sneaker")  # sorted: Bag, Sneaker, Trouser


def _images(name: str, n: int, split: str = "test", skip: int = 0) -> np.ndarray:
    images, labels = fm.load_fashion_mnist().split(split)
    return images[np.flatnonzero(labels == fm.CLASSES.index(name))[skip : skip + n]]


def _save(a: np.ndarray, path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)
    return path


def _class_folder(root: Path, n: int = 40, names=NAMES) -> Path:
    """``root/<class>/<k>.png`` (every fourth ``.BMP``), the first ``n`` test images of each class."""
    for name in names:
        for k, a in enumerate(_images(name, n)):
            _save(a, root / name / (f"{k:03d}.BMP" if k % 4 == 3 else f"{k:03d}.png"))
    return root


def _split_folder(root: Path, counts=(("train", 12), ("calib", 3), ("test", 5)), names=NAMES) -> Path:
    """``root/<split>/<class>/<k>.png`` from the same split of Fashion-MNIST."""
    for split, n in counts:
        for name in names:
            for k, a in enumerate(_images(name, n, split)):
                _save(a, root / split / name / f"{k:03d}.png")
    return root


def _touch_later(path: Path) -> None:
    """A rewrite within the file system's timestamp granularity keeps its mtime: move it on, as time would."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


# -- the two layouts ------------------------------------------------------------------


def test_class_folders_give_sorted_classes_and_splits_drawn_from_each_files_bytes(tmp_path):
    root = _class_folder(tmp_path / "imgs")
    (root / "Bag" / "notes.txt").write_text("not an image")  # other files and hidden ones are ignored
    (root / "Bag" / ".hidden.png").write_bytes((root / "Bag" / "000.png").read_bytes())
    (root / ".thumbnails").mkdir()
    (root / "README.md").write_text("the team's images")
    ds = ImageFolder(str(root), test=0.3, calib=0.2)
    assert ds.classes == ("Bag", "Sneaker", "Trouser")
    seen = []
    for split in ("train", "calib", "test"):
        x, y = ds.split(split)
        assert x.dtype == np.uint8 and x.shape[1:] == (28, 28) and y.dtype == np.int64 and len(x) == len(y) > 0
        assert not x.flags.writeable  # shared by every caller in the process
        for rel, image, target in zip(ds.files(split), x, y):
            raw = (root / rel).read_bytes()
            assert bucket_split(raw, SALT, 0.3, 0.2) == split  # the file's own bytes decide its split
            name, k = rel.split("/")[0], int(rel.split("/")[1][:3])
            assert target == ds.classes.index(name) and np.array_equal(image, _images(name, 40)[k])
            seen.append(rel)
        # round-robin over the classes: any prefix covers them evenly
        assert list(y[:3]) == [0, 1, 2]
    assert sorted(seen) == sorted(f"{n}/{p.name}" for n in NAMES for p in (root / n).iterdir()
                                  if p.suffix.lower() in (".png", ".bmp") and not p.name.startswith("."))  # fmt: skip
    assert len(seen) == 3 * 40
    stats = ds.stats()
    assert stats[-1] == {"split": "all", "count": 120, "Bag": 40, "Sneaker": 40, "Trouser": 40}


def test_split_folders_are_the_splits(tmp_path):
    root = _split_folder(tmp_path / "imgs")
    ds = ImageFolder(str(root))
    assert ds.classes == ("Bag", "Sneaker", "Trouser")
    for split, n in (("train", 12), ("calib", 3), ("test", 5)):
        x, y = ds.split(split)
        assert len(x) == 3 * n and np.bincount(y).tolist() == [n, n, n]
        assert all(rel.startswith(f"{split}/") for rel in ds.files(split))
        assert np.array_equal(x[y == 2], _images("Trouser", n, split))  # in file order within a class
    assert ds.unavailable() is None
    with pytest.raises(ValueError, match="unknown split 'adapt'.*valid: train, calib, test"):
        ds.split("adapt")


def test_rgb_mode_and_size(tmp_path):
    root = _class_folder(tmp_path / "imgs", n=8)
    rgb = ImageFolder(str(root), mode="RGB").split("train")[0]
    assert rgb.shape[1:] == (28, 28, 3) and np.array_equal(rgb[..., 0], rgb[..., 2])
    grey = ImageFolder(str(root)).split("train")[0]
    assert np.array_equal(rgb[..., 0], grey)
    big = ImageFolder(str(root), size=40).split("train")[0]
    assert big.shape[1:] == (40, 40) and len(big) == len(grey)


# -- the digest: content, not place --------------------------------------------------------


def test_digest_stays_when_the_folder_moves_and_changes_with_one_image(tmp_path):
    a = _class_folder(tmp_path / "a", n=12)
    before = ImageFolder(str(a)).digest()
    b = tmp_path / "elsewhere" / "b"
    shutil.copytree(a, b)
    assert ImageFolder(str(b)).digest() == before  # another path, the same images
    shutil.rmtree(a)
    shutil.move(b, a.parent / "moved")
    moved = ImageFolder(str(a.parent / "moved"))
    assert moved.digest() == before and moved.key() == {"type": "ImageFolder", "digest": before}
    assert ImageFolder(str(a.parent / "moved"), test=0.25).digest() != before  # another split rule

    one = a.parent / "moved" / "Bag" / "005.png"
    old = moved.split("train")
    _save(_images("Bag", 1, skip=100)[0], one)  # another real Bag image in its place
    _touch_later(one)
    assert moved.digest() != before  # read again: the stamp (size, mtime) changed
    assert moved.split("train")[0] is not old[0]


def test_dollar_and_tilde_paths_are_expanded(tmp_path, monkeypatch):
    root = _class_folder(tmp_path / "imgs", n=6)
    monkeypatch.setenv("TEAM_IMAGES_TEST", str(tmp_path))
    assert ImageFolder("$TEAM_IMAGES_TEST/imgs").digest() == ImageFolder(str(root)).digest()


# -- clear errors ----------------------------------------------------------------------------


def test_a_missing_or_empty_folder_is_unavailable_saying_the_layout(tmp_path):
    missing = ImageFolder(str(tmp_path / "none"))
    assert missing.unavailable() == (f"the image folder {tmp_path / 'none'} (ImageFolder(root={str(tmp_path / 'none')!r})) "
                                     "does not exist: put the images there as root/<class>/<image> or "
                                     "root/{train,calib,test}/<class>/<image>")  # fmt: skip
    with pytest.raises(DataNotFoundError, match="does not exist"):
        missing.split("train")
    (tmp_path / "empty").mkdir()
    assert "holds no class folders: expected root/<class>/<image>" in ImageFolder(str(tmp_path / "empty")).unavailable()
    (tmp_path / "file.png").write_bytes(b"")
    assert "is not a directory" in ImageFolder(str(tmp_path / "file.png")).unavailable()


def test_images_of_different_sizes_name_two_files_unless_resized(tmp_path):
    root = _class_folder(tmp_path / "imgs", n=8)
    from PIL import Image

    Image.fromarray(_images("Bag", 1)[0]).resize((32, 30)).save(root / "Bag" / "big.png")
    with pytest.raises(ImageFolderError) as err:
        ImageFolder(str(root)).digest()
    assert str(err.value) == (f"{root}: images differ in size: Bag/000.png is 28x28, Bag/big.png is 32x30; "
                              "give ImageFolder(size=N) to resize every image to N x N")  # fmt: skip
    assert ImageFolder(str(root), size=28).split("train")[0].shape[1:] == (28, 28)


@pytest.mark.parametrize("case, match", [
    ("corrupt", r"Bag/bad\.png: cannot be decoded as an image \(UnidentifiedImageError"),
    ("one class", r"one class folder \('Bag'\); a classifier needs two or more"),
    ("empty class", r"the class folder\(s\) Sneaker hold no images \(\.png, .*\) directly inside"),
    ("missing split", r"holds the split folders test, train but not calib: the layout "
                      r"root/\{train,calib,test\}/<class>/<image> needs all three"),
    ("classes differ", r"the class folders of test/ differ from train/'s \(Sneaker in one only\)"),
    ("empty split", r"the calib split is empty: the calib/ folder holds no images"),
])  # fmt: skip
def test_a_folder_that_cannot_be_read_says_which_file_or_folder_and_why(tmp_path, case, match):
    root = tmp_path / "imgs"
    if case in ("corrupt", "one class", "empty class"):
        _class_folder(root, n=6, names=("Bag",) if case == "one class" else ("Bag", "Trouser"))
        if case == "corrupt":
            (root / "Bag" / "bad.png").write_bytes(b"not a png")
        if case == "empty class":
            (root / "Sneaker").mkdir()
    else:
        _split_folder(root, counts=(("train", 2), ("calib", 1), ("test", 1)), names=("Bag", "Trouser"))
        if case == "missing split":
            shutil.rmtree(root / "calib")
        if case == "classes differ":
            _save(_images("Sneaker", 1)[0], root / "test" / "Sneaker" / "0.png")
        if case == "empty split":
            for p in (root / "calib").rglob("*.png"):
                p.unlink()
    with pytest.raises(ImageFolderError, match=match) as err:
        ImageFolder(str(root)).classes
    assert str(root) in str(err.value)


def test_bad_options_fail_at_construction():
    with pytest.raises(ValueError, match="mode must be one of 'L', 'RGB'; got 'CMYK'"):
        ImageFolder("x", mode="CMYK")
    with pytest.raises(ValueError, match="size must be a positive int or None; got 0"):
        ImageFolder("x", size=0)
    with pytest.raises(ValueError, match="adding up to less than 1"):
        ImageFolder("x", test=0.6, calib=0.5)


# -- TorchImageClassifier on a folder ------------------------------------------------------


def test_the_classifier_reads_the_folder_and_keys_it_by_digest(tmp_path):
    root = _class_folder(tmp_path / "imgs", n=20)
    ds = ImageFolder(str(root))
    import torch

    rec = TorchImageClassifier("tiny_torch", input_size=32, channels=1, dataset=ds)
    x, y = rec.data("test")
    images, targets = ds.split("test")
    assert np.array_equal(x, to_model_input(images, 32, 1)) and np.array_equal(y, targets)  # Fashion-MNIST's input
    assert rec.num_classes() == 3 and rec.unavailable() is None
    assert rec.build()(torch.from_numpy(x[:2])).shape == (2, 3)  # one output per class
    assert TorchImageClassifier("resnet18", dataset=ds).build().fc.out_features == 3  # torchvision's num_classes
    key = _describe_recipe(rec)["fields"]
    assert key["dataset"] == {"type": "ImageFolder", "digest": ds.digest()} and str(root) not in repr(key)
    assert "dataset" not in _describe_recipe(TorchImageClassifier("tiny_torch"))["fields"]  # as before it existed
    assert TorchImageClassifier("tiny_torch").num_classes() == 10
    gone = TorchImageClassifier("tiny_torch", dataset=ImageFolder(str(tmp_path / "none")))
    assert gone.unavailable() == ImageFolder(str(tmp_path / "none")).unavailable()


def test_model_input_of_rgb_and_other_sizes():
    grey = _images("Bag", 4)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    assert np.allclose(images_to_model_input(rgb, 28, 1), to_model_input(grey, 28, 1), atol=1e-6)  # RGB averaged
    x = images_to_model_input(np.ascontiguousarray(rgb[:, :20, :24]), 16, 3)  # not square: resized
    assert x.shape == (4, 3, 16, 16) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    same = images_to_model_input(np.ascontiguousarray(grey[:, :20, :20]), 20, 2)  # its size: no resize
    assert np.array_equal(same[:, 1], grey[:, :20, :20] / np.float32(255))
    with pytest.raises(ValueError, match="images must be uint8"):
        images_to_model_input(grey.astype(np.float32), 28, 1)
