"""Scanner side of the phantom: the slice layout (coverage), the voxel grid and
patient position, and image formation (texture, kernel noise, streaks, metal
artefacts, motion blur) from the tissue-label volume.

Patient position and array layout
---------------------------------
Arrays are always stored with z index 0 = most inferior slice (+S along z).
Rows and columns follow the standard DICOM orientation for each position:

======  ===================  =====================  ==========================
pos.    column direction     row direction          in the image
======  ===================  =====================  ==========================
HFS     +L (to patient left) +P (to posterior)      anterior at top, R on left
FFS     -L (to patient right) +P                    anterior at top, L on left
HFP     -L                   -P (to anterior)       posterior at top, L on left
FFP     +L                   -P                     posterior at top, R on left
======  ===================  =====================  ==========================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import Anatomy
from .filters import gaussian_blur
from .heart import HeartGeometry
from .tissues import T, tissue_hu

__all__ = ['Layout', 'compose_hu', 'layout', 'outside_fov_circle']

_DIRS = {'HFS': (1.0, 1.0), 'FFS': (-1.0, 1.0), 'HFP': (-1.0, -1.0), 'FFP': (1.0, -1.0)}


@dataclass
class Layout:
    """Where the slices are: anatomy-mm voxel-centre coordinates per axis and
    the 4×4 voxel ``(z, y, x, 1)`` → LPS affine."""

    pz: np.ndarray
    py: np.ndarray
    px: np.ndarray
    spacing: tuple
    affine: np.ndarray
    z_range_mm: tuple


def _z_range(p: dict, an: Anatomy, g: HeartGeometry) -> tuple[float, float]:
    top = g.z_top
    cov = p['coverage']
    m_lo, m_hi = p['coverage_margin_mm']
    f = p['coverage_fraction']
    if cov == 'chest':
        return -m_lo, top + m_hi
    if cov == 'heart_cut_top':
        return -m_lo, f * top
    if cov == 'heart_cut_bottom':
        return f * top, top + m_hi
    if cov == 'neck':
        lo = top + 10.0 + 0.5 * m_lo
        return lo, lo + 100.0 + m_hi
    if cov == 'abdomen':
        hi = -8.0 - 0.4 * m_lo
        return hi - 120.0 - 1.5 * m_hi, hi
    raise ValueError(f"unknown coverage {cov!r}: use chest, heart_cut_top, heart_cut_bottom, neck or abdomen")


def layout(p: dict, an: Anatomy, g: HeartGeometry) -> Layout:
    """Slice positions, in-plane grid and affine for the sampled acquisition."""
    dz = float(p['slice_spacing_mm'])
    lo, hi = _z_range(p, an, g)
    n = p['n_slices']
    if n is None:
        n = int(np.floor((hi - lo) / dz)) + 1
        n = max(2, min(n, int(p['max_slices'])))
        if p['coverage'] == 'chest':  # 'chest' promises the whole heart: exceed the cap if needed
            n = max(n, int(np.ceil(g.z_top / dz)) + 4)
    n = int(n)
    ext = (n - 1) * dz
    if p['n_slices'] is not None or ext < hi - lo - 1e-6:
        if p['coverage'] == 'chest':  # keep the heart inside when it fits
            mid = 0.5 * (lo + hi)
            if ext >= g.z_top + 2 * dz:
                lo = float(np.clip(mid - ext / 2, g.z_top + dz - ext, -dz))
            else:  # too short for the whole heart: centre it
                lo = 0.5 * g.z_top - ext / 2
        elif p['coverage'] == 'abdomen':
            lo = hi - ext
        elif p['coverage'] == 'heart_cut_bottom':
            pass  # keep the cut level
        elif p['coverage'] == 'heart_cut_top':
            lo = hi - ext
    pz = lo + dz * np.arange(n)
    ny, nx = (int(v) for v in p['matrix'])
    d = float(p['fov_mm']) / max(ny, nx)
    sx, sy = _DIRS[p['position']]
    # reconstruction centre: body centre, pulled towards the heart for small FOVs
    pull = float(np.clip((2 * an.W + 40 - p['fov_mm']) / 120.0, 0, 1))
    hc = g.origin
    fx = pull * hc[0] + p['fov_centre_offset_mm'][0]
    fy = pull * hc[1] + p['fov_centre_offset_mm'][1]
    px = fx + sx * d * (np.arange(nx) - (nx - 1) / 2)
    py = fy + sy * d * (np.arange(ny) - (ny - 1) / 2)
    off = np.asarray(p['patient_origin_lps_mm'], float)
    a = np.zeros((4, 4))
    a[0, 2] = sx * d  # x index (column) → L
    a[1, 1] = sy * d  # y index (row) → P
    a[2, 0] = dz  # z index → S (index 0 = most inferior)
    a[:3, 3] = (px[0] + off[0], py[0] + off[1], pz[0] + off[2])
    a[3, 3] = 1.0
    return Layout(pz, py, px, (dz, d, d), a, (float(pz[0]), float(pz[-1])))


def outside_fov_circle(p: dict, lay: Layout) -> np.ndarray | None:
    """``(Y, X)`` bool: pixels outside the reconstruction circle (diameter =
    FOV), or None when the case keeps the full square (``fov_circle`` off)."""
    if not p['fov_circle']:
        return None
    r = float(p['fov_mm']) / 2.0
    fy = 0.5 * (lay.py[0] + lay.py[-1])
    fx = 0.5 * (lay.px[0] + lay.px[-1])
    out = ((lay.py - fy)[:, None] ** 2 + (lay.px - fx)[None, :] ** 2) > r * r
    return out if out.any() else None


# ----------------------------------------------------------------- imaging
def _noise_bank(rng, shape, kernel: str, k: int, px_mm: float) -> np.ndarray:
    """``k`` unit-SD noise slices with the texture of the kernel."""
    bank = rng.standard_normal((k, *shape), dtype=np.float32)
    if kernel == 'smooth':
        bank = gaussian_blur(bank, max(0.6, 0.9 / px_mm))
    else:  # sharp (B70f-like): boost high frequencies
        bank = bank - 0.6 * gaussian_blur(bank, 1.0)
    bank /= bank.std(axis=(1, 2), keepdims=True) + 1e-6
    return bank


def _lung_field(rng, shape, px_mm: float, k: int) -> np.ndarray:
    """Smooth unit-SD fields (scale ~2-3 mm) for lung vessel texture."""
    f = rng.standard_normal((k, *shape), dtype=np.float32)
    f = gaussian_blur(f, max(0.8, 2.8 / px_mm))
    f /= f.std(axis=(1, 2), keepdims=True) + 1e-6
    return f


_CHUNK = 16  # slices per chunk for voxel-wise work (bounds the peak memory)


def _add_at_tissue(hu: np.ndarray, label: np.ndarray, tissue: int, values) -> None:
    """``hu[label == tissue] += values(z, yx)``, in chunks of slices.

    ``values(zk, yx)`` gets the global slice index and the flat in-plane index
    of every selected voxel and returns the float HU to add.
    """
    nz, ny, nx = label.shape
    hflat = hu.reshape(nz, ny * nx)
    for k0 in range(0, nz, _CHUNK):
        k1 = min(nz, k0 + _CHUNK)
        idx = np.flatnonzero(label[k0:k1] == tissue)
        if idx.size == 0:
            continue
        zk, yx = np.divmod(idx, ny * nx)
        vals = np.rint(values(zk + k0, yx)).astype(np.int16)
        sub = hflat[k0:k1].reshape(-1)
        sub[idx] += vals


def compose_hu(label: np.ndarray, p: dict, lay: Layout, an: Anatomy, g: HeartGeometry,
               metal: list, rng: np.random.Generator) -> np.ndarray:
    """Turn the label volume into int16 HU with texture and acquisition effects.

    Parameters
    ----------
    label : uint8 array (Z, Y, X)
        Tissue labels (see :class:`.tissues.T`).
    p : dict
        Sampled parameters.
    lay : Layout
        Slice layout (anatomy coordinates per axis).
    an, g : Anatomy, HeartGeometry
        For positions of the artefacts (heart motion).
    metal : list
        Metal parts ``(x, y, z_lo, z_hi)`` (anatomy mm) for streaks.
    rng : numpy.random.Generator
        Randomness for noise and textures.
    """
    nz, ny, nx = label.shape
    d = lay.spacing[1]
    lut = tissue_hu(p)
    # HU are built directly in int16 (half the memory traffic of float32);
    # every additive term is rounded before it is added.
    hu = np.rint(lut).astype(np.int16)[label]
    # lung parenchyma: vessel dots and a dependent (gravity-side) gradient,
    # evaluated only at lung voxels. Six smooth fields are blended along z so
    # the texture changes continuously from slice to slice.
    kf = 6
    field = _lung_field(rng, (ny, nx), d, kf)
    tex = float(p['lung_texture'])
    vessel_hu = float(lut[T.PULM_VESSEL] - lut[T.LUNG])
    # vessels: the top ~3 % of the field, ramping up to blood HU
    lf = 15.0 * tex * field + np.clip((field - 1.85) * 3.0, 0, 1) * (vessel_hu * (0.5 + 0.5 * tex))
    gravity = 1.0 if p['position'] in ('HFS', 'FFS') else -1.0  # dependent side is posterior when supine
    grad = (gravity * np.clip(lay.py / max(an.D, 1.0), -1, 1) * 40.0).astype(np.float32)
    lf += grad[None, :, None]
    t = (np.arange(nz) * lay.spacing[0] / 6.0) % kf
    i0 = t.astype(np.int64)
    w = (t - i0).astype(np.float32)
    i1 = (i0 + 1) % kf
    lf2 = lf.reshape(kf, ny * nx)

    def lung_values(zk, yx):
        return (1 - w[zk]) * lf2[i0[zk], yx] + w[zk] * lf2[i1[zk], yx]

    _add_at_tissue(hu, label, T.LUNG, lung_values)
    # bowel: loops ~2 cm across with gas bubbles and fat between them, from a
    # coarser field bank blended along z like the lung texture
    tb = (np.arange(nz) * lay.spacing[0] / 12.0) % kf
    j0 = tb.astype(np.int64)
    wb = (tb - j0).astype(np.float32)
    j1 = (j0 + 1) % kf
    fine_bank = field.reshape(kf, ny * nx)
    coarse = []  # drawn on first use only (same random stream as before)

    def bowel_values(zk, yx):
        if not coarse:
            coarse.append(_lung_field(rng, (ny, nx), d / 2.5, kf).reshape(kf, ny * nx))
        c = coarse[0]
        fz = (1 - wb[zk]) * c[j0[zk], yx] + wb[zk] * c[j1[zk], yx]
        fine = fine_bank[(j0[zk] + 3) % kf, yx]
        vals = 15.0 * fine
        vals = np.where(fz < -0.8, float(lut[T.FAT] - lut[T.BOWEL]), vals)  # mesenteric fat
        return np.where(fz + 0.6 * fine > 1.7, -980.0 - float(lut[T.BOWEL]), vals)  # gas

    _add_at_tissue(hu, label, T.BOWEL, bowel_values)
    # beam-hardening streaks: a few dark/bright lines through the body
    if p['streaks']:
        amp = float(p['streak_hu'])
        yy = (np.arange(ny, dtype=np.float32) - ny / 2)[:, None]
        xx = (np.arange(nx, dtype=np.float32) - nx / 2)[None, :]
        lines = [(rng.uniform(0, np.pi), rng.uniform(-0.15, 0.15) * nx, rng.choice([-1.0, -1.0, 1.0]),
                  rng.uniform(1.5, 5.0)) for _ in range(int(rng.integers(1, 4)))]
        z0 = int(rng.integers(0, nz))
        z1 = min(nz, z0 + int(rng.integers(max(1, nz // 4), nz + 1)))
        s2 = np.zeros((ny, nx), np.float32)
        for ang, off, sign, w in lines:
            dist = xx * np.sin(ang) - yy * np.cos(ang) - off
            s2 += sign * amp * np.exp(-((dist / w) ** 2))
        s2 = np.rint(s2).astype(np.int16)
        for k0 in range(z0, z1, _CHUNK):
            k1 = min(z1, k0 + _CHUNK)
            hu[k0:k1] += s2 * (label[k0:k1] != T.AIR)
    # metal: star-shaped streaks around strong metal parts
    for (mx, my, zlo, zhi) in metal:
        ks = np.flatnonzero((lay.pz >= zlo) & (lay.pz <= zhi))
        if ks.size == 0:
            continue
        dx = (lay.px - mx)[None, :]
        dy = (lay.py - my)[:, None]
        r = np.sqrt(dx**2 + dy**2) + 1.0
        ang = np.arctan2(dy, dx)
        star = (np.cos(7 * ang + rng.uniform(0, 6.3)) * 350.0 * np.exp(-r / 60.0)).astype(np.float32)
        star = np.where(r < 6, 0, star)
        hu[ks] += np.rint(star).astype(np.int16)[None]
    # cardiac motion blur: average with a shifted copy inside the heart region
    if p['motion']:
        shift = max(1, int(round(float(p['motion_px']))))
        ang = rng.uniform(0, 2 * np.pi)
        sy, sx = int(round(np.sin(ang) * shift)), int(round(np.cos(ang) * shift))
        zi = np.flatnonzero((lay.pz > -10) & (lay.pz < g.z_top + 10))
        if zi.size:
            r = 80.0 * an.p['heart_scale']
            yi = np.flatnonzero(np.abs(lay.py - g.origin[1]) < r)
            xi = np.flatnonzero(np.abs(lay.px - g.origin[0]) < r)
            if yi.size and xi.size:
                ys, xs = slice(yi[0], yi[-1] + 1), slice(xi[0], xi[-1] + 1)
                for k0 in range(zi[0], zi[-1] + 1, _CHUNK):
                    box = (slice(k0, min(zi[-1] + 1, k0 + _CHUNK)), ys, xs)
                    sub = hu[box].astype(np.float32)
                    hu[box] = np.rint(0.5 * (sub + np.roll(sub, (sy, sx), axis=(1, 2))))
    # slice thickness larger than the spacing: each slice mixes in a little
    # of its neighbours (partial volume along z), done in slabs to bound memory
    a = float(p['slice_overlap'])
    if a > 0 and nz > 2:
        prev = hu[0].astype(np.float32)
        for k0 in range(0, nz, _CHUNK // 2):
            k1 = min(nz, k0 + _CHUNK // 2)
            cur = hu[k0:k1].astype(np.float32)
            below = np.concatenate([prev[None], cur[:-1]]) if k0 > 0 else np.concatenate([cur[:1], cur[:-1]])
            above = np.concatenate([cur[1:], hu[k1:k1 + 1].astype(np.float32) if k1 < nz else cur[-1:]])
            prev = cur[-1].copy()
            hu[k0:k1] = np.rint((1 - 2 * a) * cur + a * (below + above))
    # reconstruction kernel noise: a small bank of unit-SD slices, scaled once
    nb = _noise_bank(rng, (ny, nx), p['kernel'], 5, d)
    nb = np.rint(nb * float(p['noise_sd'])).astype(np.int16)
    order = rng.integers(0, 5, nz)
    for k in range(nz):
        hu[k] += nb[order[k]]
    np.clip(hu, -1024, 3071, out=hu)
    out = outside_fov_circle(p, lay)
    if out is not None:  # scanner padding outside the reconstruction circle
        for j in np.flatnonzero(out.any(axis=1)):
            hu[:, j, out[j]] = -1024
    return hu
