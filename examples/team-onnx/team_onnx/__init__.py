"""A team's ready ONNX model for compress-bench: measured as it is, registered on import.

The team has a trained ``model.onnx`` and its labelled images; nothing is trained here.
The file is the model's own fp32 baseline (size, latency, top-1), and the ONNX Runtime
quantizations run on it: ``onnx_dynamic`` and ``onnx_int8`` (static QDQ, calibrated on
the images' ``calib`` split). Where the files are: ``$TEAM_ONNX`` (the graph) and
``$TEAM_ONNX_IMAGES`` (a folder ``<split>/<class>/<image>`` or ``<class>/<image>``: the
class folders' sorted names are the graph's output order). Missing, every gate pair fails
saying which file is missing; change a byte of either and its pairs are measured again.
"""

import os

from compress.data.image_folder import ImageFolder
from compress.models.vision.ready_onnx import ReadyOnnx
from compress.registry import register_model


@register_model(framework="onnx", task="image-classification", dataset="the team's labelled images (ImageFolder)",
                gate=("fp32", "onnx_dynamic", "onnx_int8"))  # fmt: skip
def team_onnx():
    """The team's trained model.onnx ($TEAM_ONNX) as it is, scored on its grey images ($TEAM_ONNX_IMAGES)."""
    return ReadyOnnx(os.environ.get("TEAM_ONNX", "~/team-onnx/model.onnx"),
                     dataset=ImageFolder(os.environ.get("TEAM_ONNX_IMAGES", "~/team-onnx/images"), mode="L"))  # fmt: skip
