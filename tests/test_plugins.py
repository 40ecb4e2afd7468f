"""A team's own models and bounds without a fork: plugins (compress/plugins.py) and merged thresholds.

The registry is process-global, so everything that loads a plugin runs in a
subprocess; this process's registry keeps only the suite's models. The example
plugin is ``examples/team-models`` (``team_models``: ``team_cnn``, 4 gate pairs).
"""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from compress import plugins
from compress.judging import thresholds
from compress.judging.thresholds import ThresholdsError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "team-models"
TEAM_FILE = EXAMPLE / "thresholds.toml"
TEAM_PAIRS = [("team_cnn", t) for t in ("fp32", "dynamic_range", "onnx_fp32", "onnx_int8")]


def _env(*paths: Path, plugins_var: str | None = None, **extra: str) -> dict:
    """This environment with ``paths`` first on PYTHONPATH and ``$COMPRESS_BENCH_PLUGINS`` as given."""
    # not PYTEST_XDIST_*: a pytest started from an xdist worker would believe it is one, and
    # pytest-benchmark disables itself there
    env = {k: v for k, v in os.environ.items() if k != plugins.ENV and not k.startswith("PYTEST_XDIST_")}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), *filter(None, [os.environ.get("PYTHONPATH")])])
    if plugins_var is not None:
        env[plugins.ENV] = plugins_var
    return {**env, **extra}


