"""Jane Austen's novels (Debian's r-cran-janeaustenr .deb, read with rdata), offline.

The real ``.deb`` comes from the suite's cache (``python -m compress.data.austen fetch``)
or from ``/tmp/dl``; tests that need it skip, saying so, when neither holds it.
Each test runs on a temporary cache with ``COMPRESS_BENCH_OFFLINE=1``; the tests
of the apt-get path put a fake ``apt-get`` first on ``PATH``, so no network is used.
"""

import hashlib
import importlib.util
import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from compress.data import austen as au
from compress.data.fashion_mnist import DataCorruptError, DataNotFoundError

LOCAL_COPIES = Path("/tmp/dl")
FETCH = "python -m compress.data.austen fetch"


def _first_verified(candidates, digest):
    for p in candidates:
        if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() == digest:
            return p
    return None


# Captured at import, before any test points the cache elsewhere.
REAL_DEB = _first_verified([au.cache_dir() / au.DEB, LOCAL_COPIES / au.DEB], au.DEB_SHA256)
HAVE_RDATA = importlib.util.find_spec("rdata") is not None

needs_deb = pytest.mark.skipif(REAL_DEB is None, reason=f"{au.DEB} is neither cached nor in {LOCAL_COPIES}: {FETCH}")
needs_rdata = pytest.mark.skipif(not HAVE_RDATA, reason=au.RDATA_HINT)

