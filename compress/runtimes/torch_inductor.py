"""Inductor-compiled PyTorch runtime: a ``pt2`` ExportedProgram compiled for this CPU at load.

What a CPU server deploying a torch model runs: ``torch.compile`` of the
exported program with Inductor's ``freezing`` (weights become constants, so
the x86 int8 patterns of a PT2E program are lowered to oneDNN int8 kernels,
and BatchNorm is folded) and its C++ wrapper (the generated kernels are called
from C++, not Python). The shipped artefact is the ``.pt2`` file (its bytes are
the size); compilation is a cost of deployment, charged to its own phase
(``compile``) of the cost profile.

Why ``torch.compile`` over the exported program rather than an AOTInductor
package: the artefact stays the portable ``.pt2`` that the eager runtime also
runs (the eager/compiled comparison is of the same bytes), the compiled code
is specialized for the CPU it runs on (an AOTInductor package is compiled for
the build machine's ISA), and Inductor's own on-disk cache (kept under the
suite's cache, ``$COMPRESS_BENCH_CACHE/inductor``) reuses a compilation when
the same program is compiled again.

The module is compiled for batch 1 (``dynamic=False``): latency is measured at
batch 1, and accuracy is evaluated one image at a time through the same
compiled code, so one compilation per artefact and thread count serves both.
Inductor's C++ kernels fix their OpenMP thread count when they are generated,
so each thread count is its own compilation.

Compilation needs a C++ compiler (``g++`` from Debian's ``g++`` package; the
README's two commands install it where it is missing). Without one, loading
raises :class:`CompilerMissing` naming the package.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import time
from typing import Any, Callable

import numpy as np

from compress.runtimes.base import Artefact, LoadedArtefact, Runtime
from compress.runtimes.torch_eager import as_input, batch1_fn, register_quantized_ops

log = logging.getLogger(__name__)

__all__ = ["TorchInductor", "CompilerMissing", "INDUCTOR_OPTIONS", "compiler"]

# freezing: constants folded, PT2E int8 patterns lowered to oneDNN int8 kernels.
# cpp_wrapper: the compiled graph is driven from C++ (ResNet18 int8 at 32 px, one
# thread: 1.15 ms with the Python wrapper, 0.82 ms with the C++ one).
INDUCTOR_OPTIONS = {"freezing": True, "cpp_wrapper": True}
# On a CUDA device Inductor generates Triton kernels; the C++ wrapper there would need the CUDA
# toolkit's headers, so the graph is driven from Python.
DEVICE_OPTIONS = {"cpu": INDUCTOR_OPTIONS, "cuda": {"freezing": True, "cpp_wrapper": False}}


class CompilerMissing(RuntimeError):
    """No C++ compiler for Inductor on this machine."""


def compiler() -> str:
    """Path of the C++ compiler Inductor will call, or raise :class:`CompilerMissing`.

    Inductor calls ``$CXX`` when set, else the first of its configured
    candidates (``g++``, ``clang++``...) found on ``PATH``.
    """
    from torch._inductor import config

    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else [c for c in config.cpp.cxx if c]
    for c in candidates:
        path = shutil.which(c)
        if path:
            return path
    raise CompilerMissing(
        "the torch-inductor runtime compiles the model to C++ and found no C++ compiler "
        f"(looked for {', '.join(candidates) or 'g++'} on PATH). Install one: on Debian or Ubuntu "
        "`apt-get install g++` (the README's `make test` / `make bench` do it when they can), "
        "or set CXX to a compiler's path."
    )


def _inductor_cache_dir() -> None:
    """Keep Inductor's compilation cache with the suite's cache (cleared with it), unless the user chose
    one. :func:`compress.frameworks.preload` sets it first in every entry point; this covers a
    library user who loads an artefact without it (Inductor fixes its directory at first use)."""
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        from compress.storage.cache import cache_root

        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_root() / "inductor")


class TorchInductor(Runtime):
    name = "torch-inductor"
    compiles = True

    def version(self) -> str:
        from importlib.metadata import version

        return f"torch {version('torch')}, inductor {sorted(INDUCTOR_OPTIONS.items())}"

    def unavailable(self, device: str) -> str | None:
        from compress.runtimes.torch_eager import torch_unavailable

        return torch_unavailable(device)

    def load(self, artefact: Artefact, num_threads: int = 1, device: str = "cpu") -> "LoadedInductor":
        """Load a ``pt2`` artefact and compile it for batch 1 on ``num_threads`` threads, on ``device``.

        Raises:
            ValueError: an artefact that is not ``pt2``, or a device torch cannot use here.
            CompilerMissing: no C++ compiler.
        """
        import torch

        if artefact.format != "pt2":
            raise ValueError(f"the torch-inductor runtime compiles 'pt2' artefacts, not {artefact.format!r}")
        self._check_device(device)
        compiler()
        _inductor_cache_dir()
        if device == "cpu":
            _register_int8_lowering()
        register_quantized_ops()  # on every device: a process that never built the program loads it
        program = torch.export.load(io.BytesIO(artefact.data))
        shape, dtype = _input_spec(program)
        if device != "cpu":
            from torch.export.passes import move_to_device_pass

            # an indexed device: the pass writes it into device arguments (GPT-2's ones_like has an
            # _assert_tensor_metadata node), and "cuda" there fails against tensors on "cuda:0"
            index = torch.cuda.current_device() if device == "cuda" else None
            program = move_to_device_pass(program, torch.device(device, index))
        module = program.module()
        if torch.get_num_threads() != num_threads:
            torch.set_num_threads(num_threads)
        t0 = time.perf_counter()
        # Freezing and the C++ wrapper are set for the process, not passed as compile options:
        # - Dynamo installs a module's weights as graph attributes (which freezing turns into
        #   constants and folds, int8 weight prepacking included) only when the global flag is on;
        #   as an option only, the weights reach Inductor as graph inputs, nothing folds, and an
        #   int8 program fails to compile (onednn.qconv_prepack has no fake kernel, torch 2.14);
        # - a strict torch.export later in the process (building the next int8 artefact) drops
        #   Dynamo's compiled code: the next call compiles again, under the global config. With it
        #   off, that recompilation silently gave unfrozen code with a Python wrapper (ResNet18
        #   fp32: 10.4 ms per image instead of 2.2 ms).
        # Nothing else in the suite compiles; strict exports run with gradients on, where the flag
        # changes nothing.
        for key, value in DEVICE_OPTIONS[device].items():
            setattr(torch._inductor.config, key, value)
        with torch.no_grad():
            compiled = torch.compile(module, dynamic=False, fullgraph=True)
            compiled(torch.zeros((1, *shape), dtype=dtype, device=device))  # compiles here, not in the first timed call
        seconds = time.perf_counter() - t0
        log.info("torch-inductor: compiled a %d-byte program for batch 1 on %d thread(s) (%s) in %.1f s",
                 artefact.nbytes, num_threads, device, seconds)  # fmt: skip
        return LoadedInductor(compiled, module, num_threads, seconds, device)

    def weight_arrays(self, artefact: Artefact) -> list[np.ndarray]:
        """Read from the program as stored: nothing is compiled."""
        from compress.runtimes.torch_eager import TorchEager

        return TorchEager().load(artefact, 1).weight_arrays()


def _register_int8_lowering() -> None:
    """Import torchao's x86 quantizer, which registers the Inductor passes lowering PT2E int8 patterns
    to oneDNN int8 kernels: without them a process that only loads an int8 program (never built
    one) would compile the reference quantize/dequantize ops around float kernels."""
    from compress import frameworks

    if frameworks.has("torchao"):
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401


def _input_spec(program) -> tuple[tuple[int, ...], Any]:
    """``(shape of one example without the batch axis, dtype)`` of the program's first user input
    (float32 images, int64 token ids)."""
    spec = program.graph_signature
    names = set(spec.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in names:
            val = node.meta["val"]
            return tuple(int(d) for d in val.shape[1:]), val.dtype
    raise ValueError("the exported program has no user input")


class LoadedInductor(LoadedArtefact):
    batches = False  # compiled for batch 1: predict runs a batch one example at a time
    def __init__(self, compiled, module, num_threads: int, compile_seconds: float, device: str = "cpu"):
        self.compiled = compiled
        self.module = module  # the uncompiled graph: what the artefact stores
        self._threads = num_threads
        self.compile_seconds = compile_seconds
        self.device = device

    def _set_threads(self) -> None:
        import torch

        if torch.get_num_threads() != self._threads:
            torch.set_num_threads(self._threads)

    def predict(self, x: np.ndarray, batch_size: int = 250) -> np.ndarray:
        """Outputs for ``x``, one image at a time through the batch-1 compiled code (``batch_size`` unused)."""
        import torch

        self._set_threads()
        rows = []
        with torch.no_grad():  # the grad mode it was compiled under: no recompilation
            for i in range(len(x)):
                one = torch.from_numpy(np.ascontiguousarray(x[i : i + 1])).to(self.device)
                rows.append(self.compiled(one).float().cpu().numpy())
        return np.concatenate(rows)

    def single_image_fn(self, x: np.ndarray) -> Callable[[], np.ndarray]:
        import torch

        sample = as_input(x[None], self.device, torch.float32)  # a fresh array: see as_input
        return batch1_fn(self.compiled, sample, self._set_threads, torch.no_grad, self.device)

    def weight_arrays(self) -> list[np.ndarray]:
        """Conv and linear weights as the ``pt2`` stores them (int8 dequantized), in graph order."""
        from compress.runtimes.torch_eager import _program_weights

        return _program_weights(self.module)
