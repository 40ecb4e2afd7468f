"""Latency (``time_*``), size ratio, accuracy, retention (``track_*``) and the suite's own cost of
the pairs of a tier, from the same registry as the pytest gate.

Which pairs (asv takes no options of ours, so the environment says):

- ``COMPRESS_BENCH_TIER``: ``gate`` (default: what history over many commits can
  afford; one commit costs about a warm gate) or ``full``;
- ``COMPRESS_BENCH_PAIRS``: comma-separated ``model.technique`` globs to keep
  (default: every pair of the tier);
- ``COMPRESS_BENCH_SHARD``: ``i/N``, as the gate's ``--shard``;
- ``COMPRESS_BENCH_PLUGINS``: a team's model modules (compress/plugins.py).

The ``track_*`` methods are one per metric descriptor with a ``description`` (its asv unit;
:mod:`compress.metrics.descriptor`), attached to :class:`Quality` below: ``track_size_ratio``,
``track_accuracy``, ``track_perplexity``, ``track_retention``... A metric registered by its own
module (a plugin's included) gets its ``track_<name>`` without an edit here.

Unsupported model x technique combinations raise NotImplementedError in setup, so
asv skips them. Models come from the suite's on-disk cache (trained on first use);
accuracy comes from the result store when the artefact's bytes are unchanged.
"""

import fnmatch
import os
import time

from compress import registry
from compress.metrics import descriptors

TIER = os.environ.get("COMPRESS_BENCH_TIER", "gate")


def _pairs() -> list[tuple[str, str]]:
    pairs = registry.pairs(tier=TIER)
    globs = [g.strip() for g in os.environ.get("COMPRESS_BENCH_PAIRS", "").split(",") if g.strip()]
    if globs:
        pairs = [(m, t) for m, t in pairs if any(fnmatch.fnmatchcase(f"{m}.{t}", g) for g in globs)]
    shard = os.environ.get("COMPRESS_BENCH_SHARD")
    if shard:
        from compress.shard import shard_pairs

        pairs = shard_pairs(pairs, shard)
    return pairs


PAIRS = _pairs()
MODELS = sorted({m for m, _ in PAIRS})
TECHNIQUES = list(dict.fromkeys(t for _, t in PAIRS))

_runner = None


def _get_runner():
    global _runner
    if _runner is None:
        from compress.runner import Runner

        _runner = Runner()
    return _runner


def _track(metric: str, unit: str):
    """An asv ``track_*`` method reading ``metric`` from the measurements of ``setup_cache``."""

    def track(self, metrics, model, technique):
        measured = metrics[model, technique]
        if metric not in measured:  # another task's metric (top-1 of a language model): skipped, not failed
            try:
                from asv_runner.benchmarks.mark import SkipNotImplemented
            except ImportError:  # asv before 0.6
                SkipNotImplemented = NotImplementedError  # noqa: N806
            raise SkipNotImplemented(f"{model} is not scored by {metric} (its metric: {measured.get('metric')})")
        return measured[metric]

    track.__name__ = f"track_{metric}"
    track.unit = unit
    return track


class Latency:
    """Batch-1 inference of the shipped artefact on one real test image."""

    params = (MODELS, TECHNIQUES)
    param_names = ["model", "technique"]
    timeout = 3600  # a cold cache trains the model first
    # One process per pair (its setup loads the model and rebuilds the artefact: most of a pair's
    # cost), up to 10 samples of >= 10 ms in at most 4 s: a commit of history costs minutes, not an hour.
    rounds = 1
    repeat = (1, 10, 4.0)
    warmup_time = 0.5

    def setup(self, model, technique):
        if (model, technique) not in PAIRS:
            raise NotImplementedError(f"{technique} does not apply to {model}")
        reason = _get_runner().skip_reason(model, technique)
        if reason:
            raise NotImplementedError(reason)
        self.fn = _get_runner().latency_fn(model, technique)

    def time_single_image(self, model, technique):
        self.fn()


class Quality:
    """Size, accuracy, retention and the suite's cost of each pair, measured once per asv run.

    ``cost_s`` is what producing the pair's measurements cost the suite in this run
    (training and fine-tuning on a cold cache, building, evaluating or reusing a
    stored result): the cost profile of the gate, per pair.
    """

    params = (MODELS, TECHNIQUES)
    param_names = ["model", "technique"]
    timeout = 3600

    def setup_cache(self):
        runner = _get_runner()
        out = {}
        for pair in PAIRS:
            if runner.skip_reason(*pair):
                continue
            t0 = time.perf_counter()
            with runner.profile.pair(".".join(pair)):
                metrics = runner.evaluate(*pair).metrics()
            out[pair] = {**metrics, "cost_s": time.perf_counter() - t0}
        return out

    def setup(self, metrics, model, technique):
        if (model, technique) not in metrics:
            if (model, technique) in PAIRS:  # registered, but skipped here: say why
                raise NotImplementedError(_get_runner().skip_reason(model, technique) or "not measured")
            raise NotImplementedError(f"{technique} does not apply to {model}")


# one track_<name> per descriptor with an asv unit (its description): asv finds them as attributes of the class
for _metric in descriptors().values():
    if _metric.description is not None:
        setattr(Quality, f"track_{_metric.name}", _track(_metric.name, _metric.description))
del _metric
