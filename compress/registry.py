"""The two registries: models and techniques. Everything enumerates these.

Models are registered with a decorator on a factory that returns the model's
recipe (a frozen dataclass that knows how to build, train and preprocess).
Techniques are registered as named, validated config dataclasses; the code that
applies a config is looked up by ``(config type, framework)``, so one technique
name (``int8``) can apply to several frameworks, and the frameworks a technique
supports are derived from the handlers that exist, never listed twice.

Example:
    >>> from compress import registry
    >>> registry.list_models(tier="gate")               # doctest: +SKIP
    ['efficientnet_lite0', 'mobilenetv2', 'resnet18']
    >>> registry.get_technique("int8").config           # doctest: +SKIP
    Int8Config(calibration_size=500)
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from compress import plugins
from compress.recipe import Recipe

__all__ = [
    "ModelSpec", "TechniqueConfig", "TechniqueSpec", "UnknownNameError",
    "register_model", "register_technique", "register_handler",
    "get_model", "get_technique", "list_models", "list_techniques",
    "pairs", "pair_config", "handler_for", "check_range",
]  # fmt: skip

# gate: the merge gate (which pairs, declared where each model is registered): a subset of full's
# pairs, each run on its full recipe or on the model's gate recipe (a smaller training budget,
# registered as `<model>_gate`). full: every pair of the suite's own models (asv, scheduled runs).
# unit: fast models for tests. pretrained: needs a user's weights and data. hub: Hugging Face Hub
# checkpoints and SST-2 (needs the network, or their files in the local caches).
TIERS = ("gate", "full", "unit", "pretrained", "hub")


class UnknownNameError(KeyError):
    """An unknown model, technique or field name; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def _unknown(kind: str, name: str, valid: list[str]) -> UnknownNameError:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return UnknownNameError(f"unknown {kind} {name!r}.{hint} Valid: {', '.join(valid)}")


# -- models --------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its name, where it comes from, and its recipe factory."""

    name: str
    framework: str
    task: str
    dataset: str
    tier: str
    description: str
    factory: Callable[[], Any]
    family: str = ""  # models sharing weights (a port to another framework) share a family
    # Which of its pairs are in the merge gate: True (all), or technique names.
    gate: bool | tuple[str, ...] = False
    # Technique settings of this model's pairs: ((config type name, ((field, value), ...)), ...)
    settings: tuple = ()
    # A gate recipe's full model: the registered model whose recipe this one cuts down (see
    # register_model's gate_recipe); "" for every other model.
    gate_of: str = ""
    # The fp32 export the gate's self-test plants its regressions in (compress.techniques.planted):
    # a registered fp32 reference technique of the model's framework, "fp32" unless its
    # registration names a cheaper one (a detector whose fp32 LiteRT conversion takes 16 s).
    planted_in: str = "fp32"

    def __post_init__(self) -> None:
        if not self.family:
            object.__setattr__(self, "family", self.name)

    def in_gate(self, technique: str) -> bool:
        """True when ``self.name x technique`` is a gate pair."""
        return self.gate is True or (isinstance(self.gate, tuple) and technique in self.gate)

    def recipe(self) -> Recipe:
        """A new recipe from the model's factory, checked against the contract (:class:`compress.recipe.Recipe`).

        Raises:
            TypeError: the factory returned something else, or a recipe of another framework.
        """
        recipe = self.factory()
        if not isinstance(recipe, Recipe):
            raise TypeError(
                f"model {self.name!r}: its factory ({self.factory.__module__}.{self.factory.__qualname__}) returned "
                f"a {type(recipe).__name__}, not a recipe: return an instance of a compress.recipe.Recipe subclass "
                f"(a built-in one such as compress.models.vision.torch_classifier.TorchImageClassifier, or your own)")
        if recipe.framework != self.framework:
            raise TypeError(f"model {self.name!r} is registered as framework={self.framework!r} but its recipe "
                            f"{type(recipe).__name__} is a {recipe.framework!r} recipe")  # fmt: skip
        return recipe


_MODELS: dict[str, ModelSpec] = {}


GATE_SUFFIX = "_gate"  # a gate recipe's model name: its full model's name and this


