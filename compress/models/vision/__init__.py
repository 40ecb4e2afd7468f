"""Image classifiers: Keras and torch CNNs, pretrained EfficientNet-Lite0, a ready ONNX file."""
