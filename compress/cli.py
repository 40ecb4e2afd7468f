"""Command line: ``python -m compress {list,run,data,report,compare,thresholds} ...``.

Examples:
    python -m compress list
    python -m compress data stats minilm
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

from compress.storage.cache import atomic_write_bytes
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
            tasks = f" [{', '.join(t.tasks)} only]" if t.tasks is not None else ""
            print(f"  {name:<{w}}  {fws:<11} {t.description}{tasks}")
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
    from compress.reporting.report import format_slower, format_table
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


def _cmd_report(args) -> int:
    """Saved runs (pytest-benchmark JSON) -> report.md, results.csv and PNG plots in --out.
    Reads JSON only: no framework is imported, no model loaded."""
    import difflib

    from compress import metrics
    from compress.storage import runs
    from compress.reporting.report import with_latency_ratios

    try:
        from compress.reporting import plots
    except ImportError as exc:  # matplotlib comes with the `report` extra
        print(f"error: the report's plots need matplotlib ({exc}); pip install -e '.[report]'", file=sys.stderr)
        return 2
    paths = args.runs or [runs.latest_run(args.storage)]
    loaded = [runs.load_run(p) for p in paths]
    rows = with_latency_ratios(runs.merge_runs(loaded))
    histories = {}
    if args.pair:  # every saved run in the storage; checked before anything is written
        saved = [runs.load_run(p) for p in runs.find_runs(args.storage)]
        known = sorted({runs.pair_name(r) for run in saved for r in run.rows})
        for pair in args.pair:
            histories[pair] = runs.history(pair, saved)
            if not histories[pair]:
                close = difflib.get_close_matches(pair, known, n=3, cutoff=0.5)
                raise runs.RunFileError(f"--pair {pair}: no saved run under {runs.storage_root(args.storage)} has it"
                                        + (f"; did you mean {', '.join(close)}?" if close else
                                           f"; pairs are MODEL.TECHNIQUE, e.g. {', '.join(known[:3])}"))  # fmt: skip
    commits = ", ".join(dict.fromkeys(r.short + ("+" if r.dirty else "") for r in loaded))
    cpus = ", ".join(dict.fromkeys(str(r.machine.get("cpu")) for r in loaded))
    out = Path(args.out)
    written = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        md = out / "report.md"
        md.write_text(runs.format_markdown(rows, loaded), encoding="utf-8")
        written.append(f"{md} ({len(rows)} pairs)")
        written.append(f"{runs.write_csv(rows, out / 'results.csv')} ({len(rows)} lines)")
        retention = metrics.retention_label(rows, title=True)  # the task metric's: "Perplexity retention"
        for x, name, what in (("size_ratio", "retention_vs_size.png", "size"),
                              ("latency_ratio", "retention_vs_latency.png", "latency")):  # fmt: skip
            plot = plots.tradeoff(rows, x, out / name, f"{retention} vs {what} (commit {commits}; {cpus})")
            written.append(f"{plot} ({plot.plotted} pairs" + (f"; left out, no {x}: {', '.join(plot.left_out)})"
                                                              if plot.left_out else ")"))  # fmt: skip
        for pair, points in histories.items():
            plot = plots.latency_history(points, pair, out / f"latency_history_{pair}.png")
            written.append(f"{plot} ({plot.plotted} runs)")
    except OSError as exc:
        print(f"error: cannot write the report in {out}: {exc}", file=sys.stderr)
        return 2
    print(f"report of {', '.join(str(r.path) for r in loaded)}")
    for line in written:
        print(f"wrote {line}")
    return 0


def _cmd_compare(args) -> int:
    """A saved run judged against a baseline run (the pull-request gate): exit 1 when anything broke."""
    from compress.judging import compare, thresholds
    from compress.storage import runs

    current = runs.load_run(args.run or runs.latest_run(args.storage))
    table = thresholds.load_merged(args.thresholds)
    base_path = Path(args.baseline) if args.baseline else None
    if base_path is None or not base_path.exists():
        baseline, label, latency = [], f"none ({base_path or 'no --baseline'}: bounds judged, latency not compared; "\
                                        "on main, `make baseline` keeps a run as the baseline)", False  # fmt: skip
    else:
        base = runs.load_run(base_path)
        baseline, label = base.rows, f"`{base.short}` ({base.datetime[:16]}, {base.path.name})"
        latency = compare.same_machine(base.machine, current.machine)
    verdict = compare.compare(baseline, current.rows, table, factor=args.factor, drift_factor=args.drift_factor,
                              latency=latency)  # fmt: skip
    if not baseline:
        verdict.latency_note = "latency not compared: no baseline run"
    text = compare.markdown(verdict, baseline_label=label,
                            current_label=f"`{current.short}`{' (uncommitted changes)' if current.dirty else ''} "
                                          f"({current.path.name})")  # fmt: skip
    print(text)
    if args.markdown:
        atomic_write_bytes(Path(args.markdown), text.encode())
        print(f"wrote {args.markdown}", file=sys.stderr)
    return 1 if verdict.failed else 0


def _cmd_thresholds(args) -> int:
    """Bounds proposed from a saved run by the rule (compress.judging.propose); nothing is written over."""
    from compress.judging import propose, thresholds
    from compress.storage import runs

    run = runs.load_run(args.run)
    table = thresholds.load_merged(args.thresholds)
    entries, compared, unexplained = propose.propose(run.rows, table)
    text = f"# proposed from {run.describe()}\n" + propose.format_report(entries, compared, unexplained)
    if args.out:
        atomic_write_bytes(Path(args.out), text.encode())
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    return 1 if args.check and unexplained else 0


def _cmd_keep_outcomes(args) -> int:
    """The per-example outcomes of a tier's pairs kept for the planted proof (compress.judging.proof)."""
    from compress import registry
    from compress.judging import proof
    from compress.runner import Runner

    pairs = registry.pairs(tier=args.tier)
    kept = proof.keep(Runner(), pairs, Path(args.out))
    print(f"kept the outcomes of {len(kept['pairs'])} pairs in {args.out}", file=sys.stderr)
    return 0