def register_model(
    *, framework: str, task: str, dataset: str, tier: str = "full", name: str | None = None,
    family: str = "", gate: bool | tuple[str, ...] = False, settings: dict[str, dict] | None = None,
    gate_recipe: dict[str, Any] | None = None, gate_settings: dict[str, dict] | None = None,
    planted_in: str = "fp32",
) -> Callable:
    """Decorator: register a factory returning a model recipe under its function name.

    ``tier`` is ``full`` (the suite's own models), ``unit`` or ``pretrained``;
    ``gate`` puts the model's pairs in the merge gate too: ``True`` for all of
    them, or a tuple of technique names (a ``full`` model only). The gate has
    the cheapest real model of each path; ``tests/test_registry.py`` checks that
    it covers every technique handler and every runtime.

    ``gate_recipe`` gives the gate a recipe of its own, for a model whose full
    recipe trains too long for a cold gate: the full recipe with these fields
    replaced (a smaller training budget: ``{"epochs": 2, "train_size": 6_000}``), so
    the architecture, task, data, metric and export path stay the full recipe's.
    It is registered as the model ``<name>_gate`` (tier ``gate``, family of its
    own: weights, cache entries, stored results and bounds all apart from the
    full recipe's), which runs the ``gate`` pairs; the full model keeps every
    pair in ``full``. ``gate_settings`` are technique settings of the gate
    model's pairs, merged over ``settings`` per config type (a shorter recovery
    fine-tune).

    ``planted_in`` names the fp32 export (an fp32 reference technique, such as ``onnx_fp32``)
    that the gate's self-test plants its regressions in, where ``fp32`` costs far more to build.

    ``settings`` sets technique fields for this model's pairs, by config type:
    ``{"MagnitudePruningConfig": {"learning_rate": 2e-4}}`` fine-tunes every
    magnitude-pruning step of its pairs (chains included) at that rate. It is
    for what depends on the model, such as the recovery fine-tune that suits
    it; :func:`pair_config` applies it, and results record the config applied.
    """
    if tier not in TIERS or tier == "gate":
        raise ValueError(f"tier must be one of {tuple(t for t in TIERS if t != 'gate')}, got {tier!r}"
                         " (gate pairs are declared with gate=...)")
    if gate and tier != "full":
        raise ValueError(f"only full-tier models join the gate, not {tier!r} ones")
    if not (isinstance(gate, bool) or (isinstance(gate, tuple) and all(isinstance(t, str) for t in gate))):
        raise ValueError(f"gate must be True, False or a tuple of technique names, got {gate!r}")
    if (gate_recipe is not None or gate_settings is not None) and not gate:
        raise ValueError("gate_recipe and gate_settings need gate=... (the pairs the gate recipe runs)")
    if gate_recipe is not None and not (isinstance(gate_recipe, dict) and gate_recipe):
        raise ValueError(f"gate_recipe must be a non-empty dict of recipe fields to replace, got {gate_recipe!r}")
    if gate_settings is not None and gate_recipe is None:
        raise ValueError("gate_settings need a gate_recipe: without one the gate runs the full recipe's pairs")

    def freeze(s: dict[str, dict] | None) -> tuple:
        return tuple(sorted((t, tuple(sorted(f.items()))) for t, f in (s or {}).items()))

    def deco(fn: Callable[[], Any]) -> Callable[[], Any]:
        key = name or fn.__name__
        doc = (fn.__doc__ or "").strip().splitlines()
        if gate_recipe is None:
            specs = [ModelSpec(key, framework, task, dataset, tier, doc[0] if doc else "", fn, family, gate,
                               freeze(settings), planted_in=planted_in)]  # fmt: skip
        else:
            fields = dict(gate_recipe)

            def gate_factory() -> Any:
                return _replace_fields(fn(), fields, f"gate_recipe of {key!r}")

            merged = {t: dict(f) for t, f in (settings or {}).items()}
            for t, f in (gate_settings or {}).items():
                merged[t] = {**merged.get(t, {}), **f}
            budget = ", ".join(f"{k}={_short(v)}" for k, v in fields.items())
            specs = [
                ModelSpec(key, framework, task, dataset, tier, doc[0] if doc else "", fn, family, False,
                          freeze(settings), planted_in=planted_in),
                ModelSpec(key + GATE_SUFFIX, framework, task, dataset, "gate",
                          f"{key}'s gate recipe: its full recipe with {budget}", gate_factory, "", gate,
                          freeze(merged), gate_of=key, planted_in=planted_in),
            ]  # fmt: skip
        for spec in specs:
            if spec.name in _MODELS:
                raise ValueError(f"model {spec.name!r} is already registered")
        for spec in specs:
            _MODELS[spec.name] = spec
        return fn

    return deco


