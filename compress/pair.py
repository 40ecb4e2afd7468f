"""A model x technique pair, resolved once into one object.

:func:`resolve` looks the two names up in the registries, makes the model's recipe
(its factory runs once), applies the model's technique settings to the technique's
config and lays out the chain of steps. The runner, the gate and the CLI then hold
a :class:`Pair`: nothing is looked up by name again, and every reader of a pair sees
the same recipe and the same config.

A pair is memoized per process for as long as the registry holds the same two specs:
a model registered again under the same name (a test's stand-in, a plugin reloaded)
is resolved again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compress.recipe import Recipe
from compress.registry import (
    ModelSpec,
    TechniqueConfig,
    TechniqueSpec,
    get_model,
    get_technique,
    list_techniques,
    pair_config,
)
from compress.techniques.quantization import Float32Config

__all__ = ["Pair", "resolve", "resolve_recipe", "chain_of"]


def chain_of(config: TechniqueConfig) -> tuple[TechniqueConfig, ...]:
    """The steps of ``config``; a chain without an export ends with the fp32 export."""
    steps = config.steps()
    return steps if steps[-1].stage == "export" else (*steps, Float32Config())


@dataclass(frozen=True)
class Pair:
    """``model x technique``: the two registered specs, the model's recipe and the pair's config.

    Attributes:
        model, technique: the registered names.
        spec, technique_spec: what the registries hold for them.
        recipe: the model's recipe (made once, checked against the contract).
        config: the technique's config with the model's ``settings`` applied.
        chain: the config's steps, ending with an export (the fp32 export where it has none).
    """

    model: str
    technique: str
    spec: ModelSpec = field(repr=False)
    technique_spec: TechniqueSpec = field(repr=False)
    recipe: Recipe = field(repr=False)
    config: TechniqueConfig = field(repr=False)
    chain: tuple[TechniqueConfig, ...] = field(repr=False)

    @property
    def name(self) -> str:
        """``model.technique``: the pair's name in thresholds files, runs and reports."""
        return f"{self.model}.{self.technique}"

    @property
    def framework(self) -> str:
        return self.spec.framework

    @property
    def is_reference(self) -> bool:
        """True for an fp32 reference (``fp32``, ``onnx_fp32``...): what other pairs are judged against."""
        return self.config.is_fp32_reference()

    def unsupported(self) -> str | None:
        """Why the model cannot take one of the pair's steps (its recipe says so), or None."""
        declared = self.recipe.unsupported_steps()
        for step in self.config.steps():
            name = type(step).__name__
            if name in declared:
                return f"{self.model} does not support {name}: {declared[name]}"
            why = step.unsupported_by(self.recipe)
            if why:
                return f"{self.model}: {why}"
        return None

    def not_applicable(self) -> str | None:
        """Why the technique has no handler for the model's framework, or None."""
        frameworks = self.technique_spec.frameworks()
        if self.framework in frameworks:
            return None
        return (f"technique {self.technique!r} does not apply to {self.framework} model {self.model!r} "
                f"(it supports: {', '.join(sorted(frameworks)) or 'nothing yet'})")  # fmt: skip

    def reference(self) -> str:
        """The technique whose artefact this pair's latency is compared with.

        Found by runtime: the fp32 technique whose export step has the same config type
        (``onnx_int8`` -> ``onnx_fp32``, ``int8`` -> ``fp32``) and applies to the model (a
        model that is an ONNX graph has no ``onnx_fp32``: ``fp32``).
        """
        last = self.config.steps()[-1]
        for t in list_techniques(framework=self.framework):
            ref = get_technique(t).config
            if not ref.is_fp32_reference() or ref.unsupported_by(self.recipe):
                continue
            if type(ref) is type(last) or (last.stage != "export" and type(ref) is Float32Config):
                return t
        return "fp32"

    def with_config(self, config: TechniqueConfig) -> Pair:
        """This pair running ``config`` instead (a CLI override of a field)."""
        if config == self.config:
            return self
        return Pair(self.model, self.technique, self.spec, self.technique_spec, self.recipe, config, chain_of(config))


_PAIRS: dict[tuple[str, str], Pair] = {}


def resolve(model: str, technique: str) -> Pair:
    """The pair ``model x technique``, resolved once a process (while the registry holds the same specs).

    Raises:
        UnknownNameError: either name is not registered (the message names the valid ones).
        TypeError: the model's factory does not return a recipe of its framework.
    """
    spec, tspec = get_model(model), get_technique(technique)
    pair = _PAIRS.get((model, technique))
    if pair is None or pair.spec is not spec or pair.technique_spec is not tspec:
        config = pair_config(model, technique)
        pair = Pair(model, technique, spec, tspec, resolve_recipe(model), config, chain_of(config))
        _PAIRS[(model, technique)] = pair
    return pair


_RECIPES: dict[str, tuple[ModelSpec, Any]] = {}


def resolve_recipe(model: str) -> Recipe:
    """The recipe of ``model``, made once for every pair of the model (while its spec is the same)."""
    spec = get_model(model)
    held = _RECIPES.get(spec.name)
    if held is None or held[0] is not spec:
        held = _RECIPES[spec.name] = (spec, spec.recipe())
    return held[1]