# Documented in compress/data/austen.py: (characters, lines, words).
EXPECTED = {
    "sensesensibility": (673_687, 12_624, 118_565),
    "prideprejudice": (684_767, 13_030, 121_567),
    "mansfieldpark": (883_278, 15_349, 159_540),
    "emma": (883_027, 16_235, 157_441),
    "northangerabbey": (433_410, 7_856, 77_141),
    "persuasion": (466_853, 8_328, 83_283),
    "train": (3_373_422, 61_842, 601_786),
    "valid": (184_742, 3_252, 32_468),
    "heldout": (466_853, 8_328, 83_283),
    "heldout_first": (233_408, 4_159, 41_521),
    "heldout_second": (233_444, 4_169, 41_762),
    "all": (4_025_022, 73_422, 717_537),
}


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty cache, no data directory, offline."""
    monkeypatch.setenv("COMPRESS_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COMPRESS_BENCH_DATA", raising=False)
    monkeypatch.setenv("COMPRESS_BENCH_OFFLINE", "1")
    au._load.cache_clear()
    yield tmp_path
    au._load.cache_clear()


@pytest.fixture
def real(isolated, monkeypatch):
    """The real .deb, given as the data directory (a symlink to the verified copy)."""
    if REAL_DEB is None:
        pytest.skip(f"{au.DEB} is neither cached nor in {LOCAL_COPIES}: {FETCH}")
    if not HAVE_RDATA:
        pytest.skip(au.RDATA_HINT)
    d = isolated / "data"
    d.mkdir()
    (d / au.DEB).symlink_to(REAL_DEB)
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(d))
    return au.load_austen()


def _fake_apt_get(bindir: Path, script: str) -> Path:
    """An ``apt-get`` running ``script`` (sh) first on PATH; it logs its arguments to ``bindir/args``."""
    bindir.mkdir(exist_ok=True)
    exe = bindir / "apt-get"
    exe.write_text(f'#!/bin/sh\necho "$@" > "{bindir}/args"\n{script}\n')
    exe.chmod(0o755)
    return exe


@pytest.fixture
def online(isolated, monkeypatch):
    """Downloads allowed, with PATH starting at an empty ``bin`` folder for a fake apt-get."""
    monkeypatch.delenv("COMPRESS_BENCH_OFFLINE")
    bindir = isolated / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    return bindir


def _ar(members: dict[str, bytes]) -> bytes:
    out = [b"!<arch>\n"]
    for name, data in members.items():
        out.append(f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data)
        out.append(b"\n" if len(data) % 2 else b"")
    return b"".join(out)


def _tar(members: dict[str, bytes], mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# ------------------------------------------------------------------ not found, corrupt


def test_missing_data_says_how_to_get_it(isolated):
    with pytest.raises(DataNotFoundError) as err:
        au.load_austen()
    msg = str(err.value)
    assert FETCH in msg and "apt-get download r-cran-janeaustenr=1.0.0-1" in msg
    assert "COMPRESS_BENCH_DATA" in msg and "--data-dir" in msg and au.DEB_SHA256 in msg and au.DEB_URL in msg


def test_offline_forbids_the_download(isolated, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("apt-get must not run offline"))
    with pytest.raises(DataNotFoundError, match="COMPRESS_BENCH_OFFLINE forbids"):
        au.load_austen(fetch=True)
    assert au.main(["fetch"]) == 1


def test_explicit_data_dir_that_does_not_exist_is_an_error(isolated, monkeypatch):
    missing = isolated / "no-such-dir"
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(missing))
    with pytest.raises(DataNotFoundError, match=re.escape(str(missing)) + " .*does not exist"):
        au.load_austen()
    a_file = isolated / "a-file"
    a_file.write_text("")
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(a_file))
    with pytest.raises(DataNotFoundError, match=re.escape(str(a_file)) + " .*is not a directory"):
        au.load_austen(fetch=True)


@needs_deb
@needs_rdata
def test_explicit_data_dir_without_the_file_is_an_error_even_with_a_cached_copy(isolated, monkeypatch):
    cached = au.cache_dir() / au.DEB
    cached.parent.mkdir(parents=True)
    cached.write_bytes(REAL_DEB.read_bytes())
    empty = isolated / "empty"
    empty.mkdir()
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(empty))
    with pytest.raises(DataNotFoundError, match=re.escape(str(empty)) + " .*holds " + re.escape(au.DEB) + " neither"):
        au.load_austen()
    monkeypatch.delenv("COMPRESS_BENCH_DATA")
    assert au.load_austen().source == str(cached)


@needs_deb
@needs_rdata
def test_data_dir_parent_with_an_austen_folder_works(isolated, monkeypatch):
    d = isolated / "mine" / au.SUBDIR
    d.mkdir(parents=True)
    (d / au.DEB).symlink_to(REAL_DEB)
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(isolated / "mine"))
    assert au.load_austen().source == str(d / au.DEB)


@needs_deb
def test_a_truncated_or_altered_deb_is_rejected(isolated, monkeypatch):
    blob = REAL_DEB.read_bytes()
    d = isolated / "data"
    d.mkdir()
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(d))
    for bad in (blob[: len(blob) // 2], blob[:-1], blob[:100] + bytes([blob[100] ^ 0xFF]) + blob[101:]):
        (d / au.DEB).write_bytes(bad)
        au._load.cache_clear()
        with pytest.raises(DataCorruptError, match=re.escape(f"{d / au.DEB}: not the published {au.DEB}")):
            au.load_austen()


@needs_deb
def test_the_r_files_inside_are_checked_too():
    files = au.read_members(REAL_DEB.read_bytes())
    assert sorted(files) == sorted(au.MEMBERS)
    data = {au.DATA_PREFIX + name: blob for name, blob in files.items()}
    # any data.tar compression the standard library reads will do (the release's is xz)
    for mode, suffix in (("w:gz", "gz"), ("w:xz", "xz"), ("w", "")):
        deb = _ar({"debian-binary": b"2.0\n", f"data.tar{'.' if suffix else ''}{suffix}": _tar(data, mode)})
        assert au.read_members(deb) == files
    altered = dict(data, **{au.DATA_PREFIX + "Rdata.rdx": files["Rdata.rdx"] + b"\0"})
    with pytest.raises(DataCorruptError, match="Rdata.rdx is not the published one"):
        au.read_members(_ar({"data.tar.xz": _tar(altered, "w:xz")}))


def test_malformed_debs_are_rejected():
    with pytest.raises(DataCorruptError, match="not an ar archive"):
        au.read_members(b"PK\x03\x04 a zip")
    with pytest.raises(DataCorruptError, match="expected one data.tar"):
        au.read_members(_ar({"debian-binary": b"2.0\n", "control.tar.xz": b""}))
    with pytest.raises(DataCorruptError, match="is truncated"):
        au.read_members(_ar({"data.tar.xz": b"x" * 100})[:-10])
    with pytest.raises(DataCorruptError, match="cannot read data.tar.xz"):
        au.read_members(_ar({"data.tar.xz": b"not xz at all"}))
    with pytest.raises(DataCorruptError, match="cannot read data.tar.xz"):
        au.read_members(_ar({"data.tar.xz": _tar({"./other/file": b"hello"}, "w:xz")}))


@needs_deb
@needs_rdata
def test_the_lazyload_reader_rejects_a_damaged_database():
    files = au.read_members(REAL_DEB.read_bytes())
    rdx, rdb = files["Rdata.rdx"], files["Rdata.rdb"]
    with pytest.raises(DataCorruptError, match="truncated"):
        au.parse_lazyload(rdx, rdb[: len(rdb) // 2])
    with pytest.raises(DataCorruptError, match="Rdata.rdx"):
        au.parse_lazyload(b"not gzip", rdb)
    damaged = bytearray(rdb)
    damaged[10] ^= 0xFF  # inside the first object's zlib stream
    with pytest.raises(DataCorruptError, match="Rdata.rdb: object"):
        au.parse_lazyload(rdx, bytes(damaged))


def test_without_rdata_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "rdata", None)
    with pytest.raises(ImportError, match=re.escape("pip install rdata==1.1.0")):
        au.parse_lazyload(b"", b"")
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert re.search(r'"rdata==([^"]+)"', pyproject)[1] == "1.1.0", "the hint names the pinned version"


# ------------------------------------------------------------------ the apt-get path, offline


@needs_deb
@needs_rdata
def test_fetch_uses_apt_get_replaces_a_corrupt_cached_copy_and_is_idempotent(online, monkeypatch):
    _fake_apt_get(online, f'cp "{REAL_DEB}" ./{au.DEB}')
    dest = au.cache_dir() / au.DEB
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"half a download")
    assert au.fetch_deb() == dest
    assert (online / "args").read_text().split() == ["-q", "download", "r-cran-janeaustenr=1.0.0-1"]
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == au.DEB_SHA256
    assert not list(dest.parent.glob(".apt-download.*")), "the temporary download directory is removed"
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("a verified copy is kept"))
    assert au.fetch_deb() == dest
    assert au.load_austen().source == str(dest)


def test_a_failed_apt_get_explains(online):
    _fake_apt_get(online, "echo 'Reading package lists...'\necho 'E: Unable to locate package r-cran-janeaustenr' >&2\nexit 100")
    with pytest.raises(DataNotFoundError) as err:
        au.fetch_deb()
    msg = str(err.value)
    assert "apt-get download exited with 100" in msg and "E: Unable to locate package r-cran-janeaustenr" in msg
    assert "apt-get update" in msg and FETCH in msg and au.DEB_URL in msg
    assert not (au.cache_dir() / au.DEB).exists()
    assert not list(au.cache_dir().glob(".apt-download.*"))


def test_apt_get_that_writes_nothing_or_is_missing_explains(online, monkeypatch):
    _fake_apt_get(online, "exit 0")
    with pytest.raises(DataNotFoundError, match=f"exited with 0 without writing {re.escape(au.DEB)}"):
        au.fetch_deb()
    (online / "apt-get").unlink()
    monkeypatch.setenv("PATH", str(online))
    with pytest.raises(DataNotFoundError, match="apt-get is not installed here"):
        au.load_austen(fetch=True)
    assert not (au.cache_dir() / au.DEB).exists()


def test_a_wrong_download_is_not_kept(online):
    _fake_apt_get(online, f"printf '!<arch>\\nsomething else' > ./{au.DEB}")
    with pytest.raises(DataCorruptError, match=f"{re.escape(au.DEB)} from apt-get: not the published"):
        au.fetch_deb()
    assert not (au.cache_dir() / au.DEB).exists()
    assert not list(au.cache_dir().glob(f".{au.DEB}.*.tmp"))


# ------------------------------------------------------------------ splits, on made-up lines


def test_midpoint_line_rule():
    # k minimises |2 * start(k) - len(text)|, start(k) the offset of line k in "\n".join(lines)
    assert au.midpoint_line(["ab", "cd"]) == 1
    assert au.midpoint_line(["a", "bbbbbb", "c"]) == 1  # 10 chars; starts 2 and 9: |4-10| < |18-10|
    assert au.midpoint_line(["a", "b", "cccccc"]) == 2  # 10 chars; starts 2 and 4: |4-10| > |8-10|
    assert au.midpoint_line(["a", "", "bb"]) == 1  # 5 chars; starts 2 and 3: |4-5| = |6-5|, the smaller k
    with pytest.raises(ValueError):
        au.midpoint_line(["only one line"])


def test_build_splits_on_made_up_novels():
    novels = {name: [f"{name} line {i}" for i in range(40 + 7 * k)] for k, name in enumerate(au.NOVELS)}
    splits = au.build_splits(novels)
    assert [s.novel for s in splits["train"]] == [s.novel for s in splits["valid"]] == list(au.TRAIN_NOVELS)
    for tr, va in zip(splits["train"], splits["valid"], strict=True):
        n = len(novels[tr.novel])
        assert (tr.start, tr.stop, va.start, va.stop) == (0, n - n // 20, n - n // 20, n)
        assert tr.text + "\n" + va.text == "\n".join(novels[tr.novel])
    (first,), (second,), (whole,) = splits["heldout_first"], splits["heldout_second"], splits["heldout"]
    assert first.novel == second.novel == whole.novel == au.HELD_OUT
    assert first.text + "\n" + second.text == whole.text == "\n".join(novels[au.HELD_OUT])
    assert au.content_digest(novels, splits) == au.content_digest(novels, au.build_splits(novels))
    changed = dict(novels, emma=novels["emma"][:-1] + ["emma changed"])
    assert au.content_digest(changed, au.build_splits(changed)) != au.content_digest(novels, splits)


# ------------------------------------------------------------------ the real data


def test_sizes_are_as_documented(real, capsys):
    got = {name: counts for name, *counts in au.stats(real)}
    assert {k: tuple(v) for k, v in got.items()} == EXPECTED
    for name, (chars, lines, words) in EXPECTED.items():
        assert re.search(rf"\n{name}\s+{chars:,}\s+{lines:,}\s+{words:,}\n", au.__doc__), name
    assert real.digest in au.__doc__
    assert min(EXPECTED[n][0] for n in au.NOVELS) == EXPECTED["northangerabbey"][0], "as the docstring says"
    assert au.main(["stats"]) == 0
    out = capsys.readouterr().out
    assert real.digest in out and "persuasion" in out and "466,853 chars" in out


def test_novels_are_the_shipped_lines(real):
    assert list(real.texts) == list(au.NOVELS) == list(real.titles)
    assert real.titles["prideprejudice"] == "Pride and Prejudice"
    assert real.texts["prideprejudice"].startswith("PRIDE AND PREJUDICE\n\nBy Jane Austen\n")
    assert "It is a truth universally acknowledged, that a single man in possession" in real.texts["prideprejudice"]
    assert real.texts["persuasion"].startswith("Persuasion\n")
    assert sum(ch == "\u00a3" for ch in real.texts["mansfieldpark"]) == 1
    assert all(ord(ch) < 128 for n, t in real.texts.items() if n != "mansfieldpark" for ch in t)
    with pytest.raises(TypeError):
        real.texts["emma"] = "something else"  # read-only: the loaded data is shared


def test_splits_are_disjoint_and_cover_the_novels(real):
    lines = {n: t.split("\n") for n, t in real.texts.items()}
    for name in au.SPLITS:
        for s in getattr(real, name):
            assert s.text == "\n".join(lines[s.novel][s.start : s.stop]), (name, s.novel)
    for tr, va in zip(real.train, real.valid, strict=True):
        assert tr.novel == va.novel and tr.start == 0 and tr.stop == va.start and va.stop == len(lines[va.novel])
        assert va.n_lines == len(lines[va.novel]) // 20
    (first,), (second,), (whole,) = real.heldout_first, real.heldout_second, real.heldout
    k = au.midpoint_line(lines[au.HELD_OUT])
    assert (first.start, first.stop, second.start, second.stop) == (0, k, k, whole.stop) == (0, 4159, 4159, 8328)
    assert abs(len(first) - len(second)) <= 77, "within a line of the middle (lines have at most 76 characters)"
    assert first.text + "\n" + second.text == whole.text == real.texts[au.HELD_OUT]


def test_the_held_out_novel_is_never_in_training(real):
    assert au.HELD_OUT == "persuasion" and au.HELD_OUT not in au.TRAIN_NOVELS and len(au.TRAIN_NOVELS) == 5
    assert {s.novel for s in real.train + real.valid} == set(au.TRAIN_NOVELS)
    assert {s.novel for s in real.heldout + real.heldout_first + real.heldout_second} == {au.HELD_OUT}
    training = "\n".join(real.split("train") + real.split("valid"))
    for probe in ("Sir Walter Elliot, of Kellynch Hall", "Captain Wentworth", "Kellynch"):
        assert probe in real.texts[au.HELD_OUT] and probe not in training


def test_split_is_deterministic_and_the_digest_stable(real):
    au._load.cache_clear()
    again = au.load_austen()
    assert again is not real and again.digest == real.digest
    for name in au.SPLITS:
        assert again.split(name) == real.split(name)
    files = au.read_members(REAL_DEB.read_bytes())
    novels = au.parse_lazyload(files["Rdata.rdx"], files["Rdata.rdb"])
    assert au.content_digest(novels, au.build_splits(novels)) == real.digest
    assert real.digest == "881dea6da93ef6034406d62db93798b7ff6f23eafc812397cb84bc34efc8e5ee"
    with pytest.raises(ValueError, match="unknown split"):
        real.split("test")
