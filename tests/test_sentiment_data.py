"""Movie-review sentiment data (vadersentiment sdist) and the MiniLM assets, offline.

The real files come from the suite's cache (``python -m compress.data.sentiment fetch``,
``python -m compress.models.text.minilm_assets fetch``) or from ``/tmp/dl``; tests
that need them skip, saying so, when neither holds them. Each test runs on a
temporary cache with ``COMPRESS_BENCH_OFFLINE=1``; the one test of the pip path
points pip at a local directory (``PIP_NO_INDEX``), so no network is used.
"""

import hashlib
import importlib.util
import io
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from compress.data import sentiment as st
from compress.data.fashion_mnist import DataCorruptError, DataNotFoundError
from compress.models.text import minilm_assets as ma

LOCAL_COPIES = Path("/tmp/dl")


def _first_verified(candidates, digest):
    for p in candidates:
        if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() == digest:
            return p
    return None


# Captured at import, before any test points the cache elsewhere.
REAL_SDIST = _first_verified([st.cache_dir() / st.SDIST, LOCAL_COPIES / st.SDIST], st.SDIST_SHA256)
REAL_MODEL_DIR = ma.entry_dir() / "model"
REAL_WHEEL = next((p for p in (ma.entry_dir() / ma.WHEEL, LOCAL_COPIES / ma.WHEEL) if p.is_file()), None)

needs_sdist = pytest.mark.skipif(
    REAL_SDIST is None, reason=f"{st.SDIST} is neither cached nor in {LOCAL_COPIES}: python -m compress.data.sentiment fetch"
)
needs_transformers = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None, reason=f"transformers is not installed ({ma.TRANSFORMERS_HINT})"
)

