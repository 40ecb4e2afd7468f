"""Faults the weights cache must survive: SIGKILL, concurrent builders, a full disk.

The SIGKILL and concurrency tests run real child processes (``sys.executable -c``)
that import only :mod:`compress.storage.cache` and numpy, so each starts in a fraction
of a second. Build functions return small arrays, sometimes after a sleep; no
model is trained.

How a child is stopped at an exact point of :meth:`WeightsCache.save`: it
patches a function the cache calls, so that at the chosen point it touches a
marker file and sleeps; the parent waits for the marker, checks the files on
disk, and SIGKILLs the child there.

- ``npz-tmp``: ``os.fsync`` of the ``.npz`` temporary (written, not yet renamed);
- ``between``: ``compress.storage.cache.atomic_write_bytes`` for the ``.json`` (the ``.npz``
  is in place, the manifest not yet written);
- ``manifest-tmp``: ``os.fsync`` of the manifest's temporary.

The fsync patch finds which file a descriptor is through ``/proc/self/fd`` (Linux).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from filelock import Timeout

from compress.storage import cache
from compress.storage.cache import CacheWriteError, WeightsCache, atomic_write_bytes, locked

ROOT = Path(__file__).resolve().parents[1]
NAME, KEY = "m", "0123456789abcdef"

PRELUDE = """
import json, logging, os, re, sys, time
from pathlib import Path
import numpy as np
logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
from compress.storage import cache
C = cache.WeightsCache(Path({cache_dir!r}))
NAME, KEY = {name!r}, {key!r}
WORK = Path({work!r})

def build(tag, sleep=0.0):
    def f():
        with open(WORK / "builds", "a") as fh:
            fh.write(f"{{os.getpid()}} {{tag}}\\n")
        (WORK / f"building-{{tag}}").touch()
        time.sleep(sleep)
        return [np.full((32, 32), tag, np.float32), np.arange(10, dtype=np.int64) * tag]
    return f

def report(weights, cached):
    print(json.dumps({{"cached": cached, "tag": float(weights[0][0, 0]), "pid": os.getpid()}}), flush=True)
"""


_CHILDREN: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_orphans():
    """A failed test must not leave its sleeping children behind."""
    yield
    while _CHILDREN:
        proc = _CHILDREN.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def child(tmp_path: Path, body: str) -> subprocess.Popen:
    """Start ``python -c PRELUDE + body`` importing compress.storage.cache from this checkout."""
    code = PRELUDE.format(cache_dir=str(tmp_path / "cache"), name=NAME, key=KEY, work=str(tmp_path))
    code += textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _CHILDREN.append(proc)
    return proc


def finish(proc: subprocess.Popen, timeout: float = 30) -> tuple[dict, str]:
    """Wait for a child that reports one JSON line; return it and the child's stderr."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1]), err


