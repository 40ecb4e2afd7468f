"""Build and evaluate what a set of pairs needs, several model families at once.

Training, fine-tuning and evaluation dominate a cold run, and none of them
depends on machine load; only latency does. They also leave cores idle: torch
trains on a fixed single thread (:data:`compress.models.torch_common.TRAIN_THREADS`,
for reproducibility) while TensorFlow trains on all cores; every worker evaluates
on its share of the cores (:func:`compress.runner.default_eval_threads`). :func:`prepare` runs
``jobs`` worker processes over a queue of jobs (:class:`JobQueue`): a model
family's (a model and its ports) first job trains its model (its ``fp32``
pairs); once that is in the shared cache, each of its other pairs is a job of
its own (a fine-tune, an artefact and its evaluation), so one family's
fine-tunes spread over every worker instead of queueing behind each other.
The next job is always the longest ready one by what it cost in this machine's
saved runs (:func:`pair_costs`; a family's first job counts its whole family,
which waits on it); without saved runs, TensorFlow and torch families
alternate. Every job trains or fine-tunes into the shared cache (entries are
locked: a model is built once), then builds its pair's artefact, saves it in the
run's artefact folder (:mod:`compress.storage.artefacts`: this run's, removed at its end) and
stores its evaluation in the result store (:mod:`compress.storage.results`). The gate's
self-test is a job of each gate model too (``(model, "planted")``: its two planted
regressions evaluated). Nothing is timed while this runs; the gate then loads the
artefacts this run built (building any a worker did not), reuses a stored
evaluation only where the artefact's bytes match, and times every pair serially,
on a quiet machine.

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
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Iterable

from compress.machine import ENV_JOBS, default_jobs
from compress.reporting.profile import CostProfile

log = logging.getLogger(__name__)

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


def pair_costs(pairs: Iterable[tuple[str, str]], storage=None, last: int = 30) -> dict[tuple[str, str], float] | None:
    """Seconds each pair cost in this machine's saved runs, or None when no run knows any of them.

    A pair's cost is the largest ``total`` of its cost-profile row over the ``last`` saved runs
    (the cold run that trained it, not a warm one that reused everything); a pair no run has
    is charged the mean of the pairs that are known. Only an estimate for scheduling: a wrong
    one costs wall time, never a result.
    """
    import json

    from compress.storage.runs import RunFileError, find_runs

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
    wanted = list(pairs)
    known = [seen[f"{m}.{t}"] for m, t in wanted if f"{m}.{t}" in seen]
    if not known:
        return None
    mean = sum(known) / len(known)
    return {(m, t): seen.get(f"{m}.{t}", mean) for m, t in wanted}


def estimated_costs(fams: list[list[tuple[str, str]]], storage=None, last: int = 30) -> list[float] | None:
    """Seconds each family cost in this machine's saved runs (:func:`pair_costs` summed), or None."""
    costs = pair_costs([p for fam in fams for p in fam], storage, last)
    if costs is None:
        return None
    return [sum(costs[p] for p in fam) for fam in fams]


def schedule(fams: list[list[tuple[str, str]]], costs: list[float] | None) -> list[list[tuple[str, str]]]:
    """Families longest first (by ``costs``), so that the longest never starts last beside an idle
    worker; ``fams`` as given when nothing is known."""
    if costs is None:
        return fams
    order = sorted(range(len(fams)), key=lambda i: (-costs[i], i))
    return [fams[i] for i in order]


