import json

import pytest

from compress.cli import main
from tests.test_data import needs_real


@pytest.fixture(autouse=True)
def restore_env(monkeypatch):
    """--data-dir / --cache-dir set environment variables; undo them after each test."""
    import os

    for var in ("COMPRESS_BENCH_DATA", "COMPRESS_BENCH_CACHE"):
        if var in os.environ:
            monkeypatch.setenv(var, os.environ[var])
        else:  # setenv records "absent" for the undo (delenv of an absent variable records nothing)
            monkeypatch.setenv(var, "")
            monkeypatch.delenv(var)


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_shows_models_and_techniques(capsys):
    code, out, _ = run(capsys, "-q", "list")
    assert code == 0
    for name in ("mobilenetv2", "tiny", "fp32", "int8", "prune50_int8"):
        assert name in out


def test_unknown_model_lists_valid_ones(capsys):
    code, _, err = run(capsys, "-q", "run", "resnet", "int8")
    assert code == 2 and "unknown model 'resnet'" in err and "mobilenetv2" in err


def test_unknown_technique_lists_valid_ones(capsys):
    code, _, err = run(capsys, "-q", "run", "tiny", "int4")
    assert code == 2 and "unknown technique 'int4'" in err and "dynamic_range" in err


@pytest.mark.parametrize(
    "setting, message",
    [
        ("calibration_size=0", r"calibration_size must be an integer in [1, 100000], got 0"),
        ("calibration_size=many", "calibration_size must be an integer in [1, 100000], got 'many'"),
        ("calib=3", "unknown field of Int8Config 'calib'"),
        ("novalue", "--set expects FIELD=VALUE"),
    ],
)
def test_bad_config_values_name_the_field_and_range(capsys, setting, message):
    code, _, err = run(capsys, "-q", "run", "tiny", "int8", "--set", setting)
    assert code == 2 and message in err


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """No system copy, an empty cache, offline, and no in-process copy of the data."""
    from compress.data import fashion_mnist as fm
    from compress.models.vision import keras_classifier

    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "none")
    monkeypatch.setenv("COMPRESS_BENCH_OFFLINE", "1")
    monkeypatch.delenv("COMPRESS_BENCH_DATA", raising=False)
    for memo in (fm._load, keras_classifier._preprocessed):  # in-process copies of the data
        memo.cache_clear()
    yield tmp_path
    for memo in (fm._load, keras_classifier._preprocessed):
        memo.cache_clear()


def test_missing_dataset_says_how_to_get_it(capsys, no_data):
    code, _, err = run(capsys, "-q", "--cache-dir", str(no_data / "c"), "run", "tiny", "int8")
    assert code == 2 and "apt-get install dataset-fashion-mnist" in err


@pytest.mark.parametrize("command", [["run", "tiny", "int8"], ["list"]])
@pytest.mark.parametrize("given", ["does/not/exist", "empty"])
def test_a_wrong_data_dir_is_a_one_line_error_never_a_fallback(capsys, tmp_path, monkeypatch, command, given):
    """Even with a good system copy installed, --data-dir DIR uses DIR or fails, naming it."""
    from compress.data import fashion_mnist as fm

    system = tmp_path / "system"  # placeholder files: a fall-back would find them
    system.mkdir()
    for name in fm.FILES:
        (system / name).write_bytes(b"placeholder")
    monkeypatch.setattr(fm, "SYSTEM_DIR", system)
    path = tmp_path / given
    if given == "empty":
        path.mkdir()
    code, out, err = run(capsys, "-q", "--data-dir", str(path), "--cache-dir", str(tmp_path / "c"), *command)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: data directory {path} ")  # one line, no traceback
    assert ("does not exist" if given != "empty" else "holds neither") in err
    assert "t10k-labels-idx1-ubyte.gz" in err and "fashion-mnist/" in err  # what it expected there


def test_a_wrong_data_variable_is_a_one_line_error(capsys, no_data, monkeypatch):
    """$COMPRESS_BENCH_DATA is as explicit as --data-dir: checked when the data is loaded."""
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(no_data / "nope"))
    code, _, err = run(capsys, "-q", "--cache-dir", str(no_data / "c"), "run", "tiny", "int8")
    assert code == 2 and err.count("\n") == 1
    origin = "(given by --data-dir or $COMPRESS_BENCH_DATA)"
    assert f"error: data directory {no_data / 'nope'} {origin} does not exist" in err


@needs_real
def test_run_prints_a_table_and_writes_provenance(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("COMPRESS_BENCH_DATA", raising=False)
    out_json = tmp_path / "r.json"
    code, out, err = run(capsys, "-q", "--cache-dir", str(tmp_path), "run", "tiny", "int8",
                         "--set", "calibration_size=100", "--latency-runs", "5", "--json", str(out_json),
                         "--save", str(tmp_path / "out"))  # fmt: skip
    assert code == 0, err
    header = out.splitlines()[0].split()
    assert header[:5] == ["model", "technique", "runtime", "params", "bytes"] and "retention" in header
    assert [line.split()[1] for line in out.splitlines()[2:4]] == ["fp32", "int8"]
    (res,) = json.loads(out_json.read_text())
    assert res["config"]["fields"]["calibration_size"] == 100
    assert 0 < res["size_ratio"] < 1 and res["latency_ms"] > 0 and res["machine"]["machine_id"]
    saved = (tmp_path / "out" / "tiny.int8.tflite").read_bytes()
    assert len(saved) == res["bytes"] and saved[4:8] == b"TFL3"  # the flatbuffer identifier