def wait_for(marker: Path, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"child exited ({proc.returncode}) before {marker.name}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"child never reached {marker.name}")
        time.sleep(0.01)


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def entry_files(tmp_path: Path) -> list[str]:
    models = tmp_path / "cache" / "models"
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


def fresh_get_or_build(tmp_path: Path) -> tuple[dict, str, float]:
    """get_or_build in a new process whose build returns tag 2 at once."""
    t0 = time.monotonic()
    result, err = finish(child(tmp_path, "report(*C.get_or_build(NAME, KEY, build(2), {}))"))
    return result, err, time.monotonic() - t0


# (a) -------------------------------------------------------------------------


def test_sigkill_during_build_leaves_nothing_and_the_next_process_rebuilds(tmp_path):
    proc = child(tmp_path, "report(*C.get_or_build(NAME, KEY, build(1, sleep=60), {}))")
    wait_for(tmp_path / "building-1", proc)
    kill(proc)
    assert entry_files(tmp_path) == [f"{NAME}-{KEY}.lock"]  # only the (released) lock file

    result, _, seconds = fresh_get_or_build(tmp_path)
    assert result == {"cached": False, "tag": 2.0, "pid": result["pid"]}
    assert seconds < 20, "a dead builder's lock must not block"
    assert entry_files(tmp_path) == [f"{NAME}-{KEY}.json", f"{NAME}-{KEY}.lock", f"{NAME}-{KEY}.npz"]
    assert (tmp_path / "builds").read_text().split()[1::2] == ["1", "2"]  # killed build, then the rebuild
    got = WeightsCache(tmp_path / "cache").load(NAME, KEY)
    assert got is not None and got[0][0, 0] == 2.0


# (b) -------------------------------------------------------------------------

STOP_IN_FSYNC = """
real_fsync = os.fsync
def fsync(fd):
    real_fsync(fd)
    if re.search({pattern!r}, os.path.basename(os.readlink(f"/proc/self/fd/{{fd}}"))):
        (WORK / "stopped").touch()
        time.sleep(60)
os.fsync = fsync
"""
STOP_BEFORE_MANIFEST = """
real_write = cache.atomic_write_bytes
def write(path, data):
    if path.suffix == ".json":
        (WORK / "stopped").touch()
        time.sleep(60)
    real_write(path, data)
cache.atomic_write_bytes = write
"""
STAGES = {
    # stage: (patch, files on disk when killed, besides the lock file)
    "npz-tmp": (STOP_IN_FSYNC.format(pattern=r"\.npz\.\w{8}\.tmp$"), ["npz-tmp"]),
    "between": (STOP_BEFORE_MANIFEST, ["npz"]),
    "manifest-tmp": (STOP_IN_FSYNC.format(pattern=r"\.json\.\w{8}\.tmp$"), ["json-tmp", "npz"]),
}


def _kinds(names: list[str]) -> list[str]:
    """File kinds of an entry: 'npz', 'json', 'npz-tmp', 'json-tmp' (lock files left out)."""
    out = []
    for n in names:
        if n.endswith(".lock"):
            continue
        out.append(n.split(".")[-3] + "-tmp" if n.endswith(".tmp") else n.rsplit(".", 1)[1])
    return sorted(out)


@pytest.mark.parametrize("stage", list(STAGES))
def test_sigkill_during_save_is_never_taken_for_a_good_entry(tmp_path, stage):
    patch, on_disk = STAGES[stage]
    proc = child(tmp_path, patch + "report(*C.get_or_build(NAME, KEY, build(1), {}))")
    wait_for(tmp_path / "stopped", proc)
    # While the writer holds the entry's lock, a reader neither uses nor deletes its files.
    assert WeightsCache(tmp_path / "cache").load(NAME, KEY) is None
    assert _kinds(entry_files(tmp_path)) == on_disk
    kill(proc)
    assert _kinds(entry_files(tmp_path)) == on_disk  # what a SIGKILL leaves behind

    result, err, seconds = fresh_get_or_build(tmp_path)
    assert result["cached"] is False and result["tag"] == 2.0, "the killed process's file was used"
    assert seconds < 20
    assert _kinds(entry_files(tmp_path)) == ["json", "npz"], "temporaries of the killed writer remain"
    if "tmp" in on_disk[0]:
        assert "removed 1 temporary file(s) left by killed writers" in err
    got = WeightsCache(tmp_path / "cache").load(NAME, KEY)
    assert got is not None and got[0][0, 0] == 2.0 and np.array_equal(got[1], np.arange(10) * 2)


# (c) -------------------------------------------------------------------------


def test_two_processes_build_the_same_entry_once(tmp_path):
    go = tmp_path / "go"
    body = f"""
    (WORK / f"ready-{{os.getpid()}}").touch()
    while not Path({str(go)!r}).exists():
        time.sleep(0.005)
    report(*C.get_or_build(NAME, KEY, build(7, sleep=1.5), {{}}))
    """
    procs = [child(tmp_path, body) for _ in range(2)]
    deadline = time.monotonic() + 30
    while len(list(tmp_path.glob("ready-*"))) < 2:
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "children did not start"
        time.sleep(0.01)
    go.touch()  # both call get_or_build now
    (r1, e1), (r2, e2) = (finish(p) for p in procs)

    assert len((tmp_path / "builds").read_text().splitlines()) == 1, "the build ran more than once"
    assert sorted([r1["cached"], r2["cached"]]) == [False, True]
    assert r1["tag"] == r2["tag"] == 7.0
    waiter_err = e1 if r1["cached"] else e2
    assert f"waiting for cache entry {NAME}-{KEY}: another process holds" in waiter_err
    got = WeightsCache(tmp_path / "cache").load(NAME, KEY)
    assert got is not None and got[0][0, 0] == 7.0


# (d) -------------------------------------------------------------------------


class _FullFile:
    """A file whose write stores half the bytes, then fails like a full disk."""

    def __init__(self, f, code: int):
        self._f, self._code = f, code

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def write(self, data: bytes) -> int:
        self._f.write(data[: len(data) // 2])
        self._f.flush()
        raise OSError(self._code, os.strerror(self._code))

    def __getattr__(self, name):
        return getattr(self._f, name)


@pytest.mark.parametrize("code, says", [(errno.ENOSPC, "the disk is full"), (errno.EDQUOT, "quota is exceeded")])
@pytest.mark.parametrize("where", ["write", "fsync"])
def test_disk_full_names_the_file_and_leaves_nothing_behind(tmp_path, monkeypatch, code, says, where):
    target = tmp_path / "d" / "f.bin"
    atomic_write_bytes(target, b"old")
    if where == "write":
        real_fdopen = os.fdopen
        monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: _FullFile(real_fdopen(fd, *a, **k), code))
    else:

        def fsync(fd):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(CacheWriteError) as err:
        atomic_write_bytes(target, b"new" * 1000)
    assert isinstance(err.value, OSError) and err.value.errno == code
    assert str(target) in str(err.value) and says in str(err.value)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.bin"], "a temporary was left"


def test_disk_full_while_saving_leaves_no_entry_and_a_later_run_builds_it(tmp_path, monkeypatch):
    """The .npz fits, the manifest does not: neither may stay (a full disk needs the space)."""
    real_fsync = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp") and ".json." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    c = WeightsCache(tmp_path)
    build = lambda: [np.ones((4, 4), np.float32)]  # noqa: E731
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(CacheWriteError, match=r"cannot write .*/models/m-k\.json: the disk is full"):
        c.get_or_build("m", "k", build, {})
    assert sorted(p.name for p in c.root.iterdir()) == ["m-k.lock"]
    monkeypatch.setattr(os, "fsync", real_fsync)  # space freed
    assert c.get_or_build("m", "k", build, {})[1] is False
    assert c.get_or_build("m", "k", build, {})[1] is True


def test_other_write_errors_keep_their_type_and_leave_nothing(tmp_path, monkeypatch):
    def fsync(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError) as err:
        atomic_write_bytes(tmp_path / "f.bin", b"x")
    assert not isinstance(err.value, CacheWriteError) and err.value.errno == errno.EIO
    assert list(tmp_path.iterdir()) == []


# (e) -------------------------------------------------------------------------


def test_a_killed_lock_holder_does_not_block_the_next_process(tmp_path):
    entry = tmp_path / "cache" / "models" / "x"
    proc = child(tmp_path, f"""
    with cache.locked(Path({str(entry)!r})):
        (WORK / "stopped").touch()
        time.sleep(60)
    """)
    wait_for(tmp_path / "stopped", proc)
    with pytest.raises(Timeout):  # really held, across processes
        with locked(entry, timeout=0):
            pass
    kill(proc)
    assert Path(f"{entry}.lock").exists()  # the stale lock file stays, and does not block
    t0 = time.monotonic()
    with locked(entry, timeout=10) as lock:
        assert lock.is_locked
    assert time.monotonic() - t0 < 1.0


def test_locked_is_reentrant_and_times_out_with_a_log_line(tmp_path, caplog):
    entry = tmp_path / "e"
    with locked(entry), locked(entry):  # nested use in one thread does not deadlock
        pass
    proc = child(tmp_path, f"""
    with cache.locked(Path({str(entry)!r})):
        (WORK / "stopped").touch()
        time.sleep(60)
    """)
    wait_for(tmp_path / "stopped", proc)
    caplog.set_level("INFO", logger=cache.__name__)
    t0 = time.monotonic()
    with pytest.raises(Timeout):
        with locked(entry, what="the thing", timeout=0.3):
            pass
    assert 0.25 < time.monotonic() - t0 < 5
    assert f"waiting for the thing: another process holds {entry}.lock" in caplog.text
    kill(proc)
