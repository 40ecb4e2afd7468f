"""asv over this repository's git history, in the suite's existing environment, offline.

asv's own environments rebuild a virtualenv per commit from the network; the
suite's environment (~9 GB of pinned wheels) is built once. So each commit is
checked out as a detached git worktree and benchmarked with ``asv run
--python=same --set-commit-hash SHA``, its ``compress`` package put first on the
benchmarks' path through ``ASV_PYTHONPATH`` (asv drops ``PYTHONPATH``). The
benchmark definitions are the current checkout's (asv's model: today's
benchmarks over yesterday's code); they read the pairs from the commit's own
registry. Benchmarks run from a forkserver (the frameworks are imported once per
commit, not once per benchmark).

A commit costs about a warm gate: the models are in the shared cache (a commit
that changed a training recipe trains it once), artefacts are rebuilt by that
commit's code, accuracy is reused from the result store where the bytes are
unchanged, latency is timed. Commits already in the results are skipped.

Usage::

    python -m compress.reporting.history                  # the last 5 commits of HEAD
    python -m compress.reporting.history HEAD~10..HEAD    # a range
    python -m compress.reporting.history --tier full a1b2c3d^!
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def commits(spec: str | None, count: int) -> list[str]:
    """Full hashes, oldest first: ``spec`` as ``git rev-list`` reads it, or the last ``count`` of HEAD."""
    args = ["rev-list", "--reverse", *(spec.split() if spec else ["--max-count", str(count), "HEAD"])]
    try:
        out = _git(*args)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"error: git rev-list {' '.join(args[2:])}: {exc.stderr.strip()}") from None
    if spec and count and not out:
        raise SystemExit(f"error: no commits in {spec!r}")
    shas = out.split()
    return shas[-count:] if count and spec else shas


def asv_bin() -> str:
    exe = Path(sys.executable).with_name("asv")
    if not exe.exists():
        raise SystemExit("error: asv is not installed in this environment: run 'make test' or 'make bench' first")
    return str(exe)


def machine_name() -> str:
    """asv's machine name here: the host name and a digest of the CPU model, cores and memory
    (``compress.machine``), so that two hosts both called ``vm`` do not share one series."""
    from compress.machine import machine_info

    info = machine_info()
    return f"{info['hostname']}-{info['machine_id'][:8]}"


def record_machine(asv: str, name: str) -> None:
    """``asv machine`` with the CPU model, cores and memory asv detects, and the library versions
    of this environment in its ``os`` field (asv's machine record has no field for them; the
    dashboard shows it beside the machine)."""
    from compress.frameworks import versions

    libs = versions()
    lib_text = ", ".join(f"{k} {libs[k]}" for k in ("python", "numpy", "tensorflow", "torch", "onnxruntime",
                                                    "ai-edge-litert") if k in libs)  # fmt: skip
    os_text = f"{os.uname().sysname} {os.uname().release}; {lib_text}"
    subprocess.run([asv, "machine", "--yes", "--machine", name, "--os", os_text], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip


def run(shas: list[str], *, tier: str, pairs: str | None, extra: list[str]) -> list[tuple[str, float, int]]:
    """Benchmark each commit; returns ``(sha, seconds, asv exit code)`` per commit."""
    asv = asv_bin()
    name = machine_name()
    record_machine(asv, name)
    trees = ROOT / ".asv" / "worktrees"
    trees.mkdir(parents=True, exist_ok=True)
    out = []
    for i, sha in enumerate(shas, 1):
        tree = trees / sha[:12]
        if not tree.exists():
            _git("worktree", "add", "--detach", str(tree), sha)
        env = {**os.environ, "ASV_PYTHONPATH": str(tree), "COMPRESS_BENCH_TIER": tier}
        if pairs:
            env["COMPRESS_BENCH_PAIRS"] = pairs
        title = _git("log", "-1", "--format=%h %s", sha)[:100]
        print(f"[{i}/{len(shas)}] {title}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run([asv, "run", "--python=same", "--set-commit-hash", sha, "--machine", name,
                             "--launch-method", "forkserver", "--skip-existing", *extra],
                            cwd=ROOT, env=env).returncode  # fmt: skip
        dt = time.perf_counter() - t0
        print(f"[{i}/{len(shas)}] {sha[:8]}: {dt:.0f} s (asv exit {rc})", flush=True)
        out.append((sha, dt, rc))
        _git("worktree", "remove", "--force", str(tree))
    shutil.rmtree(trees, ignore_errors=True)
    _git("worktree", "prune")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m compress.reporting.history", description=__doc__.split("\n")[0])
    p.add_argument("range", nargs="?", help="commits as git rev-list reads them (default: the last --count of HEAD)")
    p.add_argument("--count", type=int, default=5, help="at most this many commits, newest kept (default 5)")
    p.add_argument("--tier", default=os.environ.get("COMPRESS_BENCH_TIER", "gate"), choices=("gate", "full", "unit"))
    p.add_argument("--pairs", help="comma-separated model.technique globs (default: every pair of the tier)")
    p.add_argument("asv_args", nargs=argparse.REMAINDER, help="after --: more asv run arguments")
    args = p.parse_args(argv)
    extra = args.asv_args[1:] if args.asv_args[:1] == ["--"] else args.asv_args
    shas = commits(args.range, args.count)
    results = run(shas, tier=args.tier, pairs=args.pairs, extra=extra)
    total = sum(dt for _, dt, _ in results)
    print(f"{len(results)} commits in {total:.0f} s ({total / max(1, len(results)):.0f} s per commit); "
          "publish with: make dashboard")  # fmt: skip
    return max((rc for _, _, rc in results), default=0)


if __name__ == "__main__":
    sys.exit(main())
