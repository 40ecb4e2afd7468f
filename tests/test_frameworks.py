import subprocess
import sys

from compress import frameworks


def test_torch_was_imported_before_tensorflow_in_this_process():
    frameworks.tensorflow()
    mods = list(sys.modules)
    if "torch" in mods:
        assert mods.index("torch") < mods.index("tensorflow")


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