def _short(value: Any) -> str:
    """``value``'s repr; a dataclass's, only its fields that differ from its class's defaults."""
    if not dataclasses.is_dataclass(value):
        return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else repr(value)
    try:
        default = type(value)()
    except TypeError:
        return repr(value)
    changed = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)
               if getattr(value, f.name) != getattr(default, f.name)}  # fmt: skip
    return f"{type(value).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"


def _replace_fields(recipe: Any, fields: dict[str, Any], what: str) -> Any:
    """``recipe`` (a dataclass) with ``fields`` replaced; an unknown field names the valid ones."""
    valid = [f.name for f in dataclasses.fields(recipe) if f.init]
    for k in fields:
        if k not in valid:
            raise _unknown(f"field of {type(recipe).__name__} in {what}", k, valid)
    return dataclasses.replace(recipe, **fields)


# The suite's own catalogues: modules whose import registers the built-in models and techniques.
# Imported by name on the first lookup, as a plugin is (pytest loads its built-in plugins the same
# way), so that this module imports none of them: a catalogue imports the registry, never back.
BUILTIN = ("compress.models.catalogue", "compress.techniques.catalogue")


def _ensure_loaded() -> None:
    # Importing a catalogue is cheap (no framework is imported until a model is built).
    for name in BUILTIN:
        importlib.import_module(name)
    # Then a team's own models (compress/plugins.py): entry points and $COMPRESS_BENCH_PLUGINS,
    # after the suite's catalogue, so that a plugin can never take a suite model's name.
    plugins.load(registered=_MODELS)


def _check_tier(tier: str | None) -> None:
    if tier is not None and tier not in TIERS:
        raise _unknown("tier", tier, list(TIERS))


def _in_tier(spec: ModelSpec, tier: str | None) -> bool:
    if tier == "gate":  # a gate recipe's model, or a full model whose gate runs its own recipe
        return spec.tier == "gate" or (spec.tier == "full" and bool(spec.gate))
    return tier is None or spec.tier == tier


def list_models(pattern: str = "*", *, tier: str | None = None, framework: str | None = None) -> list[str]:
    """Names of registered models matching a glob ``pattern``, a tier and a framework.

    A model is in the ``gate`` tier when any of its pairs is.
    """
    _ensure_loaded()
    _check_tier(tier)
    return sorted(
        n
        for n, s in _MODELS.items()
        if fnmatch.fnmatchcase(n, pattern)
        and _in_tier(s, tier)
        and (framework is None or s.framework == framework)
    )


def get_model(name: str) -> ModelSpec:
    _ensure_loaded()
    try:
        return _MODELS[name]
    except KeyError:
        err = _unknown("model", name, sorted(_MODELS))
        raise UnknownNameError(f"{err}. {_plugins_said()}") from None


def _plugins_said() -> str:
    """Which plugins registered models in this process: a team's model is unknown until one does."""
    loaded = plugins.loaded()
    if not loaded:
        return (f"No plugin was loaded (none named by --plugin, ${plugins.ENV} or a {plugins.GROUP} entry "
                "point): a team's models register when their module is imported (README: Your own models).")  # fmt: skip
    return f"Plugins loaded: {', '.join(sorted(loaded))}."


# -- techniques ------------------------------------------------------------------


def check_range(field: str, value: Any, lo: float, hi: float, *, integer: bool = False) -> None:
    """Raise ValueError naming ``field`` unless ``lo <= value <= hi``."""
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not (lo <= value <= hi):
        raise ValueError(f"{field} must be {kind} in [{lo}, {hi}], got {value!r}")


