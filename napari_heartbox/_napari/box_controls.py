"""Controls shared by the "Heart sector" and worklist dock widgets.

:class:`BoxControls` is one magicgui ``Container``: the view buttons
(Axial, Coronal, Sagittal, 3D), a one-line editing hint, a range slider per
axis (half-open voxel ranges ``[start, stop)`` in array order ``z, y, x``)
and Undo / Redo / Reset. It edits whatever box the owning widget says is
current (a callable returning the CT image layer and its
:class:`~napari_heartbox._napari.box_editor.BoxEditor`, or ``(None, None)``).

:func:`show_view` also sets the CT layer's rendering for the view: in 3D an
attenuated MIP with a soft-tissue-to-contrast window taken from the data (the
heart's contrast-filled chambers stand out, air and fat vanish), in 2D the
window the layer had before.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from magicgui.widgets import Container, Label, PushButton, RangeSlider

from ..box_model import AXES
from ..volume import strided_sample

__all__ = [
    'EDIT_HINT',
    'VIEWS',
    'BoxControls',
    'camera_of',
    'ct_3d_window',
    'current_view',
    'scrolled_body',
    'show_view',
    'wrap_label',
]

#: view name -> (dims.order, vertical screen orientation, ndisplay); the
#: vertical orientation makes superior (coronal, sagittal) or anterior
#: (axial) point up on screen
VIEWS = {
    'Axial': ((0, 1, 2), 'down', 2),
    'Coronal': ((1, 0, 2), 'up', 2),
    'Sagittal': ((2, 0, 1), 'up', 2),
    '3D': ((0, 1, 2), 'down', 3),
}
#: 3D camera, in data axes (z, y, x): looking towards +y (anterior →
#: posterior), tilted, with +z (superior) up
VIEW_3D_DIRECTION = (-0.3, 0.8, 0.5)
VIEW_3D_UP = (1.0, 0.0, 0.0)
ZOOM_3D = 0.8
#: 3D rendering of a CT: attenuated MIP (per unit of normalised intensity)
ATTENUATION_3D = 0.1
#: the 3D window in HU, clipped to what the data holds: fat and lung vanish, soft tissue
#: is grey, contrast blood and bone are bright (compared by eye on the CPTAC CT against
#: (-300, 500) and (0, 600), and an iso surface at 150 HU, where the ribs hide the heart)
WINDOW_3D_HU = (-100.0, 400.0)

EDIT_HINT = {
    2: 'Drag the rectangle\'s edges or corners, or a slider.',
    3: 'Drag a face handle (z blue, y green, x red), or a slider.',
}

SLIDER_HEIGHT = 46  # px: the value labels above the track, and the track
_SAVED_2D = 'heartbox_2d_display'  # layer.metadata key: the 2D window to restore


def wrap_label(label) -> None:
    """Word-wrap a magicgui ``Label`` over the full width of its dock.

    A word-wrapped QLabel otherwise picks a "balanced" narrow width for short
    text (a two-word status split over two lines).
    """
    from qtpy.QtWidgets import QSizePolicy

    label.native.setWordWrap(True)
    label.native.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)


def scrolled_body(container, widgets, width: int):
    """Put ``widgets`` in a vertically scrolling body of ``container`` (a dock widget).

    On a short screen the dock scrolls instead of squashing its sliders to
    their value labels; the body is at most ``width`` px wide, so text that
    appears later (a proposal's numbers, long paths) wraps instead of
    widening the dock, which would shrink and clip the canvas. (magicgui's
    own ``scrollable=True`` does not survive docking: napari docks
    ``container.native``, the widget inside the scroll area.)

    Returns the body (a ``Container``; keep a reference to it).
    """
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QFrame, QScrollArea

    body = Container(widgets=widgets, labels=False)
    body.native.setMaximumWidth(width)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    scroll.setWidget(body.native)
    layout = container.native.layout()
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(scroll)
    return body


def camera_of(viewer):
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9)."""
    scene = getattr(viewer, 'scene', None)
    return scene.camera if scene is not None else viewer.camera


def ct_3d_window(data) -> tuple[float, float]:
    """Contrast limits for the 3D view of CT ``data`` (HU): ``WINDOW_3D_HU`` within the data.

    Taken from a strided sample (at most about a million voxels): the window
    is clipped to the sample's 1st–99.9th percentiles, and is those
    percentiles when the data do not overlap it (e.g. a layer of raw stored
    values).
    """
    sample = np.asarray(strided_sample(np.asarray(data)), np.float32)
    p_lo, p_hi = (float(v) for v in np.percentile(sample, (1.0, 99.9)))
    lo, hi = max(WINDOW_3D_HU[0], p_lo), min(WINDOW_3D_HU[1], p_hi)
    if hi <= lo:
        lo, hi = p_lo, p_hi if p_hi > p_lo else p_lo + 1.0
    return lo, hi


def current_view(viewer) -> str:
    """The name in :data:`VIEWS` that matches the viewer's dims (Axial if none)."""
    order = tuple(int(d) for d in viewer.dims.order)
    for name, (o, _v, nd) in VIEWS.items():
        if nd == viewer.dims.ndisplay and (nd == 3 or o == order):
            return name
    return 'Axial'


def _set_rendering(layer, ndisplay: int) -> None:
    md = layer.metadata
    if ndisplay == 3:
        if _SAVED_2D not in md:
            md[_SAVED_2D] = {'contrast_limits': tuple(layer.contrast_limits)}
        layer.rendering = 'attenuated_mip'
        layer.attenuation = ATTENUATION_3D
        layer.contrast_limits = ct_3d_window(layer.data)
    elif _SAVED_2D in md:
        layer.contrast_limits = md.pop(_SAVED_2D)['contrast_limits']


def show_view(viewer, layer, editor, view: str) -> None:
    """Show ``layer`` axial, coronal, sagittal or in 3D, centred on the box.

    2D views put patient superior up (coronal, sagittal) and anterior up
    (axial), with patient left on the screen's right (radiological); 3D
    looks at the chest from the front (oblique), superior up, with the CT as
    an attenuated MIP (:func:`ct_3d_window`). The camera is re-fitted to the
    canvas, and the layer that edits the box in that view is made active
    (:meth:`~napari_heartbox._napari.box_editor.BoxEditor.activate`).
    """
    order, vertical, ndisplay = VIEWS[view]
    viewer.dims.ndisplay = ndisplay
    viewer.dims.order = order
    if ndisplay == 2:
        camera_of(viewer).orientation2d = (vertical, 'right')
    if layer is not None:
        _set_rendering(layer, ndisplay)
    model = editor.model if editor is not None else None
    if layer is not None and model is not None and model.has_box:
        # the centre voxel (an integer index: a point between two voxels slices no
        # shape, since napari keys a rectangle to its integer plane)
        centre = [(a + b - 1) // 2 for a, b in model.sector.ranges]
        world = layer.data_to_world(centre)
        for axis in range(3):
            viewer.dims.set_point(axis, world[axis])
    viewer.reset_view()
    if ndisplay == 3:  # from the front, a little from the left and above
        camera = camera_of(viewer)
        camera.set_view_direction(VIEW_3D_DIRECTION, VIEW_3D_UP)
        camera.zoom *= ZOOM_3D  # the oblique view of the fitted volume is wider than the fit
    if editor is not None and not editor.closed:
        editor.activate()


def _hide_edge_labels(slider) -> None:
    try:
        from superqt import QLabeledRangeSlider

        mode = QLabeledRangeSlider.EdgeLabelMode.NoLabel
        slider.native.setEdgeLabelMode(mode)
    except (ImportError, AttributeError):
        pass


class BoxControls(Container):
    """View buttons, editing hint, axis sliders and Undo / Redo / Reset.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    current : callable
        ``current() -> (image_layer, editor)`` of the box being edited, or
        ``(None, None)``.
    """

    def __init__(self, viewer, current: Callable[[], tuple]):
        super().__init__(labels=False)
        self.viewer = viewer
        self._current = current
        self._syncing = False
        self.view_btns = {v: PushButton(text=v) for v in VIEWS}
        self.edit_hint = Label(value='')
        wrap_label(self.edit_hint)
        self.sliders = [
            RangeSlider(label=f'{a} [start, stop)', min=0, max=1, value=(0, 1), enabled=False)
            for a in AXES
        ]
        self.undo_btn = PushButton(text='Undo', enabled=False)
        self.redo_btn = PushButton(text='Redo', enabled=False)
        self.reset_btn = PushButton(text='Reset to proposal', enabled=False)
        row = lambda *ws: Container(widgets=ws, layout='horizontal', labels=False)  # noqa: E731
        self.extend(
            [
                row(*self.view_btns.values()),
                self.edit_hint,
                Container(widgets=self.sliders),
                row(self.undo_btn, self.redo_btn, self.reset_btn),
            ]
        )
        for slider in self.sliders:  # the min/max edge labels only add noise
            _hide_edge_labels(slider)
            # never squeezed to their value labels when the dock is short of height
            slider.native.setMinimumHeight(SLIDER_HEIGHT)
        for v, b in self.view_btns.items():
            b.changed.connect(lambda _=None, v=v: self.show_view(v))
        self.undo_btn.changed.connect(lambda: self.model and self.model.undo())
        self.redo_btn.changed.connect(lambda: self.model and self.model.redo())
        self.reset_btn.changed.connect(lambda: self.model and self.model.reset())
        for axis, s in enumerate(self.sliders):
            s.changed.connect(lambda v, a=axis: self._on_slider(a, v))
            released = getattr(s.native, 'sliderReleased', None)
            if released is not None:
                released.connect(lambda: self.model and self.model.end_coalesce())
        viewer.dims.events.ndisplay.connect(self._update_hint)

    @property
    def model(self):
        """The :class:`~napari_heartbox.box_model.BoxModel` being edited, or None."""
        _layer, editor = self._current()
        return editor.model if editor is not None and not editor.closed else None

    def show_view(self, view: str) -> None:
        """:func:`show_view` on the current box."""
        layer, editor = self._current()
        show_view(self.viewer, layer, editor, view)
        self._update_hint()

    def _update_hint(self, event=None) -> None:
        model = self.model
        has = model is not None and model.has_box
        self.edit_hint.value = EDIT_HINT[self.viewer.dims.ndisplay] if has else ''

    def _on_slider(self, axis, value):
        if self._syncing or self.model is None or not self.model.has_box:
            return
        a, b = (int(round(v)) for v in value)
        self.model.set_range(axis, a, b, coalesce=f'slider-{axis}')

    def refresh(self) -> None:
        """Sync the sliders and buttons with the current box."""
        model = self.model
        sector = model.sector if model is not None else None
        has_box = model is not None and model.has_box
        self.undo_btn.enabled = bool(model and model.can_undo)
        self.redo_btn.enabled = bool(model and model.can_redo)
        self.reset_btn.enabled = bool(model and model.proposal is not None and model.is_corrected)
        self._update_hint()
        self._syncing = True
        try:
            for axis, s in enumerate(self.sliders):
                s.enabled = has_box
                if has_box:
                    n = sector.grid.shape[axis]
                    if s.max != n:
                        s.max = n
                    if tuple(s.value) != sector.ranges[axis]:
                        s.value = sector.ranges[axis]
        finally:
            self._syncing = False
