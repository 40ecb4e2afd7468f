"""Where artefacts run: ``--device cuda`` for the torch and ONNX Runtime pairs that have GPU kernels.

The reasons a pair cannot run on a device are tested everywhere; the CUDA path
itself runs where torch sees a CUDA device (the GPU machine), skipped elsewhere.
"""

import numpy as np
import pytest

from compress.registry import device_support, pair_config
from compress.runner import Runner
from compress.runtimes import get_runtime
from tests.test_data import needs_real


def _reason(model, technique, device="cuda"):
    from compress.registry import get_model

    return device_support(Runner._chain(pair_config(model, technique)), get_model(model).framework, device)


def test_every_pair_runs_on_the_cpu():
    from compress.registry import pairs

    assert all(_reason(m, t, "cpu") is None for m, t in pairs(tier="full"))


def test_which_pairs_have_gpu_kernels_and_why_the_others_do_not():
    for t in ("fp32", "float16", "bfloat16", "inductor_fp32", "onnx_fp32", "onnx_int8", "prune50", "channels50"):
        assert _reason("resnet18", t) is None, t
    for t in ("int8_weight_only", "sparse24"):  # torchao's int8 matmul; torch's 2:4 sparse kernels
        assert _reason("gpt2", t) is None, t
    assert "dynamic int8 Linear kernels" in _reason("resnet18", "dynamic_range")
    assert "x86 quantizer" in _reason("resnet18", "int8")
    assert "x86 quantizer" in _reason("resnet18", "prune50_int8")  # a chain: its int8 export decides
    assert "oneDNN CPU kernels" in _reason("resnet18", "inductor_int8")
    assert "LiteRT on its CPU kernels" in _reason("mobilenetv2", "prune50")  # the implied fp32 export
    with pytest.raises(Exception, match="unknown device"):
        _reason("resnet18", "fp32", "tpu")


def test_runtimes_say_why_they_cannot_use_a_device():
    import onnxruntime as ort
    import torch

    assert get_runtime("litert").unavailable("cuda") == "the litert runtime runs on cpu only"
    for name in ("torch-eager", "torch-inductor"):
        why = get_runtime(name).unavailable("cuda")
        assert (why is None) == torch.cuda.is_available(), why
    why = get_runtime("onnxruntime").unavailable("cuda")
    assert (why is None) == ("CUDAExecutionProvider" in ort.get_available_providers())
    if why:
        assert "no CUDAExecutionProvider" in why and "onnxruntime-gpu" in why
    assert all(get_runtime(n).unavailable("cpu") is None for n in ("litert", "torch-eager", "onnxruntime"))


def test_a_device_is_validated():
    with pytest.raises(ValueError, match="device must be one of cpu, cuda"):
        Runner(device="tpu")


needs_cuda = pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="no CUDA device here (runs on the GPU machine)"
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    from compress.storage.cache import WeightsCache

    cache = WeightsCache(tmp_path_factory.mktemp("models"))
    return Runner(cache, eval_threads=1, device="cuda"), Runner(cache, eval_threads=1)


@needs_real
@needs_cuda
@pytest.mark.parametrize("technique", ["fp32", "float16", "bfloat16", "inductor_fp32"])
def test_gpu_artefacts_predict_like_the_cpu_ones(pair, technique):
    import torch

    gpu, cpu = pair
    cfg = pair_config("tiny_torch", technique)
    x = cpu.model("tiny_torch").recipe.data("test")[0][:200]
    on_gpu, on_cpu = gpu.loaded("tiny_torch", cfg), cpu.loaded("tiny_torch", cfg)
    agreement = float(np.mean(on_gpu.predict(x).argmax(1) == on_cpu.predict(x).argmax(1)))
    assert agreement >= 0.98, agreement
    out = gpu.latency_fn("tiny_torch", technique)()
    assert isinstance(out, torch.Tensor) and out.device.type == "cuda"  # timed to completion, left there
    if technique == "float16":  # float16 weights compute in float16 on the GPU (upcast on the CPU)
        assert on_gpu.dtype == torch.float16 and on_cpu.dtype == torch.float32
    res = gpu.evaluate("tiny_torch", technique)
    assert res.device == "cuda" and res.device_name == torch.cuda.get_device_name()


@needs_real
@needs_cuda
def test_cpu_only_pairs_are_skipped_on_the_gpu_with_the_reason(pair):
    gpu, _ = pair
    assert "dynamic int8 Linear kernels" in gpu.skip_reason("tiny_torch", "dynamic_range")
    assert gpu.skip_reason("tiny_torch", "fp32") is None
