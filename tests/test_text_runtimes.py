"""Token-id inputs through the runtimes: int64 stays int64 (an embedding lookup), floats follow the model.

A text model's input is one int64 array per example (ids and attention mask, see
compress/models/text/text_classifier.py); image models take float32. Each runtime must feed
each as its graph expects, in evaluation and in the timed batch-1 call alike.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from compress.runtimes.base import Artefact, get_runtime  # noqa: E402
from compress.runtimes.torch_eager import as_input  # noqa: E402
from tests.test_transformer_prune import batches, small_bert  # noqa: E402


@pytest.fixture(scope="module")
def model_and_inputs():
    model = small_bert()
    x = np.concatenate([b[0] for b in batches(2)])
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    return model, x, expected


def test_as_input_keeps_integers_and_casts_floats():
    ids = as_input(np.ones((1, 2, 4), np.int64), "cpu", torch.bfloat16)
    assert ids.dtype == torch.int64
    img = as_input(np.ones((1, 3, 4, 4), np.float32), "cpu", torch.bfloat16)
    assert img.dtype == torch.bfloat16 and img.is_contiguous()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_torch_eager_runs_token_ids(model_and_inputs, dtype):
    model, x, expected = model_and_inputs
    cast = getattr(torch, dtype)
    state = {k: (v.to(cast) if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    art = Artefact(buf.getvalue(), "pt", "torch-eager", meta=lambda: small_bert(seed=1).to(cast))
    loaded = get_runtime("torch-eager").load(art, 1)
    got = loaded.predict(x, batch_size=5)
    tol = 1e-5 if dtype == "float32" else 0.1
    np.testing.assert_allclose(got, expected, atol=tol, rtol=tol)
    np.testing.assert_allclose(loaded.single_image_fn(x[0])()[0], got[0], atol=tol, rtol=tol)


def test_onnxruntime_runs_token_ids(model_and_inputs):
    from compress.techniques.onnx_export import export_onnx

    model, x, expected = model_and_inputs
    art = Artefact(export_onnx(model, x[:1]), "onnx", "onnxruntime")
    loaded = get_runtime("onnxruntime").load(art, 1)
    np.testing.assert_allclose(loaded.predict(x, batch_size=5), expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(loaded.single_image_fn(x[3])()[0], expected[3], atol=1e-5, rtol=1e-5)


def test_torch_inductor_compiles_for_token_ids(model_and_inputs):
    """The batch-1 compilation at load runs on an input of the program's own dtype (int64 here)."""
    from compress.techniques.torch_compile import fp32_program
    from compress.techniques.torch_export import program_bytes

    model, x, expected = model_and_inputs
    art = Artefact(program_bytes(fp32_program(model, x[:2])), "pt2", "torch-inductor")
    loaded = get_runtime("torch-inductor").load(art, 1)
    np.testing.assert_allclose(loaded.predict(x[:4]), expected[:4], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(loaded.single_image_fn(x[5])()[0], expected[5], atol=1e-4, rtol=1e-4)
