"""Where a run's time goes: seconds per pair and per phase.

The runner and the gate mark phases (``train``, ``fine-tune``, ``build``,
``evaluate``, ``reuse``, ``latency``, ...) with :meth:`CostProfile.phase`. Phases
nest (a model is trained inside the first artefact that needs it); each second
is counted once, in the innermost phase, and charged to the pair that was
running (:meth:`CostProfile.pair`): the first pair that needs a model pays for
training it. Time inside a pair that no phase claims is ``other`` (loading data,
reading the cache, the test's own bookkeeping).

Example:
    >>> p = CostProfile()
    >>> with p.pair("m.int8"):
    ...     with p.phase("build"):
    ...         pass
    >>> sorted(p.rows()["m.int8"])
    ['build', 'other', 'total']
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

# Column order of the table; phases not listed here follow in the order first seen.
PHASES = ("prepare train", "prepare fine-tune", "prepare build", "prepare compile", "prepare evaluate", "train",
          "fine-tune", "load", "build", "compile", "evaluate", "reuse", "latency", "other")  # fmt: skip
PARALLEL_PREFIX = "prepare "  # phases run in worker processes (compress.prepare), beside each other


class CostProfile:
    """Exclusive seconds per (pair, phase) of one process."""

    def __init__(self, clock=time.perf_counter):
        self._clock = clock
        self._seconds: dict[str, dict[str, float]] = {}
        self._stack: list[list] = []  # [phase, start, seconds spent in nested phases]
        self._pair = "(outside any pair)"

    @contextmanager
    def pair(self, name: str) -> Iterator[None]:
        """Charge everything inside to ``name``; unclaimed time becomes its ``other``."""
        previous, self._pair = self._pair, name
        try:
            with self.phase("other"):
                yield
        finally:
            self._pair = previous

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time spent inside, less nested phases, is added to the current pair's ``name``."""
        frame = [name, self._clock(), 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            self._stack.pop()
            elapsed = self._clock() - frame[1]
            own = self._seconds.setdefault(self._pair, {})
            own[name] = own.get(name, 0.0) + elapsed - frame[2]
            if self._stack:
                self._stack[-1][2] += elapsed

    def merge(self, rows: dict[str, dict[str, float]], prefix: str = "") -> None:
        """Add another profile's :meth:`rows` (e.g. a worker process's), phases renamed ``prefix + phase``."""
        for pair, phases in rows.items():
            own = self._seconds.setdefault(pair, {})
            for k, v in phases.items():
                if k != "total":
                    own[prefix + k] = own.get(prefix + k, 0.0) + v

    def rows(self) -> dict[str, dict[str, float]]:
        """``{pair: {phase: seconds, ..., "total": seconds}}`` (only phases that took time)."""
        out = {}
        for pair, phases in self._seconds.items():
            row = {k: v for k, v in phases.items() if v > 0}
            row["total"] = sum(row.values())
            out[pair] = row
        return out

    def to_json(self) -> dict:
        """What the saved run stores: per pair, per phase, the totals and the slowest pairs."""
        rows = self.rows()
        totals: dict[str, float] = {}
        for row in rows.values():
            for k, v in row.items():
                totals[k] = totals.get(k, 0.0) + v
        slowest = sorted(rows, key=lambda p: -rows[p]["total"])[:5]
        return {
            "pairs": {p: {k: round(v, 3) for k, v in r.items()} for p, r in rows.items()},
            "totals": {k: round(v, 3) for k, v in totals.items()},
            "slowest": slowest,
        }

    def format(self) -> str:
        """The table printed at the end of a run: seconds per pair and phase, totals, slowest pairs."""
        rows = self.rows()
        if not rows:
            return "cost profile: nothing was measured"
        seen = [p for p in PHASES if any(p in r for r in rows.values())]
        seen += sorted({k for r in rows.values() for k in r} - set(seen) - {"total"})
        cols = [*seen, "total"]
        totals = {c: sum(r.get(c, 0.0) for r in rows.values()) for c in cols}
        head = ["pair", *cols]
        body = [[p, *(f"{rows[p][c]:.1f}" if c in rows[p] else "-" for c in cols)] for p in rows]
        body.append(["TOTAL", *(f"{totals[c]:.1f}" for c in cols)])
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
        fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in  # noqa: E731
                                  enumerate(zip(r, widths, strict=True)))  # fmt: skip
        lines = ["seconds per pair and phase (each second counted once, in the pair that spent it):",
                 *(["'prepare ...' columns ran in parallel worker processes, beside each other: "
                    "their sum exceeds the wall time they took"] if any(c.startswith(PARALLEL_PREFIX) for c in cols)
                   else []),
                 fmt(head), "  ".join("-" * w for w in widths), *map(fmt, body[:-1]),
                 "  ".join("-" * w for w in widths), fmt(body[-1])]  # fmt: skip
        slowest = sorted(rows, key=lambda p: -rows[p]["total"])[:5]
        lines.append("slowest: " + ", ".join(f"{p} {rows[p]['total']:.0f} s" for p in slowest))
        return "\n".join(lines)
