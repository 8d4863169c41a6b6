"""Small numpy-only image filters (the core must not depend on scipy)."""

from __future__ import annotations

import numpy as np

__all__ = ['box_blur', 'gaussian_blur']


def box_blur(a: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Moving average of width ``2 * radius + 1`` along ``axis`` (edges clamped).

    Parameters
    ----------
    a : ndarray
        Input (float).
    radius : int
        Half width in samples; 0 returns ``a`` unchanged.
    axis : int
        Axis to filter.
    """
    if radius <= 0:
        return a
    a = np.moveaxis(a, axis, -1)
    pad = np.concatenate(
        [np.repeat(a[..., :1], radius + 1, -1), a, np.repeat(a[..., -1:], radius, -1)], axis=-1
    )
    c = np.cumsum(pad, axis=-1, dtype=np.float32 if a.dtype == np.float32 else np.float64)
    w = 2 * radius + 1
    out = (c[..., w:] - c[..., :-w]) / w
    return np.moveaxis(out.astype(a.dtype, copy=False), -1, axis)


def gaussian_blur(a: np.ndarray, sigma: float, axes=(-2, -1)) -> np.ndarray:
    """Approximate Gaussian blur (three box passes per axis).

    Parameters
    ----------
    a : ndarray
        Input (float).
    sigma : float
        Standard deviation in samples.
    axes : tuple of int
        Axes to blur.
    """
    if sigma <= 0.3:
        return a
    # three boxes of width w have variance 3 * (w² - 1) / 12
    r = max(1, int(round((np.sqrt(4 * sigma**2 + 1) - 1) / 2)))
    out = a
    for ax in axes:
        for _ in range(3):
            out = box_blur(out, r, ax)
    return out