class JobQueue:
    """The prepare phase's jobs, and which may start next.

    A family's first job is its ``fp32`` pairs (its first pair when it has none): the one
    that trains the family's model. Each other pair is a job of its own, ready once its
    family's first job has finished (it reuses the trained model from the cache instead of
    waiting on the cache lock while another worker trains it), except that a pair whose
    technique extends another pair's (``prune50_int8``: ``prune50``, then int8) joins that
    pair's job, which fine-tunes the model they share. :meth:`pop` gives the ready job with
    the largest cost: a first job counts its whole family (everything waits on it), any
    other job its own pairs. With ``costs`` None, first jobs come first, in ``fams`` order.
    """

    def __init__(self, fams: list[list[tuple[str, str]]], costs: dict[tuple[str, str], float] | None):
        self._rank: dict[tuple[tuple[str, str], ...], tuple] = {}
        self._waiting: dict[tuple[tuple[str, str], ...], list[tuple[tuple[str, str], ...]]] = {}
        self._ready: list[tuple[tuple[str, str], ...]] = []
        n = 0
        for fam in fams:
            first = tuple(p for p in fam if p[1] == "fp32") or tuple(fam[:1])
            rest = _chains([p for p in fam if p not in first])
            cost = (lambda job: sum(costs[p] for p in job)) if costs else (lambda job: 0.0)  # noqa: E731
            self._rank[first] = (-(cost(first) + sum(cost(j) for j in rest)), 0, n)
            n += 1
            for job in rest:
                self._rank[job] = (-cost(job), 1, n)
                n += 1
            self._ready.append(first)
            self._waiting[first] = rest
        self.total = n

    def __bool__(self) -> bool:
        """Jobs left to start, now or once a running one finishes."""
        return bool(self._ready) or any(self._waiting.values())

    def pop(self) -> tuple[tuple[str, str], ...] | None:
        """The ready job to start next, or None when every ready job has started."""
        if not self._ready:
            return None
        self._ready.sort(key=self._rank.__getitem__)
        return self._ready.pop(0)

    def finished(self, job: tuple[tuple[str, str], ...]) -> None:
        """``job`` ended (well or not): the jobs that waited on it become ready."""
        self._ready += self._waiting.pop(job, [])

    def drain(self) -> list[tuple[str, str]]:
        """Every pair not started yet (the queue is then empty)."""
        left = [p for job in self._ready for p in job] + [p for jobs in self._waiting.values() for j in jobs for p in j]
        self._ready, self._waiting = [], {}
        return left


