"""A team's own models, without a fork: plugins are modules whose import registers them.

A plugin is an importable module that calls :func:`compress.registry.register_model`
(and, if it needs to, registers techniques or handlers) when imported. Two ways
to name one, honoured everywhere the registry is read (the pytest gate,
``python -m compress``, asv, the gate's prepare workers):

- an entry point of the group ``compress_bench.plugins`` in an installed package::

      [project.entry-points."compress_bench.plugins"]
      myteam = "myteam.bench_models"

- the environment variable ``COMPRESS_BENCH_PLUGINS``: module names, comma-separated.
  ``--plugin MODULE`` (the gate and the CLI) adds to it, so that processes the
  suite spawns (the prepare workers) load the same plugins.

:func:`load` is called by ``compress.registry._ensure_loaded`` after the suite's
own catalogue, so a plugin's model can never take a suite model's name (the
registry refuses a duplicate, and the error names the plugin). Loading is
idempotent; a plugin that fails to import raises :class:`PluginError` naming it,
where it was named (entry point or environment) and the original exception,
every time the registry is read afterwards.

This module imports nothing of the suite at load time.
"""

from __future__ import annotations

import importlib
import os
import re
from importlib.metadata import entry_points

__all__ = ["ENV", "GROUP", "PluginError", "add_to_env", "configured", "env_modules", "load", "loaded"]

ENV = "COMPRESS_BENCH_PLUGINS"
GROUP = "compress_bench.plugins"


class PluginError(RuntimeError):
    """A plugin could not be imported (or its import failed to register its models)."""


_entry_points: list[tuple[str, object, str]] | None = None  # (module, entry point, where): read once
_loaded: dict[str, str] = {}  # module -> where it was named
_failed: dict[str, PluginError] = {}  # module -> its error, raised again on every read
_loading = False  # a plugin reading the registry while it is imported must not recurse


def env_modules() -> list[str]:
    """Module names in ``$COMPRESS_BENCH_PLUGINS``, in order, without repeats."""
    return list(dict.fromkeys(m.strip() for m in os.environ.get(ENV, "").split(",") if m.strip()))


def add_to_env(modules: list[str] | tuple[str, ...]) -> None:
    """Append ``modules`` (``--plugin`` values) to ``$COMPRESS_BENCH_PLUGINS``: what this
    process and every process it starts will load."""
    merged = list(dict.fromkeys([*env_modules(), *(m.strip() for m in modules if m.strip())]))
    if merged:
        os.environ[ENV] = ",".join(merged)


def _discover() -> list[tuple[str, object, str]]:
    global _entry_points
    if _entry_points is None:  # scanning installed distributions is the costly part: once
        found = []
        for ep in entry_points(group=GROUP):
            dist = getattr(ep, "dist", None)
            of = f" of distribution {dist.name!r}" if dist is not None and getattr(dist, "name", None) else ""
            found.append((ep.module, ep, f"entry point {ep.name} = {ep.value!r}{of} (group {GROUP})"))
        _entry_points = found
    return _entry_points


def configured() -> list[tuple[str, str]]:
    """``(module, where it is named)`` of every plugin: entry points first, then the environment."""
    out = {m: where for m, _, where in _discover()}
    for m in env_modules():
        out.setdefault(m, f"${ENV} (set directly or by --plugin)")
    return list(out.items())


def loaded() -> dict[str, str]:
    """Plugins imported so far: module -> where it was named."""
    return dict(_loaded)


def _explain(exc: BaseException, registered: dict) -> str:
    """The original error; for a model name taken twice, who registered it first (from
    ``registered``: the registry's models by name)."""
    text = f"{type(exc).__name__}: {exc}"
    m = re.fullmatch(r"model '([^']+)' is already registered", str(exc))
    if isinstance(exc, ValueError) and m:
        spec = registered.get(m.group(1))
        owner = getattr(getattr(spec, "factory", None), "__module__", "") or "?"
        whose = "a suite model" if owner.startswith("compress.") else "a model of another plugin"
        text += f" ({whose}, by {owner}: a plugin model cannot replace it; choose another name)"
    return text


def load(registered: dict | None = None) -> None:
    """Import every configured plugin not imported yet (entry points, then ``$COMPRESS_BENCH_PLUGINS``).

    ``registered`` (the registry's models by name) names, in an error, who took a model's name first.

    Raises:
        PluginError: a plugin failed to import; the message names it, where it was
            named and the original exception (chained as ``__cause__``).
    """
    global _loading
    if _loading:
        return
    _loading = True
    try:
        entry = {m: ep for m, ep, _ in _discover()}
        for module, where in configured():
            if module in _loaded:
                continue
            if module in _failed:
                raise _failed[module]
            try:
                if module in entry:
                    entry[module].load()  # imports the module (and resolves `module:attr` if given)
                else:
                    importlib.import_module(module)
            except Exception as exc:
                fix = ""
                if isinstance(exc, ModuleNotFoundError) and exc.name and module.split(".")[0] == exc.name.split(".")[0]:
                    fix = (f"; put the folder holding {module.split('.')[0]!r} on PYTHONPATH "
                           f"(PYTHONPATH=path/to/folder) or install its package (pip install -e path/to/package)")
                err = PluginError(f"plugin {module!r} (named by {where}) failed to import: {_explain(exc, registered or {})}{fix}")
                err.__cause__ = exc
                _failed[module] = err
                raise err from exc
            _loaded[module] = where
    finally:
        _loading = False