def _run(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _python(code: str, env: dict) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-c", textwrap.dedent(code)], env)


def _module(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(body))
    return folder


# -- (a) a plugin named in the environment -------------------------------------------


def test_an_env_var_plugin_registers_its_models_everywhere_the_registry_is_read():
    res = _python(
        """
        from compress import plugins, registry
        assert "team_cnn" not in registry._MODELS  # nothing before the registry is read
        print("models", registry.list_models())
        print("gate", registry.pairs(tier="gate", model="team_*"))
        registry.list_models(); plugins.load(); plugins.load()  # idempotent
        print("loaded", plugins.loaded())
        print("spec", registry.get_model("team_cnn").recipe())
        try:
            registry.get_model("team_cnx")
        except registry.UnknownNameError as exc:
            print("unknown", str(exc).endswith(". Plugins loaded: team_models."))
        """,
        _env(EXAMPLE, plugins_var=" team_models ,, team_models"),
    )
    assert res.returncode == 0, res.stderr
    lines = dict(line.split(" ", 1) for line in res.stdout.splitlines())
    assert "'team_cnn'" in lines["models"] and "'resnet18'" in lines["models"]
    assert lines["gate"] == repr(TEAM_PAIRS)
    assert lines["loaded"] == "{'team_models': '$COMPRESS_BENCH_PLUGINS (set directly or by --plugin)'}"
    assert "TorchImageClassifier(arch='team_cnn'" in lines["spec"]
    assert lines["unknown"] == "True"  # an unknown name says which plugins were loaded


def test_plugin_option_values_extend_the_environment(monkeypatch):
    monkeypatch.setenv(plugins.ENV, "a,b")
    plugins.add_to_env(["b", " c ", ""])
    assert os.environ[plugins.ENV] == "a,b,c" and plugins.env_modules() == ["a", "b", "c"]
    monkeypatch.delenv(plugins.ENV)
    plugins.add_to_env([])
    assert plugins.ENV not in os.environ


# -- (b) a plugin that fails ----------------------------------------------------------


def test_a_broken_plugin_is_a_plugin_error_naming_it_where_it_came_from_and_the_cause(tmp_path):
    _module(tmp_path, "broken_team", """
        from compress.registry import register_model

        raise ImportError("team_secret_lib is not installed")
        """)  # fmt: skip
    res = _python(
        """
        from compress import plugins, registry
        for attempt in (1, 2):  # raised again on every read, never half-loaded
            try:
                registry.list_models()
            except plugins.PluginError as exc:
                print(attempt, exc, "| cause:", type(exc.__cause__).__name__)
        print(sorted(plugins.loaded()))  # the plugin named before it loaded
        """,
        _env(EXAMPLE, tmp_path, plugins_var="team_models,broken_team"),
    )
    assert res.returncode == 0, res.stderr
    expected = ("plugin 'broken_team' (named by $COMPRESS_BENCH_PLUGINS (set directly or by --plugin)) failed "
                "to import: ImportError: team_secret_lib is not installed | cause: ImportError")  # fmt: skip
    assert res.stdout.splitlines() == [f"1 {expected}", f"2 {expected}", "['team_models']"]


def test_a_missing_plugin_fails_in_the_cli_and_the_gate_with_its_name(tmp_path):
    env = _env(plugins_var="no_such_team_module")
    cli = _run([sys.executable, "-m", "compress", "-q", "list", "models"], env)
    assert cli.returncode == 2
    assert cli.stderr.strip() == ("error: plugin 'no_such_team_module' (named by $COMPRESS_BENCH_PLUGINS (set "
                                  "directly or by --plugin)) failed to import: ModuleNotFoundError: No module "
                                  "named 'no_such_team_module'; put the folder holding 'no_such_team_module' on "
                                  "PYTHONPATH (PYTHONPATH=path/to/folder) or install its package (pip install -e "
                                  "path/to/package)")  # fmt: skip
    gate = _run([sys.executable, "-m", "pytest", "benchmarks/", "--collect-only", "-q", "-p", "no:cacheprovider",
                 "--plugin", "no_such_team_module"], _env())  # fmt: skip
    assert gate.returncode == 4, gate.stdout + gate.stderr  # pytest's usage error: nothing collected or trained
    assert "ERROR: plugin 'no_such_team_module'" in gate.stderr and "ModuleNotFoundError" in gate.stderr


def test_a_plugin_model_cannot_shadow_a_suite_model(tmp_path):
    _module(tmp_path, "shadow_team", """
        from compress.models.vision.torch_classifier import TorchImageClassifier
        from compress.registry import register_model


        @register_model(framework="torch", task="image-classification", dataset="fashion-mnist", tier="unit")
        def resnet18():
            return TorchImageClassifier("resnet18")
        """)  # fmt: skip
    res = _python(
        """
        from compress import plugins, registry
        try:
            registry.get_model("resnet18")
        except plugins.PluginError as exc:
            print(exc)
        """,
        _env(tmp_path, plugins_var="shadow_team"),
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == (
        "plugin 'shadow_team' (named by $COMPRESS_BENCH_PLUGINS (set directly or by --plugin)) failed to import: "
        "ValueError: model 'resnet18' is already registered (a suite model, by compress.models.catalogue: a plugin model "
        "cannot replace it; choose another name)"
    )


# -- (c) an installed package's entry point ---------------------------------------------


def _installed(site: Path, module: str, body: str) -> Path:
    """``site``: a folder that looks like site-packages holding distribution acme-bench, whose
    entry point ``acme`` in compress_bench.plugins names ``module``."""
    _module(site, module, body)
    info = site / "acme_bench-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-bench\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[compress_bench.plugins]\nacme = {module}\n")
    return site


_ENTRY_POINT_CHECK = """
    import sys
    sys.path.insert(0, {site!r})
    from compress import plugins, registry
    try:
        print("models", [m for m in registry.list_models() if m.startswith("acme")])
        print("loaded", plugins.loaded())
    except plugins.PluginError as exc:
        print("error", exc)
    """


def test_an_entry_point_plugin_loads_without_any_option(tmp_path):
    site = _installed(tmp_path / "site", "acme_models", """
        from compress.models.vision.torch_classifier import TorchImageClassifier
        from compress.registry import register_model


        @register_model(framework="torch", task="image-classification", dataset="fashion-mnist", tier="unit")
        def acme_cnn():
            \"\"\"ACME's CNN.\"\"\"
            return TorchImageClassifier("tiny_torch", input_size=28, channels=1, epochs=1)
        """)  # fmt: skip
    res = _python(_ENTRY_POINT_CHECK.format(site=str(site)), _env())
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "models ['acme_cnn']",
        "loaded {'acme_models': \"entry point acme = 'acme_models' of distribution 'acme-bench' "
        "(group compress_bench.plugins)\"}",
    ]


def test_a_broken_entry_point_names_the_entry_point_and_its_distribution(tmp_path):
    site = _installed(tmp_path / "site", "acme_broken", "1 / 0\n")
    res = _python(_ENTRY_POINT_CHECK.format(site=str(site)), _env())
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ("error plugin 'acme_broken' (named by entry point acme = 'acme_broken' of "
                                  "distribution 'acme-bench' (group compress_bench.plugins)) failed to import: "
                                  "ZeroDivisionError: division by zero")  # fmt: skip


# -- (d) a team's thresholds file merged over the suite's --------------------------------

