import subprocess
import sys

from compress import frameworks


def test_tensorflow_comes_after_torch_and_triton():
    """In a fresh process (this one may have imported either already), frameworks.tensorflow()
    imports torch and triton before TensorFlow."""
    code = (
        "import sys, compress.frameworks as f; f.tensorflow(); m = list(sys.modules); "
        "print(m.index('torch'), m.index('triton'), m.index('tensorflow'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    torch_at, triton_at, tf_at = map(int, out.stdout.split()[-3:])
    assert torch_at < tf_at and triton_at < tf_at


def test_tensorflow_then_torchvision_does_not_crash():
    """The guarded order survives what crashes the unguarded one (two LLVM copies)."""
    code = (
        "import compress.frameworks as f; tf = f.tensorflow(); "
        "import torchvision, tensorflow_model_optimization; print(tf.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


def test_legacy_keras_is_selected_for_tfmot():
    tf = frameworks.tensorflow()
    assert "tf_keras" in type(tf.keras.layers.Dense(1)).__module__


def test_versions_name_the_libraries_that_shape_results():
    v = frameworks.versions()
    assert {"python", "numpy", "tensorflow", "ai-edge-litert"} <= set(v)
