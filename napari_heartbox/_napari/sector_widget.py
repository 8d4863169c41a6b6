"""The "Heart sector" dock widget: propose, edit, crop, save and load a box.

A magicgui ``Container``: choose the CT layer, press **Propose** (runs in a
``thread_worker``; errors become napari notifications), read the box in
voxels and mm, edit it with the range sliders, the 2D rectangle or the 3D
face handles (see :mod:`napari_heartbox._napari.box_editor`), undo/redo,
reset to the proposal, crop, save and load sector files.

Numbers shown: voxel ranges are half-open ``[start, stop)`` in array order
``(z, y, x)``; the patient corners are DICOM **LPS** mm ``(x, y, z)`` at
voxel **edges**.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import (
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    PushButton,
)

from ..errors import HeartboxError, ModelError
from ..sector_file import read_sector_file, write_sector_file
from .box_controls import (
    VIEWS,
    BoxControls,
    camera_of,
    current_view,
    scrolled_body,
    wrap_label,
)
from .box_editor import BoxEditor, editor_for_layer
from .layers import (
    ct_geometry_problem,
    ct_layer_problem,
    layer_data_from_volume,
    volume_from_layer,
)
from .model_picker import ModelPicker

if TYPE_CHECKING:  # pragma: no cover
    import napari

#: dock width (px): wide enough for the buttons, so longer text wraps
DOCK_WIDTH = 380  # px

__all__ = [
    'VIEWS',
    'HeartSectorWidget',
    'camera_of',
    'describe_sector',
    'propose_steps',
    'run_propose',
]

def run_propose(volume, margin_mm, progress=None, model=None):
    """Call :func:`napari_heartbox.propose` (``model`` None: the bundled one), mapping a missing model to ModelError."""
    try:
        from ..model import propose
    except ImportError as e:
        raise ModelError(
            f'no model bundled yet: napari_heartbox.model is not available ({e})'
        ) from None
    return propose(volume, margin_mm=margin_mm, progress=progress, model=model)


def propose_steps(volume, margin_mm, model=None):
    """Generator for a napari worker: yields once per slice, returns ``(sector, error)``.

    :func:`run_propose` runs in a helper thread and reports
    ``progress(done_slices, total_slices)``; each newly finished slice is one
    ``yield`` (one step of the napari progress bar, whose total is the slice
    count). Cancelling the worker stops at the next yield; the result is then
    dropped. An exception is *returned* as ``(None, error)``, not raised:
    superqt's generator worker swallows a raised ``RuntimeError`` subclass
    (such as :class:`~napari_heartbox.errors.ModelError`) without emitting
    ``errored`` or ``finished``.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue()
    result: dict = {}

    def target():
        try:
            result['sector'] = run_propose(
                volume, margin_mm, progress=lambda done, total: q.put(int(done)), model=model
            )
        except Exception as e:  # noqa: BLE001 - re-raised in the worker below
            result['error'] = e
        finally:
            q.put(None)

    threading.Thread(target=target, name='heartbox-propose', daemon=True).start()
    shown = 0
    while (done := q.get()) is not None:
        for _ in range(max(0, done - shown)):
            yield
        shown = max(shown, done)
    return result.get('sector'), result.get('error')


def describe_sector(sector, *, mm: bool = True) -> str:
    """Multi-line text: voxel ranges, size in mm and LPS corners.

    ``mm=False`` (a layer without CT geometry): voxel ranges only, since its
    millimetres would be voxel indices.
    """
    if sector is None:
        return 'No box yet: press Propose (or Draw box).'
    if not sector.found:
        return f'No heart found (confidence {sector.confidence:.2f}).'
    (z0, z1), (y0, y1), (x0, x1) = sector.ranges
    lines = [f'voxels  z [{z0}, {z1})  y [{y0}, {y1})  x [{x0}, {x1})']
    if not mm:
        return '\n'.join([*lines, 'no mm: this layer has no CT geometry'])
    sz = sector.size_mm
    lo, hi = sector.patient_mm()
    return '\n'.join(
        [
            *lines,
            f'size  {sz[0]:.0f} × {sz[1]:.0f} × {sz[2]:.0f} mm (z, y, x), {sector.volume_ml:.0f} mL',
            'LPS min ({:.1f}, {:.1f}, {:.1f}) mm'.format(*lo),
            'LPS max ({:.1f}, {:.1f}, {:.1f}) mm'.format(*hi),
        ]
    )


