"""napari/Qt shell of napari-heartbox (the only package, with the thin
``_reader``/``_writer``/``_widget``/``_sample_data`` modules, allowed to
import napari or Qt).

Public entry points for notebooks and scripts (also importable from the
top-level package, lazily)::

    from napari_heartbox import add_ct_layer, attach_box_editor
    layer = add_ct_layer(viewer, volume)            # CT placed in world mm
    editor = attach_box_editor(viewer, layer, sector)
    editor.model.sector                             # the current (edited) box
    editor.show_view('3D')                          # as the dock's view buttons do

World coordinates in napari are ``(z, y, x)`` = (S, P, L) in mm: the CT's
LPS patient position with the axes listed in array order (see
:mod:`napari_heartbox._napari.layers`).
"""

from __future__ import annotations

__all__ = ['add_ct_layer', 'attach_box_editor']


def add_ct_layer(viewer, volume, name: str = 'CT', **kwargs):
    """Add a :class:`~napari_heartbox.volume.CTVolume` as an Image layer.

    The layer is placed in world mm (axes z, y, x = patient S, P, L), with
    the mediastinal window; see :mod:`napari_heartbox._napari.layers`.
    Returns the layer.
    """
    from .layers import layer_data_from_volume

    data, meta, _ = layer_data_from_volume(volume, name=name, **kwargs)
    return viewer.add_image(data, **meta)


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
        Make the layer that edits the box in the current view active (the
        rectangle in 2D, the face handles in 3D), so it can be dragged at once.

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
        if editor.model.has_box:
            editor.activate()
        else:
            viewer.layers.selection.active = editor.handles_layer
    return editor
