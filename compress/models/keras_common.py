"""Shape-aware loading of Keras functional models: the Keras counterpart of :mod:`compress.models.torch_common`.

A structurally pruned model's weights are narrower than its dense architecture's;
the cache stores arrays only, so loading rebuilds the architecture to their shapes.
Model-side machinery (a recipe's ``load``), not a technique: it knows nothing of
how the arrays came to be narrower.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from compress.frameworks import tensorflow

__all__ = ["functional_config", "rebuild_for_weights"]


def functional_config(model) -> dict:
    """``model.get_config()`` of a functional model (TypeError for any other)."""
    config = model.get_config()
    if not isinstance(config, dict) or "layers" not in config or "output_layers" not in config:
        raise TypeError(
            f"a functional Keras model is needed, got {type(model).__name__} {model.name!r}"
        )
    return config


def rebuild_for_weights(model, weights: Sequence[np.ndarray]):
    """An architecture like ``model`` whose weight shapes match ``weights``.

    ``weights`` are ``get_weights()`` of a channel-pruned copy of the dense
    ``model``: each ``Conv2D`` / ``Dense`` gets ``filters`` / ``units`` from its
    kernel's last axis; other layers adapt to their inputs. The returned model's
    weights are freshly initialised: call ``set_weights(weights)`` next.

    Raises:
        ValueError: the arrays do not fit the model (count or shapes).
        TypeError: ``model`` is not a functional model.
    """
    tf = tensorflow()
    weights = list(weights)
    config = functional_config(model)
    layer_cfgs = {lc["name"]: lc for lc in config["layers"]}
    per_layer = [v.name for layer in model.layers for v in layer.weights]
    if per_layer != [v.name for v in model.weights]:
        raise RuntimeError(f"weights of {model.name!r} are not ordered layer by layer; cannot map arrays")
    if len(weights) != len(per_layer):
        raise ValueError(f"{len(weights)} arrays given for {model.name!r}, which has {len(per_layer)} weights")
    i = 0
    for layer in model.layers:
        own = weights[i : i + len(layer.weights)]
        i += len(layer.weights)
        lc = layer_cfgs[layer.name]
        key = {"Conv2D": "filters", "Dense": "units"}.get(lc["class_name"])
        if key and own:
            lc["config"][key] = int(own[0].shape[-1])
    rebuilt = tf.keras.Model.from_config(config)
    i = 0
    for layer in rebuilt.layers:
        got = [tuple(v.shape) for v in layer.weights]
        given = [tuple(np.shape(a)) for a in weights[i : i + len(got)]]
        i += len(got)
        if got != given:
            raise ValueError(
                f"layer {layer.name!r} of {model.name!r} rebuilt with weight shapes {got}, arrays give {given}"
            )
    return rebuilt
