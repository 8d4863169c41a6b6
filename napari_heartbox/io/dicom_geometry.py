"""Stack the selected DICOM images: slice order, spacing and the LPS affine.

Conventions
-----------
* Slices are sorted by ImagePositionPatient projected on the slice normal
  ``n = row_cos × col_cos`` (never by file name or InstanceNumber), with ``n``
  flipped so that it points superior (+S in LPS): **z index 0 is the most
  inferior slice**.
* The slice spacing ``dz`` comes from positions, never from SliceThickness.
* In-plane, each stored image is flipped (and, if needed, transposed) so that
  the volume's x axis runs towards patient Left and y towards Posterior as
  closely as the orientation allows; the affine records exactly what was done.
* The affine maps ``(z, y, x, 1)`` voxel centres to LPS mm. Its z column is
  the mean step between consecutive slice positions, so a gantry-tilted series
  keeps its shear there (then ``|z column| > dz``).
* Duplicate positions keep one image; gaps larger than 1.5× the median
  spacing are filled with copies of the nearest slice so the grid stays
  uniform; each is reported in the warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .dicom_headers import SliceHeader
from .dicom_select import name_list
from .plausible import check_spacing

__all__ = ['StackPlan', 'plan_stack']

_DUP_TOL_MM = 0.01


@dataclass
class StackPlan:
    """Everything pass 2 needs to build the volume."""

    #: unique images in z order (index = position in this list)
    slices: list[SliceHeader]
    #: for each output z index, the index in ``slices`` whose pixels go there
    source_of: list[int]
    #: output z index where each of ``slices`` is read first
    primary_z: list[int]
    transpose: bool
    flip_y: bool
    flip_x: bool
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: np.ndarray
    warnings: list[str] = field(default_factory=list)

    def orient(self, stored: np.ndarray) -> np.ndarray:
        """Apply the in-plane transpose/flips to one stored ``(rows, cols)`` image."""
        a = stored.T if self.transpose else stored
        return a[:: -1 if self.flip_y else 1, :: -1 if self.flip_x else 1]

    @property
    def identity_in_plane(self) -> bool:
        """True when stored images go into the volume unchanged."""
        return not (self.transpose or self.flip_y or self.flip_x)


def _in_plane(row_cos, col_cos):
    """(transpose, flip_y, flip_x) bringing x towards +L and y towards +P."""
    ax_row = int(np.argmax(np.abs(row_cos)))
    ax_col = int(np.argmax(np.abs(col_cos)))
    if ax_row == ax_col:
        return False, False, False
    if ax_row == 0 or ax_col == 1:
        return False, bool(col_cos[1] < 0), bool(row_cos[0] < 0)
    # row direction runs along P: transpose so columns become rows
    return True, bool(row_cos[1] < 0), bool(col_cos[0] < 0)


def plan_stack(slices: list[SliceHeader]) -> StackPlan:
    """Sort, de-duplicate and place the images of one series.

    Parameters
    ----------
    slices : list of SliceHeader
        Images of one axial series (same size and orientation).

    Returns
    -------
    StackPlan
    """
    warnings: list[str] = []
    h0 = slices[0]
    iop = np.asarray(h0.iop, dtype=float)
    row_cos = iop[:3] / np.linalg.norm(iop[:3])
    col_cos = iop[3:] / np.linalg.norm(iop[3:])
    n = np.cross(row_cos, col_cos)
    n /= np.linalg.norm(n)
    if n[2] < 0:  # make the normal point superior: z index 0 = most inferior
        n = -n

    ipp = np.array([h.ipp for h in slices], dtype=float)
    d = ipp @ n
    order = sorted(
        range(len(slices)),
        key=lambda i: (
            d[i],
            slices[i].instance_number or 0,
            str(slices[i].path),
            slices[i].frame or 0,
        ),
    )
    uniq: list[int] = []
    dups: list[SliceHeader] = []
    for i in order:
        if uniq and abs(d[i] - d[uniq[-1]]) < _DUP_TOL_MM:
            dups.append(slices[i])
        else:
            uniq.append(i)
    if dups:
        warnings.append(
            f'duplicate slice positions: {len(dups)} image(s) at the same position as '
            f'another were skipped: {name_list(_labels(dups))}'
        )
    ss = [slices[i] for i in uniq]
    du = d[uniq]
    pu = ipp[uniq]

    if h0.pixel_spacing is None:
        dy = dx = 1.0
        warnings.append('PixelSpacing missing: assumed 1.0 mm in-plane')
    else:
        dy, dx = (float(v) for v in h0.pixel_spacing)

    if len(ss) == 1:
        dz = h0.thickness if h0.thickness and h0.thickness > 0 else None
        if dz is None:
            dz = 1.0
            warnings.append(
                'single slice without SliceThickness: slice spacing assumed 1.0 mm'
            )
        step = n * dz
        primary_z = [0]
        source_of = [0]
    else:
        diffs = np.diff(du)
        med = float(np.median(diffs))
        n_missing = sum(int(round(g / med)) - 1 for g in diffs if g > 1.5 * med)
        if n_missing > len(ss):
            # separate blocks rather than a few lost slices: keep the largest
            return _largest_block(slices, ss, diffs, med, warnings)
        primary_z = [0]
        source_of = [0]
        gap_msgs = []
        for i, gap in enumerate(diffs):
            missing = int(round(gap / med)) - 1 if gap > 1.5 * med else 0
            if missing > 0:
                z_prev = primary_z[-1]
                gap_msgs.append(
                    f'{gap:.3g} mm between positions {du[i]:.2f} and {du[i + 1]:.2f} '
                    f'({name_list(_labels([ss[i], ss[i + 1]]))}; {missing} slice(s) missing)'
                )
                for m in range(1, missing + 1):
                    # nearest neighbour: first half from below, second from above
                    source_of.append(i if m <= missing / 2 else i + 1)
                primary_z.append(z_prev + missing + 1)
            else:
                primary_z.append(primary_z[-1] + 1)
            source_of.append(i + 1)
        if gap_msgs:
            warnings.append(
                f'missing slices (gap > 1.5x the median spacing {med:.4g} mm): '
                + '; '.join(gap_msgs)
                + '; filled with copies of the nearest slice to keep the grid uniform'
            )
        regular = diffs[diffs <= 1.5 * med]
        tol = max(_DUP_TOL_MM, 0.01 * med)
        if regular.size and (regular.max() - regular.min()) > tol:
            warnings.append(
                f'non-uniform slice spacing: {regular.min():.4g} to {regular.max():.4g} mm '
                f'(median {med:.4g} mm); stacked on a uniform grid of the mean spacing'
            )
        nz_out = primary_z[-1] + 1
        step = (pu[-1] - pu[0]) / (nz_out - 1)
        dz = float(step @ n)

    # gantry tilt: slice positions move along a direction that is not the normal
    shear = step - (step @ n) * n
    tilt_deg = float(np.degrees(np.arctan2(np.linalg.norm(shear), step @ n)))
    tag = h0.tilt
    if tilt_deg > 0.01 or (tag is not None and abs(tag) > 0.01):
        tag_txt = f' (GantryDetectorTilt {tag:g} deg)' if tag is not None else ''
        if len(ss) > 1:
            warnings.append(
                f'gantry tilt: slices are sheared by {tilt_deg:.2f} deg{tag_txt}; '
                'the shear is recorded in the affine (z axis not perpendicular to the slices)'
            )
        else:
            warnings.append(
                f'gantry tilt{tag_txt}: single oblique slice, placed along its normal'
            )

    transpose, flip_y, flip_x = _in_plane(row_cos, col_cos)
    rows, cols = h0.rows, h0.cols
    # stored index (k, r, c) -> LPS; r runs along col_cos (dy), c along row_cos (dx)
    stored = np.eye(4)
    stored[:3, 0] = step
    stored[:3, 1] = col_cos * dy
    stored[:3, 2] = row_cos * dx
    stored[:3, 3] = pu[0]
    # output index (k, yo, xo) -> stored index (k, r, c)
    p = np.zeros((4, 4))
    p[0, 0] = 1.0
    p[3, 3] = 1.0
    if not transpose:
        ny, nx = rows, cols
        p[1, 1], p[1, 3] = (-1.0, rows - 1) if flip_y else (1.0, 0.0)
        p[2, 2], p[2, 3] = (-1.0, cols - 1) if flip_x else (1.0, 0.0)
    else:
        ny, nx = cols, rows
        p[2, 1], p[2, 3] = (-1.0, cols - 1) if flip_y else (1.0, 0.0)  # yo -> c
        p[1, 2], p[1, 3] = (-1.0, rows - 1) if flip_x else (1.0, 0.0)  # xo -> r
    affine = stored @ p
    spacing = (dz, dx, dy) if transpose else (dz, dy, dx)
    warnings.extend(check_spacing(spacing, h0.path.parent))
    return StackPlan(
        slices=ss,
        source_of=source_of,
        primary_z=primary_z,
        transpose=transpose,
        flip_y=flip_y,
        flip_x=flip_x,
        shape=(len(source_of), ny, nx),
        spacing=spacing,
        affine=affine,
        warnings=warnings,
    )


def _largest_block(all_slices, ss, diffs, med, warnings) -> StackPlan:
    """Plan only the largest gap-free run of ``ss`` (z-sorted, unique)."""
    cuts = [0, *[i + 1 for i, g in enumerate(diffs) if g > 1.5 * med], len(ss)]
    runs = [ss[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    best = max(runs, key=len)
    keep = {id(h) for h in best}
    dropped = [h for h in all_slices if id(h) not in keep]
    plan = plan_stack(best)
    msg = (
        f'slices form {len(runs)} separate blocks (gaps of up to {diffs.max():.4g} mm '
        f'at a median spacing of {med:.4g} mm); loaded the largest block of '
        f'{len(best)} slices and skipped {len(dropped)}: {name_list(_labels(dropped))}'
    )
    plan.warnings[:0] = [*warnings, msg]
    return plan


def _labels(hs: list[SliceHeader]) -> list[str]:
    return [
        h.path.name if h.frame is None else f'{h.path.name}[frame {h.frame}]'
        for h in hs
    ]
