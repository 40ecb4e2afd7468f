"""EfficientNet-Lite0 + linear probe ported to a tf_keras functional model (for TFLite).

The architecture is rebuilt from plain layers only: ``Conv2D``,
``DepthwiseConv2D``, ``BatchNormalization`` (epsilon 1e-3), ``ReLU(6)``,
``Add``, ``GlobalAveragePooling2D``, ``Dense`` and one ``Concatenate`` of the
two heads. Every MBConv block is a plain ``expand -> BN -> ReLU6 ->
depthwise -> BN -> ReLU6 -> project -> BN`` chain, so generic channel pruning
(:mod:`compress.techniques.keras_channels`) finds the expanded channels.
Keras ``padding="same"`` is TensorFlow's SAME, which the torch module
reproduces with explicit padding, so the port is numerically the torch model.
BatchNorm layers are called with ``training=False`` (kept in the graph config):
fine-tunes keep the ImageNet running statistics, as the torch recipe does.

The weights are not trained here: :meth:`KerasEfficientNetProbe.train` fits the
torch recipe with the same fields (deterministic) and copies every tensor.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Callable, ClassVar

import numpy as np

from compress.frameworks import tensorflow
from compress.models.vision import efficientnet_lite as E
from compress.models.vision import efficientnet_probe as P
from compress.models.base import FirstImagesSplits
from compress.models.vision.keras_classifier import KerasArrays, fit_keras

log = logging.getLogger(__name__)

# Largest |keras - torch| logit difference accepted when porting (float32 noise is ~1e-5).
PORT_TOLERANCE = 1e-3


def _blocks():
    """``(cin, cout, kernel, stride, expand)`` of the 16 MBConv blocks, in order."""
    out, cin = [], E.STEM
    for repeats, kernel, stride, expand, cout in E.STAGES:
        for i in range(repeats):
            out.append((cin, cout, kernel, stride if i == 0 else 1, expand))
            cin = cout
    return out


def build_keras(input_size: int = 64, probe_classes: int = P.PROBE_CLASSES):
    """The functional EfficientNet-Lite0 with ``probe_classes + 1000`` outputs (fresh weights).

    Layer names follow the torch module (``stem_conv``, ``block3_expand``,
    ``block3_dwconv``, ``block3_project``..., ``head_conv``, ``probe``, ``fc``).
    Layer-name counters are reset first, so every build is identical.
    """
    tf = tensorflow()
    tf.keras.backend.reset_uids()
    L = tf.keras.layers

    def bn(name):
        layer = L.BatchNormalization(epsilon=E.BN_EPS, name=name)
        # Always inference mode (ImageNet running statistics kept; gamma and beta still train).
        return lambda t: layer(t, training=False)

    def relu6(name):
        return L.ReLU(max_value=6.0, name=name)

    inp = tf.keras.Input((input_size, input_size, 3), name="image")
    x = L.Conv2D(E.STEM, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inp)
    x = relu6("stem_relu")(bn("stem_bn")(x))
    for i, (cin, cout, kernel, stride, expand) in enumerate(_blocks()):
        p = f"block{i}_"
        y = x
        if expand != 1:
            y = L.Conv2D(cin * expand, 1, use_bias=False, name=p + "expand")(y)
            y = relu6(p + "expand_relu")(bn(p + "expand_bn")(y))
        y = L.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=p + "dwconv")(y)
        y = relu6(p + "dw_relu")(bn(p + "dw_bn")(y))
        y = L.Conv2D(cout, 1, use_bias=False, name=p + "project")(y)
        y = bn(p + "project_bn")(y)
        x = L.Add(name=p + "add")([y, x]) if stride == 1 and cin == cout else y
    x = L.Conv2D(E.HEAD, 1, use_bias=False, name="head_conv")(x)
    x = relu6("head_relu")(bn("head_bn")(x))
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    probe = L.Dense(probe_classes, name="probe")(x)
    fc = L.Dense(1000, name="fc")(x)
    out = L.Concatenate(name="logits")([probe, fc])
    return tf.keras.Model(inp, out, name="efficientnet_lite0_probe")


def _torch_to_keras_names() -> list[tuple[str, str, str]]:
    """``(torch prefix, keras layer, kind)`` for every weighted layer; kind: conv/dw/bn/dense."""
    pairs = [("_conv_stem", "stem_conv", "conv"), ("_bn0", "stem_bn", "bn")]
    for i, (_, _, _, _, expand) in enumerate(_blocks()):
        t, k = f"_blocks.{i}.", f"block{i}_"
        if expand != 1:
            pairs += [(t + "_expand_conv", k + "expand", "conv"), (t + "_bn0", k + "expand_bn", "bn")]
        pairs += [
            (t + "_depthwise_conv", k + "dwconv", "dw"), (t + "_bn1", k + "dw_bn", "bn"),
            (t + "_project_conv", k + "project", "conv"), (t + "_bn2", k + "project_bn", "bn"),
        ]  # fmt: skip
    pairs += [("_conv_head", "head_conv", "conv"), ("_bn1", "head_bn", "bn"),
              ("probe", "probe", "dense"), ("_fc", "fc", "dense")]  # fmt: skip
    return pairs


def port_weights(torch_model, keras_model) -> None:
    """Copy every tensor of the torch module into ``keras_model`` (same widths).

    Conv OIHW -> HWIO, depthwise (C, 1, kh, kw) -> (kh, kw, C, 1), BatchNorm
    (gamma, beta, running mean, running var), Linear (out, in) -> (in, out).

    Raises:
        ValueError: a torch tensor is unused, or shapes differ.
    """
    state = {k: v.detach().cpu().numpy() for k, v in torch_model.state_dict().items()}
    used = set()
    for tname, kname, kind in _torch_to_keras_names():

        def get(n: str, prefix: str = tname) -> np.ndarray:
            used.add(f"{prefix}.{n}")
            return state[f"{prefix}.{n}"]

        if kind == "conv":
            arrays = [get("weight").transpose(2, 3, 1, 0)]
        elif kind == "dw":
            arrays = [get("weight").transpose(2, 3, 0, 1)]
        elif kind == "bn":
            arrays = [get("weight"), get("bias"), get("running_mean"), get("running_var")]
            used.add(f"{tname}.num_batches_tracked")
        else:
            arrays = [get("weight").T, get("bias")]
        layer = keras_model.get_layer(kname)
        want = [tuple(w.shape) for w in layer.get_weights()]
        if want != [a.shape for a in arrays]:
            raise ValueError(f"layer {kname!r} has weight shapes {want}, {tname!r} gives {[a.shape for a in arrays]}")
        layer.set_weights([np.ascontiguousarray(a) for a in arrays])
    unused = sorted(set(state) - used)
    if unused:
        raise ValueError(f"torch tensors not ported: {unused}")


@lru_cache(maxsize=4)
def _nhwc(split: str, size: int, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The torch recipe's images (``efficientnet_probe.to_model_input``), channels last."""
    from compress.data import load_fashion_mnist

    images, labels = load_fashion_mnist().split(split)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = P.to_model_input(images, size).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), labels.astype(np.int64)


