"""compress.prepare: model families trained side by side, before anything is timed."""

import logging

import pytest

from compress import prepare
from compress.storage.cache import WeightsCache
from compress.reporting.profile import CostProfile

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


def test_evaluation_threads_are_the_workers_share_of_the_cores(monkeypatch):
    # a worker evaluates beside another that trains: more threads than its share oversubscribe the cores;
    # the serial path uses the same count, which is part of a stored result's key
    from compress.runner import Runner, default_eval_threads

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.setenv(prepare.ENV_JOBS, "2")
    assert default_eval_threads() == 4
    monkeypatch.setenv(prepare.ENV_JOBS, "3")
    assert default_eval_threads() == 2
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert default_eval_threads() == 1  # more workers than cores: still one thread each
    monkeypatch.delenv(prepare.ENV_JOBS)
    assert default_eval_threads() == 1
    assert Runner(eval_threads=None).eval_threads == 1
    assert Runner(eval_threads=3).eval_threads == 3


def test_workers_inherit_the_gates_offline_mode():
    assert prepare._sockets_blocked()  # this suite runs with --disable-socket (tests/test_offline.py)


def test_one_job_starts_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_BENCH_CACHE", str(tmp_path))
    summary = prepare.prepare(PAIRS, jobs=1)
    assert summary["wall_s"] == 0 and summary["skipped"] == "one job" and not (tmp_path / "models").exists()


def test_workers_build_every_model_and_fine_tune_into_the_cache(tmp_path, monkeypatch, caplog):
    from compress.storage.artefacts import run_folder
    from compress.techniques import planted

    monkeypatch.setenv("COMPRESS_BENCH_CACHE", str(tmp_path))
    profile = CostProfile()
    jobs = [*PAIRS, ("tiny_torch", planted.TECHNIQUE)]  # the gate's self-test is a job too
    with run_folder() as folder, caplog.at_level(logging.INFO):
        summary = prepare.prepare(jobs, jobs=2, profile=profile)
        assert summary["families"] == 2 and summary["failures"] == [] and summary["tasks"] == 5
        # worker log lines reach this process's logging (the gate's live log)
        assert "train tiny" in caplog.text and "train tiny_torch" in caplog.text
        rows = profile.rows()
        assert rows["tiny.fp32"]["prepare train"] > 0 and rows["tiny_torch.prune50"]["prepare fine-tune"] > 0
        assert rows["tiny_torch.prune50"]["prepare evaluate"] > 0
        assert rows["tiny_torch.planted"]["prepare evaluate"] > 0
        assert len(list(folder.glob("tiny-*.bin"))) == 2  # the LiteRT artefacts; a torch state_dict is not kept

        from compress.runner import Runner

        runner = Runner(cache=WeightsCache(tmp_path))
        for m, t in PAIRS:  # all built and evaluated now: this process trains and evaluates nothing
            with runner.profile.pair(f"{m}.{t}"):
                runner.evaluate(m, t)
        with runner.profile.pair("tiny_torch.planted"):
            wrong, small = planted.evaluate(runner, "tiny_torch")
    assert wrong["retention"] < small["retention"]
    rows = runner.profile.rows()
    phases = {p for row in rows.values() for p in row}
    assert not phases & {"train", "fine-tune", "evaluate"}, phases
    # the LiteRT artefacts the workers built are loaded, not built again
    assert "build" not in rows["tiny.fp32"] and "build" not in rows["tiny.prune50"]
    assert rows["tiny_torch.fp32"]["build"] > 0
    assert runner.store.hits > 0 and runner.store.misses == 0
    assert all(runner.is_cached(m) for m, _ in PAIRS)
    assert not folder.exists()  # the run's artefacts are gone with it

    # warm: the workers still export the run's artefacts side by side; nothing trains or is measured
    with run_folder() as folder:
        profile = CostProfile()
        again = prepare.prepare(PAIRS, jobs=2, profile=profile)
        assert again["skipped"] == "" and again["failures"] == [] and len(list(folder.glob("tiny-*.bin"))) == 2
    phases = {p for row in profile.rows().values() for p in row}
    assert "prepare build" in phases and not phases & {"prepare train", "prepare fine-tune", "prepare evaluate"}


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


