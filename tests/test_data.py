import functools
import gzip
import http.server
import re
import struct
import threading

import numpy as np
import pytest

from compress.data import fashion_mnist as fm

REAL_DIR = fm.SYSTEM_DIR  # captured before any test monkeypatches it
REAL = all((REAL_DIR / n).is_file() for n in fm.FILES)
needs_real = pytest.mark.skipif(not REAL, reason=f"Fashion-MNIST not installed in {REAL_DIR}")


def idx_bytes(arr: np.ndarray) -> bytes:
    return struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No system data, an empty cache, no user dir, offline."""
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "nowhere")
    monkeypatch.setenv("COMPRESS_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COMPRESS_BENCH_DATA", raising=False)
    monkeypatch.setenv("COMPRESS_BENCH_OFFLINE", "1")
    fm._load.cache_clear()
    yield tmp_path
    fm._load.cache_clear()


def test_read_idx_parses_shape_and_values():
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(fm.read_idx(idx_bytes(a)), a)


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"\x00\x00\x0d\x01" + struct.pack(">I", 0), "not an unsigned-byte IDX"),
        (idx_bytes(np.zeros((2, 2), np.uint8))[:-1], "payload has 3 bytes, header says 4"),
        (b"\x00", "shorter than its header"),
    ],
)
def test_read_idx_rejects_malformed_files(raw, match):
    with pytest.raises(fm.DataCorruptError, match=match):
        fm.read_idx(raw)


def test_missing_data_says_how_to_get_it(isolated):
    with pytest.raises(fm.DataNotFoundError) as err:
        fm.load_fashion_mnist()
    msg = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "COMPRESS_BENCH_DATA" in msg and "--data-dir" in msg


def test_wrong_content_is_rejected_with_the_file_named(isolated, monkeypatch):
    d = isolated / "user"
    d.mkdir()
    for name in fm.FILES:
        (d / name).write_bytes(gzip.compress(idx_bytes(np.zeros((3,), np.uint8))))
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(d))
    with pytest.raises(fm.DataCorruptError, match="does not match the Fashion-MNIST release"):
        fm.load_fashion_mnist()


def test_not_gzip_is_rejected(isolated, monkeypatch):
    d = isolated / "user"
    d.mkdir()
    for name in fm.FILES:
        (d / name).write_bytes(b"plain text")
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(d))
    with pytest.raises(fm.DataCorruptError, match="cannot decompress"):
        fm.load_fashion_mnist()


@needs_real
def test_user_directory_is_used_first(isolated, monkeypatch):
    user = isolated / "mine" / "fashion-mnist"
    user.mkdir(parents=True)
    for name in fm.FILES:
        (user / name).symlink_to(REAL_DIR / name)
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(isolated / "mine"))  # the parent works too
    assert fm.load_fashion_mnist().source == str(user)


LOOPBACK_ONLY = pytest.mark.allow_hosts(["127.0.0.1"])  # pytest-socket: no network, but this loopback


@needs_real
@LOOPBACK_ONLY
def test_fetch_from_upstream_when_online(isolated, monkeypatch):
    """The download path, against a loopback server holding the release files."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(REAL_DIR))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(fm, "UPSTREAM", f"http://127.0.0.1:{server.server_port}/")
        monkeypatch.delenv("COMPRESS_BENCH_OFFLINE")
        ds = fm.load_fashion_mnist()
    finally:
        server.shutdown()
    assert ds.source == str(isolated / "cache" / "data" / "fashion-mnist")
    assert ds.test_images.shape == (10000, 28, 28)


@LOOPBACK_ONLY
def test_failed_fetch_cleans_up_and_explains(isolated, monkeypatch):
    monkeypatch.delenv("COMPRESS_BENCH_OFFLINE")
    monkeypatch.setattr(fm, "UPSTREAM", "http://127.0.0.1:9/")  # discard port: refused
    with pytest.raises(fm.DataNotFoundError, match="download failed"):
        fm.load_fashion_mnist()
    assert not (isolated / "cache" / "data" / "fashion-mnist").exists()


@needs_real
def test_real_splits_are_fixed_disjoint_and_complete():
    fm._load.cache_clear()
    ds = fm.load_fashion_mnist()
    assert ds.train_images.shape == (55000, 28, 28) and ds.calib_images.shape == (5000, 28, 28)
    assert ds.test_images.shape == (10000, 28, 28) and ds.test_labels.shape == (10000,)
    assert set(np.unique(ds.train_labels)) == set(range(10))
    # train and calib partition the training file: no image index is in both
    order = np.random.default_rng(fm.SPLIT_SEED).permutation(60000)
    assert len(set(order[:-5000]) & set(order[-5000:])) == 0
    # the split is a pure function of the files and the seed
    fm._load.cache_clear()
    again = fm.load_fashion_mnist()
    assert np.array_equal(again.calib_labels, ds.calib_labels)
    assert np.array_equal(again.train_images[:100], ds.train_images[:100])
    with pytest.raises(ValueError, match="valid: 'train', 'calib', 'test'"):
        ds.split("val")


def fake_files(directory):
    """The four file names with placeholder content: enough for the path checks, never read."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in fm.FILES:
        (directory / name).write_bytes(b"placeholder")
    return directory


@pytest.fixture
def other_copies(isolated, monkeypatch):
    """A system copy and a cache copy exist: an explicit path must never fall back to them."""
    monkeypatch.setattr(fm, "SYSTEM_DIR", fake_files(isolated / "system"))
    fake_files(isolated / "cache" / "data" / "fashion-mnist")
    return isolated


@pytest.mark.parametrize(
    "layout, match",
    [
        ("missing", r"data directory {p} \(given by --data-dir or \$COMPRESS_BENCH_DATA\) does not exist"),
        ("file", r"data directory {p} .* is not a directory"),
        ("empty", r"data directory {p} .* holds neither the four Fashion-MNIST files nor a fashion-mnist/ folder"),
        ("partial", r"missing in {p}: t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"),
        ("partial-subdir", r"missing in {p}/fashion-mnist: t10k-labels-idx1-ubyte.gz"),
    ],
)
def test_explicit_data_path_without_the_files_is_an_error_never_a_fallback(other_copies, monkeypatch, layout, match):
    given = other_copies / "given"
    if layout == "file":
        given.write_text("not a directory")
    elif layout == "empty":
        (given / "fashion-mnist").mkdir(parents=True)  # an empty fashion-mnist/ does not count either
    elif layout == "partial":
        fake_files(given)
        for name in list(fm.FILES)[2:]:
            (given / name).unlink()
    elif layout == "partial-subdir":
        fake_files(given / "fashion-mnist")
        (given / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(given))
    with pytest.raises(fm.DataNotFoundError, match=match.format(p=re.escape(str(given)))) as err:
        fm.load_fashion_mnist()
    msg = str(err.value)
    assert "\n" not in msg and "train-images-idx3-ubyte.gz" in msg  # one line, naming what was expected
    assert str(fm.SYSTEM_DIR) not in msg


@pytest.mark.parametrize("sub", ["", "fashion-mnist"])
def test_explicit_data_path_resolves_to_itself_or_its_fashion_mnist_folder(other_copies, monkeypatch, sub):
    given = other_copies / "given"
    fake_files(given / sub)
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(given))
    assert fm.find_data_dir() == given / sub
    assert fm.candidate_dirs() == [given, given / "fashion-mnist"]


def test_empty_data_variable_means_not_given(other_copies, monkeypatch):
    monkeypatch.setenv("COMPRESS_BENCH_DATA", "")
    assert fm.find_data_dir() == fm.SYSTEM_DIR