@dataclass(frozen=True)
class TechniqueConfig:
    """Base of technique configs. Subclasses validate in ``__post_init__``.

    ``stage`` is ``"transform"`` (model in, model out: pruning) or ``"export"``
    (model in, deployable artefact out: conversion and quantization).
    ``version`` changes whenever the meaning of a config changes.
    """

    stage: ClassVar[str] = "transform"
    version: ClassVar[int] = 1
    # True for a step with metrics of its own (:meth:`extra_metrics`): they are stored keyed by its config too
    has_own_metrics: ClassVar[bool] = False

    def steps(self) -> tuple["TechniqueConfig", ...]:
        return (self,)

    def is_fp32_reference(self) -> bool:
        """True for an uncompressed export: the latency baseline of its runtime."""
        return False

    def unsupported_by(self, recipe: Any) -> str | None:
        """Why this step cannot apply to the model of ``recipe`` at these settings (the pair is
        skipped saying so), or None. Decided from the recipe alone: nothing is trained."""
        return None

    def extra_metrics(self, model: Any) -> dict:
        """Metrics of this step's own, from ``model`` (the trained model it applies to); see ``has_own_metrics``."""
        return {}

    def describe(self) -> dict:
        """``{type, version, fields}``: enough to trace a number to its recipe."""
        fields = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple) and v and isinstance(v[0], TechniqueConfig):
                v = [c.describe() for c in v]
            fields[f.name] = v
        return {"type": type(self).__name__, "version": self.version, "fields": fields}

    def replace(self, **changes: Any) -> "TechniqueConfig":
        """A copy with ``changes`` applied (and validated). Unknown fields are rejected."""
        valid = [f.name for f in dataclasses.fields(self)]
        for k in changes:
            if k not in valid:
                raise _unknown(f"field of {type(self).__name__}", k, valid)
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class TechniqueSpec:
    name: str
    config: TechniqueConfig
    description: str
    # Model tasks it applies to (None: every task). Structure is task-specific: a CNN has channels,
    # a transformer has attention heads; a pair of a technique and a model of another task does not exist.
    tasks: tuple[str, ...] | None = None

    def applies_to(self, task: str) -> bool:
        return self.tasks is None or task in self.tasks

    def frameworks(self) -> frozenset[str]:
        """Frameworks with a handler for every step of this technique."""
        sets = [frozenset(fw for (t, fw) in _HANDLERS if t is type(s)) for s in self.config.steps()]
        return frozenset.intersection(*sets) if sets else frozenset()


_TECHNIQUES: dict[str, TechniqueSpec] = {}
_HANDLERS: dict[tuple[type, str], Callable] = {}


def register_technique(name: str, config: TechniqueConfig, description: str,
                       tasks: tuple[str, ...] | None = None) -> TechniqueSpec:  # fmt: skip
    """Register ``config`` as technique ``name``; ``tasks``: the model tasks it applies to (None: all)."""
    if name in _TECHNIQUES:
        raise ValueError(f"technique {name!r} is already registered")
    spec = TechniqueSpec(name, config, description, tuple(tasks) if tasks is not None else None)
    _TECHNIQUES[name] = spec
    return spec


DEVICES = ("cpu", "cuda")
# (config type, framework) -> (devices its artefact runs on, why not the others)
_DEVICES: dict[tuple[type, str], tuple[Any, str]] = {}
_BASES: dict[tuple[type, str], Callable[[Any], Any]] = {}


def register_handler(config_type: type, framework: str, *,
                     devices: tuple[str, ...] | Callable[[Any], tuple[str, ...]] = ("cpu",),
                     why: str = "", base: Callable[[Any], Any] | None = None) -> Callable:  # fmt: skip
    """Decorator: the function applying ``config_type`` to models of ``framework``.

    ``devices`` are where an export handler's artefact runs (``cpu``, ``cuda``),
    or a function of the config returning them; ``why`` says, in a skipped
    pair's reason, why not elsewhere. A transform (model in, model out) runs
    wherever the export after it runs. ``base``: for an export handler that starts from
    another export of the same model (ONNX int8 quantizes the fp32 graph), a function of the
    config returning that export's config (or None where it starts from the model): the handler
    asks the runner for it (:func:`export_base`), and :mod:`compress.prepare` builds both in one
    job, so that it is exported once.
    """
    if not callable(devices) and (not devices or set(devices) - set(DEVICES)):
        raise ValueError(f"devices must be a non-empty subset of {DEVICES}, got {devices!r}")

    def deco(fn: Callable) -> Callable:
        _HANDLERS[(config_type, framework)] = fn
        _DEVICES[(config_type, framework)] = (devices if callable(devices) else tuple(devices), why)
        if base is not None:
            _BASES[(config_type, framework)] = base
        return fn

    return deco


