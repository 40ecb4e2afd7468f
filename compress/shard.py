"""Split a tier's pairs over N machines or CI jobs: ``--shard i/N``.

A shard holds whole model families (a model and its ports to other
frameworks): every pair of a family needs the family's trained model, and a
shard runs on its own machine with its own model cache, so splitting a family
would train its model on two machines. Families are dealt out largest first
(by pair count) to the shard with the fewest pairs so far, ties to the lower
index: a pure function of the registry, so every job computes the same split
without talking to the others, and the shards together hold each pair of the
tier exactly once (``tests/test_shard.py``). The balance is by pair count, not
by time: a family's cost depends on its training recipe, which this split
does not know.

Each shard saves its own run; ``python -m compress report RUN1.json RUN2.json``
merges them into one report (a pair found in two runs is an error).

Example:
    >>> from compress.shard import parse_shard
    >>> parse_shard("2/3")
    (2, 3)
"""

from __future__ import annotations

import re

__all__ = ["ShardError", "parse_shard", "shard_families", "shard_pairs"]


class ShardError(ValueError):
    """A malformed ``--shard`` value."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> ``(i, N)`` with ``1 <= i <= N``; anything else raises ShardError."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise ShardError(f"--shard expects i/N (for example 1/2: the first of two shards), got {text!r}")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= i <= n:
        raise ShardError(f"--shard {text}: i must be between 1 and N (N >= 1)")
    return i, n


def shard_families(pairs: list[tuple[str, str]], n: int) -> list[list[str]]:
    """The model families of each of ``n`` shards (index 0 is shard 1)."""
    from compress.registry import get_model

    count: dict[str, int] = {}
    for m, _ in pairs:
        fam = get_model(m).family
        count[fam] = count.get(fam, 0) + 1
    shards: list[list[str]] = [[] for _ in range(n)]
    load = [0] * n
    for fam in sorted(count, key=lambda f: (-count[f], f)):
        k = min(range(n), key=lambda j: (load[j], j))
        shards[k].append(fam)
        load[k] += count[fam]
    return shards


def shard_pairs(pairs: list[tuple[str, str]], shard: tuple[int, int] | str | None) -> list[tuple[str, str]]:
    """The pairs of ``pairs`` (in their order) that shard ``(i, N)`` runs; all of them when ``shard`` is None."""
    if shard is None:
        return list(pairs)
    i, n = parse_shard(shard) if isinstance(shard, str) else shard
    from compress.registry import get_model

    mine = set(shard_families(pairs, n)[i - 1])
    return [(m, t) for m, t in pairs if get_model(m).family in mine]
