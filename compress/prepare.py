"""Build and evaluate what a set of pairs needs, several model families at once.

Training, fine-tuning and evaluation dominate a cold run, and none of them
depends on machine load; only latency does. They also leave cores idle: torch
trains on a fixed single thread (:data:`compress.models.torch_common.TRAIN_THREADS`,
for reproducibility) while TensorFlow trains on all cores. :func:`prepare` runs
one worker process per model family (a model and its ports), ``jobs`` at a
time, the longest first by what the families cost in this machine's saved runs
(:func:`estimated_costs`; without any, TensorFlow and torch families alternate),
each training its models and fine-tuning their derived variants into the
shared cache (entries are locked: a model is built once), then building each
pair's artefact and storing its evaluation in the result store
(:mod:`compress.results`). Nothing is timed while this runs; the gate then
rebuilds every artefact with the code under test, reuses a stored evaluation
only where the rebuilt bytes match, and times every pair serially, on a quiet
machine.

Results do not depend on it: every model trains with a fixed seed and a fixed
thread count (TensorFlow with op determinism), so a model built by a worker is
the one the serial path builds. A worker that fails logs the error and leaves
the model to the serial path, where the pair's test fails with its own
traceback.

Worker log records are forwarded to this process's logging (the gate's live
log), prefixed with the family; each worker's cost profile is returned and
merged into the caller's.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Iterable

from compress.profile import CostProfile

log = logging.getLogger(__name__)

ENV_JOBS = "COMPRESS_BENCH_PREPARE_JOBS"


def default_jobs() -> int:
    """``$COMPRESS_BENCH_PREPARE_JOBS``, else 2 on a machine with 2 or more cores, else 1."""
    raw = os.environ.get(ENV_JOBS, "")
    if raw:
        try:
            jobs = int(raw)
        except ValueError:
            raise ValueError(f"{ENV_JOBS} must be an integer >= 1, got {raw!r}") from None
        if jobs < 1:
            raise ValueError(f"{ENV_JOBS} must be an integer >= 1, got {raw!r}")
        return jobs
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def groups(pairs: Iterable[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Pairs grouped by model family (a port needs its parent's weights), frameworks alternating
    so that a TensorFlow family and a torch family are built side by side."""
    from compress.registry import get_model

    by_family: dict[str, list[tuple[str, str]]] = {}
    for m, t in pairs:
        by_family.setdefault(get_model(m).family, []).append((m, t))
    by_fw: dict[str, list[list[tuple[str, str]]]] = {}
    for fam, members in by_family.items():
        by_fw.setdefault(get_model(fam).framework, []).append(members)
    queues = list(by_fw.values())
    out = []
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def estimated_costs(fams: list[list[tuple[str, str]]], storage=None, last: int = 30) -> list[float] | None:
    """Seconds each family cost in this machine's saved runs, or None when no run knows any of them.

    A pair's cost is the largest ``total`` of its cost-profile row over the ``last`` saved runs
    (the cold run that trained it, not a warm one that reused everything); a pair no run has
    is charged the mean of the pairs that are known. Only an estimate for scheduling: a wrong
    one costs wall time, never a result.
    """
    import json

    from compress.runs import RunFileError, find_runs

    try:
        paths = find_runs(storage)[-last:]
    except RunFileError:
        return None
    seen: dict[str, float] = {}
    for path in paths:
        try:
            rows = json.loads(path.read_text()).get("cost_profile", {}).get("pairs", {})
        except (OSError, ValueError, AttributeError):
            continue
        for pair, row in rows.items() if isinstance(rows, dict) else ():
            total = row.get("total") if isinstance(row, dict) else None
            if isinstance(total, (int, float)):
                seen[pair] = max(seen.get(pair, 0.0), float(total))
    wanted = [f"{m}.{t}" for fam in fams for m, t in fam]
    known = [seen[p] for p in wanted if p in seen]
    if not known:
        return None
    mean = sum(known) / len(known)
    return [sum(seen.get(f"{m}.{t}", mean) for m, t in fam) for fam in fams]


def schedule(fams: list[list[tuple[str, str]]], costs: list[float] | None) -> list[list[tuple[str, str]]]:
    """Families longest first (by ``costs``), so that the longest never starts last beside an idle
    worker; ``fams`` as given when nothing is known."""
    if costs is None:
        return fams
    order = sorted(range(len(fams)), key=lambda i: (-costs[i], i))
    return [fams[i] for i in order]


