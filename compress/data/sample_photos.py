"""Real photographs shipped inside scikit-image's wheel (``skimage.data``), as super-resolution tiles.

scikit-image 0.26 carries its sample photos in the package itself (no download):
the splits below use the colour ones, each photo in one split only, so no test
pixel is ever trained or calibrated on.

=========  ==========================================================================
split      photos (``skimage.data`` loader, size)
=========  ==========================================================================
``test``   astronaut (512x512), coffee (400x600), chelsea (300x451), rocket (427x640)
``calib``  the right view of stereo_motorcycle (500x741)
``train``  the left view of stereo_motorcycle (500x741), immunohistochemistry (512x512),
           hubble_deep_field (872x1000), retina (1411x1411)
=========  ==========================================================================

:func:`tiles` makes the model's examples: each photo is cropped (top-left) to a
whole number of ``hr_tile`` squares, downscaled as a whole by the factor with
Pillow's bicubic filter (antialiased, as the usual super-resolution benchmarks'
bicubic degradation), and both are cut into aligned tiles: the low-resolution
tile is the input, the original tile the target.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SPLITS: dict[str, tuple[str, ...]] = {
    "test": ("astronaut", "coffee", "chelsea", "rocket"),
    "calib": ("motorcycle_right",),
    "train": ("motorcycle_left", "immunohistochemistry", "hubble_deep_field", "retina"),
}


def photo(name: str) -> np.ndarray:
    """The photo ``name`` as uint8 RGB ``(H, W, 3)`` (``motorcycle_left``/``_right``: the stereo pair's views).

    Raises:
        ValueError: no such photo.
    """
    import skimage.data as data

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = data.stereo_motorcycle()
        img = left if name == "motorcycle_left" else right
    elif name in {n for names in SPLITS.values() for n in names}:
        img = getattr(data, name)()
    else:
        known = sorted(n for names in SPLITS.values() for n in names)
        raise ValueError(f"unknown photo {name!r}; known: {', '.join(known)}")
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] < 3 or img.dtype != np.uint8:
        raise ValueError(f"photo {name!r} is {img.dtype} {img.shape}, expected uint8 RGB")
    return np.ascontiguousarray(img[..., :3])


def downscale(image: np.ndarray, scale: int) -> np.ndarray:
    """uint8 RGB ``(H, W, 3)`` -> ``(H / scale, W / scale, 3)`` by Pillow's bicubic filter (sides divisible by ``scale``)."""
    from PIL import Image

    h, w = image.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f"a {h}x{w} image does not divide by {scale}")
    return np.asarray(Image.fromarray(image).resize((w // scale, h // scale), Image.BICUBIC))


def upscale_bicubic(images: np.ndarray, scale: int) -> np.ndarray:
    """uint8 RGB tiles ``(N, h, w, 3)`` -> ``(N, h * scale, w * scale, 3)`` by Pillow's bicubic filter:
    the classical floor a super-resolution model must beat."""
    from PIL import Image

    out = [np.asarray(Image.fromarray(t).resize((t.shape[1] * scale, t.shape[0] * scale), Image.BICUBIC))
           for t in np.asarray(images, dtype=np.uint8)]  # fmt: skip
    return np.stack(out)


@lru_cache(maxsize=16)
def tiles(split: str, hr_tile: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """``(low-resolution uint8 (N, t, t, 3), original uint8 (N, T, T, 3))`` of ``split``'s photos,
    ``T = hr_tile``, ``t = T / scale``, row by row, photo by photo (read-only arrays; memoized).

    Raises:
        ValueError: unknown split, or ``hr_tile`` not divisible by ``scale``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if hr_tile % scale:
        raise ValueError(f"hr_tile {hr_tile} is not divisible by the scale {scale}")
    lr_tile = hr_tile // scale
    lows, highs = [], []
    for name in SPLITS[split]:
        img = photo(name)
        rows, cols = img.shape[0] // hr_tile, img.shape[1] // hr_tile
        hr = img[: rows * hr_tile, : cols * hr_tile]
        lr = downscale(np.ascontiguousarray(hr), scale)
        for r in range(rows):
            for c in range(cols):
                highs.append(hr[r * hr_tile : (r + 1) * hr_tile, c * hr_tile : (c + 1) * hr_tile])
                lows.append(lr[r * lr_tile : (r + 1) * lr_tile, c * lr_tile : (c + 1) * lr_tile])
    low, high = np.stack(lows), np.stack(highs)
    low.flags.writeable = high.flags.writeable = False
    return low, high
