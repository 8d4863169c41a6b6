"""Plausible CT geometry: spacings outside these ranges mean a wrong header, not a CT.

A 1000 mm slice step or PixelSpacing does not fail anywhere by itself: it gives
a heart box of 10⁵ ml. The loaders (DICOM and NIfTI) refuse such a volume with
one line instead, and warn where the spacing is real but beyond what the model
was trained on. The browser app (``web/app/dicom.js``) applies the same limits.
"""

from __future__ import annotations

from ..errors import CTLoadError

__all__ = ['PIXEL_SPACING_MM', 'SLICE_STEP_MM', 'SLICE_STEP_WARN_MM', 'check_spacing']

#: in-plane pixel spacing (mm) accepted: clinical CT is 0.2-1.5 mm, resampled
#: volumes up to a few mm
PIXEL_SPACING_MM = (0.05, 5.0)
#: distance between slices (mm) accepted
SLICE_STEP_MM = (0.05, 20.0)
#: slices further apart than this get a warning (the model saw 1-8 mm)
SLICE_STEP_WARN_MM = 10.0


def check_spacing(spacing, where) -> list[str]:
    """Refuse implausible ``(dz, dy, dx)`` spacing; return the warnings for plausible ones.

    Raises
    ------
    CTLoadError
        One line naming ``where``, the spacing and the accepted range.
    """
    dz, dy, dx = (float(v) for v in spacing)
    checks = (
        ('slice step (from the slice positions)', dz, SLICE_STEP_MM),
        ('pixel spacing (rows)', dy, PIXEL_SPACING_MM),
        ('pixel spacing (columns)', dx, PIXEL_SPACING_MM),
    )
    for name, v, (lo, hi) in checks:
        if not lo <= v <= hi:
            raise CTLoadError(
                f'{where}: {name} {v:.4g} mm is not plausible for a CT '
                f'(accepted {lo:g} to {hi:g} mm); the geometry in the header is wrong'
            )
    if dz > SLICE_STEP_WARN_MM:
        return [(
            f'slices are {dz:.4g} mm apart (more than {SLICE_STEP_WARN_MM:g} mm): the model saw '
            '1-8 mm slices, so the box faces along z are coarse; check them'
        )]
    return []
