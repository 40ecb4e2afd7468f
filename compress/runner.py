"""Runs model x technique pairs: load or train the model, apply the technique,
measure the artefact that ships. One :class:`Runner` per process memoizes
everything it computes; trained models persist in the on-disk cache, and
metrics computed from an artefact's outputs persist in the result store
(:mod:`compress.storage.results`), keyed by the artefact's bytes. Every phase is timed
in :attr:`Runner.profile` (:mod:`compress.reporting.profile`).

Example:
    >>> from compress.runner import Runner
    >>> r = Runner()                                   # doctest: +SKIP
    >>> res = r.evaluate("mobilenetv2", "int8")        # doctest: +SKIP
    >>> round(res.retention, 3), round(res.size_ratio, 3)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from compress import frameworks
from compress.storage.artefacts import RunArtefacts
from compress.storage.cache import WeightsCache, recipe_key
from compress.machine import default_jobs, machine_info
from compress.pair import chain_of, resolve, resolve_recipe
from compress.reporting.profile import CostProfile
from compress.registry import (
    DEVICES,
    TechniqueConfig,
    device_support,
    get_model,
    handler_for,
)
from compress.metrics import metric_of
from compress.storage.results import EVAL_VERSION, ResultStore, code_digest, digest_arrays, digest_bytes
from compress.runtimes.base import Artefact, get_runtime
from compress.techniques.pruning import sparsity
from compress.techniques.quantization import Float32Config

log = logging.getLogger(__name__)

# Bump when training or data-preparation code changes meaning: cached models are rebuilt.
RECIPE_VERSION = 1
ENV_THREADS = "COMPRESS_BENCH_THREADS"
ENV_DEVICE = "COMPRESS_BENCH_DEVICE"
# the libraries whose versions shape a framework's trained weights (a model that is an ONNX graph: onnx
# decodes its initializers, the arrays a weight-reading technique changes)
_FRAMEWORK_LIBS = {"keras": ("numpy", "tensorflow", "tf-keras"), "torch": ("numpy", "torch", "torchvision"),
                   "ultralytics": ("numpy", "torch", "torchvision", "ultralytics"), "onnx": ("numpy", "onnx")}


def default_eval_threads() -> int:
    """Threads for accuracy evaluation: the cores shared evenly by the prepare workers (one each on 2 cores).

    A worker evaluates beside another that trains; more threads than its share of
    the cores made torch and ONNX Runtime evaluation 2-10x slower there (spinning
    thread pools: ResNet18 float16 on 10,000 images took 59.5 s on two threads in
    a worker, 6.4 s on one beside a training process). The serial path uses the same count, since the
    count is part of a stored result's key (:mod:`compress.storage.results`): a result a
    worker stored is the one a later run reuses.
    """
    return max(1, (os.cpu_count() or 1) // default_jobs())


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
    gzip_bytes: int | None  # None: not measured (evaluate(gzip=False): a planted self-test's model)
    reference_bytes: int
    reference_gzip_bytes: int | None
    # the model's task metric (compress.metrics): its results key ("accuracy": top-1, "perplexity"),
    # its value for the artefact and for the fp32 reference, on eval_images test examples
    metric: str
    score: float
    baseline_score: float
    eval_images: int
    # one-sided confidence bounds (compress.judging.stats.CONFIDENCE) from the per-example outcomes, what a
    # bound is judged by: the score's on the side its bound holds (upper for a floor on top-1, lower
    # for a ceiling on perplexity), and retention's upper one
    score_bound: float
    retention: float  # compressed against fp32, above 1 better for every metric (top-1 ratio; fp32 ppl / ppl)
    retention_upper: float
    sparsity: float
    extra: dict  # model-specific measurements (e.g. agreement with fp32 on real photos)
    parameters: int  # trainable parameters of the model the artefact was exported from
    reference_parameters: int
    versions: dict = field(default_factory=frameworks.versions)
    machine: dict = field(default_factory=machine_info)
    timestamp: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    device: str = "cpu"  # where the artefact ran: cpu, or cuda (its name in device_name)
    device_name: str = "cpu"
    # where the per-example outcomes came from: "measured now", or "stored <UTC time>" (the result store)
    quality_from: str = "measured now"

    @property
    def size_ratio(self) -> float:
        return self.bytes / self.reference_bytes

    @property
    def gzip_ratio(self) -> float | None:
        if self.gzip_bytes is None or self.reference_gzip_bytes is None:
            return None
        return self.gzip_bytes / self.reference_gzip_bytes

    @property
    def task_metric(self):
        from compress.metrics import get_metric

        return get_metric(self.metric)

    def metrics(self) -> dict:
        """The headline numbers (what goes into ``benchmark.extra_info``)."""
        return {
            "bytes": self.bytes,
            "gzip_bytes": self.gzip_bytes,
            "size_ratio": round(self.size_ratio, 6),
            "gzip_ratio": None if self.gzip_ratio is None else round(self.gzip_ratio, 6),
            "metric": self.metric,
            self.metric: self.score,
            f"baseline_{self.metric}": self.baseline_score,
            "retention": round(self.retention, 6),
            self.task_metric.bound_key: self.score_bound,
            "retention_upper": self.retention_upper,
            "sparsity": round(self.sparsity, 6),
            "parameters": self.parameters,
            "param_ratio": round(self.parameters / self.reference_parameters, 6),
            "eval_images": self.eval_images,
            "quality_from": self.quality_from,
            **self.extra,
        }

    def to_dict(self) -> dict:
        return {**asdict(self), **self.metrics()}


def _describe_recipe(recipe: Any) -> dict:
    """The recipe's type and fields: what its cache key hashes.

    A field declared with ``metadata={"key_default": False}`` is left out while it
    holds its default: an option added later, at its default, means unchanged
    behaviour, so it must not invalidate weights already cached.
    A field holding a :class:`compress.data.dataset.Dataset` enters as its type and
    digest (:meth:`~compress.data.dataset.Dataset.key`): what the data are, not where.
    A field declared with ``metadata={"key": False}`` (the path of a file the recipe
    reads its model from) is left out: what the file holds enters the weights' key as
    the recipe's :meth:`~compress.recipe.Recipe.source_digest`, so the same file
    elsewhere keeps its cache keys and stored results.
    """
    from compress.data.dataset import Dataset

    fields = asdict(recipe)
    for f in dataclasses.fields(recipe):
        value = getattr(recipe, f.name)
        if f.metadata.get("key") is False:
            del fields[f.name]
        elif f.metadata.get("key_default") is False and fields.get(f.name) == f.default:
            del fields[f.name]
        elif isinstance(value, Dataset):
            fields[f.name] = value.key()
    return {"type": type(recipe).__name__, "fields": fields}


def _device_name(device: str) -> str:
    """The accelerator's name (``NVIDIA H200``), part of a result's identity on it."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name()
    return device


