"""End to end on the registered ``tiny`` model: real Fashion-MNIST, trained, converted, run in LiteRT."""

import numpy as np
import pytest

from compress.storage.cache import WeightsCache
from compress.runner import Runner
from compress.runtimes import get_runtime
from compress.techniques.pruning import MagnitudePruningConfig
from compress.techniques.quantization import Float16Config, Float32Config, Int8Config
from tests.test_data import needs_real

pytestmark = needs_real


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def tiny(cache_dir):
    return Runner(WeightsCache(cache_dir))


def test_tiny_learns_real_labels(tiny):
    res = tiny.evaluate("tiny", "fp32")
    assert res.eval_images == 10000
    assert res.score > 0.6, "a trained model on real labels is far above chance (0.1)"
    assert res.retention == 1.0 and res.size_ratio == 1.0


def test_int8_artefact_has_int8_io_and_keeps_accuracy(tiny):
    from ai_edge_litert.interpreter import Interpreter

    art = tiny.artefact("tiny", Int8Config(calibration_size=200))
    interp = Interpreter(model_content=art.data)
    assert interp.get_input_details()[0]["dtype"] == np.int8
    assert interp.get_output_details()[0]["dtype"] == np.int8
    res = tiny.evaluate("tiny", "int8", Int8Config(calibration_size=200))
    assert res.retention > 0.95 and res.size_ratio < 1.0
    assert res.config == {"type": "Int8Config", "version": 1, "fields": {"calibration_size": 200}}


def test_batch_and_single_image_predictions_agree(tiny):
    art = tiny.artefact("tiny", Float32Config())
    x = tiny.model("tiny").recipe.data("test")[0][:7]
    loaded = get_runtime("litert").load(art, 1)
    batch = loaded.predict(x, batch_size=3)  # exercises the padded last chunk
    single = np.stack([loaded.single_image_fn(xi)()[0] for xi in x])
    np.testing.assert_allclose(batch, single, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("target", [0.3, 0.7])
def test_pruning_reaches_exactly_the_requested_sparsity(tiny, target):
    """Every kernel tfmot prunes ends with round-exact sparsity, in Keras and in the .tflite."""
    cfg = MagnitudePruningConfig(final_sparsity=target, fine_tune_epochs=1.0, frequency=10)
    pruned = tiny.transform(tiny.model("tiny"), cfg)
    tf_layers = ("Conv2D", "Dense")  # tfmot leaves DepthwiseConv2D unpruned
    kernels = [l.kernel.numpy() for l in pruned.native.layers if type(l).__name__ in tf_layers]
    for k in kernels:
        expected_zeros = k.size - round(k.size * (1 - target))
        assert abs(np.count_nonzero(k == 0) - expected_zeros) <= 1, (k.shape, target)
    art = tiny.artefact("tiny", cfg)
    stored = get_runtime("litert").load(art, 1).weight_arrays()
    zeros = sum(np.count_nonzero(a == 0) for a in stored)
    assert zeros >= sum(np.count_nonzero(k == 0) for k in kernels)  # BN folding keeps zeros


def test_float16_weights_are_read_where_they_are_stored_not_from_the_delegates_memory(tiny):
    """A float16 kernel reaches its op through DEQUANTIZE: every kernel is read from its float16
    constant, the same in two loads, equal to the float32 kernel rounded (tests/test_yolo.py checks
    a graph whose DEQUANTIZE ops XNNPACK takes over)."""
    art = tiny.artefact("tiny", Float16Config())
    fp32 = get_runtime("litert").load(art_fp32 := tiny.artefact("tiny", Float32Config()), 1).weight_arrays()
    first, second = (get_runtime("litert").load(art, 1).weight_arrays() for _ in range(2))
    assert art_fp32.data != art.data and len(first) == len(fp32) > 0
    assert all(a.dtype == np.float16 for a in first)
    for a, b, ref in zip(first, second, fp32, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, ref.astype(np.float16))


def test_warm_run_reuses_cache_and_gives_identical_artefact(tiny, cache_dir):
    cold = tiny.artefact("tiny", Float32Config()).data
    warm_runner = Runner(WeightsCache(cache_dir))
    assert warm_runner.weights.load("tiny", warm_runner.model("tiny").key) is not None
    assert warm_runner.artefact("tiny", Float32Config()).data == cold


def test_training_is_deterministic_across_cold_runs(tiny, tmp_path):
    a = tiny.model("tiny").native.get_weights()
    b = Runner(WeightsCache(tmp_path)).model("tiny").native.get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_result_records_provenance(tiny):
    res = tiny.evaluate("tiny", "prune50_int8").to_dict()
    assert res["config"]["type"] == "PipelineConfig"
    assert res["model_recipe"]["fields"]["arch"] == "tiny_cnn"
    assert {"tensorflow", "ai-edge-litert", "numpy"} <= set(res["versions"])
    assert {"machine_id", "cpu", "cores"} <= set(res["machine"])
    assert res["runtime"] == "litert"
    assert 0.3 < res["sparsity"] < 0.5  # dense 50%, depthwise unpruned