_OVERRIDE = """
[resnet18.onnx_int8]
size_ratio = { max = 0.3, last = 0.2522 }
retention = { min = 0.995, last = 1.0003 }
"""


def test_a_user_file_replaces_the_suite_entry_for_its_pairs(tmp_path):
    user = tmp_path / "team.toml"
    user.write_text(_OVERRIDE)
    suite = thresholds.load()
    merged = thresholds.load_merged([user])
    assert set(merged) == set(suite)
    entry = merged["resnet18.onnx_int8"]
    assert entry.source == str(user) and {b.source for b in entry.bounds} == {str(user)}
    assert (entry["retention"].value, entry["size_ratio"].value) == (0.995, 0.3)
    assert merged["resnet18.fp32"] == suite["resnet18.fp32"]  # every other pair: the suite's
    assert merged["resnet18.fp32"]["accuracy"].source == str(thresholds.DEFAULT_PATH)
    assert thresholds.load_merged() == suite
    # a failure names the file that set the bound
    msgs = entry.violations({"size_ratio": 0.25, "retention": 0.99, "retention_upper": 0.993})
    assert msgs == [f"resnet18.onnx_int8: retention 0.9900 is below min 0.995 with 95% confidence: its upper "
                    f"95% bound is 0.9930 (last recorded 1.0003; bound set in {user})"]  # fmt: skip
    ok = merged["resnet18.fp32"].violations({"accuracy": 0.5, "accuracy_upper": 0.51})
    assert re.search(r"\(last recorded 0\.9; bound set in \S*benchmarks/thresholds\.toml\)$", ok[0]), ok
    assert "bound set in" not in thresholds.parse(_OVERRIDE)["resnet18.onnx_int8"].violations({})[0]


