"""Identity of the machine a result was measured on, and how many worker processes it runs."""

from __future__ import annotations

import hashlib
import os
import platform
from functools import lru_cache


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "fma"})
    except OSError:
        pass
    return []


def int8_dot_product() -> bool:
    """True unless this is an x86 CPU without an int8 dot-product instruction (VNNI or AMX).

    Without one, x86 int8 kernels multiply uint8 by int8 with ``vpmaddubsw``, whose int16 sums
    saturate: ONNX Runtime's u8s8 matmuls and convolutions lose accuracy there (an AMD EPYC with AVX2
    only measured 0.959 perplexity retention on tiny_lm's static int8, against 0.99 with VNNI).
    """
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    flags = _cpu_flags()
    return not flags or bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags))


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
        return round(kib / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return None


@lru_cache(maxsize=1)
def machine_info() -> dict:
    """Hostname, OS, CPU model, vector-ISA flags, cores, memory and a stable id."""
    info = {
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
    }
    basis = "|".join(str(info[k]) for k in ("arch", "cpu", "cores", "memory_gib"))
    info["machine_id"] = hashlib.sha256(basis.encode()).hexdigest()[:12]
    return info


ENV_JOBS = "COMPRESS_BENCH_PREPARE_JOBS"


def default_jobs() -> int:
    """``$COMPRESS_BENCH_PREPARE_JOBS``, else 2 on a machine with 2 or more cores, else 1."""
    raw = os.environ.get(ENV_JOBS, "")
    if raw:
        try:
            jobs = int(raw)
        except ValueError:
            raise ValueError(f"{ENV_JOBS} must be an integer >= 1, got {raw!r}") from None
        if jobs < 1:
            raise ValueError(f"{ENV_JOBS} must be an integer >= 1, got {raw!r}")
        return jobs
    return 2 if (os.cpu_count() or 1) >= 2 else 1
