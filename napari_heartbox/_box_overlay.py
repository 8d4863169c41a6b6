"""Axial / coronal / sagittal picture of a CT with box outlines (numpy only).

Used by :mod:`napari_heartbox.evaluate` to save one PNG per case. The three
panels go through one point (normally the reference box centre) and are laid
out left to right: axial, coronal, sagittal. Display conventions (radiological):

* axial: image rows = y index (anterior at the top), columns = x index
  (patient right on the left of the picture);
* coronal: superior at the top (z index flipped), columns = x index;
* sagittal: superior at the top, columns = y index (anterior on the left).

Each panel is resampled (nearest neighbour) to square display pixels so that
millimetres look the same in every direction. Boxes are given in LPS mm at
voxel edges; each is drawn as the outline of its projection onto the panel
(so a box is visible even if the panel's plane misses it).
"""

from __future__ import annotations

import numpy as np

from .volume import CTVolume

__all__ = ['REFERENCE_RGB', 'PROPOSED_RGB', 'render_box_views']

REFERENCE_RGB = (0, 230, 0)  # green: the reference (ground-truth) box
PROPOSED_RGB = (255, 40, 200)  # magenta: the proposed box
_WINDOW = (-160.0, 240.0)  # soft-tissue window W400 / L40, HU


def _grey(hu: np.ndarray) -> np.ndarray:
    lo, hi = _WINDOW
    g = (np.clip(hu.astype(np.float32), lo, hi) - lo) * (255.0 / (hi - lo))
    return g.astype(np.uint8)


def _box_index_edges(volume: CTVolume, lps_min, lps_max) -> np.ndarray:
    """``(3, 2)`` fractional (z, y, x) index extents of an LPS box (edges)."""
    lo, hi = np.asarray(lps_min, float), np.asarray(lps_max, float)
    corners = np.array(
        [[(hi if (k >> i) & 1 else lo)[i] for i in range(3)] for k in range(8)]
    )
    idx = volume.grid.lps_to_index(corners)
    return np.stack([idx.min(axis=0), idx.max(axis=0)], axis=1)


def _panel(
    plane: np.ndarray, row_mm: float, col_mm: float, px_mm: float, flip_rows: bool
):
    """Resample a 2-D plane to square ``px_mm`` display pixels (nearest)."""
    nr, nc = plane.shape
    out_r = max(1, round(nr * row_mm / px_mm))
    out_c = max(1, round(nc * col_mm / px_mm))
    ri = np.minimum(((np.arange(out_r) + 0.5) * px_mm / row_mm).astype(int), nr - 1)
    ci = np.minimum(((np.arange(out_c) + 0.5) * px_mm / col_mm).astype(int), nc - 1)
    if flip_rows:
        ri = nr - 1 - ri
    return plane[np.ix_(ri, ci)]


def _to_px(edge_lo, edge_hi, n, sp, px_mm, flip):
    """Index-space edges (``i - 0.5`` convention) → display pixel span."""
    a = (edge_lo + 0.5) * sp / px_mm
    b = (edge_hi + 0.5) * sp / px_mm
    if flip:
        total = n * sp / px_mm
        a, b = total - b, total - a
    return a, b


def _draw_rect(rgb: np.ndarray, r0, r1, c0, c1, colour, thick: int = 2) -> None:
    h, w = rgb.shape[:2]
    r0, r1 = int(np.floor(r0)), int(np.ceil(r1)) - 1
    c0, c1 = int(np.floor(c0)), int(np.ceil(c1)) - 1
    if r1 < 0 or c1 < 0 or r0 >= h or c0 >= w:
        return
    rr0, rr1 = max(r0, 0), min(r1, h - 1)
    cc0, cc1 = max(c0, 0), min(c1, w - 1)
    for t in range(thick):
        for r in (r0 + t, r1 - t):
            if 0 <= r < h:
                rgb[r, cc0 : cc1 + 1] = colour
        for c in (c0 + t, c1 - t):
            if 0 <= c < w:
                rgb[rr0 : rr1 + 1, c] = colour


def render_box_views(
    volume: CTVolume,
    boxes,
    *,
    centre_lps=None,
    size_px: int = 320,
) -> np.ndarray:
    """Render axial, coronal and sagittal panels with box outlines.

    Parameters
    ----------
    volume : CTVolume
        The CT (HU, ``(z, y, x)``).
    boxes : sequence of (lps_min, lps_max, rgb) or (lps_min, lps_max, rgb, thickness)
        Boxes in LPS mm at voxel edges, their outline colours and optional
        line thickness in display pixels (default 2); drawn in this order,
        so a later box stays visible where outlines coincide.
    centre_lps : array-like of 3 float, optional
        LPS point the three planes go through; defaults to the centre of the
        first box, or the volume centre when there is no box.
    size_px : int
        Length in display pixels of the volume's longest physical extent.

    Returns
    -------
    numpy.ndarray
        ``uint8`` RGB image ``(H, W, 3)``.
    """
    boxes = [b for b in boxes if b is not None and b[0] is not None]
    nz, ny, nx = volume.shape
    dz, dy, dx = volume.spacing
    if centre_lps is None and boxes:
        centre_lps = (
            np.asarray(boxes[0][0], float) + np.asarray(boxes[0][1], float)
        ) / 2
    if centre_lps is None:
        c = np.array([(nz - 1) / 2, (ny - 1) / 2, (nx - 1) / 2])
    else:
        c = volume.grid.lps_to_index(np.asarray(centre_lps, float))
    zc, yc, xc = (
        int(np.clip(np.rint(v), 0, n - 1)) for v, n in zip(c, (nz, ny, nx), strict=True)
    )
    px_mm = max(nz * dz, ny * dy, nx * dx) / float(size_px)

    hu = volume.hu
    # (plane, row axis, col axis, row spacing, col spacing, flip rows)
    specs = (
        (hu[zc], 1, 2, dy, dx, False),  # axial
        (hu[:, yc, :], 0, 2, dz, dx, True),  # coronal
        (hu[:, :, xc], 0, 1, dz, dy, True),  # sagittal
    )
    edges = [
        (_box_index_edges(volume, b[0], b[1]), b[2], b[3] if len(b) > 3 else 2)
        for b in boxes
    ]
    panels = []
    for plane, ra, ca, rsp, csp, flip in specs:
        g = _panel(_grey(plane), rsp, csp, px_mm, flip)
        rgb = np.repeat(g[:, :, None], 3, axis=2)
        for e, colour, thick in edges:
            r0, r1 = _to_px(e[ra, 0], e[ra, 1], volume.shape[ra], rsp, px_mm, flip)
            c0, c1 = _to_px(e[ca, 0], e[ca, 1], volume.shape[ca], csp, px_mm, False)
            _draw_rect(rgb, r0, r1, c0, c1, colour, thick)
        panels.append(rgb)
    height = max(p.shape[0] for p in panels)
    gap = np.zeros((height, 4, 3), np.uint8)
    row = []
    for p in panels:
        pad = np.zeros((height - p.shape[0], p.shape[1], 3), np.uint8)
        row += [np.vstack([p, pad]), gap]
    return np.hstack(row[:-1])
