"""Structured (channel) pruning of Keras functional models.

A *group* is a ``Conv2D`` (the producer) whose output channels flow, through
channel-preserving layers only (BatchNorm, activations, depthwise convs with
``depth_multiplier=1``, padding, pooling, dropout), into layers that only read
channels: ``Conv2D`` (the input axis of its kernel) or ``Dense`` (kernel rows).
Removing a producer filter then means removing one slice of every tensor in the
group, and nothing outside it changes shape. Channels that reach an ``Add``, a
``Concatenate``, a ``Reshape``/``Flatten``, the model output or any layer not
understood here make the group unprunable: residual streams and Inception
concatenations keep their widths.

The pruned model is rebuilt from the dense model's config with narrower
``filters``, so it is an ordinary (physically smaller) dense Keras model.

Example:
    >>> from compress.techniques.keras_channels import channel_groups, prune_channels
    >>> len(channel_groups(model))                      # doctest: +SKIP
    20
    >>> small = prune_channels(model, 0.5)              # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from compress.frameworks import tensorflow
from compress.models.keras_common import functional_config, rebuild_for_weights  # noqa: F401  (re-exported)
from compress.registry import register_handler
from compress.techniques.channels import ChannelPruningConfig, fine_tune_pruned, kept_channels

__all__ = ["ChannelGroup", "channel_groups", "prune_channels", "rebuild_for_weights", "channel_prune"]

# Layers that map channel c of their input to channel c of their output and
# nothing else, holding no weights: channels flow through them untouched.
_ELEMENTWISE = frozenset({
    "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "ZeroPadding2D", "Cropping2D", "UpSampling2D",
    "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
    "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "ActivityRegularization",
})  # fmt: skip
_CHANNEL_MIXING_ACTIVATIONS = frozenset({"softmax", "log_softmax"})


@dataclass(frozen=True)
class ChannelGroup:
    """A prunable producer and every layer its output channels reach.

    Attributes:
        producer: name of the ``Conv2D`` whose filters are ranked and removed.
        members: channel-preserving layers the channels flow through, in graph order.
        consumers: ``Conv2D`` / ``Dense`` layers reading the channels (input axis sliced).
        channels: the producer's ``filters``.
    """

    producer: str
    members: tuple[str, ...]
    consumers: tuple[str, ...]
    channels: int


# -- graph analysis --------------------------------------------------------------


def _refs(obj: Any, names: set[str]) -> list[str]:
    """Layer names referenced by an inbound-node entry ``[name, node, tensor, kwargs]``.

    Keyword arguments may hold more tensor references (``TFOpLambda``); they are
    searched too, so a hidden reader is never missed (a false one only blocks).
    """
    out = []
    if isinstance(obj, (list, tuple)):
        if len(obj) >= 3 and isinstance(obj[0], str) and obj[0] in names and isinstance(obj[1], int):
            out.append(obj[0])
        for item in obj:
            if isinstance(item, (list, tuple, dict)):
                out += _refs(item, names)
    elif isinstance(obj, dict):
        for v in obj.values():
            out += _refs(v, names)
    return out


def _channels_last(cfg: dict) -> bool:
    return cfg.get("data_format") in (None, "channels_last")


def _last_axis(layer, cfg: dict) -> bool:
    axis = cfg.get("axis", -1)
    axis = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    rank = len(layer.input_shape)
    return len(axis) == 1 and axis[0] in (-1, rank - 1)


def _role(layer, cfg: dict, class_name: str) -> str:
    """``"member"``, ``"consumer"`` or ``"blocker"`` for a layer reached by a group's channels."""
    if class_name == "Conv2D":
        ok = cfg.get("groups", 1) == 1 and _channels_last(cfg)
        return "consumer" if ok else "blocker"
    if class_name == "Dense":
        return "consumer"
    if class_name == "BatchNormalization":
        return "member" if _last_axis(layer, cfg) else "blocker"
    if class_name == "DepthwiseConv2D":
        return "member" if cfg.get("depth_multiplier", 1) == 1 and _channels_last(cfg) else "blocker"
    if class_name == "Activation":
        return "blocker" if cfg.get("activation") in _CHANNEL_MIXING_ACTIVATIONS else "member"
    if class_name == "Dropout":
        return "member" if cfg.get("noise_shape") is None else "blocker"
    if class_name in _ELEMENTWISE:
        return "member" if _channels_last(cfg) else "blocker"
    return "blocker"  # Add, Concatenate, Multiply, Reshape, Flatten, anything unknown