def export_base(config: TechniqueConfig, framework: str) -> TechniqueConfig | None:
    """The export that ``config``'s handler for ``framework`` models starts from (its ``base``), or None."""
    _ensure_loaded()
    base = _BASES.get((type(config), framework))
    return base(config) if base is not None else None


def device_support(steps: tuple[TechniqueConfig, ...], framework: str, device: str) -> str | None:
    """None when every export step of ``steps`` (a pair's chain, its export included) runs on
    ``device`` for ``framework`` models, else why not."""
    if device not in DEVICES:
        raise _unknown("device", device, list(DEVICES))
    _ensure_loaded()
    for step in steps:
        if step.stage != "export":
            continue
        devices, why = _DEVICES.get((type(step), framework), (("cpu",), ""))
        devices = devices(step) if callable(devices) else devices
        if device not in devices:
            return (f"{type(step).__name__} artefacts of {framework} models run on {', '.join(devices)} only"
                    + (f": {why}" if why else ""))  # fmt: skip
    return None


def handler_for(config: TechniqueConfig, framework: str) -> Callable:
    _ensure_loaded()  # the handlers register when the technique catalogue is imported
    try:
        return _HANDLERS[(type(config), framework)]
    except KeyError:
        raise NotImplementedError(
            f"{type(config).__name__} has no implementation for {framework!r} models"
        ) from None


def list_techniques(pattern: str = "*", *, framework: str | None = None, task: str | None = None) -> list[str]:
    """Registered technique names matching ``pattern`` that apply to ``framework`` and ``task`` (if given)."""
    _ensure_loaded()
    return [
        n
        for n, s in _TECHNIQUES.items()
        if fnmatch.fnmatchcase(n, pattern)
        and (framework is None or framework in s.frameworks())
        and (task is None or s.applies_to(task))
    ]


def get_technique(name: str) -> TechniqueSpec:
    _ensure_loaded()
    try:
        return _TECHNIQUES[name]
    except KeyError:
        raise _unknown("technique", name, list(_TECHNIQUES)) from None


def _with_settings(config: TechniqueConfig, settings: dict[str, dict]) -> TechniqueConfig:
    changes = {}
    for f in dataclasses.fields(config):  # chains: apply to each step
        v = getattr(config, f.name)
        if isinstance(v, tuple) and v and all(isinstance(c, TechniqueConfig) for c in v):
            changes[f.name] = tuple(_with_settings(c, settings) for c in v)
    if changes:
        config = dataclasses.replace(config, **changes)
    own = settings.get(type(config).__name__)
    return config.replace(**own) if own else config


def pair_config(model: str, technique: str) -> TechniqueConfig:
    """The config the pair ``model x technique`` runs: the technique's, with the model's ``settings``.

    Raises:
        UnknownNameError: a setting names a field the config type does not have.
        ValueError: a setting's value is out of the field's range.
    """
    spec, config = get_model(model), get_technique(technique).config
    return _with_settings(config, {t: dict(f) for t, f in spec.settings}) if spec.settings else config


def pairs(*, tier: str = "gate", model: str = "*", technique: str = "*") -> list[tuple[str, str]]:
    """Every applicable (model, technique) pair of a tier, in registry order.

    Raises:
        UnknownNameError: a model's ``gate`` names a technique that is not registered.
        ValueError: it names one that does not apply to the model's framework.
    """
    out = []
    for m in list_models(model, tier=tier):
        spec = _MODELS[m]
        applicable = list_techniques(technique, framework=spec.framework, task=spec.task)
        if tier == "gate":
            if isinstance(spec.gate, tuple):
                for t in spec.gate:
                    if t not in list_techniques(framework=spec.framework, task=spec.task):
                        get_technique(t)  # unknown: names the valid ones
                        raise ValueError(f"model {m!r} puts {t!r} in the gate, but it does not apply "
                                         f"to {spec.framework} {spec.task} models")
            applicable = [t for t in applicable if spec.in_gate(t)]
        out += [(m, t) for t in applicable]
    return out
