"""napari/Qt shell of napari-heartbox (the only package, with the thin
``_reader``/``_writer``/``_widget``/``_sample_data`` modules, allowed to
import napari or Qt).

Public entry point for notebooks and scripts::

    from napari_heartbox._napari import attach_box_editor
    editor = attach_box_editor(viewer, image_layer, sector)

World coordinates in napari are ``(z, y, x)`` = (S, P, L) in mm: the CT's
LPS patient position with the axes listed in array order (see
:mod:`napari_heartbox._napari.layers`).
"""

from __future__ import annotations

__all__ = ['attach_box_editor']


def attach_box_editor(viewer, image_layer, sector=None, *, select=True):
    """Attach the editable heart box to ``image_layer`` and return it.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer showing the CT.
    image_layer : napari.layers.Image or str
        A 3D CT image layer (or its name).
    sector : Sector, optional
        The box to start with (e.g. from :func:`napari_heartbox.propose`);
        it becomes the proposal that *Reset* returns to.
    select : bool
        Select the handle layer so the box can be dragged at once.

    Returns
    -------
    BoxEditor
        ``editor.model`` is the :class:`~napari_heartbox.box_model.BoxModel`
        (source of truth); ``editor.model.sector`` is the current box.
    """
    from .box_editor import editor_for_layer

    if isinstance(image_layer, str):
        image_layer = viewer.layers[image_layer]
    editor = editor_for_layer(viewer, image_layer)
    if sector is not None:
        editor.model.set_proposal(sector)
    if select:
        viewer.layers.selection.active = editor.handles_layer
    return editor
