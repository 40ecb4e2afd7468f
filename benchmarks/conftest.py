"""The merge gate's configuration: tier selection, thresholds (read and checked
before any model is trained), progress per pair, the summary table and the cost
profile of the run."""

from __future__ import annotations

import contextlib
import logging
import os
import time

import pytest

from compress.storage import artefacts
from compress import prepare, registry
from compress.judging import thresholds
from compress.techniques import planted
from compress.reporting.profile import CostProfile
from compress.reporting.report import format_planted, format_slower, format_table, with_latency_ratios

log = logging.getLogger("compress.gate")

_rows: dict[str, dict] = {}
_planted: dict[str, dict] = {}
_skipped: dict[str, str] = {}  # pair (or self-test) -> why it was skipped
_progress = {"total": 0, "started": 0, "t0": 0.0}
_runner_ref: dict = {}
_prepared = CostProfile()  # the worker processes' time (compress.prepare)
_prepare_summary: dict = {}


def pytest_configure(config):
    # Live logs show the suite's progress; TensorFlow's own INFO chatter is noise.
    for name in ("absl", "tensorflow", "h5py"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # --plugin: a team's models (compress/plugins.py), named in the environment before anything
    # reads the registry, so that the prepare workers (spawned) load them too.
    from compress import plugins

    plugins.add_to_env(config.getoption("plugin"))
    # A malformed thresholds file, one naming a pair that is not registered, or a plugin
    # that fails to import stops the run here, before any model is trained.
    try:  # the suite's file, then each --thresholds file over it; checks every entry is registered
        table = thresholds.load_merged(config.getoption("thresholds"))
    except (thresholds.ThresholdsError, plugins.PluginError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_TABLE] = table
    # The artefacts this run builds, shared by its processes (compress/storage/artefacts.py): the prepare
    # workers' exports are the ones the pairs time; a new folder every run, removed at its end.
    stack = contextlib.ExitStack()
    stack.enter_context(artefacts.run_folder())
    config.stash[_STACK] = stack
    # --device: the session's Runner and the prepare workers read it from the environment.
    device = config.getoption("device")
    if device:
        from compress.runner import ENV_DEVICE
        from compress.runtimes.torch_eager import torch_unavailable

        why = torch_unavailable(device)
        if why:
            raise pytest.UsageError(f"--device {device}: {why}")
        os.environ[ENV_DEVICE] = device


_TABLE = pytest.StashKey[dict]()
_STACK = pytest.StashKey[contextlib.ExitStack]()


def pytest_unconfigure(config):
    stack = config.stash.get(_STACK, None)
    if stack is not None:
        stack.close()


def pytest_addoption(parser):
    parser.addoption(
        "--tier",
        default="gate",
        choices=registry.TIERS,
        help="which pairs to benchmark: gate (the merge gate), full (every pair) (default: %(default)s)",
    )
    parser.addoption(
        "--shard",
        default=None,
        metavar="I/N",
        help="run the I-th of N shards of the tier (whole model families, dealt by pair count: "
        "compress/shard.py); merge the shards' saved runs with `python -m compress report`",
    )
    parser.addoption(
        "--prepare-jobs",
        type=int,
        default=None,
        help="worker processes training and fine-tuning at once before timing starts "
        f"(default: ${prepare.ENV_JOBS} or 2 on 2+ cores; 1: build as the pairs run)",
    )
    parser.addoption(
        "--device",
        default=None,
        choices=registry.DEVICES,
        help="where the artefacts run: cpu, or cuda for the torch and ONNX Runtime pairs with GPU "
        "kernels (others are skipped with the reason) (default: $COMPRESS_BENCH_DEVICE or cpu)",
    )
    parser.addoption(
        "--thresholds",
        action="append",
        default=[],
        metavar="FILE",
        help="a thresholds file merged over the suite's benchmarks/thresholds.toml, which is always "
        "read first: its entry for a pair replaces the suite's (repeatable; later files win)",
    )
    parser.addoption(
        "--unbounded",
        action="store_true",
        help="measure selected pairs that have no bounds (each fails at its end, showing what it measured) "
        "instead of stopping before anything trains",
    )
    parser.addoption(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE to register a team's models (repeatable; added to $COMPRESS_BENCH_PLUGINS; "
        "installed packages' compress_bench.plugins entry points load without it)",
    )


def _selected_pairs(config) -> list[tuple[str, str]]:
    """The tier's pairs, cut to ``--shard i/N`` when given."""
    tier, shard = config.getoption("tier"), config.getoption("shard")
    pairs = registry.pairs(tier=tier)
    if shard is None:
        return pairs
    from compress.shard import ShardError, parse_shard, shard_families, shard_pairs

    try:
        i, n = parse_shard(shard)
    except ShardError as exc:
        raise pytest.UsageError(str(exc)) from None
    families = len({registry.get_model(m).family for m, _ in pairs})
    if n > families:
        raise pytest.UsageError(f"--shard {shard}: tier {tier} has {families} model families "
                                f"({', '.join(sorted(sum(shard_families(pairs, families), [])))}); "
                                f"a shard holds whole families, so N must be at most {families}")  # fmt: skip
    return shard_pairs(pairs, (i, n))


def pytest_generate_tests(metafunc):
    if {"model", "technique"} <= set(metafunc.fixturenames):
        pairs = _selected_pairs(metafunc.config)
        metafunc.parametrize(("model", "technique"), pairs, ids=[f"{m}.{t}" for m, t in pairs])
    if "gate_model" in metafunc.fixturenames:
        # the gate's self-test (test_planted.py): every model of the selected gate pairs; other tiers
        # have no such test (their pairs' models are the gate's or judged by the same code)
        gate = metafunc.config.getoption("tier") == "gate"
        models = list(dict.fromkeys(m for m, _ in _selected_pairs(metafunc.config))) if gate else []
        metafunc.parametrize("gate_model", models)


def _unbounded(config, pairs: list[tuple[str, str]]) -> list[str]:
    """The selected pairs that would run here and have no bounds in the merged thresholds files."""
    table = config.stash[_TABLE]
    missing = [(m, t) for m, t in pairs if f"{m}.{t}" not in table]
    if not missing:
        return []
    from compress.runner import Runner

    runner, gate = Runner(), config.getoption("tier") == "gate"
    return [f"{m}.{t}" for m, t in missing if gate or runner.skip_reason(m, t) is None]


def pytest_collection_finish(session):
    items = [item for item in session.items if "test_pair[" in item.nodeid]
    _progress["total"] = len(items)
    selected = [(i.callspec.params["model"], i.callspec.params["technique"]) for i in items]
    unbounded = _unbounded(session.config, selected)
    if unbounded and not session.config.getoption("unbounded"):
        # Bounds before work: nothing trains for a pair that could only fail at its end.
        files = ", ".join(["benchmarks/thresholds.toml", *session.config.getoption("thresholds")])
        raise pytest.UsageError(
            f"{len(unbounded)} selected pair(s) have no bounds in {files}: " + ", ".join(unbounded) + ". Add to your "
            "thresholds file (passed with --thresholds), for each:\n" + "\n".join(
                f"[{p}]\nretention = {{ min = ..., last = ... }}\nsize_ratio = {{ max = ..., last = ... }}"
                for p in unbounded[:3]) + ("\n..." if len(unbounded) > 3 else "")
            + "\nor measure them first with --unbounded (each then fails, showing what it measured).")  # fmt: skip
    if items and not session.config.option.collectonly:
        # Train and fine-tune what the selected pairs need, build and evaluate their artefacts and
        # the self-test's planted regressions, in worker processes side by side, before anything
        # is timed (compress/prepare.py); the pairs then run serially.
        pairs = list(selected)
        pairs += [(i.callspec.params["gate_model"], planted.TECHNIQUE) for i in session.items
                  if "test_planted_regression[" in i.nodeid]  # fmt: skip
        _prepare_summary.update(prepare.prepare(pairs, session.config.getoption("prepare_jobs"), _prepared))
    _progress["t0"] = time.perf_counter()


def _profile() -> CostProfile | None:
    """This run's cost profile: the worker processes' time and this process's."""
    runner = _runner_ref.get("runner")
    if runner is None:
        return None
    combined = CostProfile()
    combined.merge(_prepared.rows())
    combined.merge(runner.profile.rows())
    return combined


def pytest_runtest_logstart(nodeid, location):
    if "test_pair[" not in nodeid:
        return
    _progress["started"] += 1
    done, total = _progress["started"] - 1, _progress["total"]
    elapsed = time.perf_counter() - _progress["t0"]
    log.info("pair %d/%d: %s (%d left after it; %s elapsed)", done + 1, total,
             nodeid.split("[", 1)[1].rstrip("]"), total - done - 1, _minutes(elapsed))  # fmt: skip


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


@pytest.fixture(scope="session")
def bounds_table(request):
    """The thresholds file, parsed and validated once per session (in pytest_configure)."""
    return request.config.stash[_TABLE]


@pytest.fixture
def pair_profile(runner, model, technique):
    """Charges everything the test does to its pair in the run's cost profile."""
    _runner_ref["runner"] = runner
    with runner.profile.pair(f"{model}.{technique}"):
        yield runner.profile


@pytest.fixture
def runnable(request, runner):
    """``runnable(model, technique)``: skips a pair that cannot run here, saying why, except that in
    the gate a pair whose data, weights or libraries are missing fails (the gate never shrinks
    silently); its message names what is missing and the command that fetches it."""

    def check(model: str, technique: str) -> None:
        missing = runner.missing(model)
        if missing and request.config.getoption("tier") == "gate":
            pytest.fail(f"{model}.{technique}: {missing} (a gate pair never skips for missing data or weights)",
                        pytrace=False)  # fmt: skip
        reason = runner.skip_reason(model, technique)
        if reason:
            pytest.skip(reason)

    return check


def pytest_runtest_logreport(report):
    if report.skipped and report.when in ("setup", "call") and "[" in report.nodeid:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped[report.nodeid.split("[", 1)[1].rstrip("]")] = reason.removeprefix("Skipped: ")


@pytest.fixture
def record_planted():
    """Collects one row per gate model's planted regression for the summary."""

    def _record(model: str, row: dict) -> None:
        _planted[model] = row

    return _record


@pytest.fixture
def record():
    """Collects one row per pair for the end-of-run summary table."""

    def _record(key: str, row: dict) -> None:
        _rows[key] = row

    return _record


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Record each pair's latency ratios (vs its own fp32, vs the fastest fp32) and the
    run's cost profile in the saved run."""
    ratios = {f"{r['model']}.{r['technique']}": r for r in with_latency_ratios(list(_rows.values()))}
    runner = _runner_ref.get("runner")
    profile = _profile().to_json() if runner else None
    for bench in output_json.get("benchmarks", []):
        info = bench.get("extra_info", {})
        key = f"{info.get('model')}.{info.get('technique')}"
        r = ratios.get(key)
        if r:
            for k in ("latency_ratio_own", "latency_ratio_best", "best_fp32"):
                src = "latency_ratio" if k == "latency_ratio_own" else k
                if src in r:
                    info[k] = r[src]
        if profile and key in profile["pairs"]:
            info["cost_s"] = profile["pairs"][key]
    if profile:
        output_json["cost_profile"] = {**profile, "tier": config.getoption("tier"),
                                       "shard": config.getoption("shard"), "prepare": _prepare_summary,
                                       "store": {"reused": runner.store.hits, "measured": runner.store.misses}}  # fmt: skip


def pytest_terminal_summary(terminalreporter):
    if _rows:
        terminalreporter.write_sep("=", "compression results (latency timed this run; quality measured now or stored)")
        terminalreporter.write_line(format_table(list(_rows.values())))
        terminalreporter.write_line("")
        terminalreporter.write_line(format_slower(list(_rows.values())))
    if _skipped:
        terminalreporter.write_sep("=", f"skipped ({len(_skipped)})")
        for name, why in sorted(_skipped.items()):
            terminalreporter.write_line(f"{name}: {why}")
    if _planted:
        terminalreporter.write_sep("=", "planted regressions (this run)")
        terminalreporter.write_line(format_planted(_planted))
    runner = _runner_ref.get("runner")
    if runner:
        terminalreporter.write_sep("=", "cost profile (this run)")
        terminalreporter.write_line(_profile().format())
        if _prepare_summary.get("skipped"):
            terminalreporter.write_line(f"prepare: not started ({_prepare_summary['skipped']})")
        elif _prepare_summary.get("wall_s"):
            terminalreporter.write_line(
                f"prepare: {_prepare_summary['families']} model families ({_prepare_summary['tasks']} jobs) built "
                f"{_prepare_summary['jobs']} at a time "
                f"in {_prepare_summary['wall_s']:.0f} s wall before timing started"
                + (f"; failed there, rebuilt serially: {', '.join(_prepare_summary['failures'])}"
                   if _prepare_summary["failures"] else ""))  # fmt: skip
        terminalreporter.write_line(f"result store: {runner.store.hits} results reused, "
                                    f"{runner.store.misses} measured (artefacts rebuilt every run; latency always timed)")  # fmt: skip
