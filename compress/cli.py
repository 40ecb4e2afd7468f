"""Command line: ``python -m compress {list,run} ...``.

Examples:
    python -m compress list
    python -m compress run mobilenetv2 int8
    python -m compress run mobilenetv2 int8 --set calibration_size=100
    python -m compress run mobilenetv2 'prune*' --json results.json
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

from compress.cache import atomic_write_bytes
from compress.frameworks import preload
from compress.registry import TIERS


def _parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--set expects FIELD=VALUE, got {item!r}")
        try:
            out[name] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[name] = raw
    return out


def _cmd_list(args) -> int:
    from compress import registry

    if args.what in ("models", "all"):
        print("models:")
        names = registry.list_models(tier=args.tier)
        w = max((len(n) for n in names), default=0)
        for name in names:
            s = registry.get_model(name)
            gate = "gate: all" if s.gate is True else f"gate: {','.join(s.gate)}" if s.gate else ""
            print(f"  {name:<{w}}  {s.framework:<6} {s.tier:<10} {s.description}" + (f" [{gate}]" if gate else ""))
    if args.what in ("techniques", "all"):
        print("techniques:")
        names = registry.list_techniques()
        w = max((len(n) for n in names), default=0)
        for name in names:
            t = registry.get_technique(name)
            fws = ",".join(sorted(t.frameworks()))
            print(f"  {name:<{w}}  {fws:<11} {t.description}")
    return 0


def _median_latency_ms(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _cmd_run(args) -> int:
    from compress import registry
    from compress.report import format_slower, format_table
    from compress.runner import Runner

    registry.get_model(args.model)  # unknown names fail before any work
    names = registry.list_techniques(args.technique) if any(c in args.technique for c in "*?[") else [args.technique]
    if not names:
        raise registry.UnknownNameError(
            f"no technique matches {args.technique!r}; valid: {', '.join(registry.list_techniques())}"
        )
    overrides = _parse_set(args.set)
    base = [registry.pair_config(args.model, n) for n in names]  # the model's settings applied
    configs = [c.replace(**overrides) if overrides else c for c in base]

    runner = Runner()
    family = registry.get_model(args.model).family
    rows, results = [], []
    if args.latency_runs:  # latency ratios need each runtime's fp32 reference, timed in this run
        for ref in dict.fromkeys(runner.reference_technique(args.model, n) for n in names):
            if ref not in names:
                art = runner.artefact(args.model, registry.pair_config(args.model, ref))
                rows.append({"model": args.model, "technique": ref, "family": family,
                             "runtime": art.runtime, "reference": True,
                             "latency_ms": _median_latency_ms(runner.latency_fn(args.model, ref), args.latency_runs)})  # fmt: skip
    for name, config in zip(names, configs, strict=True):
        reason = runner.skip_reason(args.model, name)
        if reason:
            print(f"skipped {args.model}.{name}: {reason}", file=sys.stderr)
            continue
        res = runner.evaluate(args.model, name, config)
        row = {"model": args.model, "technique": name, "family": family, "runtime": res.runtime,
               "reference": config.is_fp32_reference(), **res.metrics()}  # fmt: skip
        if args.latency_runs:
            row["latency_ms"] = _median_latency_ms(runner.latency_fn(args.model, name, config), args.latency_runs)
        rows.append(row)
        results.append({**res.to_dict(), "latency_ms": row.get("latency_ms")})
    print(format_table(rows))
    if args.latency_runs:
        print(format_slower(rows))
    print(runner.profile.format(), file=sys.stderr)
    if args.save:
        os.makedirs(args.save, exist_ok=True)
        for name, config in zip(names, configs, strict=True):
            if runner.skip_reason(args.model, name):
                continue
            art = runner.artefact(args.model, config)
            path = os.path.join(args.save, f"{args.model}.{name}.{art.format}")
            atomic_write_bytes(Path(path), art.data)
            print(f"wrote {path} ({art.nbytes:,} bytes)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m compress", description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", help="directory holding the Fashion-MNIST IDX files ($COMPRESS_BENCH_DATA)")
    p.add_argument("--cache-dir", help="model cache directory ($COMPRESS_BENCH_CACHE; default ~/.cache/compress-bench)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log lines")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE to register a team's models (repeatable; $COMPRESS_BENCH_PLUGINS; "
                        "installed compress_bench.plugins entry points load without it)")  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="list registered models and techniques")
    ls.add_argument("what", nargs="?", choices=("all", "models", "techniques"), default="all")
    ls.add_argument("--tier", default=None, choices=TIERS,
                    help="only models of this tier (gate: those with a pair in the merge gate)")  # fmt: skip
    ls.set_defaults(func=_cmd_list)

    run = sub.add_parser("run", help="run one model with one technique (or a glob of techniques)")
    run.add_argument("model")
    run.add_argument("technique", help="a technique name or a glob such as 'prune*'")
    run.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                     help="override a config field, e.g. --set calibration_size=100")  # fmt: skip
    run.add_argument("--latency-runs", type=int, default=200, help="batch-1 runs for the median latency (0: skip)")
    run.add_argument("--json", help="also write the full results (provenance included) to this file")
    run.add_argument("--save", metavar="DIR", help="also write each artefact (e.g. the .tflite) into DIR")
    run.set_defaults(func=_cmd_run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.plugin:  # before the registry is read; inherited by any process started from here
        from compress.plugins import add_to_env

        add_to_env(args.plugin)
    if args.data_dir:
        os.environ["COMPRESS_BENCH_DATA"] = args.data_dir
        from compress.data.fashion_mnist import DataNotFoundError, resolve_data_dir

        try:  # a wrong path fails now, in one line, before the frameworks load; never a fall-back
            resolve_data_dir(args.data_dir)
        except DataNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.cache_dir:
        os.environ["COMPRESS_BENCH_CACHE"] = args.cache_dir
    preload()
    from compress import progress
    from compress.cache import CacheWriteError
    from compress.data.fashion_mnist import DataCorruptError, DataNotFoundError
    from compress.plugins import PluginError
    from compress.registry import UnknownNameError

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    progress.use_bars(not args.quiet and sys.stderr.isatty())
    try:
        return args.func(args)
    except (UnknownNameError, DataNotFoundError, DataCorruptError, CacheWriteError, ValueError,
            NotImplementedError, PluginError) as exc:  # fmt: skip
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; cached models are intact (writes are atomic)", file=sys.stderr)
        return 130