class HeartSectorWidget(Container):
    """Dock widget "Heart sector".

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=False)
        self.viewer = viewer
        self.editors: dict[int, BoxEditor] = {}  # id(image layer) -> editor
        self._worker = None
        self.slices_done = 0
        self._cancelled = False

        self.ct = ComboBox(label='CT', choices=self._ct_choices, nullable=True)
        self.hint = Label(value='')
        self.margin = FloatSpinBox(
            label='margin (mm)', value=_default_margin(), min=0.0, max=50.0, step=1.0
        )
        self.model_picker = ModelPicker()
        self.propose_btn = PushButton(text='Propose')
        self.cancel_btn = PushButton(text='Cancel', enabled=False)
        self.status = Label(value='')
        self.info = Label(value='')
        self.controls = BoxControls(viewer, lambda: (self.ct.value, self._editor_if_any()))
        # the shared controls, under the names the widget always had
        self.sliders = self.controls.sliders
        self.undo_btn, self.redo_btn = self.controls.undo_btn, self.controls.redo_btn
        self.reset_btn, self.view_btns = self.controls.reset_btn, self.controls.view_btns
        self.draw_btn = PushButton(text='Draw box', enabled=False)
        self.crop_btn = PushButton(text='Crop', enabled=False)
        self.save_btn = PushButton(text='Save sector…', enabled=False)
        self.load_btn = PushButton(text='Load sector…', enabled=False)
        self.export_web_btn = PushButton(text='Export web app…')

        row = lambda *ws: Container(widgets=ws, layout='horizontal', labels=False)  # noqa: E731
        self._body = scrolled_body(
            self,
            [
                Container(widgets=[self.ct, self.margin, self.model_picker.path]),
                self.model_picker.note,
                self.hint,
                row(self.propose_btn, self.cancel_btn),
                self.status,
                self.info,
                self.controls,
                row(self.draw_btn, self.crop_btn),
                row(self.save_btn, self.load_btn),
                self.export_web_btn,
            ],
            DOCK_WIDTH,
        )
        for label in (self.hint, self.status, self.info):
            wrap_label(label)
        # a fixed width: text appearing after Propose wraps instead of widening the
        # dock (which would shrink and clip the canvas)
        self.ct.changed.connect(self._on_ct_changed)
        self.propose_btn.changed.connect(self.propose)
        self.cancel_btn.changed.connect(self.cancel)
        self.draw_btn.changed.connect(self.draw_box)
        self.crop_btn.changed.connect(self.crop)
        self.save_btn.changed.connect(self._save_dialog)
        self.load_btn.changed.connect(self._load_dialog)
        self.export_web_btn.changed.connect(self._export_web_dialog)
        viewer.layers.events.inserted.connect(self._on_inserted)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        self._refresh_choices()

    # ------------------------------------------------------------- layers
    def _ct_choices(self, _widget=None):
        return [
            (layer.name, layer)
            for layer in self.viewer.layers
            if ct_layer_problem(layer) is None
            and layer.metadata.get('heartbox_role') is None
        ]

    def _refresh_choices(self, event=None):
        self.ct.reset_choices()
        if self.ct.value is None and self.ct.choices:
            self.ct.value = self.ct.choices[-1]
        self._update_hint()
        self._update_ui()

    def _on_inserted(self, event):
        self._refresh_choices()
        md = event.value.metadata if isinstance(event.value.metadata, dict) else {}
        path = md.get('heartbox_sector_path')
        if path and self.ct.value is not None:
            # a sector file opened with the reader: load it onto the chosen
            # CT (after napari has finished inserting the layer)
            from qtpy.QtCore import QTimer

            QTimer.singleShot(0, lambda: self._adopt_sector_layer(event.value, path))

    def _adopt_sector_layer(self, layer, path):
        if self.load_sector(path) and layer in self.viewer.layers:
            self.viewer.layers.remove(layer)

    def _on_layer_removed(self, event):
        self.editors.pop(id(event.value), None)
        self._refresh_choices()

    def _update_hint(self):
        if self.ct.value is not None:
            # a CT without its geometry (napari's own reader: scale 1, no DICOM
            # position): boxes work in voxels, but its "mm" would be voxel indices
            self.hint.value = ct_geometry_problem(self.ct.value) or ''
            return
        others = [
            ct_layer_problem(layer)
            for layer in self.viewer.layers
            if type(layer).__name__ == 'Image'
        ]
        self.hint.value = others[-1] if others else ct_layer_problem(None)

    @property
    def editor(self) -> BoxEditor | None:
        """The box editor of the chosen CT layer (created on first use)."""
        layer = self.ct.value
        if layer is None:
            return None
        ed = self.editors.get(id(layer))
        if ed is None or ed.closed:
            ed = editor_for_layer(self.viewer, layer)
            ed.model.changed.connect(self._on_model_changed)
            self.editors[id(layer)] = ed
        return ed

    def _editor_if_any(self):
        """The chosen CT's editor if it has one (never creates one)."""
        layer = self.ct.value
        if layer is None or self.model is None:
            return None
        ed = self.editors.get(id(layer))
        return ed if ed is not None and not ed.closed else None

    @property
    def model(self):
        """The :class:`BoxModel` of the chosen CT, or None."""
        layer = self.ct.value
        if layer is None:
            return None
        ed = self.editors.get(id(layer))
        if ed is None:  # an editor made elsewhere (worklist, notebook)
            ed = editor_for_layer(self.viewer, layer, create=False)
            if ed is not None:
                ed.model.changed.connect(self._on_model_changed)
                self.editors[id(layer)] = ed
        return ed.model if ed is not None and not ed.closed else None

    def _on_ct_changed(self, _value=None):
        self._update_hint()
        self._update_ui()

    # ------------------------------------------------------------ propose
    def propose(self):
        """Run the model on the chosen CT in a worker thread.

        Returns the worker (None when there is no CT); the result is applied
        on ``worker.returned``.
        """
        from napari.qt.threading import create_worker

        layer = self.ct.value
        if layer is None:
            self._notify(self.hint.value or ct_layer_problem(None), 'warning')
            return None
        volume = volume_from_layer(layer)
        editor = self.editor
        self._cancelled = False
        worker = create_worker(
            propose_steps,
            volume,
            float(self.margin.value),
            self.model_picker.model,
            _progress={
                'desc': f'Proposing heart sector on {layer.name}',
                'total': volume.shape[0],
            },
            _ignore_errors=True,
        )
        self.slices_done = 0
        n = volume.shape[0]
        worker.yielded.connect(lambda _=None, n=n: self._on_slice_done(n))
        worker.returned.connect(lambda res, ed=editor: self._on_proposed(ed, *res))
        worker.errored.connect(self._on_propose_error)
        worker.finished.connect(self._on_worker_finished)
        self._worker = worker
        self.status.value = 'Proposing…'
        self.propose_btn.enabled = False
        self.cancel_btn.enabled = True
        worker.start()
        return worker

    def _on_slice_done(self, total):
        self.slices_done += 1
        self.status.value = f'Proposing… {self.slices_done}/{total} slices'

    def draw_box(self) -> bool:
        """Start a hand-drawn box (central third of the CT) when there is none."""
        editor = self.editor
        if editor is None:
            self._notify(self.hint.value or ct_layer_problem(None), 'warning')
            return False
        changed = editor.model.start_box()
        self._update_ui()
        return changed

    def cancel(self):
        """Cancel a running proposal (its result is discarded)."""
        if self._worker is not None:
            self._cancelled = True
            self._worker.quit()
            self.status.value = 'Cancelled.'

    def _on_proposed(self, editor, sector, error=None):
        if self._cancelled:
            return
        if error is not None:
            self._on_propose_error(error)
            return
        editor.model.set_proposal(sector)
        if sector.found:
            self.status.value = f'Proposed (confidence {sector.confidence:.2f}).'
            # centred on the box in the current view, the canvas re-fitted, and the
            # layer that edits the box active
            self.show_view(current_view(self.viewer))
        else:
            self.status.value = 'No heart found in this CT.'
            self._notify(
                f'No heart found in {editor.image_layer.name} '
                f'(confidence {sector.confidence:.2f}).',
                'info',
            )

    def _on_propose_error(self, exc):
        if isinstance(exc, HeartboxError):
            msg = str(exc)
        else:
            msg = f'Propose failed: {type(exc).__name__}: {exc}'
        self.status.value = msg
        self._notify(msg, 'error')

    def _on_worker_finished(self):
        self._worker = None
        self.cancel_btn.enabled = False
        self._update_ui()

    # --------------------------------------------------------------- sync
    def _on_model_changed(self, sector=None):
        self._update_ui()

    def _update_ui(self):
        model = self.model
        has_ct = self.ct.value is not None
        sector = model.sector if model is not None else None
        has_box = model is not None and model.has_box
        self.propose_btn.enabled = has_ct and self._worker is None
        self.load_btn.enabled = has_ct
        self.draw_btn.enabled = has_ct and not has_box
        self.crop_btn.enabled = has_box
        self.save_btn.enabled = sector is not None
        mm = has_ct and ct_geometry_problem(self.ct.value) is None
        self.info.value = describe_sector(sector, mm=mm) if has_ct else ''
        if model is not None and model.is_corrected and model.proposal is not None:
            self.status.value = 'Edited (differs from the proposal).'
        self.controls.refresh()

    # -------------------------------------------------------------- views
    def show_view(self, view: str):
        """Show the chosen CT axial, coronal, sagittal or in 3D, centred on the box.

        See :func:`napari_heartbox._napari.box_controls.show_view` (3D: an
        attenuated MIP with a window from the data; the editing layer made
        active).
        """
        self.controls.show_view(view)

    # -------------------------------------------------- crop / save / load
    def crop(self):
        """Add the CT cropped to the box as a new image layer; returns it."""
        layer, model = self.ct.value, self.model
        if layer is None or model is None or not model.has_box:
            self._notify('There is no heart box to crop to.', 'warning')
            return None
        cropped = volume_from_layer(layer).crop(model.sector)
        data, meta, _ = layer_data_from_volume(cropped, name=f'{layer.name} heart crop')
        return self.viewer.add_image(data, **meta)

    def save_sector(self, path) -> Path | None:
        """Save the proposal and current box as a sector file (JSON)."""
        model = self.model
        if model is None or model.sector is None:
            self._notify('There is no heart box to save.', 'warning')
            return None
        out = write_sector_file(path, model.sector, model.proposal)
        self._notify(f'Saved heart sector to {out}', 'info')
        return out

    def load_sector(self, path) -> bool:
        """Load a sector file onto the chosen CT (undoable)."""
        editor = self.editor
        if editor is None:
            self._notify(self.hint.value or ct_layer_problem(None), 'warning')
            return False
        try:
            sf = read_sector_file(path, grid=editor.model.grid)
        except HeartboxError as e:
            self._notify(str(e), 'error')
            return False
        uid = volume_from_layer(editor.image_layer).series_uid
        if sf.series_uid and uid and sf.series_uid != uid:
            self._notify(
                f'{Path(path).name} was saved for series {sf.series_uid}, '
                f'not {uid}: loaded anyway (same grid shape).',
                'warning',
            )
        if sf.proposal is not None:
            editor.model.set_proposal(sf.proposal)
        if sf.corrected is not None:
            editor.model.set_sector(sf.corrected)
        self._update_ui()
        return True

    def export_web(self, outdir) -> Path | None:
        """Write the browser bundle (same model, same post-processing) to ``outdir``.

        Errors (no runtime files, model/card mismatch) become a notification.
        """
        from ..web.export import export_web

        try:
            index = export_web(outdir)
        except HeartboxError as e:
            self._notify(str(e), 'error')
            return None
        self._notify(
            f'Browser app written to {index.parent}; serve it with '
            f'`napari-heartbox serve-web {index.parent}`',
            'info',
        )
        return index

    def _export_web_dialog(self):
        from qtpy.QtWidgets import QFileDialog

        path = QFileDialog.getExistingDirectory(
            self.native, 'Export the browser app into folder', str(Path.home())
        )
        if path:
            self.export_web(path)

    def _save_dialog(self):
        from qtpy.QtWidgets import QFileDialog

        layer = self.ct.value
        uid = volume_from_layer(layer).series_uid if layer is not None else None
        default = str(Path.home() / f'{uid or layer.name}.heartbox.json')
        path, _ = QFileDialog.getSaveFileName(
            self.native, 'Save heart sector', default, 'Sector file (*.json)'
        )
        if path:
            self.save_sector(path)

    def _load_dialog(self):
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(
            self.native, 'Load heart sector', str(Path.home()), 'Sector file (*.json)'
        )
        if path:
            self.load_sector(path)

    @staticmethod
    def _notify(msg: str, level: str = 'info'):
        from napari.utils import notifications

        getattr(notifications, f'show_{level}')(msg)


def _default_margin() -> float:
    """The bundled model card's default margin (0 when no model is bundled)."""
    try:
        from ..model.card import CARD_NAME, assets_dir, load_card

        return float(
            load_card(assets_dir() / CARD_NAME)['postprocess']['default_margin_mm']
        )
    except (ImportError, HeartboxError, KeyError, TypeError, ValueError):
        return 0.0