def test_a_user_file_naming_an_unknown_pair_fails_with_the_file_name(tmp_path):
    user = tmp_path / "team.toml"
    user.write_text(_OVERRIDE + "\n[team_cnn.fp32]\naccuracy = { min = 0.84, last = 0.8474 }\n")
    with pytest.raises(ThresholdsError) as exc:  # team_cnn is not registered in this process
        thresholds.load_merged([user])
    assert str(exc.value) == (f"1 thresholds entry names no registered, applicable pair:\n  {user}: [team_cnn.fp32]: "
                              "unknown model 'team_cnn'.")  # fmt: skip
    assert set(thresholds.load_merged([user], registered=False)) >= {"team_cnn.fp32"}
    with pytest.raises(ThresholdsError, match=rf"{tmp_path / 'none.toml'}: cannot read the thresholds file"):
        thresholds.load_merged([tmp_path / "none.toml"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[resnet18.onnx_int8]\nretension = { min = 0.9 }\n")
    with pytest.raises(ThresholdsError, match=rf"{bad}: resnet18.onnx_int8.retension: unknown key"):
        thresholds.load_merged([bad], registered=False)


def test_a_team_file_may_bound_the_team_models_once_its_plugin_is_loaded(tmp_path):
    user = tmp_path / "override.toml"
    user.write_text(_OVERRIDE)
    res = _python(
        f"""
        from compress.judging import thresholds
        table = thresholds.load_merged([{str(TEAM_FILE)!r}, {str(user)!r}])
        print(sorted(k for k in table if k.startswith("team_")))
        print(table["team_cnn.onnx_int8"].source, table["resnet18.onnx_int8"].source)
        """,
        _env(EXAMPLE, plugins_var="team_models"),
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [repr(sorted(f"{m}.{t}" for m, t in TEAM_PAIRS)), f"{TEAM_FILE} {user}"]


def test_the_example_file_bounds_exactly_the_example_gate_pairs():
    table = thresholds.load_merged([TEAM_FILE], registered=False)
    team = {k: v for k, v in table.items() if v.source == str(TEAM_FILE)}
    assert set(team) == {f"{m}.{t}" for m, t in TEAM_PAIRS}
    for entry in team.values():
        assert all(b.last is not None for b in entry.bounds), entry.key


# -- (e) the CLI, (5) asv ---------------------------------------------------------------------


def test_cli_plugin_option_lists_the_team_model():
    res = _run([sys.executable, "-m", "compress", "-q", "--plugin", "team_models", "list", "models"], _env(EXAMPLE))
    assert res.returncode == 0, res.stderr
    line = next(line for line in res.stdout.splitlines() if "team_cnn" in line)
    assert line.split()[:3] == ["team_cnn", "torch", "full"]
    assert line.endswith("[gate: fp32,dynamic_range,onnx_fp32,onnx_int8]")


def test_asv_benchmarks_see_env_var_plugins():
    res = _python(
        """
        import sys
        sys.path.insert(0, "benchmarks")  # asv imports benchmark_dir as the package asv_bench
        from asv_bench import compression
        print([p for p in compression.PAIRS if p[0] == "team_cnn"][:4], "team_cnn" in compression.MODELS)
        """,
        {k: v for k, v in _env(EXAMPLE, plugins_var="team_models").items()
         if k not in ("COMPRESS_BENCH_PAIRS", "COMPRESS_BENCH_SHARD")},  # every pair of the tier
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"{TEAM_PAIRS} True"  # gate or full tier: the gate pairs come first


# -- (f) the gate, end to end --------------------------------------------------------------


# The end to end gate of a team's plugin (a cold cache, its pairs measured against the team's own
# bounds, an impossible team bound failing by the team file's name) runs on the four examples of
# examples/: tests/test_example_images.py, test_example_text.py, test_example_lm.py, test_ready_onnx.py.


def test_a_gate_pair_without_its_data_fails_naming_the_fetch_and_is_skipped_in_full(tmp_path):
    """The gate never shrinks silently: a gate model whose data are missing fails (its pair and its
    self-test), saying what is missing and how to fetch it; the full tier skips it, saying why, and the
    summary lists the skip."""
    _module(tmp_path, "team_missing_data", """
        from dataclasses import dataclass

        from compress.models.vision.torch_classifier import TorchImageClassifier
        from compress.registry import register_model


        @dataclass(frozen=True)
        class NotHere(TorchImageClassifier):
            def unavailable(self):
                return "the team's images are not in /nowhere: run `team-data fetch`"


        @register_model(framework="torch", task="image-classification", dataset="team images", gate=("fp32",))
        def team_missing():
            return NotHere("resnet18")
        """)  # fmt: skip
    bounds = tmp_path / "team.toml"
    bounds.write_text("[team_missing.fp32]\naccuracy = { min = 0.8, last = 0.85 }\n")
    base = [sys.executable, "-m", "pytest", "benchmarks/", "--benchmark-only", "--plugin", "team_missing_data",
            "--thresholds", str(bounds), "-k", "team_missing", "-p", "no:cacheprovider"]  # fmt: skip
    env = _env(tmp_path, COMPRESS_BENCH_CACHE=str(tmp_path / "cache"), COMPRESS_BENCH_PREPARE_JOBS="1")
    gate = _run(base, env)
    out = gate.stdout + gate.stderr
    assert gate.returncode == 1 and re.search(r"\b2 failed\b", out) and "skipped" not in out.split("short test summary")[-1], out
    assert out.count("the team's images are not in /nowhere: run `team-data fetch` (a gate pair never skips") >= 2, out
    full = _run([*base, "--tier", "full"], env)
    out = full.stdout + full.stderr
    assert full.returncode == 0 and re.search(r"\b\d+ skipped\b", out) and "failed" not in out, out  # every torch pair
    assert re.search(r"^team_missing\.fp32: the team's images are not in /nowhere", full.stdout, re.M), out


def test_pairs_without_bounds_stop_the_gate_before_anything_trains(tmp_path):
    """Bounds before work: the team's pairs with no thresholds file fail at collection, naming the
    files read and the entries to add; nothing is trained."""
    cache = tmp_path / "cache"
    res = _run([sys.executable, "-m", "pytest", "benchmarks/", "--benchmark-only", "--plugin", "team_models",
                "-k", "team_", "-p", "no:cacheprovider"],
               _env(EXAMPLE, COMPRESS_BENCH_CACHE=str(cache), COMPRESS_BENCH_PREPARE_JOBS="1"))  # fmt: skip
    out = res.stdout + res.stderr
    assert res.returncode == 4, out  # pytest's usage error
    assert ("4 selected pair(s) have no bounds in benchmarks/thresholds.toml: team_cnn.fp32, team_cnn.dynamic_range, "
            "team_cnn.onnx_fp32, team_cnn.onnx_int8. Add to your thresholds file") in out, out
    assert "[team_cnn.fp32]\nretention = { min = ..., last = ... }" in out and "--unbounded" in out, out
    assert not (cache / "models").exists() or not any((cache / "models").glob("team_cnn-*")), "nothing trained"
