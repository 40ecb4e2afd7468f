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
    runtime: str
    bytes: int
    gzip_bytes: int
    reference_bytes: int
    reference_gzip_bytes: int
    accuracy: float
    baseline_accuracy: float
    eval_images: int
    sparsity: float
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
            "eval_images": self.eval_images,
        }

    def to_dict(self) -> dict:
        return {**asdict(self), **self.metrics()}


def _describe_recipe(recipe: Any) -> dict:
    return {"type": type(recipe).__name__, "fields": asdict(recipe)}


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
        self._accuracies: dict[tuple, tuple[float, int]] = {}
        self._results: dict[tuple, PairResult] = {}

    # -- models ----------------------------------------------------------------
    def _versions_for(self, framework: str, extra: tuple[str, ...] = ()) -> dict:
        v = frameworks.versions()
        return {k: v[k] for k in (*_FRAMEWORK_LIBS[framework], *extra) if k in v}

    def _materialize(self, name, framework, recipe, key, weights) -> LoadedModel:
        native = recipe.build()
        native.set_weights(weights)
        return LoadedModel(name, framework, recipe, native, key)

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
            key = recipe_key(basis)
            weights, cached = self.weights.get_or_build(
                name, key, lambda: recipe.train(name).get_weights(), info=basis
            )
            log.info("%s: %s weights %s", name, "cached" if cached else "trained", key)
            self._models[name] = self._materialize(name, spec.framework, recipe, key, weights)
        return self._models[name]

    def derive(self, parent: LoadedModel, step: TechniqueConfig, build: Callable[[], list],
               extra_versions: tuple[str, ...] = ()) -> LoadedModel:  # fmt: skip
        """A model derived from ``parent`` by a transform ``step``, cached on disk.

        Transform handlers call this with a ``build`` returning the new weights.
        """
        basis = {
            "parent": parent.key,
            "step": step.describe(),
            "versions": self._versions_for(parent.framework, extra_versions),
        }
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
            x, y = self.model(model).recipe.data("test")
            t0 = time.perf_counter()
            pred = get_runtime(art.runtime).load(art, self.eval_threads).predict(x).argmax(axis=1)
            self._accuracies[memo] = (float(np.mean(pred == y)), len(y))
            log.info("%s %s: top-1 %.4f on %d test images (%.1f s)", model, type(config).__name__,
                     self._accuracies[memo][0], len(y), time.perf_counter() - t0)  # fmt: skip
        return self._accuracies[memo]

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
        res = PairResult(
            model=model,
            technique=technique,
            config=config.describe(),
            model_recipe=_describe_recipe(self.model(model).recipe),
            model_key=self.model(model).key,
            runtime=f"{art.runtime} {get_runtime(art.runtime).version()}",
            bytes=art.nbytes,
            gzip_bytes=art.gzip_nbytes(),
            reference_bytes=ref.nbytes,
            reference_gzip_bytes=ref.gzip_nbytes(),
            accuracy=acc,
            baseline_accuracy=self.accuracy(model, Float32Config())[0],
            eval_images=n,
            sparsity=sparsity(get_runtime(art.runtime).load(art, 1).weight_arrays()),
        )
        self._results[memo] = res
        return res

    def latency_fn(self, model: str, technique: str, config: TechniqueConfig | None = None) -> Callable[[], Any]:
        """A function running one batch-1 inference of the pair's artefact on a real test image."""
        art = self.artefact(model, config or get_technique(technique).config)
        x = self.model(model).recipe.data("test")[0][0]
        return get_runtime(art.runtime).load(art, self.bench_threads).single_image_fn(x)
