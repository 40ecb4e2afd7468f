"""A team's own models for compress-bench: registered on import, no fork of the suite.

compress-bench imports this module when it is named as a plugin: by the entry point
in this folder's pyproject.toml once the package is installed
(``pip install -e examples/team-models``), or with ``--plugin team_models`` /
``COMPRESS_BENCH_PLUGINS=team_models`` when it is only on ``PYTHONPATH``.
Importing it must stay cheap: torch is imported only when a model is built.

Copy this folder, rename the package and the models, keep the pattern:
``register_architecture`` gives the suite's own training recipe
(``TorchImageClassifier``: AdamW, cosine decay, seeded, cached weights) your
``nn.Module``; ``register_model`` puts it in the registry, its ``gate=`` pairs in
the merge gate; ``thresholds.toml`` next to this package bounds those pairs.
"""

from compress.models.vision.torch_classifier import TorchImageClassifier, register_architecture
from compress.registry import register_model


def _team_cnn(num_classes: int = 10):
    """Two conv blocks and a two-layer head: 105,914 parameters, 95% of them in the Linear layers."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),  # 14 x 14
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),  # 7 x 7
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, num_classes),
    )  # fmt: skip


register_architecture("team_cnn", _team_cnn)


@register_model(framework="torch", task="image-classification", dataset="fashion-mnist",
                gate=("fp32", "dynamic_range", "onnx_fp32", "onnx_int8"))  # fmt: skip
def team_cnn():
    """The team's small torch CNN (28 px, grey), trained from scratch on 6,000 Fashion-MNIST images."""
    return TorchImageClassifier(
        "team_cnn", input_size=28, channels=1, epochs=2, batch_size=64, learning_rate=2e-3,
        train_size=6000,
    )