def _cmd_prove(args) -> int:
    """Each kept pair's quality bounds judged on its unchanged outcomes and on a planted drop."""
    from compress.judging import proof, thresholds

    verdicts, skipped = proof.prove(proof.load(Path(args.kept)), thresholds.load_merged(args.thresholds))
    print(proof.format_table(verdicts, skipped))
    bad = [v for v in verdicts if not v.unchanged_passes or (v.reason is None and not v.planted_fails)]
    return 1 if bad else 0


def _cmd_data(args) -> int:
    """Each model's dataset: its statistics (per split and class, the digest), or fetched onto this machine."""
    from compress.data.dataset import format_stats
    from compress.pair import resolve_recipe

    for name in args.models:
        source = resolve_recipe(name).data_source()
        if source is None:
            raise ValueError(f"{name}: its recipe reads its data its own way (no Dataset); "
                             "see the recipe's module for its fetch command")  # fmt: skip
        if args.action == "fetch":
            source.fetch()
            print(f"{name}: {source.name}: on this machine")
        else:
            why = source.unavailable()
            if why:
                print(f"error: {name}: {why}", file=sys.stderr)
                return 2
            print(f"{name}: {format_stats(source)}")
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

    rep = sub.add_parser("report", help="saved runs -> report.md, results.csv and PNG plots (no model is loaded)")
    rep.add_argument("runs", nargs="*", metavar="RUN.json",
                     help="saved runs (pytest-benchmark JSON); several: the shards of one run, each pair once "
                          "(default: the latest saved run)")  # fmt: skip
    rep.add_argument("--out", default="report", metavar="DIR", help="where to write (default: %(default)s/)")
    rep.add_argument("--pair", action="append", default=[], metavar="MODEL.TECHNIQUE",
                     help="also plot this pair's latency across every saved run (repeatable)")  # fmt: skip
    rep.add_argument("--storage", metavar="DIR", help="the saved runs' folder (default: $COMPRESS_BENCH_RESULTS, "
                                                      "else ~/.cache/compress-bench/benchmarks)")  # fmt: skip
    rep.set_defaults(func=_cmd_report)

    cmp_ = sub.add_parser("compare", help="judge a saved run against a baseline run: bounds, missing pairs, "
                                          "latency regressions (the pull-request gate; exit 1 on failure)")  # fmt: skip
    cmp_.add_argument("run", nargs="?", help="the saved run to judge (default: the latest saved run)")
    cmp_.add_argument("--baseline", metavar="RUN.json",
                      help="a saved run of the same machine (on main); missing: bounds only, said in the summary")
    cmp_.add_argument("--factor", type=float, default=2.0,
                      help="fail a pair slower than its baseline by more than this, run-wide drift divided out "
                           "(default: %(default)s)")  # fmt: skip
    cmp_.add_argument("--drift-factor", type=float, default=3.0,
                      help="fail when every pair is slower by more than this (default: %(default)s)")
    cmp_.add_argument("--thresholds", action="append", default=[], metavar="PATH",
                      help="a team's thresholds file merged over the suite's (repeatable)")
    cmp_.add_argument("--markdown", metavar="PATH", help="also write the Markdown summary here (for a PR comment)")
    cmp_.add_argument("--storage", metavar="DIR", help="the saved runs' folder (default: $COMPRESS_BENCH_RESULTS)")
    cmp_.set_defaults(func=_cmd_compare)

    data = sub.add_parser("data", help="a model's dataset: statistics per split and class, or fetch it")
    data.add_argument("action", choices=("stats", "fetch"))
    data.add_argument("models", nargs="+", metavar="MODEL")
    data.set_defaults(func=_cmd_data)

    thr = sub.add_parser("thresholds", help="bounds from a measured run, by the rule (compress/judging/propose.py)")
    thr_sub = thr.add_subparsers(dest="action", required=True)
    prop = thr_sub.add_parser("propose", help="the rule's bounds for each pair of RUN.json: new entries to "
                                              "review, existing bounds compared (never written over)")  # fmt: skip
    prop.add_argument("run", metavar="RUN.json", help="a saved run (pytest-benchmark JSON)")
    prop.add_argument("--thresholds", action="append", default=[], metavar="PATH",
                      help="a team's thresholds file merged over the suite's (repeatable)")
    prop.add_argument("--out", metavar="PATH", help="write the proposal here instead of printing it")
    prop.add_argument("--check", action="store_true",
                      help="exit 1 when a bound is looser than the rule without a reason")
    prop.set_defaults(func=_cmd_thresholds)
    keep = thr_sub.add_parser("keep-outcomes", help="keep the per-example outcomes of a tier's pairs (and their "
                                                    "fp32 references') for the planted proof: results/outcomes/")  # fmt: skip
    keep.add_argument("--tier", default="gate", choices=["gate", "full"])
    keep.add_argument("--out", required=True, metavar="PATH")
    keep.set_defaults(func=_cmd_keep_outcomes)
    prove = thr_sub.add_parser("prove", help="judge each kept pair's quality bounds on its unchanged outcomes and "
                                             "on a planted drop of the size the bound declares")  # fmt: skip
    prove.add_argument("kept", metavar="KEPT.json")
    prove.add_argument("--thresholds", action="append", default=[], metavar="PATH",
                       help="a team's thresholds file merged over the suite's (repeatable)")
    prove.set_defaults(func=_cmd_prove)
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
    reads_json_only = args.command in ("report", "compare") or getattr(args, "action", "") in ("propose", "prove")
    if not reads_json_only:  # those read saved JSON only: no framework to order
        preload()
    from compress import progress
    from compress.storage.cache import CacheWriteError
    from compress.data.fashion_mnist import DataCorruptError, DataNotFoundError
    from compress.plugins import PluginError
    from compress.registry import UnknownNameError
    from compress.storage.runs import RunFileError

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    progress.use_bars(not args.quiet and sys.stderr.isatty())
    try:
        return args.func(args)
    except (UnknownNameError, DataNotFoundError, DataCorruptError, CacheWriteError, ValueError,
            NotImplementedError, PluginError, RunFileError) as exc:  # fmt: skip
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; cached models are intact (writes are atomic)", file=sys.stderr)
        return 130
