"""FirstImagesSplits: the split, fine-tune and step arithmetic every trained recipe shares."""

import functools
import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compress.models.base import FirstImagesSplits

TRAIN = 300  # images in the fake train split


@functools.lru_cache(maxsize=None)
def _split(split):
    n = {"train": TRAIN, "test": 50}[split]
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    return x, np.arange(n, dtype=np.int64) % 10


@dataclass(frozen=True)
class Fake(FirstImagesSplits):
    train_size: int | None
    fine_tune_size: int | None
    batch_size: int = 32

    def _images(self, split, limit):
        x, y = _split(split)  # memoized, as the real recipes' preprocessed splits are
        return x[:limit], y[:limit]

    def _limit(self, split):
        return self.train_size if split == "train" else None


sizes = st.one_of(st.none(), st.integers(1, TRAIN))


@given(train_size=sizes, fine_tune_size=sizes, batch=st.integers(1, 64))
def test_fine_tune_data_is_the_first_images(train_size, fine_tune_size, batch):
    recipe = Fake(train_size, fine_tune_size, batch)
    x, y = recipe.data("train")
    assert len(x) == (train_size or TRAIN)
    fx, fy = recipe.fine_tune_data()
    want = fine_tune_size or len(x)
    assert len(fx) == len(fy) == want
    np.testing.assert_array_equal(fx[:, 0], np.arange(want))  # the first images, in order
    assert recipe.steps_per_epoch() == math.ceil(want / batch)
    if fine_tune_size is None or fine_tune_size <= len(x):
        assert np.shares_memory(fx, x)  # a view of the train split, not a second copy


def test_fine_tune_size_beyond_the_training_subset_reads_more_images():
    recipe = Fake(train_size=100, fine_tune_size=250)
    assert len(recipe.data("train")[0]) == 100
    assert len(recipe.fine_tune_data()[0]) == 250


def test_other_splits_are_not_cut():
    assert len(Fake(train_size=10, fine_tune_size=5).data("test")[0]) == 50


@pytest.mark.parametrize("name", ["mobilenetv2", "resnet50", "inceptionv3", "resnet18", "efficientnet_lite0"])
def test_registered_recipes_share_the_split_rules(name):
    import compress.models.catalogue  # noqa: F401  (registers the models)
    from compress import registry

    recipe = registry.get_model(name).recipe()
    assert isinstance(recipe, FirstImagesSplits)
