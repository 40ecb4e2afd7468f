"""The model catalogue: every model, registered once with its recipe."""

from compress.models.keras_classifier import KerasImageClassifier
from compress.registry import register_model


@register_model(framework="keras", task="image-classification", dataset="fashion-mnist")
def mobilenetv2():
    """tf_keras MobileNetV2 (alpha 0.35, 32 px), trained from scratch on Fashion-MNIST."""
    return KerasImageClassifier("MobileNetV2", (("alpha", 0.35),), input_size=32, epochs=10)


@register_model(framework="keras", task="image-classification", dataset="fashion-mnist", tier="unit")
def tiny():
    """A tiny CNN trained briefly on 6,000 Fashion-MNIST images: for fast unit tests."""
    return KerasImageClassifier(
        "tiny_cnn", input_size=28, epochs=3, batch_size=64, learning_rate=1e-2, train_size=6000
    )
