"""The editable heart box in a napari viewer: 2D rectangle + 3D face handles.

One :class:`~napari_heartbox.box_model.BoxModel` is the source of truth.
Two helper layers are *views* of it and write edits back to it:

* ``"heart box: <image>"`` — a Points layer with six **face handles**
  (handle ``i`` is face ``(axis=i // 2, side=i % 2)``, see
  :mod:`napari_heartbox.box_model`). A handle sits on the centre of the
  boundary voxel of its face (low face: voxel ``start``, high face: voxel
  ``stop - 1``) and at the box centre on the other two axes. Dragging a
  handle (in 2D or 3D) moves only its own face along its own axis; the
  off-axis part of the drag is discarded. In 3D the layer's
  **bounding-box overlay** is the wireframe: napari pads the handles'
  extent by half a voxel, which puts it exactly on the voxel edges of the
  box.
* ``"heart box 2D: <image>"`` — a Shapes layer holding **one rectangle**
  in the displayed plane (axial, coronal or sagittal, from
  ``viewer.dims.order``), drawn at voxel edges (``start - 0.5`` to
  ``stop - 0.5``) when the current slice cuts the box. It is edited with
  napari's own select/resize handles; after each edit the two displayed
  ranges are written to the model and the rectangle is re-snapped
  axis-aligned (which also undoes any rotation).

Both layers copy the CT layer's ``scale``, ``translate``, ``rotate``,
``shear`` and ``affine`` *at creation* (so adding them never shifts the dims
slider) and therefore work in the CT's **data** (voxel index) coordinates.

The role comes first in both names, so the layer list (which elides the
middle of long names) tells them apart.

:meth:`BoxEditor.activate` makes the layer that edits the box in the
current view the active one, in select mode: in 2D the rectangle, selected,
so its resize handles show; in 3D the face handles.

Keyboard, with the handle layer active: ``]`` / ``[`` move the selected
face(s) by +1 / -1 voxel along their axis, ``Shift-]`` / ``Shift-[`` by 5;
``Control-Z`` / ``Control-Shift-Z`` undo / redo the box (also with the
rectangle layer active).
"""

from __future__ import annotations

import numpy as np

from ..box_model import BoxModel
from ..sector import Sector
from .layers import volume_from_layer

__all__ = [
    'HANDLE_COLORS',
    'BoxEditor',
    'editor_for_layer',
    'handle_positions',
    'rectangle_for_plane',
]

# one editor per CT layer, shared by the dock widgets and notebook calls
_EDITORS: dict[int, BoxEditor] = {}


def editor_for_layer(viewer, image_layer, *, create: bool = True):
    """The :class:`BoxEditor` of ``image_layer`` (made on first use).

    Every entry point (the "Heart sector" widget, the worklist,
    :func:`~napari_heartbox._napari.attach_box_editor`) goes through this,
    so one CT layer never gets two competing boxes.
    """
    ed = _EDITORS.get(id(image_layer))
    if ed is not None and ed.image_layer is image_layer and not ed.closed:
        return ed
    if not create:
        return None
    ed = BoxEditor(viewer, image_layer)
    _EDITORS[id(image_layer)] = ed
    return ed


#: face-handle colours per axis (z, y, x); the wireframe is yellow
HANDLE_COLORS = ('#3d8bfd', '#35c46a', '#f0504a')
WIRE_COLOR = 'yellow'


def handle_positions(sector: Sector) -> np.ndarray:
    """The six face-handle positions ``(6, 3)`` in voxel index coordinates.

    Row ``2 * axis + side``: on ``axis`` at the boundary voxel centre
    (``start`` for side 0, ``stop - 1`` for side 1); elsewhere at the box
    centre ``(start + stop - 1) / 2``.
    """
    centre = np.array([(a + b - 1) / 2.0 for a, b in sector.ranges])
    pts = np.repeat(centre[None, :], 6, axis=0)
    for axis, (a, b) in enumerate(sector.ranges):
        pts[2 * axis, axis] = a
        pts[2 * axis + 1, axis] = b - 1
    return pts


def rectangle_for_plane(sector: Sector, displayed: tuple[int, int], slice_index: int):
    """The box's rectangle ``(4, 3)`` in the plane ``axis k = slice_index``.

    ``displayed`` are the two displayed data axes; ``k`` is the third one.
    Corners are at voxel edges. Returns None when the slice does not cut
    the box.
    """
    (k,) = {0, 1, 2} - set(displayed)
    a, b = sector.ranges[k]
    if not a <= slice_index < b:
        return None
    r, c = displayed
    (r0, r1), (c0, c1) = sector.ranges[r], sector.ranges[c]
    rect = np.zeros((4, 3))
    rect[:, k] = slice_index
    rect[:, r] = [r0 - 0.5, r0 - 0.5, r1 - 0.5, r1 - 0.5]
    rect[:, c] = [c0 - 0.5, c1 - 0.5, c1 - 0.5, c0 - 0.5]
    return rect


