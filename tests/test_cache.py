import json
import os
import time
from dataclasses import dataclass

import numpy as np
import pytest

from compress.storage import cache
from compress.storage.cache import WeightsCache, atomic_write_bytes, recipe_key


@dataclass(frozen=True)
class R:
    a: int = 1
    b: tuple = ("x",)


def weights():
    rng = np.random.default_rng(0)
    return [rng.normal(size=(3, 4)).astype(np.float32), np.arange(5, dtype=np.int64)]


def test_recipe_key_is_stable_and_sensitive():
    assert recipe_key(R()) == recipe_key(R())
    assert recipe_key({"r": R(), "v": 1}) == recipe_key({"v": 1, "r": R()})
    assert recipe_key(R(a=2)) != recipe_key(R())


def test_round_trip_is_exact(tmp_path):
    c = WeightsCache(tmp_path)
    c.save("m", "k", weights(), {"note": "x"})
    got = c.load("m", "k")
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(got, weights(), strict=True))
    meta = json.loads(c.paths("m", "k")[1].read_text())
    assert meta["count"] == 2 and meta["note"] == "x" and len(meta["sha256"]) == 64


def test_absent_entry_builds_once(tmp_path):
    c = WeightsCache(tmp_path)
    calls = []
    build = lambda: calls.append(1) or weights()  # noqa: E731
    assert c.get_or_build("m", "k", build, {})[1] is False
    assert c.get_or_build("m", "k", build, {})[1] is True
    assert len(calls) == 1


@pytest.mark.parametrize(
    "damage",
    [
        lambda d, m: d.write_bytes(d.read_bytes()[: len(d.read_bytes()) // 2]),  # truncated
        lambda d, m: d.write_bytes(b"\0" + d.read_bytes()[1:]),  # one corrupt byte
        lambda d, m: m.unlink(),  # crash before the manifest was written
        lambda d, m: m.write_text("{not json"),  # corrupt manifest
        lambda d, m: d.unlink(),  # data file lost
    ],
    ids=["truncated", "corrupt-byte", "no-manifest", "bad-manifest", "no-data"],
)
def test_damaged_entries_are_detected_removed_and_rebuilt(tmp_path, damage):
    c = WeightsCache(tmp_path)
    c.save("m", "k", weights(), {})
    data, manifest = c.paths("m", "k")
    damage(data, manifest)
    assert c.load("m", "k") is None
    assert not data.exists() and not manifest.exists()
    w, cached = c.get_or_build("m", "k", weights, {})
    assert cached is False and c.load("m", "k") is not None


def test_atomic_write_leaves_no_temporary_files_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_building_an_entry_removes_stale_temporaries(tmp_path):
    """A killed writer's temporaries go: the entry's own at once, any other after STALE_TMP_SECONDS."""
    c = WeightsCache(tmp_path)
    c.root.mkdir(parents=True)
    old = time.time() - cache.STALE_TMP_SECONDS - 60
    own = c.root / ".m-k.npz.a1b2c3d4.tmp"  # this entry's: its lock is held while building, so its writer is dead
    other_old = c.root / ".n-k.json.zz_99xyz.tmp"
    other_new = c.root / ".n-k.npz.q1w2e3r4.tmp"  # may belong to a live writer of another entry
    unrelated = c.root / "notes.tmp"
    for p in (own, other_old, other_new, unrelated):
        p.write_bytes(b"partial")
    for p in (other_old, unrelated):
        os.utime(p, (old, old))
    c.get_or_build("m", "k", weights, {})
    assert sorted(p.name for p in c.root.iterdir()) == sorted(
        [other_new.name, unrelated.name, "m-k.json", "m-k.lock", "m-k.npz"]
    )


def test_a_cached_entry_is_read_without_taking_its_lock(tmp_path, monkeypatch):
    c = WeightsCache(tmp_path)
    c.save("m", "k", weights(), {})
    monkeypatch.setattr(cache, "locked", lambda *a, **k: pytest.fail("locked on the read path"))
    assert c.get_or_build("m", "k", lambda: pytest.fail("rebuilt"), {})[1] is True


def test_the_entry_lock_file_sits_beside_the_entry(tmp_path):
    c = WeightsCache(tmp_path)
    assert c.entry("m", "k") == tmp_path / "models" / "m-k"
    c.get_or_build("m", "k", weights, {})
    assert (tmp_path / "models" / "m-k.lock").is_file()


def test_a_directory_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    from compress.storage import cache
    from compress.storage.cache import atomic_write_dir

    final = tmp_path / "entry" / "model"
    atomic_write_dir(final, {"config.json": b"{}", "1_Pooling/config.json": b"[]"})
    assert (final / "config.json").read_bytes() == b"{}" and (final / "1_Pooling/config.json").read_bytes() == b"[]"
    atomic_write_dir(final, {"config.json": b"{1}"})  # leftovers replaced: only the new files
    assert sorted(p.name for p in final.rglob("*")) == ["config.json"]

    def fail(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache, "atomic_write_bytes", fail)
    with pytest.raises(OSError):
        atomic_write_dir(final, {"config.json": b"{2}"})
    assert (final / "config.json").read_bytes() == b"{1}", "a failed write leaves the old directory"
    assert [p.name for p in final.parent.iterdir()] == ["model"], "no temporary directory left behind"