def _groups_from_config(model, config: dict) -> list[ChannelGroup]:
    layer_cfgs = {lc["name"]: lc for lc in config["layers"]}
    names = set(layer_cfgs)
    readers: dict[str, list[str]] = {n: [] for n in names}
    for lc in config["layers"]:
        for node in lc["inbound_nodes"]:
            for src in dict.fromkeys(_refs(node, names)):
                readers[src].append(lc["name"])
    outputs = {ref[0] for ref in config["output_layers"]}

    def shared(name: str) -> bool:
        return len(layer_cfgs[name]["inbound_nodes"]) > 1

    groups = []
    for layer in model.layers:
        lc = layer_cfgs[layer.name]
        if lc["class_name"] != "Conv2D" or _role(layer, lc["config"], "Conv2D") != "consumer":
            continue
        if shared(layer.name) or layer.name in outputs:
            continue
        members, consumers, frontier, ok = [], [], [layer.name], True
        while frontier and ok:
            current = frontier.pop(0)
            for reader in readers[current]:
                rc = layer_cfgs[reader]
                role = _role(model.get_layer(reader), rc["config"], rc["class_name"])
                if role == "blocker" or shared(reader) or (role == "member" and reader in outputs):
                    ok = False
                    break
                if role == "member":
                    members.append(reader)
                    frontier.append(reader)
                else:
                    consumers.append(reader)
        if ok:
            filters = int(lc["config"]["filters"])
            groups.append(ChannelGroup(layer.name, tuple(members), tuple(consumers), filters))
    return groups


def channel_groups(model) -> list[ChannelGroup]:
    """The prunable groups of a functional Keras ``model``, in layer order.

    Raises:
        TypeError: ``model`` is not a functional model (no graph config).
    """
    return _groups_from_config(model, functional_config(model))


# -- pruning ---------------------------------------------------------------------


def _slice_weights(class_name: str, name: str, weights: list[np.ndarray],
                   keep_in: np.ndarray | None, keep_out: np.ndarray | None) -> list[np.ndarray]:  # fmt: skip
    """``weights`` of one layer restricted to kept input / output channels."""
    if keep_in is None and keep_out is None:
        return weights
    w = list(weights)
    if class_name == "Conv2D":  # kernel (kh, kw, in, out), bias (out,)
        if keep_in is not None:
            w[0] = np.take(w[0], keep_in, axis=2)
        if keep_out is not None:
            w[0] = np.take(w[0], keep_out, axis=3)
            w[1:] = [np.take(b, keep_out, axis=0) for b in w[1:]]
    elif class_name == "DepthwiseConv2D":  # kernel (kh, kw, in, 1), bias (in,)
        w[0] = np.take(w[0], keep_in, axis=2)
        w[1:] = [np.take(b, keep_in, axis=0) for b in w[1:]]
    elif class_name == "BatchNormalization":  # gamma, beta, moving mean / variance: (in,)
        w = [np.take(v, keep_in, axis=0) for v in w]
    elif class_name == "Dense":  # kernel (in, units): rows
        w[0] = np.take(w[0], keep_in, axis=0)
    elif w:
        raise ValueError(f"cannot slice the weights of {class_name} layer {name!r}")
    return w


def prune_channels(model, fraction: float, round_to: int = 1):
    """A copy of ``model`` with the lowest-L1 ``fraction`` of each group's filters removed.

    Every weight depending on a removed channel is dropped with it (producer
    kernel and bias, BatchNorm vectors, depthwise kernels, consumer kernel
    input slices, Dense rows); the rest is copied unchanged, so a channel that
    was exactly zero after its BatchNorm leaves the outputs unchanged.
    Layer names, the model name and every other setting (BatchNorm momentum and
    epsilon...) are kept. ``model`` itself is not modified.

    Args:
        model: a functional ``tf.keras`` model.
        fraction: share of each group's channels removed, in (0, 1).
        round_to: keep a multiple of this many channels where possible.

    Raises:
        ValueError: ``fraction`` or ``round_to`` out of range.
        TypeError: ``model`` is not a functional model.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"fraction must be a number in (0, 1), got {fraction!r}")
    if isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1:
        raise ValueError(f"round_to must be a positive integer, got {round_to!r}")
    tf = tensorflow()
    config = functional_config(model)
    keep_out: dict[str, np.ndarray] = {}
    keep_in: dict[str, np.ndarray] = {}
    for g in _groups_from_config(model, config):
        kernel = model.get_layer(g.producer).get_weights()[0]
        kept = kept_channels(np.abs(kernel).sum(axis=(0, 1, 2)), fraction, round_to)
        if len(kept) == g.channels:
            continue
        keep_out[g.producer] = kept
        keep_in.update(dict.fromkeys(g.members + g.consumers, kept))
    for lc in config["layers"]:
        if lc["name"] in keep_out:
            lc["config"]["filters"] = len(keep_out[lc["name"]])
    pruned = tf.keras.Model.from_config(config)
    classes = {lc["name"]: lc["class_name"] for lc in config["layers"]}
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            sliced = _slice_weights(
                classes[layer.name], layer.name, weights, keep_in.get(layer.name), keep_out.get(layer.name)
            )
            pruned.get_layer(layer.name).set_weights(sliced)
    return pruned


# -- technique handler ---------------------------------------------------------------


@register_handler(ChannelPruningConfig, "keras")
def channel_prune(model, config: ChannelPruningConfig, ctx):
    """Transform: the channel-pruned, fine-tuned model (cached on disk like a trained model)."""

    def build() -> list[np.ndarray]:
        from compress.determinism import set_determinism

        set_determinism(model.recipe.seed)
        groups = channel_groups(model.native)
        pruned = prune_channels(model.native, config.fraction)
        changed = sum(pruned.get_layer(g.producer).filters < g.channels for g in groups)
        return fine_tune_pruned(model, pruned, config, f" of {changed} of {len(groups)} channel groups")

    return ctx.derive(model, config, build)