class Runner:
    """Computes models, artefacts and results, each once per process.

    Args:
        cache: where trained weights live (default: :func:`compress.storage.cache.cache_root`).
        eval_threads: interpreter threads for accuracy evaluation (default: :func:`default_eval_threads`).
        bench_threads: threads for latency measurement (default ``$COMPRESS_BENCH_THREADS``
            or 1: single-threaded batch-1 latency is the most repeatable on shared machines).
        device: where artefacts run: ``cpu`` or ``cuda`` (default ``$COMPRESS_BENCH_DEVICE`` or
            ``cpu``). Models train and artefacts are built on the CPU as always; a pair whose
            artefact has no kernels on the device, or whose runtime cannot use it here, is
            skipped with the reason (:meth:`skip_reason`).
    """

    def __init__(self, cache: WeightsCache | None = None, eval_threads: int | None = None,
                 bench_threads: int | None = None, store: ResultStore | None = None,
                 device: str | None = None):  # fmt: skip
        self.weights = cache or WeightsCache()
        self.store = store or ResultStore(self.weights.root.parent)
        self.profile = CostProfile()
        self.eval_threads = eval_threads or default_eval_threads()
        self.bench_threads = bench_threads or int(os.environ.get(ENV_THREADS, "1"))
        self.device = device or os.environ.get(ENV_DEVICE, "") or "cpu"
        # inside a gate run: the artefacts its processes built (compress.storage.artefacts), else None
        self.run_artefacts = RunArtefacts.from_env()
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        self._models: dict[str, LoadedModel] = {}
        self._derived: dict[tuple, LoadedModel] = {}
        self._artefacts: dict[tuple, Artefact] = {}
        self._exports: dict[tuple, Artefact] = {}
        self._params: dict[tuple, int] = {}
        self._loaded: dict[tuple, Any] = {}
        self._outcomes: dict[tuple, np.ndarray] = {}
        self._origins: dict[tuple, str] = {}  # outcomes' memo -> "measured now" or "stored <when>"
        self._data_digests: dict[str, str] = {}
        self._digests: dict[int, str] = {}  # id(artefact) -> SHA-256 of its bytes (artefacts are memoized)
        self._gzip: dict[str, int] = {}
        self._results: dict[tuple, PairResult] = {}

    # -- models ----------------------------------------------------------------
    def _versions_for(self, framework: str, extra: tuple[str, ...] = ()) -> dict:
        v = frameworks.versions()
        return {k: v[k] for k in (*_FRAMEWORK_LIBS[framework], *extra) if k in v}

    def _materialize(self, name, framework, recipe, key, weights) -> LoadedModel:
        with self.profile.phase("load"):
            return LoadedModel(name, framework, recipe, recipe.load(weights), key)

    def _cached(self, name: str, key: str, build: Callable[[], list], basis: dict, phase: str):
        """Weights from the cache (phase ``load``) or built now (``phase``) and cached."""

        def timed_build():
            with self.profile.phase(phase):
                return build()

        with self.profile.phase("load"):
            return self.weights.get_or_build(name, key, timed_build, info=basis)

    def _model_basis(self, name: str) -> tuple[str, dict, Any]:
        """``(cache key, basis, recipe)`` of the trained model ``name``, computed without loading it."""
        spec = get_model(name)
        recipe = resolve_recipe(name)
        basis = {
            "model": name,
            "recipe": _describe_recipe(recipe),
            "recipe_version": RECIPE_VERSION,
            # a recipe names the libraries beyond its framework's that shape its weights (a tokenizer)
            "versions": self._versions_for(spec.framework, tuple(recipe.libraries)),
        }
        source = recipe.source_digest()
        if source is not None:  # weights read from a user's file, or a tokenizer made once and kept
            basis["source"] = source
        if spec.framework in ("torch", "ultralytics"):  # what torch training makes depends on it
            from compress.models.torch_common import TRAIN_THREADS

            basis["train_threads"] = TRAIN_THREADS
        port_of = recipe.port_of
        if port_of:  # a port to another framework of a registered model: reuses its weights
            basis["port_of"] = self._model_basis(port_of)[0]
        teacher = recipe.teacher
        if teacher:  # a student distilled from a registered model: trained against its outputs
            basis["teacher"] = self._model_basis(teacher)[0]
        return recipe_key(basis), basis, recipe

    def is_cached(self, name: str) -> bool:
        """True when the trained weights of ``name`` are in the cache (nothing to train)."""
        key = self._model_basis(name)[0]
        return all(p.exists() for p in self.weights.paths(name, key))

    def model(self, name: str) -> LoadedModel:
        """The trained model ``name``: from the cache, or trained now and cached."""
        if name not in self._models:
            spec = get_model(name)
            key, basis, recipe = self._model_basis(name)
            build = lambda: recipe.weights(recipe.train(name))  # noqa: E731
            port_of, teacher = recipe.port_of, recipe.teacher
            if port_of:
                parent = self.model(port_of)
                build = lambda: recipe.weights(recipe.port_from(parent.recipe, parent.native))  # noqa: E731
            elif teacher:  # the teacher is loaded (or trained) only when the student must be trained

                def build():
                    parent = self.model(teacher)
                    return recipe.weights(recipe.distill_from(parent.recipe, parent.native, name))
            weights, cached = self._cached(name, key, build, basis, "train")
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
        weights, cached = self._cached(parent.name, key, build, basis, "fine-tune")
        log.info("%s: %s %s weights %s", parent.name, type(step).__name__, "cached" if cached else "built", key)
        return self._materialize(parent.name, parent.framework, parent.recipe, key, weights)

    # -- artefacts ---------------------------------------------------------------
    _chain = staticmethod(chain_of)  # the steps of a config, ending with an export

    def artefact(self, model: str, config: TechniqueConfig) -> Artefact:
        """The deployable artefact of ``model`` compressed by ``config`` (transforms in order)."""
        steps = self._chain(config)
        memo = (model, steps)
        if memo not in self._artefacts:
            m = self.model(model)
            for step in steps[:-1]:
                m = self.transform(m, step)
            self._params[memo] = m.recipe.count_params(m.native)
            self._artefacts[memo] = self.exported(m, steps[-1])
        return self._artefacts[memo]

    def exported(self, m: LoadedModel, step: TechniqueConfig) -> Artefact:
        """``m`` exported by ``step``: built once a run, memoized by the weights' key.

        In a gate run, an artefact another of its processes built is loaded from the run's folder
        (:mod:`compress.storage.artefacts`), and one built here is saved there. An export handler that
        starts from another export (ONNX int8 from the fp32 graph) asks for that one here."""
        memo = (m.key, step)
        if memo not in self._exports:
            shared = self.run_artefacts
            entry = shared.key(m.key, step.describe(), self.device) if shared else ""
            with self.profile.phase("reuse"):
                art = shared.get(m.name, entry) if shared else None
            if art is not None:
                log.info("%s: %s as exported earlier in this run (%s)", m.name, type(step).__name__, entry)
            else:
                t0 = time.perf_counter()
                with self.profile.phase("build"):
                    art = handler_for(step, m.framework)(m, step, self)
                log.info("%s: exported %s in %.1f s", m.name, type(step).__name__, time.perf_counter() - t0)
                if shared:
                    with self.profile.phase("reuse"):
                        shared.put(m.name, entry, art)
            self._exports[memo] = art
        return self._exports[memo]

    def prepare(self, model: str, technique: str) -> LoadedModel:
        """Train ``model`` and apply the technique's transform steps (fine-tunes): everything
        the pair caches on disk, without exporting (see :mod:`compress.prepare`)."""
        m = self.model(model)
        for step in resolve(model, technique).chain[:-1]:
            m = self.transform(m, step)
        return m

    def transform(self, m: LoadedModel, step: TechniqueConfig) -> LoadedModel:
        """``m`` after one transform step (e.g. pruned and fine-tuned), memoized."""
        memo = (m.key, step)
        if memo not in self._derived:
            # rebuilding the derived model around cached weights is loading; a fine-tune inside is
            # charged to its own phase
            with self.profile.phase("load"):
                self._derived[memo] = handler_for(step, m.framework)(m, step, self)
        return self._derived[memo]

    # -- measurements --------------------------------------------------------------
    def _data_digest(self, model: str) -> str:
        """Digest of the model-ready test split (what every stored metric was computed on)."""
        if model not in self._data_digests:
            x, y = self.model(model).recipe.data("test")
            self._data_digests[model] = digest_arrays(x, y)
        return self._data_digests[model]

    def _digest(self, art: Artefact) -> str:
        if id(art) not in self._digests:
            self._digests[id(art)] = digest_bytes(art.data)
        return self._digests[id(art)]

    def gzip_nbytes(self, model: str, config: TechniqueConfig) -> int:
        """Bytes of the pair's artefact after gzip -9: once per artefact, and stored by its digest
        (gzip -9 of a large, half-zero artefact takes tens of seconds)."""
        art = self.artefact(model, config)
        digest = self._digest(art)
        if digest not in self._gzip:
            basis = {"kind": "gzip", "artefact": digest, "level": 9, "eval_version": EVAL_VERSION}
            payload = self._measure(f"{model} {type(config).__name__} gzip size", basis,
                                    lambda: {"gzip_bytes": art.gzip_nbytes()}, required=("gzip_bytes",))  # fmt: skip
            self._gzip[digest] = int(payload["gzip_bytes"])
        return self._gzip[digest]

    def _store_basis(self, model: str, config: TechniqueConfig, kind: str, **more: Any) -> dict:
        """What a stored metric of the pair's artefact depends on (see :mod:`compress.storage.results`)."""
        art = self.artefact(model, config)
        m = self.model(model)
        return {
            "kind": kind,
            "artefact": self._digest(art),
            "format": art.format,
            "data": self._data_digest(model),
            "runtime": art.runtime,
            "runtime_version": get_runtime(art.runtime).version(),
            "eval_threads": self._eval_threads(art),
            **({"device": self.device, "device_name": _device_name(self.device)} if self.device != "cpu" else {}),
            "eval_version": EVAL_VERSION,
            "code": self._eval_code(art, m.recipe, kind),
            **({"metric_version": metric_of(m.recipe).version} if metric_of(m.recipe).version != 1 else {}),
            "recipe": _describe_recipe(m.recipe),
            "cpu": machine_info()["cpu"],
            "cpu_flags": machine_info()["cpu_flags"],
            **more,
        }

    @staticmethod
    def _eval_code(art: Artefact, recipe: Any, kind: str) -> str:
        """Digest of the source files a stored metric of ``art`` comes from (:func:`compress.storage.results.code_digest`):
        its runtime's module, the task metric's, the recipe's, the runner and the result store (with
        their bases); for ``artefact_metrics``, the sparsity count's module too."""
        from compress.runtimes.base import RUNTIMES

        modules = [RUNTIMES[art.runtime].split(":")[0], "compress.runtimes.base", type(metric_of(recipe)).__module__,
                   "compress.metrics", type(recipe).__module__, __name__, "compress.storage.results"]  # fmt: skip
        if kind == "artefact_metrics":
            modules.append("compress.techniques.pruning")
        return code_digest(modules)

    def _measure(self, label: str, basis: dict, compute: Callable[[], dict], required=()) -> dict:
        """A stored payload (phase ``reuse``), or ``compute()`` (phase ``evaluate``) stored now."""
        with self.profile.phase("reuse"):
            payload = self.store.get(basis, required)
        if payload is not None:
            log.info("%s: reused the stored result (artefact %s unchanged)", label, basis["artefact"][:12])
            return payload
        with self.profile.phase("evaluate"):
            payload = compute()
        with self.profile.phase("reuse"):
            self.store.put(basis, payload)
        return payload

    def outcomes(self, model: str, config: TechniqueConfig) -> np.ndarray:
        """Per-example outcomes of the artefact on the whole test split, by the model's task metric
        (:mod:`compress.metrics`: correct or not for top-1, mean token loss for perplexity); memoized, stored."""
        memo = (model, self._chain(config))
        if memo not in self._outcomes:
            recipe = self.model(model).recipe
            metric = metric_of(recipe)
            key = metric.store_key

            def compute() -> dict:
                x, y = recipe.data("test")
                t0 = time.perf_counter()
                predict, step = self.loaded(model, config).predict, metric.chunk or len(x)
                out = np.concatenate([metric.outcomes(recipe.task_logits(predict(x[i : i + step])), y[i : i + step])
                                      for i in range(0, len(x), step)])  # fmt: skip
                log.info("%s %s: %s on %d test examples (%.1f s)", model, type(config).__name__,
                         metric.describe(metric.value(out)[0]), len(y), time.perf_counter() - t0)  # fmt: skip
                return {key: metric.pack(out)}

            payload = self._measure(f"{model} {type(config).__name__}", self._store_basis(model, config, "outcomes"),
                                    compute, required=(key,))  # fmt: skip
            self._outcomes[memo] = metric.unpack(payload[key])
            # the store's last get() says whether it served them (and when they were measured)
            self._origins[memo] = f"stored {self.store.stored_at}" if self.store.stored_at else "measured now"
        return self._outcomes[memo]

    def score(self, model: str, config: TechniqueConfig) -> tuple[float, int]:
        """``(value of the model's task metric, examples)`` of the artefact on the whole test split."""
        out, metric = self.outcomes(model, config), metric_of(self.model(model).recipe)
        return metric.value(out)[0], metric.examples(out)

    def loaded(self, model: str, config: TechniqueConfig):
        """The pair's artefact loaded in its runtime for evaluation (memoized; see :meth:`_eval_threads`)."""
        art = self.artefact(model, config)
        return self._load(model, config, art, self._eval_threads(art))

    def _eval_threads(self, art: Artefact) -> int:
        """``eval_threads``; but a runtime that compiles at load evaluates on ``bench_threads``, so that
        one compilation (its code fixes its thread count) serves both accuracy and latency."""
        return self.bench_threads if get_runtime(art.runtime).compiles else self.eval_threads

    def _load(self, model: str, config: TechniqueConfig, art: Artefact, threads: int):
        """``art`` loaded in its runtime on ``threads`` threads; a runtime that compiles at load is
        charged to the ``compile`` phase. Kept for the run: evaluation loads, and every load of a
        runtime that compiles (a reference is timed in several pairs)."""
        memo = (model, self._chain(config), threads)
        if memo not in self._loaded:
            runtime = get_runtime(art.runtime)
            with self.profile.phase("compile") if runtime.compiles else contextlib.nullcontext():
                loaded = runtime.load(art, threads, self.device)
            if not (runtime.compiles or threads == self._eval_threads(art)):
                return loaded  # a latency load that is cheap to repeat: not kept alive for the whole run
            self._loaded[memo] = loaded
        return self._loaded[memo]

    @staticmethod
    def reference_technique(model: str, technique: str) -> str:
        """The technique whose artefact ``technique``'s latency is compared with (:meth:`compress.pair.Pair.reference`)."""
        return resolve(model, technique).reference()

    @staticmethod
    def missing(model: str) -> str | None:
        """What ``model`` needs that this machine lacks (its data, weights or a library), saying how
        to get it, or None."""
        return resolve_recipe(model).unavailable()

    def skip_reason(self, model: str, technique: str) -> str | None:
        """Why a registered pair cannot run here (missing data or weights, unsupported step), or None."""
        pair = resolve(model, technique)
        reason = pair.recipe.unavailable() or pair.unsupported()
        if reason:
            return reason
        if self.device != "cpu":
            why = device_support(pair.chain, pair.framework, self.device)
            if why:
                return f"not on {self.device}: {why}"
            runtime = get_runtime(self.artefact(model, pair.config).runtime)
            why = runtime.unavailable(self.device)
            if why:
                return f"not on {self.device}: {why}"
        return None

    def evaluate(self, model: str, technique: str, config: TechniqueConfig | None = None, *,
                 gzip: bool = True) -> PairResult:
        """Measure a pair on its shipped artefact against the model's fp32 artefact.

        Args:
            model, technique: registered names.
            config: overrides the pair's config (default: :func:`compress.registry.pair_config`).
            gzip: measure the gzip -9 size (False: ``gzip_bytes`` is None; gzip -9 of a 90 MB
                artefact whose largest half is zeroed took 26 s on a 2-core AMD EPYC).

        Raises:
            NotImplementedError: the technique has no handler for the model's framework.
        """
        pair = resolve(model, technique)
        config = config or pair.config
        memo = (model, technique, config, gzip)
        if memo in self._results:
            return self._results[memo]
        why = pair.not_applicable()
        if why:
            raise NotImplementedError(why)
        ref, art = self.artefact(model, Float32Config()), self.artefact(model, config)
        out, ref_out = self.outcomes(model, config), self.outcomes(model, Float32Config())
        recipe = self.model(model).recipe
        metric = metric_of(recipe)
        (score, score_bound), (retention, retention_upper) = metric.value(out), metric.retention(out, ref_out)

        def artefact_metrics() -> dict:
            out = {"sparsity": sparsity(get_runtime(art.runtime).weight_arrays(art))}
            own = recipe.extra_metrics(lambda x: self.loaded(model, config).predict(x),  # loaded when called
                                       lambda x: self.loaded(model, Float32Config()).predict(x))  # fmt: skip
            if own:
                out["extra"] = own
            for step in config.steps():  # a technique's own (an adapter's bytes, its trainable parameters)
                if step.has_own_metrics:
                    out.setdefault("extra", {}).update(step.extra_metrics(self.model(model)))
            return out

        basis = self._store_basis(model, config, "artefact_metrics", reference=self._digest(ref))
        own = [s.describe() for s in config.steps() if s.has_own_metrics]
        if own:  # a technique's own metrics depend on its config and its code's version as well
            basis["technique_metrics"] = own
        more = self._measure(f"{model} {technique} size and extra metrics", basis, artefact_metrics,
                             required=("sparsity",))  # fmt: skip
        res = PairResult(
            model=model,
            technique=technique,
            config=config.describe(),
            model_recipe=_describe_recipe(self.model(model).recipe),
            model_key=self.model(model).key,
            runtime=art.runtime,
            runtime_version=get_runtime(art.runtime).version(),
            bytes=art.nbytes,
            gzip_bytes=self.gzip_nbytes(model, config) if gzip else None,
            reference_bytes=ref.nbytes,
            reference_gzip_bytes=self.gzip_nbytes(model, Float32Config()) if gzip else None,
            metric=metric.name,
            score=score,
            baseline_score=metric.value(ref_out)[0],
            eval_images=metric.examples(out),
            score_bound=score_bound,
            retention=retention,
            retention_upper=retention_upper,
            sparsity=more["sparsity"],
            parameters=self._params[(model, self._chain(config))],
            reference_parameters=self._params[(model, self._chain(Float32Config()))],
            extra=more.get("extra", {}),
            device=self.device,
            device_name=_device_name(self.device),
            quality_from=self._origins[(model, self._chain(config))],
        )
        self._results[memo] = res
        return res

    def throughput_fn(self, model: str, technique: str, batch: int) -> Callable[[], Any] | None:
        """A function running one batch of ``batch`` real test examples through the pair's artefact,
        loaded as for latency; None where its runtime does not batch (code compiled for batch 1)."""
        config = resolve(model, technique).config
        art = self.artefact(model, config)
        loaded = self._load(model, config, art, self.bench_threads)
        if not loaded.batches:
            return None
        x = np.ascontiguousarray(self.model(model).recipe.data("test")[0][:batch])
        return lambda: loaded.predict(x, batch_size=batch)

    def latency_fn(self, model: str, technique: str, config: TechniqueConfig | None = None) -> Callable[[], Any]:
        """A function running one batch-1 inference of the pair's artefact on a real test image."""
        config = config or resolve(model, technique).config
        art = self.artefact(model, config)
        x = self.model(model).recipe.data("test")[0][0]
        # loaded (compiled) once: a reference is timed in several pairs
        return self._load(model, config, art, self.bench_threads).single_image_fn(x)
