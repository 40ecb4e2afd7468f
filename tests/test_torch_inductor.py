"""The Inductor-compiled torch runtime on ``tiny_torch``: real Fashion-MNIST, compiled with a real C++ compiler."""

import shutil

import numpy as np
import pytest

from compress.storage.cache import WeightsCache
from compress.registry import get_technique
from compress.runner import Runner
from compress.runtimes import get_runtime
from compress.runtimes.base import Artefact
from compress.runtimes.torch_inductor import CompilerMissing, compiler
from compress.techniques.torch_compile import InductorConfig
from tests.test_data import needs_real

MODEL = "tiny_torch"
N = 300

needs_compiler = pytest.mark.skipif(
    not (shutil.which("g++") or shutil.which("c++")), reason="no C++ compiler: `make test` installs g++"
)


@pytest.fixture(scope="module")
def tt(tmp_path_factory):
    return Runner(WeightsCache(tmp_path_factory.mktemp("models")), eval_threads=1)


@pytest.fixture(scope="module", autouse=True)
def fresh_inductor_cache(tmp_path_factory):
    """A compilation cache of this module's own: each test compiles for real, no earlier run served."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path_factory.mktemp("inductor")))
    yield
    mp.undo()


def test_config_validates_and_marks_its_reference():
    assert InductorConfig("fp32").is_fp32_reference() and not InductorConfig("int8").is_fp32_reference()
    with pytest.raises(ValueError, match="mode must be one of fp32, int8"):
        InductorConfig("fp16")
    with pytest.raises(ValueError, match="calibration_size"):
        InductorConfig("int8", calibration_size=0)
    assert get_technique("inductor_int8").config == InductorConfig("int8")
    assert Runner.reference_technique("resnet18", "inductor_int8") == "inductor_fp32"
    assert Runner.reference_technique("resnet18", "int8") == "fp32"


def test_a_missing_compiler_is_named_not_a_compiler_stack_trace(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(CompilerMissing, match=r"apt-get install g\+\+"):
        compiler()
    with pytest.raises(CompilerMissing, match="no C\\+\\+ compiler"):
        get_runtime("torch-inductor").load(Artefact(b"not read", "pt2", "torch-inductor"), 1)
    monkeypatch.setenv("CXX", "/no/such/compiler")
    with pytest.raises(CompilerMissing, match="/no/such/compiler"):
        compiler()


def test_only_pt2_artefacts_are_compiled():
    with pytest.raises(ValueError, match="'pt2'"):
        get_runtime("torch-inductor").load(Artefact(b"", "pt", "torch-inductor"), 1)


@needs_real
@needs_compiler
@pytest.mark.parametrize("mode", ["fp32", "int8"])
def test_compiled_program_predicts_like_the_eager_one(tt, mode):
    """The same bytes run eagerly and compiled give the same classes (int8: oneDNN kernels round
    differently from the reference ops, so a few borderline images may flip)."""
    x = tt.model(MODEL).recipe.data("test")[0][:N]
    art = tt.artefact(MODEL, InductorConfig(mode, calibration_size=100))
    assert (art.format, art.runtime) == ("pt2", "torch-inductor")
    from torch._dynamo.utils import counters

    compiled = get_runtime("torch-inductor").load(art, 1)
    graphs = counters["stats"]["unique_graphs"]
    eager = get_runtime("torch-eager").load(Artefact(art.data, "pt2", "torch-eager"), 1)
    got, want = compiled.predict(x), eager.predict(x)
    assert got.shape == want.shape == (N, 10)
    agreement = float(np.mean(got.argmax(1) == want.argmax(1)))
    assert agreement >= (1.0 if mode == "fp32" else 0.97), agreement
    if mode == "fp32":
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
    one = compiled.single_image_fn(x[0])()
    np.testing.assert_allclose(one, got[:1], rtol=1e-4, atol=1e-4)
    assert compiled.compile_seconds > 0
    assert counters["stats"]["unique_graphs"] == graphs, "compiled once, at load: no recompilation"


@needs_real
@needs_compiler
def test_int8_is_lowered_to_int8_kernels(tt):
    """Freezing lowers the PT2E quantize/dequantize patterns around each conv to a prepacked
    oneDNN int8 conv: counted by Inductor's own pattern matcher (a fresh compilation cache:
    a cache hit would skip the passes)."""
    from torch._dynamo.utils import counters

    art = tt.artefact(MODEL, InductorConfig("int8", calibration_size=100))
    counters.clear()
    get_runtime("torch-inductor").load(art, 1)
    assert counters["inductor"]["qconv_weight_prepack_matcher_count"] >= 3  # tiny_torch's three convs
    assert counters["inductor"]["qlinear_weight_prepack_matcher_count"] >= 1


@needs_real
@needs_compiler
def test_compilation_is_its_own_phase_and_sparsity_needs_none(tt, monkeypatch):
    from compress.runtimes import torch_inductor

    res = tt.evaluate(MODEL, "inductor_int8", InductorConfig("int8", calibration_size=100))
    assert res.runtime == "torch-inductor"  # size: tiny_torch is smaller than a .pt2 graph; real bounds are the gate's
    assert res.retention > 0.9
    rows = tt.profile.rows()
    assert any(r.get("compile", 0) > 0 for r in rows.values())
    calls = []
    monkeypatch.setattr(torch_inductor.TorchInductor, "load", lambda *a, **k: calls.append(a))
    art = tt.artefact(MODEL, InductorConfig("int8", calibration_size=100))
    weights = get_runtime("torch-inductor").weight_arrays(art)
    assert calls == [] and sorted(w.size for w in weights) == [144, 144, 320, 512]


@needs_real
@needs_compiler
def test_a_later_strict_export_does_not_unfreeze_a_loaded_program(tt):
    """A strict torch.export drops Dynamo's compiled code; the next call compiles again. It must
    compile frozen again (an unfrozen int8 program does not compile at all: qconv_prepack)."""
    import torch
    from torch._dynamo.utils import counters

    x = tt.model(MODEL).recipe.data("test")[0][:20]
    loaded = get_runtime("torch-inductor").load(tt.artefact(MODEL, InductorConfig("int8", calibration_size=100)), 1)
    before = loaded.predict(x)
    module = tt.model(MODEL).native
    torch.export.export(module, (torch.from_numpy(x[:2]),), strict=True)
    counters.clear()
    after = loaded.predict(x)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
    recompiled = counters["stats"]["unique_graphs"] > 0  # torch 2.14 does compile again here
    assert not recompiled or counters["inductor"]["qconv_unary_lower_count"] == 3, "compiled again unfrozen"