@dataclass(frozen=True)
class KerasEfficientNetProbe(FirstImagesSplits, KerasArrays):
    """Recipe: :class:`~compress.models.vision.efficientnet_probe.EfficientNetProbe` ported to tf_keras.

    Same fields, same meaning (every one is part of the cache key); inputs are NHWC.
    """

    input_size: int = 64
    probe_train_size: int = 10_000
    fine_tune_size: int = 3_000
    batch_size: int = 64
    seed: int = 0
    l2: float = 1e-2
    test_size: int | None = None
    framework: str = field(default="keras", init=False)
    unsupported: ClassVar[dict] = P.UNSUPPORTED  # same network, same reason
    # The registered torch model this is a port of: the runner ports its cached
    # weights (port_from) instead of fitting the probe again (train).
    port_of: ClassVar[str] = "efficientnet_lite0"

    def port_from(self, torch_recipe, torch_model):
        """:meth:`port` of a trained torch model, after checking it came from the same fields.

        Raises:
            ValueError: ``torch_recipe`` differs from :meth:`torch_recipe`.
        """
        if torch_recipe != self.torch_recipe():
            raise ValueError(f"cannot port {torch_recipe}: this recipe ports {self.torch_recipe()}")
        return self.port(torch_model)

    def torch_recipe(self) -> P.EfficientNetProbe:
        """The torch recipe with the same fields (what :meth:`train` fits)."""
        fields = {k: v for k, v in asdict(self).items() if k != "framework"}
        return P.EfficientNetProbe(**fields)

    def __post_init__(self) -> None:
        self.torch_recipe()  # validates the fields

    # -- data (FirstImagesSplits: data, fine_tune_data, steps_per_epoch) -----------
    def _images(self, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
        """``(x NHWC, y)``: the torch recipe's images, channels last."""
        if split not in ("train", "calib", "test"):
            raise ValueError(f"split must be 'train', 'calib' or 'test', got {split!r}")
        return _nhwc(split, self.input_size, limit)

    def _limit(self, split: str) -> int | None:
        return {"train": self.probe_train_size, "test": self.test_size}.get(split)

    # -- outputs -----------------------------------------------------------------
    def task_logits(self, outputs: np.ndarray) -> np.ndarray:
        """The Fashion-MNIST logits (what accuracy is scored on): the first 10 outputs."""
        return np.asarray(outputs)[:, : P.PROBE_CLASSES]

    def photo_inputs(self) -> np.ndarray:
        """The real photos, model-ready (NHWC at ``input_size``)."""
        return np.ascontiguousarray(P.photo_inputs(self.input_size).transpose(0, 2, 3, 1))

    def extra_metrics(self, predict: Callable, reference_predict: Callable) -> dict:
        """Agreement of ImageNet top-1 on real photos with the reference (fp32) artefact."""
        return P.photo_agreement(predict, reference_predict, self.photo_inputs())

    def photo_top1(self, predict: Callable) -> list[str]:
        """ImageNet class names ``predict`` gives the photos (in ``PHOTOS`` order)."""
        names = E.imagenet_classes()
        return [names[i] for i in P.imagenet_top1(predict(self.photo_inputs()))]

    # -- model -------------------------------------------------------------------
    def build(self):
        """The untrained functional architecture."""
        return build_keras(self.input_size)

    def fit(self, model, *, epochs: float, learning_rate: float, label: str, callbacks=()) -> None:
        """Fine-tune ``model`` on :meth:`fine_tune_data` (Adam, cosine decay; fractions allowed).

        The loss is cross-entropy over the 10 probe logits only, and BatchNorm
        keeps its running statistics, as in the torch recipe.
        """
        tf = tensorflow()
        xent = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        def task_loss(labels, outputs):  # the probe's 10 logits; ImageNet's are no competing class
            return xent(labels, outputs[:, : P.PROBE_CLASSES])

        def task_accuracy(labels, outputs):
            return tf.keras.metrics.sparse_categorical_accuracy(labels, outputs[:, : P.PROBE_CLASSES])

        fit_keras(model, *self.fine_tune_data(), epochs=epochs, learning_rate=learning_rate,
                  batch_size=self.batch_size, seed=self.seed, label=label, callbacks=callbacks,
                  loss=task_loss, metrics=(task_accuracy,))  # fmt: skip

    def port(self, torch_model):
        """A Keras model holding ``torch_model``'s weights, checked equal on real test images.

        Raises:
            RuntimeError: outputs differ by more than :data:`PORT_TOLERANCE`.
        """
        from compress.models import torch_common

        model = self.build()
        port_weights(torch_model, model)
        x = P.split_nchw("test", self.input_size, 64)[0]
        expected = torch_common.predict(torch_model, x)
        got = model(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), training=False).numpy()
        diff = float(np.abs(got - expected).max())
        log.info("ported to Keras: max |keras - torch| logit difference %.2e on %d test images", diff, len(x))
        if not diff <= PORT_TOLERANCE:
            raise RuntimeError(f"Keras port differs from torch by {diff:.3g} > {PORT_TOLERANCE} on test logits")
        return model

    def train(self, label: str):
        """Fit the torch recipe (same fields), then port it; returns the Keras model."""
        from compress.determinism import set_determinism

        set_determinism(self.seed)
        t0 = time.perf_counter()
        model = self.port(self.torch_recipe().train(label))
        log.info("trained and ported %s in %.0f s", label, time.perf_counter() - t0)
        return model

    def describe(self) -> dict:
        return asdict(self)
