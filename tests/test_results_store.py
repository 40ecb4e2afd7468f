"""The result store: reuse only what cannot have changed, never trust a damaged entry."""

import json
import re

import numpy as np
import pytest

from compress.reporting.profile import CostProfile
from compress.storage.results import ResultStore, digest_arrays, pack_bools, unpack_bools
from compress.techniques.quantization import Float32Config, Int8Config

BASIS = {"artefact": "ab" * 32, "data": "cd" * 32, "runtime": "litert", "runtime_version": "1", "eval_version": 1}


def test_bools_round_trip_any_length():
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 8, 9, 10_000):
        x = rng.random(n) < 0.5
        assert np.array_equal(unpack_bools(json.loads(json.dumps(pack_bools(x)))), x)


def test_digest_arrays_sees_values_dtype_and_shape():
    a = np.arange(6, dtype=np.float32)
    assert digest_arrays(a) == digest_arrays(a.copy())
    assert digest_arrays(a) != digest_arrays(a.reshape(2, 3))
    assert digest_arrays(a) != digest_arrays(a.astype(np.float64))
    b = a.copy()
    b[3] += 1e-6
    assert digest_arrays(a) != digest_arrays(b)


def test_store_reuses_only_the_same_basis(tmp_path):
    store = ResultStore(tmp_path)
    assert store.get(BASIS) is None
    store.put(BASIS, {"correct": pack_bools(np.array([True, False]))})
    assert store.get(BASIS) == {"correct": pack_bools(np.array([True, False]))}
    for field in BASIS:  # any one dependency changed: not the same result
        assert store.get({**BASIS, field: "other"}) is None
    assert (store.hits, store.misses) == (1, 1 + len(BASIS))


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated (killed mid-write without atomic rename)
        lambda b: b.replace(b'"bits": "', b'"bits": "AA'),  # payload edited: checksum fails
        lambda b: b"",  # empty
        lambda b: b"\x00\xff garbage",
    ],
    ids=["truncated", "edited", "empty", "garbage"],
)
def test_damaged_entry_is_detected_deleted_and_recomputed(tmp_path, damage, caplog):
    store = ResultStore(tmp_path)
    store.put(BASIS, {"correct": pack_bools(np.ones(100, bool))})
    path = store.path(BASIS)
    path.write_bytes(damage(path.read_bytes()))
    assert store.get(BASIS, required=("correct",)) is None
    assert not path.exists() and "unusable" in caplog.text


def test_entry_missing_a_required_field_is_not_trusted(tmp_path):
    store = ResultStore(tmp_path)
    store.put(BASIS, {"other": 1})
    assert store.get(BASIS, required=("correct",)) is None


def test_disabled_store_measures_every_time(tmp_path):
    store = ResultStore(tmp_path, enabled=False)
    store.put(BASIS, {"x": 1})
    assert store.get(BASIS) is None and not any(tmp_path.rglob("*.json"))


def test_profile_counts_each_second_once_in_the_innermost_phase():
    t = [0.0]
    p = CostProfile(clock=lambda: t[0])
    with p.pair("m.int8"):
        t[0] += 1  # other
        with p.phase("build"):
            t[0] += 2
            with p.phase("train"):  # the model is trained inside the first artefact needing it
                t[0] += 10
            t[0] += 3
        with p.phase("latency"):
            t[0] += 4
    with p.pair("m.fp32"):
        with p.phase("reuse"):
            t[0] += 0.5
    rows = p.rows()
    assert rows["m.int8"] == {"other": 1, "build": 5, "train": 10, "latency": 4, "total": 20}
    assert rows["m.fp32"]["total"] == 0.5
    js = p.to_json()
    assert js["totals"]["total"] == 20.5 and js["slowest"][0] == "m.int8"
    table = p.format()
    assert "TOTAL" in table and "slowest: m.int8 20 s" in table


# -- through the runner, on the unit-tier model (trained once into the shared cache) --


@pytest.fixture
def fresh_runner(tmp_path):
    """A Runner with the shared weights cache but its own, empty result store."""
    from compress.runner import Runner

    def make():
        return Runner(store=ResultStore(tmp_path))

    return make


def test_unchanged_artefact_is_reused_changed_bytes_are_measured(fresh_runner):
    first = fresh_runner()
    a = first.evaluate("tiny", "int8")
    assert first.store.misses > 0 and first.store.hits == 0
    assert "evaluate" in first.profile.rows()["(outside any pair)"]

    second = fresh_runner()  # a new process in effect: artefacts rebuilt, results reused
    b = second.evaluate("tiny", "int8")
    assert second.store.hits > 0 and second.store.misses == 0
    assert "evaluate" not in second.profile.rows()["(outside any pair)"]
    assert (b.score, b.baseline_score, b.retention_upper, b.sparsity, b.gzip_bytes, b.reference_gzip_bytes) == (
        a.score, a.baseline_score, a.retention_upper, a.sparsity, a.gzip_bytes, a.reference_gzip_bytes)  # fmt: skip
    assert b.gzip_bytes == second.artefact("tiny", Int8Config()).gzip_nbytes()  # what is stored is the real size
    # the summary says which: measured in this run, or served by the store (and when it was measured)
    assert a.quality_from == "measured now" and re.fullmatch(r"stored 20\d\d-\d\d-\d\dT[\d:]{8}Z", b.quality_from)
    assert np.array_equal(second.outcomes("tiny", Int8Config()), first.outcomes("tiny", Int8Config()))

    third = fresh_runner()  # other calibration: other bytes, so measured, never served
    cfg = Int8Config(calibration_size=50)
    assert third.artefact("tiny", cfg).data != second.artefact("tiny", Int8Config()).data
    before = third.store.misses
    third.outcomes("tiny", cfg)
    assert third.store.misses == before + 1


