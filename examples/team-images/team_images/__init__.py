"""A team's own images in compress-bench: a folder of class folders, no fork of the suite.

The images are ``$TEAM_IMAGES/<class>/<image>`` (default ``~/team-images``; or
``<split>/<class>/<image>`` with ``train``, ``calib`` and ``test`` folders): the
suite's :class:`~compress.data.image_folder.ImageFolder` reads them (grey, 28 x 28
here), draws the splits from each file's bytes, and its digest (the pixels, not the
path) is part of the weights' cache key: change an image and the model retrains.
The suite's ``TorchImageClassifier`` trains the architecture registered below with
one output per class folder. Load it with ``--plugin team_images`` (PYTHONPATH)
or install this folder (``pip install -e examples/team-images``: its entry point).
Importing it only registers: nothing is read or trained, torch is imported when
the model is built.
"""

import os

from compress.data.image_folder import ImageFolder
from compress.models.vision.torch_classifier import TorchImageClassifier, register_architecture
from compress.registry import register_model


def _folder_cnn(num_classes: int):
    """Two conv blocks and a two-layer head for 28 x 28 grey images: 55k parameters, 91% in the Linear layers."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),  # 14 x 14
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),  # 7 x 7
        nn.Flatten(), nn.Linear(32 * 7 * 7, 32), nn.ReLU(), nn.Linear(32, num_classes),
    )  # fmt: skip


register_architecture("team_folder_cnn", _folder_cnn)


# A small folder's calib split holds few images: static int8 calibrates on its first 50 (of 500 by default).
@register_model(framework="torch", task="image-classification", dataset="team images (ImageFolder)",
                gate=("fp32", "dynamic_range", "onnx_fp32", "onnx_int8"),
                settings={"OnnxConfig": {"calibration_size": 50}})  # fmt: skip
def team_folder_cnn():
    """The team's small CNN, trained from scratch on the images of ``$TEAM_IMAGES`` (one output per class)."""
    folder = ImageFolder(os.environ.get("TEAM_IMAGES", "~/team-images"), size=28, mode="L")
    return TorchImageClassifier("team_folder_cnn", input_size=28, channels=1, epochs=10, batch_size=32,
                                learning_rate=2e-3, dataset=folder)  # fmt: skip
