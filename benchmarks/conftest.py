"""The merge gate's configuration: tier selection, thresholds (read once), summary table."""

from __future__ import annotations

import logging

import pytest

from compress import registry, thresholds
from compress.report import format_slower, format_table, with_latency_ratios

_rows: dict[str, dict] = {}


def pytest_configure(config):
    # Live logs show the suite's progress; TensorFlow's own INFO chatter is noise.
    for name in ("absl", "tensorflow", "h5py"):
        logging.getLogger(name).setLevel(logging.WARNING)


def pytest_addoption(parser):
    parser.addoption(
        "--tier",
        default="default",
        choices=registry.TIERS,
        help="which registered models to benchmark (default: %(default)s)",
    )


def pytest_generate_tests(metafunc):
    if {"model", "technique"} <= set(metafunc.fixturenames):
        pairs = registry.pairs(tier=metafunc.config.getoption("tier"))
        metafunc.parametrize(("model", "technique"), pairs, ids=[f"{m}.{t}" for m, t in pairs])


@pytest.fixture(scope="session")
def bounds_table():
    """benchmarks/thresholds.toml, parsed and validated once per session."""
    return thresholds.load()


@pytest.fixture
def record():
    """Collects one row per pair for the end-of-run summary table."""

    def _record(key: str, row: dict) -> None:
        _rows[key] = row

    return _record


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Record each pair's latency ratios (vs its own fp32, vs the fastest fp32) in the saved run."""
    ratios = {f"{r['model']}.{r['technique']}": r for r in with_latency_ratios(list(_rows.values()))}
    for bench in output_json.get("benchmarks", []):
        info = bench.get("extra_info", {})
        r = ratios.get(f"{info.get('model')}.{info.get('technique')}")
        if r:
            for k in ("latency_ratio_own", "latency_ratio_best", "best_fp32"):
                src = "latency_ratio" if k == "latency_ratio_own" else k
                if src in r:
                    info[k] = r[src]


def pytest_terminal_summary(terminalreporter):
    if _rows:
        terminalreporter.write_sep("=", "compression results (this run)")
        terminalreporter.write_line(format_table(list(_rows.values())))
        terminalreporter.write_line("")
        terminalreporter.write_line(format_slower(list(_rows.values())))