# Documented in compress/data/sentiment.py: (count, positive) per split.
EXPECTED = {"train": (7958, 3951), "calib": (508, 261), "test": (2102, 1030)}


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty cache, no data directory, offline."""
    monkeypatch.setenv("COMPRESS_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COMPRESS_BENCH_DATA", raising=False)
    monkeypatch.setenv("COMPRESS_BENCH_OFFLINE", "1")
    st._load.cache_clear()
    yield tmp_path
    st._load.cache_clear()


@pytest.fixture
def real(isolated, monkeypatch):
    """The real sdist, given as the data directory (a symlink to the verified copy)."""
    if REAL_SDIST is None:
        pytest.skip(f"{st.SDIST} is neither cached nor in {LOCAL_COPIES}")
    d = isolated / "data"
    d.mkdir()
    (d / st.SDIST).symlink_to(REAL_SDIST)
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(d))
    return st.load_sentiment()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# ------------------------------------------------------------------ not found, corrupt


def test_missing_data_says_how_to_get_it(isolated):
    with pytest.raises(DataNotFoundError) as err:
        st.load_sentiment()
    msg = str(err.value)
    assert "pip download --no-deps --no-binary :all: vadersentiment==3.3.2" in msg
    assert "python -m compress.data.sentiment fetch" in msg
    assert "COMPRESS_BENCH_DATA" in msg and "--data-dir" in msg and st.SDIST_SHA256 in msg


def test_offline_forbids_the_download(isolated, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip must not run offline"))
    with pytest.raises(DataNotFoundError, match="COMPRESS_BENCH_OFFLINE forbids"):
        st.load_sentiment(fetch=True)


def test_explicit_data_dir_that_does_not_exist_is_an_error(isolated, monkeypatch):
    missing = isolated / "no-such-dir"
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(missing))
    with pytest.raises(DataNotFoundError, match=re.escape(str(missing)) + " .*does not exist"):
        st.load_sentiment()


@needs_sdist
def test_explicit_data_dir_without_the_file_is_an_error_even_with_a_cached_copy(isolated, monkeypatch):
    cached = st.cache_dir() / st.SDIST
    cached.parent.mkdir(parents=True)
    shutil.copyfile(REAL_SDIST, cached)
    empty = isolated / "empty"
    empty.mkdir()
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(empty))
    with pytest.raises(DataNotFoundError, match=re.escape(str(empty)) + " .*holds " + re.escape(st.SDIST) + " neither"):
        st.load_sentiment()
    monkeypatch.delenv("COMPRESS_BENCH_DATA")
    assert st.load_sentiment().source == str(cached)


@needs_sdist
def test_data_dir_parent_with_a_vader_sentiment_folder_works(isolated, monkeypatch):
    d = isolated / "mine" / st.SUBDIR
    d.mkdir(parents=True)
    (d / st.SDIST).symlink_to(REAL_SDIST)
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(isolated / "mine"))
    assert st.load_sentiment().source == str(d / st.SDIST)


@needs_sdist
def test_a_corrupt_sdist_is_rejected(isolated, monkeypatch):
    blob = bytearray(REAL_SDIST.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    d = isolated / "data"
    d.mkdir()
    (d / st.SDIST).write_bytes(bytes(blob))
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(d))
    with pytest.raises(DataCorruptError, match=re.escape(f"{d / st.SDIST}: not the published {st.SDIST}")):
        st.load_sentiment()


def test_a_truncated_sdist_is_rejected(isolated, monkeypatch):
    d = isolated / "data"
    d.mkdir()
    (d / st.SDIST).write_bytes(b"\x1f\x8b not really")
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(d))
    with pytest.raises(DataCorruptError, match="not the published"):
        st.load_sentiment()


def test_the_snippets_file_is_checked_too():
    good_line = b"1\t1.5\tA fine film.\r\n"
    inner = _tar_gz({st.MEMBER: good_line})
    with pytest.raises(DataCorruptError, match=f"{st.MEMBER} is not the published one"):
        st.read_snippets_file(_tar_gz({st.INNER_TAR: inner}))
    with pytest.raises(DataCorruptError, match="cannot read"):
        st.read_snippets_file(_tar_gz({"something/else.txt": b""}))
    with pytest.raises(DataCorruptError, match="cannot read"):
        st.read_snippets_file(b"not a tarball")


def test_parse_snippets_reads_crlf_lines_and_rejects_malformed_ones():
    ids, scores, texts = st.parse_snippets("1\t-0.6\tToo tepid\r\n2\t0.0\tMeh \u00e9t\u00e9\r\n3\t2.5\tGreat\tfun".encode())
    assert ids.tolist() == [1, 2, 3] and scores.tolist() == [-0.6, 0.0, 2.5]
    assert texts == ["Too tepid", "Meh \u00e9t\u00e9", "Great\tfun"]
    with pytest.raises(DataCorruptError, match="line 2"):
        st.parse_snippets(b"1\t1.0\tok\r\n2\tnot a number\tx\r\n")
    with pytest.raises(DataCorruptError, match="line 1"):
        st.parse_snippets(b"just text\r\n")


def test_zero_scores_are_dropped_and_labels_are_signs():
    texts = [f"snippet number {i}" for i in range(200)]
    scores = np.linspace(-2, 2, 200)
    scores[[3, 50, 199]] = 0.0
    splits = st.build_splits(np.arange(1, 201), scores, texts)
    kept = np.concatenate([s.scores for s in splits.values()])
    assert len(kept) == 197 and not np.any(kept == 0)
    for s in splits.values():
        assert np.array_equal(s.labels, (s.scores > 0).astype(np.int64))


# ------------------------------------------------------------------ the pip path, offline


@needs_sdist
def test_fetch_uses_pip_replaces_a_corrupt_cached_copy_and_is_idempotent(isolated, monkeypatch):
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("pip prepares the sdist's metadata with setuptools; without it pip needs an index")
    wheelhouse = isolated / "wheelhouse"
    wheelhouse.mkdir()
    shutil.copyfile(REAL_SDIST, wheelhouse / st.SDIST)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # this machine's pip configuration does not apply
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheelhouse))
    monkeypatch.delenv("COMPRESS_BENCH_OFFLINE")
    dest = st.cache_dir() / st.SDIST
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"half a download")
    assert st.fetch_sdist() == dest
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == st.SDIST_SHA256
    assert not list(dest.parent.glob(".pip-download.*")), "the temporary download directory is removed"
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("a verified copy is kept"))
    assert st.fetch_sdist() == dest
    assert st.load_sentiment().source == str(dest)


def test_a_failed_pip_download_explains(isolated, monkeypatch):
    empty = isolated / "wheelhouse"
    empty.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    monkeypatch.delenv("COMPRESS_BENCH_OFFLINE")
    with pytest.raises(DataNotFoundError, match="pip download exited with"):
        st.fetch_sdist()
    assert not (st.cache_dir() / st.SDIST).exists()
    assert not list(st.cache_dir().glob(".pip-download.*"))


# ------------------------------------------------------------------ the real data


def test_counts_and_balance_are_as_documented(real):
    for name, (count, positive) in EXPECTED.items():
        texts, labels = real.split(name)
        assert len(texts) == count == len(labels), name
        assert int(labels.sum()) == positive, name
        assert 0.45 < labels.mean() < 0.55, f"{name} is not balanced: {labels.mean():.3f}"
        assert f"{count:,}" in st.__doc__ and f"{positive:,}" in st.__doc__
    assert 450 <= len(real.calib) <= 550
    assert sum(c for c, _ in EXPECTED.values()) == 10_605 - 37 == 10_568
    assert real.digest in st.__doc__


def test_zeros_are_dropped_from_the_real_data(real):
    ids = np.concatenate([real.train.ids, real.calib.ids, real.test.ids])
    raw = st.read_snippets_file(REAL_SDIST.read_bytes())
    all_ids, scores, _ = st.parse_snippets(raw)
    assert len(all_ids) == st.N_SNIPPETS and int((scores == 0).sum()) == 37
    assert set(ids.tolist()) == set(all_ids[scores != 0].tolist())
    for s in (real.train, real.calib, real.test):
        assert not np.any(s.scores == 0)
        assert np.array_equal(s.labels, (s.scores > 0).astype(np.int64))


def test_splits_are_disjoint_and_follow_the_text_hash(real):
    ids = {n: set(getattr(real, n).ids.tolist()) for n in st.SPLITS}
    texts = {n: set(getattr(real, n).texts) for n in st.SPLITS}
    for a, b in (("train", "calib"), ("train", "test"), ("calib", "test")):
        assert not ids[a] & ids[b], (a, b)
        assert not texts[a] & texts[b], f"the same text in {a} and {b}"
    for n in st.SPLITS:
        assert all(st.split_of(t) == n for t in getattr(real, n).texts)
        assert np.all(np.diff(getattr(real, n).ids) > 0), "file order is kept"


def test_split_is_deterministic(real):
    st._load.cache_clear()
    again = st.load_sentiment()
    assert again is not real and again.digest == real.digest
    for n in st.SPLITS:
        assert again.split(n)[0] == real.split(n)[0]
        assert np.array_equal(again.split(n)[1], real.split(n)[1])
    # the digest is a function of the content alone
    rebuilt = st.build_splits(*st.parse_snippets(st.read_snippets_file(REAL_SDIST.read_bytes())))
    assert st.splits_digest(rebuilt) == real.digest
    # a snippet's split does not depend on the others
    assert st.split_of(real.test.texts[0]) == "test"
    with pytest.raises(ValueError, match="unknown split"):
        real.split("validation")


# ------------------------------------------------------------------ MiniLM assets


def test_a_corrupt_wheel_is_rejected(isolated):
    bad = isolated / ma.WHEEL
    bad.write_bytes(b"PK\x03\x04 not the wheel")
    with pytest.raises(ma.AssetsCorruptError, match="not the published"):
        ma.install_wheel(bad)
    assert not (ma.entry_dir() / ma.WHEEL).exists()


def test_missing_model_says_how_to_get_it_and_stays_offline(isolated, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    with pytest.raises(ma.AssetsNotFoundError, match="python -m compress.models.text.minilm_assets fetch"):
        ma.model_dir()
    with pytest.raises(ma.AssetsNotFoundError, match="COMPRESS_BENCH_OFFLINE forbids"):
        ma.model_dir(fetch=True)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The real model directory: the cached one when complete, else extracted from a local wheel."""
    if ma.is_complete(REAL_MODEL_DIR):
        return REAL_MODEL_DIR
    if REAL_WHEEL is None:
        pytest.skip(f"{ma.WHEEL} is neither cached nor in {LOCAL_COPIES}: python -m compress.models.text.minilm_assets fetch")
    mp = pytest.MonkeyPatch()
    mp.setenv("COMPRESS_BENCH_CACHE", str(tmp_path_factory.mktemp("minilm-cache")))
    try:
        ma.install_wheel(REAL_WHEEL)
        return ma.model_dir()
    finally:
        mp.undo()