def _chains(pairs: list[tuple[str, str]]) -> list[tuple[tuple[str, str], ...]]:
    """``pairs`` as jobs: one per pair, a pair in the job of another when its technique's steps
    extend that pair's, or when its export starts from that pair's export (the handler's declared
    ``base``: ONNX int8 from the fp32 graph), so that what both need is built once, in one process
    (the self-test's planted regressions, :data:`compress.techniques.planted.TECHNIQUE`, a job of their own)."""
    from compress.registry import UnknownNameError, export_base, get_model, get_technique
    from compress.techniques.planted import TECHNIQUE as PLANTED

    def _framework(model: str) -> str | None:
        try:
            return get_model(model).framework
        except UnknownNameError:  # a schedule of names only (no export to share)
            return None

    own = [(p,) for p in pairs if p[1] == PLANTED]
    pairs = [p for p in pairs if p[1] != PLANTED]
    steps = {p: tuple(get_technique(p[1]).config.steps()) for p in pairs}

    def parent(p: tuple[str, str]) -> tuple[str, str] | None:
        q = next((q for q in pairs if q != p and q[0] == p[0] and len(steps[q]) < len(steps[p])
                  and steps[p][: len(steps[q])] == steps[q]), None)  # fmt: skip
        if q is None and steps[p] and (framework := _framework(p[0])):
            base = export_base(steps[p][-1], framework)
            if base is not None:
                q = next((q for q in pairs if q[0] == p[0] and steps[q] == steps[p][:-1] + (base,)), None)
        return q

    def root(p: tuple[str, str]) -> tuple[str, str]:
        seen = {p}
        while (q := parent(p)) is not None and q not in seen:
            seen.add(q)
            p = q
        return p

    jobs: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for p in pairs:
        jobs.setdefault(root(p), []).append(p)
    return [tuple(sorted(members, key=lambda q: (len(steps[q]), q != r))) for r, members in jobs.items()] + own


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
    """In a worker: train, fine-tune and (when the result store is on) build and evaluate ``pairs``
    (a ``(model, "planted")`` pair: the self-test's two planted regressions of the model).

    Returns (profile rows, failures)."""
    from compress.frameworks import preload

    preload()
    from compress.registry import get_model
    from compress.runner import Runner
    from compress.techniques import planted

    runner, failures = Runner(), []
    for m, t in pairs:
        with runner.profile.pair(f"{m}.{t}"):
            try:
                if t == planted.TECHNIQUE:  # the self-test's regressions, planted in the trained model
                    if runner.store.enabled and runner.skip_reason(m, get_model(m).planted_in) is None:
                        planted.evaluate(runner, m)
                elif runner.skip_reason(m, t) is None:
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
    """Train and fine-tune, into the cache, every model ``pairs`` need; ``jobs`` workers at once.

    Returns a summary: ``{"jobs", "families", "tasks", "wall_s", "failures", "skipped"}``
    (``jobs``: workers at once; ``tasks``: the :class:`JobQueue`'s jobs).
    With one job or one pair, nothing is started: the serial path builds as it goes.
    A warm cache still starts the workers: every run exports its artefacts (the
    workers side by side, the serial pass loads them) and measures what its
    evaluation code has not measured before.
    """
    pairs = list(pairs)
    jobs = default_jobs() if jobs is None else jobs
    fams = groups(pairs)
    summary = {"jobs": jobs, "families": len(fams), "tasks": 0, "wall_s": 0.0, "failures": [], "skipped": ""}
    if jobs < 2 or len(pairs) < 2:
        summary["skipped"] = "one job" if jobs < 2 else "one pair"
        return summary
    costs = pair_costs(pairs)
    if costs is not None:
        fams = schedule(fams, [sum(costs[p] for p in fam) for fam in fams])
    queue_ = JobQueue(fams, costs)
    summary["tasks"] = queue_.total
    t0 = time.perf_counter()
    log.info("prepare: building the models of %d pairs, %d model families as %d jobs, %d at a time, %s (%s)",
             len(pairs), len(fams), queue_.total, jobs,
             "the longest ready job first by this machine's saved runs" if costs
             else "no saved run to order them by: families in turn, frameworks alternating",
             ", ".join(f"{f[0][0]}" + (f" ~{sum(costs[p] for p in f):.0f} s" if costs else "")
                       for f in fams))  # fmt: skip
    ctx = mp.get_context("spawn")  # no fork after torch/TF have started their thread pools
    queue = ctx.Queue()
    listener = logging.handlers.QueueListener(queue, _Forward(), respect_handler_level=False)
    listener.start()
    try:
        with ProcessPoolExecutor(max_workers=min(jobs, queue_.total), mp_context=ctx,
                                 initializer=_init_worker, initargs=(queue, logging.INFO, _sockets_blocked())) as pool:  # fmt: skip
            running: dict = {}
            while queue_ or running:
                while len(running) < jobs and (job := queue_.pop()) is not None:
                    try:
                        running[pool.submit(_build_family, list(job))] = job
                    except BrokenProcessPool:  # a worker died: the serial path builds what is left
                        left = list(job) + queue_.drain()
                        log.warning("prepare: a worker died; the gate builds the %d pairs not started itself", len(left))
                        summary["failures"] += [f"{m}.{t}" for m, t in left]
                        break
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    job = running.pop(fut)
                    queue_.finished(job)
                    try:
                        rows, failures = fut.result()
                    except Exception as exc:  # a worker died (killed, out of memory): serial path takes over
                        log.warning("prepare: the worker building %s died (%s); the gate builds it itself",
                                    ", ".join(f"{m}.{t}" for m, t in job), exc)  # fmt: skip
                        summary["failures"] += [f"{m}.{t}" for m, t in job]
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
