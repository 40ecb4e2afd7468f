"""Latency (``time_*``), size ratio and accuracy (``track_*``) of every full-tier pair.

Unsupported model x technique combinations raise NotImplementedError in setup, so
asv skips them. Models come from the suite's on-disk cache (trained on first use).
"""

from compress import registry

PAIRS = registry.pairs(tier="full")
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
    """An asv ``track_*`` method reading ``metric`` from the cached measurements."""

    def track(self, metrics, model, technique):
        return metrics[model, technique][metric]

    track.__name__ = f"track_{metric}"
    track.unit = unit
    return track


class Latency:
    """Batch-1 inference of the shipped artefact on one real test image."""

    params = (MODELS, TECHNIQUES)
    param_names = ["model", "technique"]
    timeout = 3600  # a cold cache trains the model first

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
    """Size and accuracy of the shipped artefact, measured once per asv run."""

    params = (MODELS, TECHNIQUES)
    param_names = ["model", "technique"]
    timeout = 3600

    def setup_cache(self):
        runner = _get_runner()
        return {pair: runner.evaluate(*pair).metrics() for pair in PAIRS if not runner.skip_reason(*pair)}

    def setup(self, metrics, model, technique):
        if (model, technique) not in metrics:
            raise NotImplementedError(f"{technique} does not apply to {model}")

    track_size_ratio = _track("size_ratio", "ratio (artefact bytes / fp32 artefact bytes)")
    track_gzip_ratio = _track("gzip_ratio", "ratio (gzip bytes / fp32 gzip bytes)")
    track_accuracy = _track("accuracy", "top-1 (10,000 test images)")
    track_retention = _track("retention", "accuracy / fp32 accuracy")
    track_param_ratio = _track("param_ratio", "ratio (parameters / fp32 parameters)")