def _sockets_blocked() -> bool:
    """True when this process runs under pytest-socket's ``--disable-socket`` (the gate)."""
    import socket

    return socket.socket.__name__ == "GuardedSocket"


def _init_worker(queue, level: int, offline: bool) -> None:
    if offline:  # the gate runs with no network: so do its workers
        from pytest_socket import disable_socket

        disable_socket(allow_unix_socket=True)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(queue)]
    root.setLevel(level)
    for name in ("absl", "tensorflow", "h5py"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _build_family(pairs: list[tuple[str, str]]) -> tuple[dict, list[str]]:
    """In a worker: train, fine-tune and (when the result store is on) evaluate ``pairs``.

    Returns (profile rows, failures)."""
    from compress.frameworks import preload

    preload()
    from compress.runner import Runner

    runner, failures = Runner(), []
    for m, t in pairs:
        with runner.profile.pair(f"{m}.{t}"):
            try:
                if runner.skip_reason(m, t) is None:
                    runner.prepare(m, t)
                    if runner.store.enabled:  # accuracy does not depend on load: stored for the gate
                        runner.evaluate(m, t)
            except Exception as exc:  # the serial path rebuilds it and the pair's test reports it
                logging.getLogger(__name__).warning("prepare %s.%s failed (%s: %s); the gate will "
                                                    "build it itself", m, t, type(exc).__name__, exc)  # fmt: skip
                failures.append(f"{m}.{t}")
    return runner.profile.rows(), failures


def prepare(pairs: Iterable[tuple[str, str]], jobs: int | None = None,
            profile: CostProfile | None = None) -> dict:  # fmt: skip
    """Train and fine-tune, into the cache, every model ``pairs`` need; ``jobs`` families at once.

    Returns a summary: ``{"jobs", "families", "wall_s", "failures", "skipped"}``.
    With one job or one family, or when every model is already trained (a warm
    cache: the workers would only repeat what the serial path does), nothing is
    started: the serial path builds as it goes.
    """
    pairs = list(pairs)
    jobs = default_jobs() if jobs is None else jobs
    fams = groups(pairs)
    summary = {"jobs": jobs, "families": len(fams), "wall_s": 0.0, "failures": [], "skipped": ""}
    if jobs < 2 or len(fams) < 2:
        summary["skipped"] = "one job" if jobs < 2 else "one model family"
        return summary
    from compress.runner import Runner

    probe = Runner()
    if all(probe.is_cached(m) for m in {m for m, _ in pairs}):
        summary["skipped"] = "every model is already trained"
        log.info("prepare: every model of the %d pairs is already trained; building as the pairs run", len(pairs))
        return summary
    costs = estimated_costs(fams)
    fams = schedule(fams, costs)
    order = sorted(costs, reverse=True) if costs else None
    t0 = time.perf_counter()
    log.info("prepare: building the models of %d pairs, %d model families, %d at a time, %s (%s)",
             len(pairs), len(fams), jobs,
             "longest first by this machine's saved runs" if order else "no saved run to order them by",
             ", ".join(f"{f[0][0]}" + (f" ~{c:.0f} s" if order else "") for f, c in
                       zip(fams, order or [0] * len(fams), strict=True)))  # fmt: skip
    ctx = mp.get_context("spawn")  # no fork after torch/TF have started their thread pools
    queue = ctx.Queue()
    listener = logging.handlers.QueueListener(queue, _Forward(), respect_handler_level=False)
    listener.start()
    try:
        with ProcessPoolExecutor(max_workers=min(jobs, len(fams)), mp_context=ctx,
                                 initializer=_init_worker, initargs=(queue, logging.INFO, _sockets_blocked())) as pool:  # fmt: skip
            futures = [pool.submit(_build_family, f) for f in fams]
            for fam, fut in zip(fams, futures, strict=True):
                try:
                    rows, failures = fut.result()
                except Exception as exc:  # a worker died (killed, out of memory): serial path takes over
                    log.warning("prepare: the worker building %s died (%s); the gate builds it itself",
                                fam[0][0], exc)  # fmt: skip
                    summary["failures"] += [f"{m}.{t}" for m, t in fam]
                    continue
                summary["failures"] += failures
                if profile is not None:
                    profile.merge(rows, prefix="prepare ")
    finally:
        listener.stop()
    summary["wall_s"] = time.perf_counter() - t0
    log.info("prepare: done in %.0f s", summary["wall_s"])
    return summary


class _Forward(logging.Handler):
    """Re-emit a worker's record through this process's logger of the same name."""

    def emit(self, record: logging.LogRecord) -> None:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