class BoxEditor:
    """Shows a :class:`BoxModel` on a CT layer and lets the user edit it.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    image_layer : napari.layers.Image
        The 3D CT layer the box belongs to.
    model : BoxModel, optional
        An existing model (a new, empty one on the CT grid by default).

    Attributes
    ----------
    model : BoxModel
        The source of truth.
    handles_layer : napari.layers.Points
        The six face handles (and the wireframe overlay).
    rect_layer : napari.layers.Shapes
        The 2D rectangle in the displayed plane.
    """

    def __init__(self, viewer, image_layer, model: BoxModel | None = None):
        self.viewer = viewer
        self.image_layer = image_layer
        if model is None:
            model = BoxModel(volume_from_layer(image_layer).grid)
        self.model = model
        self.closed = False
        self._updating = False
        name = f'heart box: {image_layer.name}'
        tf = {
            'scale': image_layer.scale,
            'translate': image_layer.translate,
            'rotate': image_layer.rotate,
            'shear': image_layer.shear,
            'affine': image_layer.affine,
            'units': image_layer.units,
            'axis_labels': image_layer.axis_labels,
        }
        vox = float(min(image_layer.scale))
        self.handles_layer = viewer.add_points(
            np.empty((0, 3)),
            ndim=3,
            name=name,
            size=max(6.0 / vox, 3.0),  # ~6 mm handles, in data units
            face_color='white',
            border_color='black',
            out_of_slice_display=False,
            metadata={'heartbox_role': 'handles'},
            **tf,
        )
        self.rect_layer = viewer.add_shapes(
            None,
            ndim=3,
            name=f'heart box 2D: {image_layer.name}',
            edge_color=WIRE_COLOR,
            face_color='transparent',
            # data units: thin enough on the coarse (slice) axis of coronal views
            edge_width=1.0,
            metadata={'heartbox_role': 'rectangle'},
            **tf,
        )
        bb = self.handles_layer.bounding_box
        bb.points = False
        bb.line_color = WIRE_COLOR
        bb.line_thickness = 2
        bb.visible = False

        self.model.changed.connect(self._on_model_changed)
        self.handles_layer.events.data.connect(self._on_handles_data)
        self.rect_layer.events.data.connect(self._on_rect_data)
        self.handles_layer.mouse_drag_callbacks.append(self._end_drag_on_release)
        self.rect_layer.mouse_drag_callbacks.append(self._end_drag_on_release)
        for ev in ('point', 'order', 'ndisplay'):
            getattr(viewer.dims.events, ev).connect(self._refresh_rect)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        self._bind_keys()
        self._on_model_changed(self.model.sector)

    # --------------------------------------------------------------- views
    @property
    def layers(self) -> tuple:
        """The helper layers (handles, rectangle)."""
        return (self.handles_layer, self.rect_layer)

    def current_plane(self) -> tuple[tuple[int, int], int] | None:
        """``((row_axis, col_axis), slice_index)`` of the 2D view, or None in 3D."""
        if self.viewer.dims.ndisplay != 2:
            return None
        displayed = tuple(int(d) for d in self.viewer.dims.displayed)[-2:]
        (k,) = {0, 1, 2} - set(displayed)
        pos = self.image_layer.world_to_data(self.viewer.dims.point)
        return displayed, int(round(float(pos[k])))

    def _on_model_changed(self, sector=None):
        # the handle layer carries the sector file content for the writer
        m = self.model
        self.handles_layer.metadata['heartbox_sector_file'] = {
            'corrected': m.sector.to_dict() if m.sector is not None else None,
            'proposal': m.proposal.to_dict() if m.proposal is not None else None,
        }
        self._refresh_handles()
        self._refresh_rect()

    def _refresh_handles(self):
        s = self.model.sector
        self._updating = True
        try:
            if s is None or not s.found:
                self.handles_layer.data = np.empty((0, 3))
                self.handles_layer.bounding_box.visible = False
                return
            pts = handle_positions(s)
            if len(self.handles_layer.data) != 6:
                self.handles_layer.data = pts
                self.handles_layer.face_color = [
                    HANDLE_COLORS[i // 2] for i in range(6)
                ]
            elif not np.array_equal(self.handles_layer.data, pts):
                self.handles_layer.data = pts
            self._update_wireframe()
        finally:
            self._updating = False

    def _update_wireframe(self):
        # the wireframe is the 3D view of the box; in 2D the rectangle is
        # (a projected wireframe would also show on slices outside the box)
        self.handles_layer.bounding_box.visible = bool(
            self.model.has_box and self.viewer.dims.ndisplay == 3
        )

    def _refresh_rect(self, event=None):
        self._update_wireframe()
        s = self.model.sector
        plane = self.current_plane()
        rect = None
        if s is not None and s.found and plane is not None:
            rect = rectangle_for_plane(s, *plane)
        self._updating = True
        try:
            current = self.rect_layer.data
            if rect is None:
                if len(current):
                    self.rect_layer.data = []
            elif len(current) != 1 or not np.allclose(current[0], rect):
                self.rect_layer.selected_data = set()
                self.rect_layer.data = []
                self.rect_layer.add_rectangles([rect])
                if self._editing_rect():  # keep its resize handles on show
                    self.rect_layer.selected_data = {0}
        finally:
            self._updating = False

    def _editing_rect(self) -> bool:
        return (
            self.viewer.layers.selection.active is self.rect_layer
            and str(self.rect_layer.mode) == 'select'
        )

    def show_view(self, view: str) -> None:
        """Show the CT ``'Axial'``, ``'Coronal'``, ``'Sagittal'`` or ``'3D'``, centred on the box.

        What the dock's view buttons do
        (:func:`napari_heartbox._napari.box_controls.show_view`): radiological
        2D orientation, in 3D an attenuated MIP with a window from the data,
        the camera re-fitted, and this box made editable (:meth:`activate`).
        """
        from .box_controls import show_view

        show_view(self.viewer, self.image_layer, self, view)

    def activate(self) -> None:
        """Make the box editable in the current view: the layer that edits it active.

        In 2D the rectangle layer, in select mode with the rectangle selected
        (its edges and corners show resize handles); in 3D the face-handle
        layer in select mode (drag a coloured handle). Does nothing without a
        box.
        """
        if not self.model.has_box:
            return
        if self.viewer.dims.ndisplay == 2 and len(self.rect_layer.data):
            self.viewer.layers.selection.active = self.rect_layer
            self.rect_layer.mode = 'select'
            self.rect_layer.selected_data = {0}
        else:
            self.viewer.layers.selection.active = self.handles_layer
            self.handles_layer.mode = 'select'

    # --------------------------------------------------------- edits back
    def _on_handles_data(self, event):
        if self._updating:
            return
        action = str(getattr(event, 'action', 'changed'))
        if action not in ('changed', 'added', 'removed'):
            return
        s = self.model.sector
        data = np.asarray(self.handles_layer.data)
        if s is None or not s.found or action != 'changed' or len(data) != 6:
            # added/removed points: restore the six handles
            self._refresh_handles()
            return
        indices = getattr(event, 'data_indices', None) or range(6)
        ranges = [list(r) for r in s.ranges]
        for i in indices:
            axis, side = divmod(int(i), 2)
            p = int(round(float(data[i, axis])))
            n = s.grid.shape[axis]
            if side == 0:
                ranges[axis][0] = min(max(p, 0), ranges[axis][1] - 1)
            else:
                ranges[axis][1] = max(min(p + 1, n), ranges[axis][0] + 1)
        changed = self.model.set_sector(
            s.with_ranges(*[tuple(r) for r in ranges]), coalesce='handle-drag'
        )
        if not changed:  # snap the handle back onto its axis
            self._refresh_handles()

    def _on_rect_data(self, event):
        if self._updating:
            return
        action = str(getattr(event, 'action', 'changed'))
        if action not in ('changed', 'added', 'removed'):
            return
        s = self.model.sector
        plane = self.current_plane()
        shapes = self.rect_layer.data
        if s is None or not s.found or plane is None or not len(shapes):
            self._refresh_rect()
            return
        verts = np.asarray(shapes[-1])
        ranges = list(s.ranges)
        for axis in plane[0]:
            n = s.grid.shape[axis]
            lo = int(round(float(verts[:, axis].min()) + 0.5))
            hi = int(round(float(verts[:, axis].max()) + 0.5))
            lo = min(max(lo, 0), n - 1)
            hi = max(min(hi, n), lo + 1)
            ranges[axis] = (lo, hi)
        if not self.model.set_sector(s.with_ranges(*ranges)):
            self._refresh_rect()  # re-snap (e.g. after a rotation)
        else:
            self.model.end_coalesce()

    def _end_drag_on_release(self, layer, event):
        yield
        while event.type == 'mouse_move':
            yield
        self.model.end_coalesce()
        self._refresh_handles()

    # ------------------------------------------------------------ keyboard
    def nudge_selected(self, delta: int) -> bool:
        """Move the selected face handles by ``delta`` voxels along their axis."""
        if not self.model.has_box:
            return False
        changed = False
        for i in sorted(self.handles_layer.selected_data):
            axis, side = divmod(int(i), 2)
            changed |= self.model.nudge(axis, side, delta)
        return changed

    def _bind_keys(self):
        layer = self.handles_layer
        for key, delta in ((']', 1), ('[', -1), ('Shift-]', 5), ('Shift-[', -5)):
            layer.bind_key(
                key, lambda _l, d=delta: self.nudge_selected(d), overwrite=True
            )
        for lay in (layer, self.rect_layer):
            lay.bind_key('Control-z', lambda _l: self.model.undo(), overwrite=True)
            lay.bind_key('Control-Shift-z', lambda _l: self.model.redo(), overwrite=True)

    # ------------------------------------------------------------ lifetime
    def _on_layer_removed(self, event):
        if event.value is self.image_layer:
            self.close()

    def close(self):
        """Disconnect from the viewer and remove the helper layers."""
        if self.closed:
            return
        self.closed = True
        if _EDITORS.get(id(self.image_layer)) is self:
            del _EDITORS[id(self.image_layer)]
        self.model.changed.disconnect(self._on_model_changed)
        for ev in ('point', 'order', 'ndisplay'):
            getattr(self.viewer.dims.events, ev).disconnect(self._refresh_rect)
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)
        for layer in self.layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