def test_a_familys_other_pairs_wait_for_its_model_then_run_as_jobs_of_their_own():
    fams = [[("resnet18", "int8"), ("resnet18", "fp32"), ("resnet18", "prune50_int8"), ("resnet18", "prune50")],
            [("mobilenetv2", "fp32"), ("mobilenetv2", "int8")]]  # fmt: skip
    q = prepare.JobQueue(fams, None)
    assert q.total == 5  # prune50_int8 runs in prune50's job: they share its fine-tuned model
    # nothing known: the first jobs (each family's fp32, which trains its model) in the order given
    first, second = q.pop(), q.pop()
    assert first == (("resnet18", "fp32"),) and second == (("mobilenetv2", "fp32"),)
    assert q.pop() is None and q, "the other pairs wait for their family's model"
    q.finished(second)
    assert q.pop() == (("mobilenetv2", "int8"),) and q.pop() is None
    q.finished(first)
    rest = {q.pop(), q.pop()}
    assert rest == {(("resnet18", "int8"),), (("resnet18", "prune50"), ("resnet18", "prune50_int8"))}
    assert q.pop() is None and not q


def test_an_export_that_starts_from_another_runs_in_its_job():
    """The quantized ONNX and LiteRT artefacts of a detector start from its float export (their
    handlers' declared base): one job builds the float export first, then them."""
    jobs = prepare._chains([("yolov8n_gate", t) for t in ("int8", "onnx_int8", "fp32", "channels50", "onnx_fp32",
                                                          "dynamic_range", "float16")])  # fmt: skip
    assert sorted(jobs) == [(("yolov8n_gate", "channels50"),),
                            (("yolov8n_gate", "fp32"), ("yolov8n_gate", "int8"), ("yolov8n_gate", "dynamic_range"),
                             ("yolov8n_gate", "float16")),
                            (("yolov8n_gate", "onnx_fp32"), ("yolov8n_gate", "onnx_int8"))]  # fmt: skip
    # without its base in the run, a quantized export is a job of its own
    assert prepare._chains([("efficientnet_lite0", "onnx_int8")]) == [(("efficientnet_lite0", "onnx_int8"),)]


def test_the_longest_ready_job_starts_first_and_a_model_counts_its_whole_family():
    fams = [[("a", "fp32"), ("a", "int8"), ("a", "prune50")], [("b", "fp32")], [("c", "fp32"), ("c", "int8")]]
    costs = {("a", "fp32"): 100.0, ("a", "int8"): 10.0, ("a", "prune50"): 500.0, ("b", "fp32"): 400.0,
             ("c", "fp32"): 300.0, ("c", "int8"): 20.0}  # fmt: skip
    q = prepare.JobQueue(fams, costs)
    # a's model takes 100 s but 510 s of work wait on it: it goes first
    assert [q.pop(), q.pop()] == [(("a", "fp32"),), (("b", "fp32"),)]
    q.finished((("a", "fp32"),))
    assert q.pop() == (("a", "prune50"),)  # 500 s, before c's model (320 s of its family)
    assert q.pop() == (("c", "fp32"),)
    q.finished((("c", "fp32"),))
    assert sorted(q.drain()) == [("a", "int8"), ("c", "int8")] and not q


def test_pair_costs_are_each_pairs_largest_total(tmp_path):
    machine = tmp_path / "machine"
    _saved_run(machine, 1, {"a.fp32": 100.0, "b.fp32": 7.0})
    _saved_run(machine, 2, {"a.fp32": 3.0})
    costs = prepare.pair_costs([("a", "fp32"), ("b", "fp32"), ("c", "int8")], storage=tmp_path)
    assert costs == {("a", "fp32"): 100.0, ("b", "fp32"): 7.0, ("c", "int8"): 53.5}
    assert prepare.pair_costs([("a", "fp32")], storage=tmp_path / "none") is None
