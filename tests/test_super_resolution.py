"""ESRGAN-slim from the npm tarball, scikit-image's photos as tiles, and the PSNR metric.

The generator tests read the real tarball, which `make test` fetches first
(`python -m compress.models.generative.esrgan_assets fetch`); without it they are skipped
saying so.
"""

from __future__ import annotations

import io
import math
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from compress import registry
from compress.judging import stats, thresholds
from compress.storage.cache import NpmPackError, npm_pack
from compress.data import sample_photos
from compress.metrics import get_metric
from compress.metrics.psnr import IDENTICAL_DB, luma, psnr_per_image, to_pixels
from compress.models.generative import esrgan_assets as assets


@pytest.fixture(scope="module")
def real_tarball() -> bytes:
    path = assets.entry_dir() / assets.TARBALL
    if not path.is_file():
        pytest.skip(f"no ESRGAN-slim tarball in {path.parent}: run `python -m compress.models.generative.esrgan_assets fetch`")
    return path.read_bytes()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COMPRESS_BENCH_OFFLINE", "1")
    assets._members.cache_clear()
    yield tmp_path / "cache"
    assets._members.cache_clear()


# -- the tarball -----------------------------------------------------------------------------


def test_the_tarball_is_checked_against_the_registrys_integrity(real_tarball):
    assert assets.integrity(real_tarball) == assets.INTEGRITY
    assert assets.check_tarball(real_tarball, "x") is real_tarball
    altered = bytearray(real_tarball)
    altered[len(altered) // 2] ^= 1
    with pytest.raises(assets.AssetsCorruptError, match="not the published upscalerjs-esrgan-slim-1.0.0.tgz"):
        assets.check_tarball(bytes(altered), "x")


def test_offline_and_uncached_the_pairs_say_how_to_get_it(cache):
    assert "python -m compress.models.generative.esrgan_assets fetch" in assets.unavailable()
    with pytest.raises(assets.AssetsNotFoundError, match="COMPRESS_BENCH_OFFLINE forbids"):
        assets.fetch_tarball()
    with pytest.raises(assets.AssetsNotFoundError, match="npm pack @upscalerjs/esrgan-slim@1.0.0"):
        assets.read_member("package/package.json")
    spec = registry.get_model("esrgan_x2")
    from compress.runner import Runner

    assert "esrgan_assets fetch" in Runner().skip_reason("esrgan_x2", "fp32")
    assert spec.task == "super-resolution"


def test_a_corrupt_cached_tarball_is_removed_never_used(cache, real_tarball):
    dest = assets.entry_dir() / assets.TARBALL
    dest.parent.mkdir(parents=True)
    dest.write_bytes(real_tarball[: len(real_tarball) // 2])  # a killed copy
    with pytest.raises(assets.AssetsNotFoundError):
        assets.fetch_tarball()
    assert not dest.exists()


def test_install_takes_a_tarball_on_disk_after_checking_it(cache, tmp_path, real_tarball):
    src = tmp_path / assets.TARBALL
    src.write_bytes(real_tarball)
    assert assets.install_tarball(src).read_bytes() == real_tarball
    assert assets.unavailable() is None
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(assets.AssetsCorruptError, match="bad.tgz"):
        assets.install_tarball(bad)


def _fake_npm(tmp_path, monkeypatch, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text("#!/bin/sh\n" + script)
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_npm_pack_failures_are_clear_errors_and_leave_nothing(tmp_path, monkeypatch):
    _fake_npm(tmp_path, monkeypatch, 'echo "npm error 404 Not Found - GET https://registry/x" >&2\nexit 1\n')
    with pytest.raises(NpmPackError, match="exited with 1: npm error 404"):
        npm_pack("x@1.0.0", "x-1.0.0.tgz", tmp_path / "into", timeout=30)
    assert list((tmp_path / "into").iterdir()) == []


def test_npm_pack_that_writes_no_tarball_is_an_error(tmp_path, monkeypatch):
    _fake_npm(tmp_path, monkeypatch, "exit 0\n")
    with pytest.raises(NpmPackError, match="without writing x-1.0.0.tgz"):
        npm_pack("x@1.0.0", "x-1.0.0.tgz", tmp_path / "into", timeout=30)


def test_no_npm_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NpmPackError, match="apt-get install npm"):
        npm_pack("x@1.0.0", "x-1.0.0.tgz", tmp_path / "into", timeout=30)


def test_fetch_keeps_what_npm_packs_only_when_it_is_the_published_tarball(cache, tmp_path, monkeypatch, real_tarball):
    monkeypatch.setenv("COMPRESS_BENCH_OFFLINE", "0")
    good = tmp_path / "good.tgz"
    good.write_bytes(real_tarball)
    # npm pack SPEC --pack-destination DIR ...: copy the tarball into DIR
    _fake_npm(tmp_path, monkeypatch, f'cp {good} "$4/{assets.TARBALL}"\n')
    path = assets.fetch_tarball()
    assert path.read_bytes() == real_tarball
    path.unlink()
    good.write_bytes(b"tampered")
    with pytest.raises(assets.AssetsCorruptError, match="from npm"):
        assets.fetch_tarball()
    assert not path.exists()


# -- the generators ----------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_every_weight_of_the_shard_is_read_once(real_tarball, scale):
    config, weights = assets.read_generator(scale)
    assert config["class_name"] == "Functional"
    assert len(weights) == 24
    assert weights["F_m1/kernel"].shape == (3, 3, 3, 64)
    assert weights["SR/kernel"].shape[-1] == 3
    shard = assets.read_member(f"package/models/x{scale}/group1-shard1of1.bin")
    assert sum(w.nbytes for w in weights.values()) == len(shard)


def test_an_unknown_factor_is_refused():
    with pytest.raises(ValueError, match="scale must be one of"):
        assets.read_generator(5)
    from compress.models.generative.super_resolution import EsrganSlim

    with pytest.raises(ValueError, match="multiple of scale 3"):
        EsrganSlim(scale=3, hr_tile=128)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_generator_reproduces_upscalerjs_own_sample_output(real_tarball, scale):
    """The package ships its fixture and each factor's result as UpscalerJS computed it: the
    generator read into tf_keras gives the same pixels (float sums in another order may move one
    grey level on a handful of pixels)."""
    from PIL import Image

    from compress.models.generative.super_resolution import EsrganSlim

    fixture = np.asarray(Image.open(io.BytesIO(assets.read_member("package/assets/fixture.png"))).convert("RGB"))
    expected = np.asarray(Image.open(io.BytesIO(assets.read_member(f"package/assets/samples/{scale}x/result.png"))).convert("RGB"))
    side = fixture.shape[0]
    recipe = EsrganSlim(scale=scale, hr_tile=side * scale)
    model = recipe.train("test")
    got = to_pixels(model.predict(fixture[None].astype(np.float32), verbose=0))[0]
    diff = np.abs(got.astype(int) - expected.astype(int))
    assert got.shape == expected.shape
    assert diff.max() <= 1
    assert (diff == 0).mean() > 0.9999


# -- data ------------------------------------------------------------------------------------


def test_splits_use_disjoint_photos():
    names = [n for split in sample_photos.SPLITS.values() for n in split]
    assert len(names) == len(set(names))


def test_tiles_align_the_input_with_its_original():
    low, high = sample_photos.tiles("test", 128, 2)
    assert low.shape == (49, 64, 64, 3) and high.shape == (49, 128, 128, 3)
    assert low.dtype == high.dtype == np.uint8
    # the first tile is the top-left of astronaut, downscaled as part of the whole photo
    astronaut = sample_photos.photo("astronaut")
    np.testing.assert_array_equal(high[0], astronaut[:128, :128])
    np.testing.assert_array_equal(low[0], sample_photos.downscale(astronaut, 2)[:64, :64])
    with pytest.raises(ValueError):
        low[0, 0, 0, 0] = 1  # memoized: read-only


def test_bad_tiling_arguments_are_refused():
    with pytest.raises(ValueError, match="not divisible"):
        sample_photos.tiles("test", 128, 3)
    with pytest.raises(ValueError, match="split must be one of"):
        sample_photos.tiles("val", 128, 2)
    with pytest.raises(ValueError, match="unknown photo"):
        sample_photos.photo("lena")


# -- the metric ------------------------------------------------------------------------------


def test_psnr_is_taken_on_the_luma():
    target = np.full((1, 8, 8, 3), 100, np.uint8)
    shifted = target + 1  # every channel one grey level up: luma moves by (65.481 + 128.553 + 24.966) / 255
    step = (65.481 + 128.553 + 24.966) / 255
    assert psnr_per_image(shifted, target)[0] == pytest.approx(10 * math.log10(255**2 / step**2))
    assert psnr_per_image(target, target)[0] == IDENTICAL_DB
    assert luma(np.array([[0, 0, 0], [255, 255, 255]]))[[0, 1]].tolist() == pytest.approx([16.0, 235.0])
    with pytest.raises(ValueError, match="differ in shape"):
        psnr_per_image(target, target[:, :4])


def test_outputs_are_scored_as_8_bit_pixels():
    out = np.array([[-3.0, 0.4, 254.6, 300.0]])
    np.testing.assert_array_equal(to_pixels(out), [[0, 0, 255, 255]])


def test_retention_of_psnr_is_a_ratio_of_means_with_a_paired_bound():
    metric = get_metric("psnr")
    ref = np.array([30.0, 31.0, 29.0, 32.0])
    assert metric.retention(ref, ref) == (1.0, 1.0)
    worse = ref - np.array([0.3, 0.1, 0.2, 0.2])
    point, upper = metric.retention(worse, ref)
    assert point == pytest.approx(worse.mean() / ref.mean())
    assert point < upper < 1.0  # a consistent drop is a drop even at 4 tiles
    value, bound = metric.value(ref)
    assert value == pytest.approx(30.5) and bound > value
    with pytest.raises(ValueError, match="finite"):
        stats.mean_bound([1.0, float("inf")])
    with pytest.raises(ValueError, match="same examples"):
        stats.mean_retention_bound([1.0, 2.0], [1.0, 2.0, 3.0])


def test_the_fp32_pair_bounds_psnr_statistically():
    assert thresholds.METRICS["psnr"] == "min" and thresholds.STATISTICAL["psnr"] == "_upper"
    assert thresholds.METRICS["psnr_over_bicubic"] == "min"


def test_the_report_names_artefacts_below_the_bicubic_floor():
    from compress.reporting.report import format_slower

    rows = [{"model": "esrgan_x2", "technique": "fp32", "runtime": "litert", "psnr_over_bicubic": -0.31},
            {"model": "esrgan_x4", "technique": "fp32", "runtime": "litert", "psnr_over_bicubic": 0.2}]  # fmt: skip
    text = format_slower(rows)
    assert "Below the bicubic floor" in text and "esrgan_x2.fp32 (litert): -0.31 dB" in text
    assert "esrgan_x4" not in text


def test_channel_pruning_is_skipped_saying_why():
    from compress.runner import Runner

    reason = Runner().skip_reason("esrgan_x2", "channels50")
    assert reason and "concatenate" in reason


def test_extra_metrics_of_an_artefact_identical_to_its_fp32(real_tarball):
    from compress.models.generative.super_resolution import EsrganSlim

    recipe = EsrganSlim(scale=8)
    x, high = recipe.data("test")
    rng = np.random.default_rng(0)
    noisy = {}

    def predict(batch):  # the originals plus fixed noise: a stand-in artefact, scored like any other
        key = batch.tobytes()
        if key not in noisy:
            noisy[key] = np.repeat(np.repeat(batch, 8, axis=1), 8, axis=2) + rng.normal(0, 2, (len(batch), 128, 128, 3))
        return noisy[key]

    extra = recipe.extra_metrics(predict, predict)
    assert extra["psnr_vs_fp32"] == IDENTICAL_DB and extra["ssim_vs_fp32"] == pytest.approx(1.0)
    assert extra["bicubic_psnr"] > 20 and 0 < extra["bicubic_ssim"] < 1
    psnr = float(psnr_per_image(recipe.upscaled(predict, x), high).mean())
    assert extra["psnr_over_bicubic"] == pytest.approx(psnr - extra["bicubic_psnr"])