def test_an_altered_extracted_file_is_never_used(isolated):
    if REAL_WHEEL is None:
        pytest.skip(f"{ma.WHEEL} is neither cached nor in {LOCAL_COPIES}")
    ma.install_wheel(REAL_WHEEL)
    d = ma.model_dir()
    assert d == ma.entry_dir() / "model" and ma.is_complete(d)
    (d / "config.json").write_text("{}")
    assert not ma.is_complete(d)
    assert ma.model_dir() == d and ma.is_complete(d), "re-extracted from the cached wheel"
    assert not list(d.parent.glob(".model.*.tmpdir"))


@needs_transformers
def test_tokenizer_lengths_fit_128(model_dir, real, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = ma.load_tokenizer(model_dir)
    texts, _ = real.split("test")
    lengths = [len(ids) for ids in tok(texts, truncation=False)["input_ids"]]
    assert max(lengths) <= 128 and 20 < np.mean(lengths) < 35
    batch = tok(texts[:4], padding="longest", truncation=True, max_length=128)
    assert len(batch["input_ids"][0]) == max(lengths[:4]), "dynamic padding, not tokenizer.json's fixed 128"


@needs_transformers
def test_classifier_loads_with_a_new_two_class_head(model_dir, monkeypatch):
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = ma.load_classifier(2, model_dir).eval()
    assert model.config.num_labels == 2 and model.config.hidden_size == 384
    ids = torch.tensor([[101, 2307, 2143, 102]])
    with torch.inference_mode():
        assert model(input_ids=ids).logits.shape == (1, 2)
