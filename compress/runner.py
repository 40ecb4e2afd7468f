"""Runs model x technique pairs: load or train the model, apply the technique,
measure the artefact that ships. One :class:`Runner` per process memoizes
everything it computes; trained models persist in the on-disk cache.

Example:
    >>> from compress.runner import Runner
    >>> r = Runner()                                   # doctest: +SKIP
    >>> res = r.evaluate("mobilenetv2", "int8")        # doctest: +SKIP
    >>> round(res.retention, 3), round(res.size_ratio, 3)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from compress import frameworks
from compress.cache import WeightsCache, recipe_key
from compress.machine import machine_info
from compress.registry import TechniqueConfig, get_model, get_technique, handler_for
from compress.runtimes.base import Artefact, get_runtime
from compress.techniques.pruning import sparsity
from compress.techniques.quantization import Float32Config

log = logging.getLogger(__name__)

# Bump when training or data-preparation code changes meaning: cached models are rebuilt.
RECIPE_VERSION = 1
ENV_THREADS = "COMPRESS_BENCH_THREADS"
_FRAMEWORK_LIBS = {"keras": ("numpy", "tensorflow", "tf-keras"), "torch": ("numpy", "torch", "torchvision")}


@dataclass
class LoadedModel:
    """A model in memory: its recipe, native object and the cache key of its weights."""

    name: str
    framework: str
    recipe: Any
    native: Any
    key: str


@dataclass
class PairResult:
    """Everything measured for one model x technique pair, with its provenance."""

    model: str
    technique: str
    config: dict
    model_recipe: dict
    model_key: str  # cache key of the trained weights the technique started from
    runtime: str  # a key of compress.runtimes.base.RUNTIMES
    runtime_version: str
    bytes: int
    gzip_bytes: int
    reference_bytes: int
    reference_gzip_bytes: int
    accuracy: float
    baseline_accuracy: float
    eval_images: int
    sparsity: float
    extra: dict  # model-specific measurements (e.g. agreement with fp32 on real photos)
    parameters: int  # trainable parameters of the model the artefact was exported from
    reference_parameters: int
    versions: dict = field(default_factory=frameworks.versions)
    machine: dict = field(default_factory=machine_info)
    timestamp: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    @property
    def size_ratio(self) -> float:
        return self.bytes / self.reference_bytes

    @property
    def gzip_ratio(self) -> float:
        return self.gzip_bytes / self.reference_gzip_bytes

    @property
    def retention(self) -> float:
        return self.accuracy / self.baseline_accuracy

    def metrics(self) -> dict:
        """The headline numbers (what goes into ``benchmark.extra_info``)."""
        return {
            "bytes": self.bytes,
            "gzip_bytes": self.gzip_bytes,
            "size_ratio": round(self.size_ratio, 6),
            "gzip_ratio": round(self.gzip_ratio, 6),
            "accuracy": self.accuracy,
            "baseline_accuracy": self.baseline_accuracy,
            "retention": round(self.retention, 6),
            "sparsity": round(self.sparsity, 6),
            "parameters": self.parameters,
            "param_ratio": round(self.parameters / self.reference_parameters, 6),
            "eval_images": self.eval_images,
            **self.extra,
        }

    def to_dict(self) -> dict:
        return {**asdict(self), **self.metrics()}


def _task_logits(recipe: Any, outputs: np.ndarray) -> np.ndarray:
    """The outputs accuracy is scored on (a recipe may add outputs, e.g. a kept ImageNet head)."""
    return recipe.task_logits(outputs) if hasattr(recipe, "task_logits") else outputs


def _describe_recipe(recipe: Any) -> dict:
    """The recipe's type and fields: what its cache key hashes.

    A field declared with ``metadata={"key_default": False}`` is left out while it
    holds its default: an option added later, at its default, means unchanged
    behaviour, so it must not invalidate weights already cached.
    """
    fields = asdict(recipe)
    for f in dataclasses.fields(recipe):
        if f.metadata.get("key_default") is False and fields.get(f.name) == f.default:
            del fields[f.name]
    return {"type": type(recipe).__name__, "fields": fields}


class Runner:
    """Computes models, artefacts and results, each once per process.

    Args:
        cache: where trained weights live (default: :func:`compress.cache.cache_root`).
        eval_threads: interpreter threads for accuracy evaluation (default: all cores).
        bench_threads: threads for latency measurement (default ``$COMPRESS_BENCH_THREADS``
            or 1: single-threaded batch-1 latency is the most repeatable on shared machines).
    """

    def __init__(self, cache: WeightsCache | None = None, eval_threads: int | None = None,
                 bench_threads: int | None = None):  # fmt: skip
        self.weights = cache or WeightsCache()
        self.eval_threads = eval_threads or os.cpu_count() or 1
        self.bench_threads = bench_threads or int(os.environ.get(ENV_THREADS, "1"))
        self._models: dict[str, LoadedModel] = {}
        self._derived: dict[tuple, LoadedModel] = {}
        self._artefacts: dict[tuple, Artefact] = {}
        self._params: dict[tuple, int] = {}
        self._loaded: dict[tuple, Any] = {}
        self._accuracies: dict[tuple, tuple[float, int]] = {}
        self._results: dict[tuple, PairResult] = {}

    # -- models ----------------------------------------------------------------
    def _versions_for(self, framework: str, extra: tuple[str, ...] = ()) -> dict:
        v = frameworks.versions()
        return {k: v[k] for k in (*_FRAMEWORK_LIBS[framework], *extra) if k in v}

    def _materialize(self, name, framework, recipe, key, weights) -> LoadedModel:
        return LoadedModel(name, framework, recipe, recipe.load(weights), key)

    def model(self, name: str) -> LoadedModel:
        """The trained model ``name``: from the cache, or trained now and cached."""
        if name not in self._models:
            spec = get_model(name)
            recipe = spec.recipe()
            basis = {
                "model": name,
                "recipe": _describe_recipe(recipe),
                "recipe_version": RECIPE_VERSION,
                "versions": self._versions_for(spec.framework),
            }
            if hasattr(recipe, "source_digest"):  # weights read from a user's file
                basis["source"] = recipe.source_digest()
            if spec.framework == "torch":  # what torch training makes depends on it
                from compress.models.torch_common import TRAIN_THREADS

                basis["train_threads"] = TRAIN_THREADS
            build = lambda: recipe.weights(recipe.train(name))  # noqa: E731
            port_of = getattr(recipe, "port_of", None)
            if port_of:  # a port to another framework of a registered model: reuse its weights
                parent = self.model(port_of)
                basis["port_of"] = parent.key
                build = lambda: recipe.weights(recipe.port_from(parent.recipe, parent.native))  # noqa: E731
            key = recipe_key(basis)
            weights, cached = self.weights.get_or_build(name, key, build, info=basis)
            log.info("%s: %s weights %s", name, "cached" if cached else "trained", key)
            self._models[name] = self._materialize(name, spec.framework, recipe, key, weights)
        return self._models[name]

    def derive(self, parent: LoadedModel, step: TechniqueConfig, build: Callable[[], list],
               extra_versions: tuple[str, ...] = (), handler_version: int = 1) -> LoadedModel:  # fmt: skip
        """A model derived from ``parent`` by a transform ``step``, cached on disk.

        Transform handlers call this with a ``build`` returning the new weights,
        and bump ``handler_version`` when a fix changes what ``build`` makes.
        """
        basis = {
            "parent": parent.key,
            "step": step.describe(),
            "versions": self._versions_for(parent.framework, extra_versions),
        }
        if handler_version != 1:
            basis["handler_version"] = handler_version
        key = recipe_key(basis)
        weights, cached = self.weights.get_or_build(parent.name, key, build, info=basis)
        log.info("%s: %s %s weights %s", parent.name, type(step).__name__, "cached" if cached else "built", key)
        return self._materialize(parent.name, parent.framework, parent.recipe, key, weights)

    # -- artefacts ---------------------------------------------------------------
    @staticmethod
    def _chain(config: TechniqueConfig) -> tuple[TechniqueConfig, ...]:
        """The steps of ``config``; a chain without an export ends with the fp32 export."""
        steps = config.steps()
        return steps if steps[-1].stage == "export" else (*steps, Float32Config())

    def artefact(self, model: str, config: TechniqueConfig) -> Artefact:
        """The deployable artefact of ``model`` compressed by ``config`` (transforms in order)."""
        steps = self._chain(config)
        memo = (model, steps)
        if memo not in self._artefacts:
            m = self.model(model)
            for step in steps[:-1]:
                m = self.transform(m, step)
            self._params[memo] = m.recipe.count_params(m.native)
            t0 = time.perf_counter()
            self._artefacts[memo] = handler_for(steps[-1], m.framework)(m, steps[-1], self)
            log.info("%s: exported %s in %.1f s", model, type(steps[-1]).__name__, time.perf_counter() - t0)
        return self._artefacts[memo]

    def transform(self, m: LoadedModel, step: TechniqueConfig) -> LoadedModel:
        """``m`` after one transform step (e.g. pruned and fine-tuned), memoized."""
        memo = (m.key, step)
        if memo not in self._derived:
            self._derived[memo] = handler_for(step, m.framework)(m, step, self)
        return self._derived[memo]

    # -- measurements --------------------------------------------------------------
    def accuracy(self, model: str, config: TechniqueConfig) -> tuple[float, int]:
        """``(top-1, images)`` of the artefact on the whole test split (memoized)."""
        memo = (model, self._chain(config))
        if memo not in self._accuracies:
            art = self.artefact(model, config)
            recipe = self.model(model).recipe
            x, y = recipe.data("test")
            t0 = time.perf_counter()
            pred = _task_logits(recipe, self.loaded(model, config).predict(x)).argmax(axis=1)
            self._accuracies[memo] = (float(np.mean(pred == y)), len(y))
            log.info("%s %s: top-1 %.4f on %d test images (%.1f s)", model, type(config).__name__,
                     self._accuracies[memo][0], len(y), time.perf_counter() - t0)  # fmt: skip
        return self._accuracies[memo]

    def loaded(self, model: str, config: TechniqueConfig):
        """The pair's artefact loaded in its runtime with ``eval_threads`` (memoized)."""
        memo = (model, self._chain(config))
        if memo not in self._loaded:
            art = self.artefact(model, config)
            self._loaded[memo] = get_runtime(art.runtime).load(art, self.eval_threads)
        return self._loaded[memo]

    @staticmethod
    def reference_technique(model: str, technique: str) -> str:
        """The registered fp32 export in the same runtime as ``technique``'s artefact.

        Found by runtime: the fp32 technique whose export step has the same
        config type family (e.g. ``onnx_int8`` -> ``onnx_fp32``, ``int8`` -> ``fp32``).
        """
        from compress.registry import list_techniques

        fw = get_model(model).framework
        last = get_technique(technique).config.steps()[-1]
        refs = [t for t in list_techniques(framework=fw) if get_technique(t).config.is_fp32_reference()]
        for t in refs:
            ref = get_technique(t).config
            if type(ref) is type(last) or (last.stage != "export" and type(ref) is Float32Config):
                return t
        return "fp32"

    def skip_reason(self, model: str, technique: str) -> str | None:
        """Why a registered pair cannot run here (missing data or weights, unsupported step), or None."""
        recipe = get_model(model).recipe()
        reason = recipe.unavailable() if hasattr(recipe, "unavailable") else None
        if reason:
            return reason
        unsupported = getattr(recipe, "unsupported", ())
        if not isinstance(unsupported, dict):
            why = getattr(recipe, "unsupported_reason", "not supported by this model")
            unsupported = dict.fromkeys(unsupported, why)
        for step in get_technique(technique).config.steps():
            if type(step).__name__ in unsupported:
                return f"{model} does not support {type(step).__name__}: {unsupported[type(step).__name__]}"
        return None

    def evaluate(self, model: str, technique: str, config: TechniqueConfig | None = None) -> PairResult:
        """Measure a pair on its shipped artefact against the model's fp32 artefact.

        Args:
            model, technique: registered names.
            config: overrides the technique's registered config (same type).

        Raises:
            NotImplementedError: the technique has no handler for the model's framework.
        """
        spec = get_technique(technique)
        config = config or spec.config
        memo = (model, technique, config)
        if memo in self._results:
            return self._results[memo]
        framework = get_model(model).framework
        if framework not in spec.frameworks():
            raise NotImplementedError(
                f"technique {technique!r} does not apply to {framework} model {model!r} "
                f"(it supports: {', '.join(sorted(spec.frameworks())) or 'nothing yet'})"
            )
        ref, art = self.artefact(model, Float32Config()), self.artefact(model, config)
        acc, n = self.accuracy(model, config)
        recipe = self.model(model).recipe
        extra = {}
        if hasattr(recipe, "extra_metrics"):
            extra = recipe.extra_metrics(self.loaded(model, config).predict,
                                         self.loaded(model, Float32Config()).predict)  # fmt: skip
        res = PairResult(
            model=model,
            technique=technique,
            config=config.describe(),
            model_recipe=_describe_recipe(self.model(model).recipe),
            model_key=self.model(model).key,
            runtime=art.runtime,
            runtime_version=get_runtime(art.runtime).version(),
            bytes=art.nbytes,
            gzip_bytes=art.gzip_nbytes(),
            reference_bytes=ref.nbytes,
            reference_gzip_bytes=ref.gzip_nbytes(),
            accuracy=acc,
            baseline_accuracy=self.accuracy(model, Float32Config())[0],
            eval_images=n,
            sparsity=sparsity(get_runtime(art.runtime).load(art, 1).weight_arrays()),
            parameters=self._params[(model, self._chain(config))],
            reference_parameters=self._params[(model, self._chain(Float32Config()))],
            extra=extra,
        )
        self._results[memo] = res
        return res

    def latency_fn(self, model: str, technique: str, config: TechniqueConfig | None = None) -> Callable[[], Any]:
        """A function running one batch-1 inference of the pair's artefact on a real test image."""
        art = self.artefact(model, config or get_technique(technique).config)
        x = self.model(model).recipe.data("test")[0][0]
        return get_runtime(art.runtime).load(art, self.bench_threads).single_image_fn(x)
