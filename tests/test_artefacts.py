"""compress.storage.artefacts: the artefacts one gate run built, shared by its processes for that run only."""

import os

from compress.storage.artefacts import ENV, RunArtefacts, run_folder
from compress.runtimes.base import Artefact


def test_bytes_only_artefacts_are_kept_for_the_run_and_checked():
    with run_folder() as root:
        assert os.environ[ENV] == str(root) and not any(root.iterdir())
        shared = RunArtefacts.from_env()
        key = shared.key("weights0", {"type": "OnnxConfig", "mode": "int8"}, "cpu")
        assert key != shared.key("weights1", {"type": "OnnxConfig", "mode": "int8"}, "cpu")
        assert key != shared.key("weights0", {"type": "OnnxConfig", "mode": "int8"}, "cuda")
        assert shared.get("m", key) is None
        assert shared.put("m", key, Artefact(b"onnx bytes", "onnx", "onnxruntime"))
        got = shared.get("m", key)
        assert (got.data, got.format, got.runtime) == (b"onnx bytes", "onnx", "onnxruntime")
        # a state_dict needs its skeleton (a function): not kept, rebuilt
        assert not shared.put("m", "pt", Artefact(b"state", "pt", "torch-eager", meta=lambda: None))
        assert shared.get("m", "pt") is None
        (root / f"m-{key}.bin").write_bytes(b"onnx bytez")  # not what its manifest says: not used
        assert shared.get("m", key) is None
    assert not root.exists() and ENV not in os.environ and RunArtefacts.from_env() is None
