"""--shard i/N: the shards of a tier hold each pair exactly once, families whole."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from compress import registry
from compress.shard import ShardError, parse_shard, shard_families, shard_pairs

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("tier", ["gate", "full"])
def test_shards_partition_the_tier_by_family(tier):
    pairs = registry.pairs(tier=tier)
    families = {registry.get_model(m).family for m, _ in pairs}
    for n in range(1, len(families) + 1):
        shards = [shard_pairs(pairs, (i, n)) for i in range(1, n + 1)]
        merged = [p for s in shards for p in s]
        assert sorted(merged) == sorted(pairs), f"{n} shards lose or repeat a pair"
        owner = {}
        for i, s in enumerate(shards):
            assert s, f"shard {i + 1}/{n} is empty"
            assert s == [p for p in pairs if p in set(s)], "a shard keeps the tier's order"
            for m, _ in s:
                assert owner.setdefault(registry.get_model(m).family, i) == i, "a family split over two shards"


def test_largest_family_first_to_the_least_loaded_shard():
    pairs = registry.pairs(tier="gate")
    count = {}
    for m, _ in pairs:
        count[registry.get_model(m).family] = count.get(registry.get_model(m).family, 0) + 1
    biggest = max(count, key=lambda f: (count[f], f))
    shards = shard_families(pairs, 2)
    assert shards[0][0] == biggest
    loads = [sum(count[f] for f in s) for s in shards]
    assert max(loads) - min(loads) <= max(count.values())


@pytest.mark.parametrize("text", ["", "1", "0/2", "3/2", "1/0", "a/b", "1/2/3", "-1/2"])
def test_malformed_shard_is_refused_in_words(text):
    with pytest.raises(ShardError, match="--shard"):
        parse_shard(text)


def test_parse_shard_accepts_spaces():
    assert parse_shard(" 2 / 3 ") == (2, 3)


def _collect(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", "benchmarks/", "--collect-only", "-q",
                           "-p", "no:cacheprovider", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip


def test_gate_collects_only_the_shards_pairs():
    ids = {}
    for i in (1, 2):
        out = _collect("--shard", f"{i}/2")
        assert out.returncode == 0, out.stdout + out.stderr
        ids[i] = {line.split("[", 1)[1].rstrip("]") for line in out.stdout.splitlines() if "test_pair[" in line}
    expected = {f"{m}.{t}" for m, t in registry.pairs(tier="gate")}
    assert ids[1] and ids[2] and not ids[1] & ids[2]
    assert ids[1] | ids[2] == expected


def test_more_shards_than_families_is_a_usage_error():
    out = _collect("--shard", "9/9")
    assert out.returncode != 0
    assert "N must be at most" in out.stdout + out.stderr