def test_corrupt_stored_outcomes_are_recomputed_through_the_runner(fresh_runner, tmp_path):
    first = fresh_runner()
    expected = first.outcomes("tiny", Float32Config())
    for f in (tmp_path / "results").glob("*.json"):
        f.write_bytes(f.read_bytes()[:40])
    second = fresh_runner()
    assert np.array_equal(second.outcomes("tiny", Float32Config()), expected)
    assert second.store.hits == 0


def test_killed_while_storing_a_result_leaves_nothing_that_is_trusted(tmp_path):
    """SIGKILL in the middle of writing a stored result: the next run measures again."""
    import os
    import signal
    import subprocess
    import sys
    import time

    marker = tmp_path / "writing"
    child = f"""
import os, time, numpy as np
from pathlib import Path
import compress.storage.cache as cache
from compress.storage.results import ResultStore, pack_bools
real_fsync = os.fsync
def slow_fsync(fd):  # the temporary file is written, not yet renamed into place
    Path({str(marker)!r}).touch()
    time.sleep(60)
os.fsync = slow_fsync
ResultStore(Path({str(tmp_path)!r})).put({BASIS!r}, {{"correct": pack_bools(np.ones(10_000, bool))}})
"""
    proc = subprocess.Popen([sys.executable, "-c", child])
    deadline = time.time() + 60
    while not marker.exists():
        assert proc.poll() is None and time.time() < deadline, "the child never reached the write"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = ResultStore(tmp_path)
    assert store.get(BASIS, required=("correct",)) is None  # nothing half-written is taken for a result
    assert not store.path(BASIS).exists()
    store.put(BASIS, {"correct": pack_bools(np.ones(3, bool))})  # the next run stores afresh
    assert unpack_bools(store.get(BASIS)["correct"]).tolist() == [True] * 3


def test_a_metric_whose_scoring_changed_is_measured_again(fresh_runner, monkeypatch):
    """A metric's ``version`` (from 2 on) is part of the key: results scored the old way are not served."""
    from compress.metrics.accuracy import TopOne

    first = fresh_runner()
    first.outcomes("tiny", Float32Config())
    again = fresh_runner()
    again.outcomes("tiny", Float32Config())
    assert again.store.hits == 1 and again.store.misses == 0  # version 1: keys as they always were

    monkeypatch.setattr(TopOne, "version", 2)
    bumped = fresh_runner()
    bumped.outcomes("tiny", Float32Config())
    assert bumped.store.hits == 0 and bumped.store.misses == 1


@pytest.mark.parametrize("module", ["compress.runtimes.litert", "compress.metrics.accuracy", "compress.runner"])
def test_an_edit_to_the_evaluation_code_measures_again(fresh_runner, monkeypatch, module):
    """The key holds a digest of the source files that produced the outcomes (read from the files,
    not typed by hand): unchanged, the stored result is served; one edited, it is measured again."""
    from compress.storage import results

    first = fresh_runner()
    first.outcomes("tiny", Float32Config())
    same = fresh_runner()
    same.outcomes("tiny", Float32Config())
    assert same.store.hits == 1 and same.store.misses == 0

    real = results.module_source
    monkeypatch.setattr(results, "module_source", lambda name: real(name) + (b"\n# edited" if name == module else b""))
    monkeypatch.setattr(results, "_CODE", {})
    edited = fresh_runner()
    edited.outcomes("tiny", Float32Config())
    assert edited.store.hits == 0 and edited.store.misses == 1

    monkeypatch.setattr(results, "module_source", real)  # the edit undone: the first result serves again
    monkeypatch.setattr(results, "_CODE", {})
    undone = fresh_runner()
    undone.outcomes("tiny", Float32Config())
    assert undone.store.hits == 1 and undone.store.misses == 0


def test_code_digest_reads_the_files_and_names_what_it_cannot():
    from compress.storage import results

    assert results.code_digest(["compress.judging.stats", "compress.storage.cache"]) == results.code_digest(["compress.storage.cache", "compress.judging.stats"])
    assert results.code_digest(["compress.judging.stats"]) != results.code_digest(["compress.storage.cache"])
    with pytest.raises(ValueError, match="no Python source"):
        results.module_source("compress.no_such_module")
