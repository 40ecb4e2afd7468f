"""compress.prepare: model families trained side by side, before anything is timed."""

import logging

import pytest

from compress import prepare
from compress.cache import WeightsCache
from compress.profile import CostProfile

PAIRS = [("tiny", "fp32"), ("tiny", "prune50"), ("tiny_torch", "fp32"), ("tiny_torch", "prune50")]


def test_families_alternate_frameworks_and_keep_ports_with_their_parent():
    fams = prepare.groups([("mobilenetv2", "int8"), ("resnet50", "int8"), ("resnet18", "int8"),
                           ("efficientnet_lite0_tflite", "int8"), ("efficientnet_lite0", "fp32"),
                           ("mobilenetv2", "fp32")])  # fmt: skip
    firsts = [f[0][0] for f in fams]
    assert firsts == ["mobilenetv2", "resnet18", "resnet50", "efficientnet_lite0_tflite"]
    assert fams[0] == [("mobilenetv2", "int8"), ("mobilenetv2", "fp32")]
    assert sorted(fams[3]) == [("efficientnet_lite0", "fp32"), ("efficientnet_lite0_tflite", "int8")]


def test_jobs_from_the_environment_are_validated(monkeypatch):
    monkeypatch.setenv(prepare.ENV_JOBS, "3")
    assert prepare.default_jobs() == 3
    for bad in ("0", "two"):
        monkeypatch.setenv(prepare.ENV_JOBS, bad)
        with pytest.raises(ValueError, match=prepare.ENV_JOBS):
            prepare.default_jobs()


def test_workers_inherit_the_gates_offline_mode():
    assert prepare._sockets_blocked()  # this suite runs with --disable-socket (tests/test_offline.py)


def test_one_job_starts_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_BENCH_CACHE", str(tmp_path))
    summary = prepare.prepare(PAIRS, jobs=1)
    assert summary["wall_s"] == 0 and summary["skipped"] == "one job" and not (tmp_path / "models").exists()


def test_workers_build_every_model_and_fine_tune_into_the_cache(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("COMPRESS_BENCH_CACHE", str(tmp_path))
    profile = CostProfile()
    with caplog.at_level(logging.INFO):
        summary = prepare.prepare(PAIRS, jobs=2, profile=profile)
    assert summary["families"] == 2 and summary["failures"] == []
    # worker log lines reach this process's logging (the gate's live log)
    assert "train tiny" in caplog.text and "train tiny_torch" in caplog.text
    rows = profile.rows()
    assert rows["tiny.fp32"]["prepare train"] > 0 and rows["tiny_torch.prune50"]["prepare fine-tune"] > 0
    assert rows["tiny_torch.prune50"]["prepare evaluate"] > 0

    from compress.runner import Runner

    runner = Runner(cache=WeightsCache(tmp_path))
    for m, t in PAIRS:  # all built and evaluated now: this process trains and evaluates nothing
        with runner.profile.pair(f"{m}.{t}"):
            runner.evaluate(m, t)
    phases = {p for row in runner.profile.rows().values() for p in row}
    assert not phases & {"train", "fine-tune", "evaluate"}, phases
    assert runner.store.hits > 0 and runner.store.misses == 0
    assert all(runner.is_cached(m) for m, _ in PAIRS)

    again = prepare.prepare(PAIRS, jobs=2)  # warm: the workers would only repeat the serial path
    assert again["skipped"] == "every model is already trained" and again["wall_s"] == 0


def _saved_run(folder, name, costs):
    import json

    folder.mkdir(parents=True, exist_ok=True)
    data = {"datetime": f"2026-11-30T12:00:0{name}", "benchmarks": [],
            "cost_profile": {"pairs": {p: {"total": c} for p, c in costs.items()}}}  # fmt: skip
    (folder / f"000{name}_run.json").write_text(json.dumps(data))


def test_families_are_scheduled_longest_first_by_the_saved_runs(tmp_path):
    fams = [[("a", "fp32"), ("a", "int8")], [("b", "fp32")], [("c", "fp32")]]
    assert prepare.estimated_costs(fams, storage=tmp_path / "none") is None
    assert prepare.schedule(fams, None) == fams  # nothing known: the order given
    machine = tmp_path / "machine"
    _saved_run(machine, 1, {"a.fp32": 100.0, "a.int8": 10.0, "b.fp32": 900.0})  # cold
    _saved_run(machine, 2, {"a.fp32": 1.0, "b.fp32": 2.0})  # warm: reused everything
    costs = prepare.estimated_costs(fams, storage=tmp_path)
    # each pair's largest total; c, which no run has, at the mean of the known pairs
    assert costs == [110.0, 900.0, (100.0 + 10.0 + 900.0) / 3]
    assert [f[0][0] for f in prepare.schedule(fams, costs)] == ["b", "c", "a"]
