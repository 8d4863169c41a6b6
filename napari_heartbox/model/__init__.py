"""The heart model: ONNX graph runtime and post-processing to a Sector.

``propose(volume)`` runs the bundled model (``assets/heartbox.onnx``, checked
against ``assets/heartbox.card.json``) and returns the heart
:class:`~napari_heartbox.sector.Sector`. See ``docs/model.md``.
"""

from __future__ import annotations

from collections.abc import Callable

from .runtime import HeartModel

__all__ = ['HeartModel', 'propose']


def propose(
    volume,
    *,
    margin_mm: float | None = None,
    model: HeartModel | None = None,
    progress: Callable[[int, int], object] | None = None,
):
    """Find the heart sector of a CT volume.

    Parameters
    ----------
    volume : CTVolume or CTSeries
        int16 HU volume, ``(z, y, x)`` with z index 0 the most inferior slice;
        or a series opened with :func:`napari_heartbox.io.open_ct`, of which
        only the slices the model scores are read.
    margin_mm : float, optional
        Safety margin on every face in mm (default: the model card's
        ``postprocess.default_margin_mm``).
    model : HeartModel, optional
        Default: the bundled model (loaded once, session reused).
    progress : callable, optional
        ``progress(done_slices, total_slices)``.

    Returns
    -------
    Sector
        ``found=False`` with a low confidence when no heart is in view.

    Raises
    ------
    ModelError
        When no model is bundled, or its file does not match its card.
    """
    model = model or HeartModel.default()
    return model.propose(volume, margin_mm=margin_mm, progress=progress)
