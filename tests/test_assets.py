"""compress.assets: the one fetch-and-verify mechanism of the files the set-up gets from a registry.

The per-file behaviour (pip, apt-get, npm; their messages) is tested in test_sentiment_data.py,
test_austen_data.py and test_super_resolution.py through the modules' own functions. Here: that
the switches and errors are defined once, and the mechanism itself, on the real sentiment sdist
(the client is a stand-in that copies it, so nothing is downloaded).
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from compress import assets
from compress.data import austen, dataset, fashion_mnist, sentiment
from compress.models.generative import esrgan_assets
from compress.models.text import hub_text, minilm_assets

# Captured at import, before any test points the cache elsewhere.
REAL_SDIST = sentiment.cache_dir() / sentiment.SDIST
needs_sdist = pytest.mark.skipif(
    not (REAL_SDIST.is_file() and hashlib.sha256(REAL_SDIST.read_bytes()).hexdigest() == sentiment.SDIST_SHA256),
    reason=f"{sentiment.SDIST} is not cached: python -m compress.data.sentiment fetch",
)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COMPRESS_BENCH_DATA", raising=False)
    monkeypatch.setenv("COMPRESS_BENCH_OFFLINE", "1")
    return tmp_path


def test_the_switches_and_errors_are_defined_once():
    for module in (dataset, fashion_mnist, austen, sentiment):
        assert module.DataNotFoundError is assets.DataNotFoundError and module.DataCorruptError is assets.DataCorruptError
    assert dataset.ENV_OFFLINE is assets.ENV_OFFLINE and hub_text.ENV_OFFLINE is assets.ENV_OFFLINE
    assert dataset.ENV_DATA is assets.ENV_DATA
    for module in (minilm_assets, esrgan_assets):
        assert module.AssetsNotFoundError is assets.AssetsNotFoundError
        assert module.AssetsCorruptError is assets.AssetsCorruptError


@pytest.mark.parametrize("value, forbidden", [(None, False), ("", False), ("0", False), ("1", True), ("yes", True)])
def test_offline_reads_the_switch(monkeypatch, value, forbidden):
    if value is None:
        monkeypatch.delenv("COMPRESS_BENCH_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("COMPRESS_BENCH_OFFLINE", value)
    assert assets.offline() is forbidden


def test_the_cache_paths_are_unchanged(isolated):
    cache = isolated / "cache"
    assert sentiment.FILE.path() == cache / "data/vader-sentiment/vaderSentiment-3.3.2.tar.gz"
    assert austen.FILE.path() == cache / "data/austen/r-cran-janeaustenr_1.0.0-1_all.deb"
    assert minilm_assets.FILE.path() == cache / "pretrained/all-minilm-l6-v2-0.1.2" / minilm_assets.WHEEL
    assert esrgan_assets.FILE.path() == cache / "pretrained/esrgan-slim-1.0.0/upscalerjs-esrgan-slim-1.0.0.tgz"


def test_both_digest_forms_name_what_differs():
    with pytest.raises(assets.DataCorruptError, match=r"x: not the published f \(sha256 [0-9a-f]{12}\.\.\., 3 bytes"):
        assets.check_digest(b"abc", "x", filename="f", digest="0" * 64)
    with pytest.raises(KeyError, match=r"integrity sha512-"):
        assets.check_digest(b"abc", "x", filename="f", digest="sha512-AAAA", error=KeyError)
    blob = b"abc"
    assert assets.check_digest(blob, "x", filename="f", digest=assets.integrity(blob)) is blob
    assert assets.check_digest(blob, "x", filename="f", digest=hashlib.sha256(blob).hexdigest()) is blob


@needs_sdist
def test_fetch_runs_the_client_once_verifies_and_keeps_the_file(isolated, monkeypatch):
    real = REAL_SDIST.read_bytes()
    calls = []

    def copy(filename, directory):
        calls.append((filename, directory))
        return real

    file = dataclasses.replace(sentiment.FILE, client=dataclasses.replace(sentiment.CLIENT, download=copy))
    with pytest.raises(assets.DataNotFoundError, match="COMPRESS_BENCH_OFFLINE forbids"):
        file.fetch()
    with pytest.raises(assets.DataNotFoundError, match="python -m compress.data.sentiment fetch"):
        file.find()
    assert calls == []
    monkeypatch.setenv("COMPRESS_BENCH_OFFLINE", "0")
    assert file.find(fetch=True) == file.path() and file.path().read_bytes() == real
    assert file.fetch() == file.path() and len(calls) == 1, "a verified copy is kept"
    file.path().write_bytes(b"half a download")
    assert file.fetch().read_bytes() == real and len(calls) == 2, "an unverifiable copy is replaced"
    file.path().unlink()
    real = b"other bytes"
    with pytest.raises(assets.DataCorruptError, match=f"{sentiment.SDIST} from pip: not the published"):
        file.fetch()
    assert not file.path().exists()


@needs_sdist
def test_the_data_dir_rule_is_the_only_place_looked_at(isolated, monkeypatch):
    mine = isolated / "mine" / sentiment.SUBDIR
    mine.mkdir(parents=True)
    (mine / sentiment.SDIST).write_bytes(REAL_SDIST.read_bytes())
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(isolated / "mine"))
    assert sentiment.FILE.find() == mine / sentiment.SDIST
    assert assets.main(["fetch"], sentiment.FILE, prog="p", doc="d") == 0
    monkeypatch.setenv("COMPRESS_BENCH_DATA", str(isolated / "nowhere"))
    with pytest.raises(assets.DataNotFoundError, match="nowhere .*does not exist"):
        sentiment.FILE.find(fetch=True)
    assert esrgan_assets.FILE.given() is False, "pretrained files are looked for in the cache only"


def test_main_reports_errors_with_its_label(isolated, capsys):
    assert assets.main(["fetch"], esrgan_assets.FILE, prog="p", doc="d", label="esrgan-slim") == 1
    assert capsys.readouterr().err.startswith("esrgan-slim: The ESRGAN-slim generators")
    with pytest.raises(SystemExit):
        assets.main(["stats"], esrgan_assets.FILE, prog="p", doc="d")  # no stats command without stats
