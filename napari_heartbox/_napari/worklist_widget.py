"""The "Heart sector worklist" dock widget: correct boxes over many studies.

Choose a folder of studies and a corrections folder (never inside the
input), then walk the cases: each opens with its saved box or a fresh
proposal, every edit is auto-saved (one sector file per case plus
``index.csv``/``index.json``, see :mod:`napari_heartbox.worklist`), and
*Agreement* writes the proposal-vs-corrected table and plot.

Shortcuts (viewer-wide): ``Alt-Right`` next case, ``Alt-Left`` previous,
``Alt-A`` accept the box and go to the next unfinished case.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import Container, FileEdit, Label, PushButton, Table

from ..errors import HeartboxError, ModelError
from ..worklist import Worklist
from .box_controls import BoxControls, current_view, scrolled_body, wrap_label
from .box_editor import editor_for_layer
from .layers import layer_data_from_volume
from .model_picker import ModelPicker
from .sector_widget import DOCK_WIDTH, describe_sector, run_propose

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ['WorklistWidget', 'load_and_propose']

COLUMNS = ('case', 'status', 'IoU')


def load_and_propose(path, need_proposal: bool, margin_mm=None, model=None, series_uid=None):
    """Worker body: load a case (its series ``series_uid`` when given) and
    (optionally) propose its box.

    Returns ``(volume, proposal or None, message or None)``; a missing model
    is a message, not an error, so the case still opens for hand editing.
    """
    from ..io import load_ct

    volume = load_ct(path, series_uid=series_uid)
    if not need_proposal:
        return volume, None, None
    try:
        return volume, run_propose(volume, margin_mm, model=model), None
    except ModelError as e:
        return volume, None, str(e)


class WorklistWidget(Container):
    """Dock widget "Heart sector worklist".

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=False)
        self.viewer = viewer
        self.worklist: Worklist | None = None
        self.current: int | None = None
        self.editor = None
        self._layers: list = []
        self._worker = None

        self.input_dir = FileEdit(label='studies', mode='d')
        self.output_dir = FileEdit(label='corrections', mode='d')
        self.model_picker = ModelPicker()
        self.open_btn = PushButton(text='Open worklist')
        self.hint = Label(value='Choose a folder of studies and a corrections folder.')
        self.table = Table(value={'data': [], 'index': [], 'columns': list(COLUMNS)})
        self.prev_btn = PushButton(text='◀ Previous', enabled=False)
        self.next_btn = PushButton(text='Next ▶', enabled=False)
        self.accept_btn = PushButton(text='Accept ✓', enabled=False)
        self.draw_btn = PushButton(text='Draw box', enabled=False)
        # view buttons, editing hint, sliders, Undo / Redo / Reset: as in the Heart sector dock
        self.controls = BoxControls(viewer, lambda: (self._image(), self.editor))
        self.undo_btn, self.redo_btn = self.controls.undo_btn, self.controls.redo_btn
        self.reset_btn = self.controls.reset_btn
        self.info = Label(value='')
        self.agree_btn = PushButton(text='Agreement (table + plot)', enabled=False)
        self.summary = Label(value='')

        for label in (self.hint, self.info, self.summary):
            wrap_label(label)
        row = lambda *ws: Container(widgets=ws, layout='horizontal', labels=False)  # noqa: E731
        self._body = scrolled_body(
            self,
            [
                Container(widgets=[self.input_dir, self.output_dir, self.model_picker.path]),
                self.model_picker.note,
                self.open_btn,
                self.hint,
                self.table,
                row(self.prev_btn, self.next_btn, self.accept_btn),
                self.info,
                self.controls,
                self.draw_btn,
                self.agree_btn,
                self.summary,
            ],
            DOCK_WIDTH,
        )
        self.open_btn.changed.connect(lambda: self.open_worklist())
        self.prev_btn.changed.connect(self.previous_case)
        self.next_btn.changed.connect(self.next_case)
        self.accept_btn.changed.connect(self.accept)
        self.draw_btn.changed.connect(
            lambda: self.editor and self.editor.model.start_box()
        )
        self.agree_btn.changed.connect(self.write_agreement)
        self.table.native.cellDoubleClicked.connect(lambda r, _c: self.open_case(r))
        for key, fn in (
            ('Alt-Right', self.next_case),
            ('Alt-Left', self.previous_case),
            ('Alt-A', self.accept),
        ):
            viewer.bind_key(key, lambda _v, f=fn: f(), overwrite=True)

    # ---------------------------------------------------------- worklist
    def open_worklist(self, input_folder=None, output_folder=None) -> bool:
        """Open a worklist; returns False (with a hint) on bad folders."""
        inp = Path(input_folder or self.input_dir.value)
        out = Path(output_folder or self.output_dir.value)
        if str(out) in ('', '.'):
            self.hint.value = (
                'Choose a folder of studies and a corrections folder '
                "(or just the output folder of 'napari-heartbox batch')."
            )
            return False
        try:
            # no studies folder: the corrections folder's own series list (a batch output)
            wl = Worklist(None if str(inp) in ('', '.') else inp, out)
        except HeartboxError as e:
            self.hint.value = str(e)
            return False
        if not len(wl):
            self.hint.value = (
                f'No studies found in {inp}: expected sub-folders with DICOM '
                'series or .nii/.nii.gz files.'
            )
            return False
        self.worklist = wl
        if input_folder is not None:  # called from code: show the folders too
            self.input_dir.value, self.output_dir.value = wl.input, wl.output
        self.hint.value = f'{len(wl)} cases; corrections go to {wl.output}'
        self.refresh_table()
        self.agree_btn.enabled = True
        self.open_case(wl.next_index(-1, unfinished=True) or 0)
        return True

    def refresh_table(self):
        """Redraw the case table from the worklist."""
        wl = self.worklist
        if wl is None:
            return
        data = []
        for r in wl.rows():
            iou = '' if r['iou'] is None else f'{r["iou"]:.3f}'
            data.append([r['case'], r['status'], iou])
        self.table.value = {
            'data': data,
            'index': [str(i + 1) for i in range(len(data))],
            'columns': list(COLUMNS),
        }
        if self.current is not None:
            self.table.native.selectRow(self.current)

    # -------------------------------------------------------------- cases
    def open_case(self, index: int):
        """Open case ``index`` (loading and proposing in a worker thread).

        Returns the worker; the case is shown when it returns.
        """
        from napari.qt.threading import create_worker

        wl = self.worklist
        if wl is None or not 0 <= index < len(wl):
            return None
        case = wl.cases[index]
        record = wl.record_of(case.id)
        need = record is None or record.sector is None
        self.hint.value = f'Opening {case.id}…'
        self._set_nav_enabled(False)
        worker = create_worker(
            load_and_propose,
            case.path,
            need,
            None,
            self.model_picker.model,
            case.series_uid,
            _progress={'desc': f'Opening {case.id}'},
            _ignore_errors=True,
        )
        # Every callback names its worker: a late signal from a worker that is no
        # longer the current one (the previous case, still emitting `finished`
        # after its `returned`) must not show its case, clear `busy` or re-enable
        # navigation while the next case is loading.
        worker.returned.connect(
            lambda res, i=index, w=worker: self._is_current(w) and self._show_case(i, *res)
        )
        worker.errored.connect(
            lambda e, c=case.id, w=worker: self._is_current(w) and self._on_error(c, e)
        )
        worker.finished.connect(lambda w=worker: self._on_worker_finished(w))
        self._worker = worker
        worker.start()
        return worker

    def _show_case(self, index, volume, proposal, message):
        wl = self.worklist
        case = wl.cases[index]
        self._close_case()
        data, meta, _ = layer_data_from_volume(volume, name=case.id)
        image = self.viewer.add_image(data, **meta)
        self.editor = editor_for_layer(self.viewer, image)
        self._layers = [image, *self.editor.layers]
        self.current = index
        model = self.editor.model
        record = wl.record_of(case.id)
        if record is not None and record.sector is not None:
            model.set_proposal(record.proposal)
            if record.corrected is not None:
                model.set_sector(record.corrected)
            model.changed.connect(self._autosave)
        else:
            model.changed.connect(self._autosave)
            if proposal is not None:
                model.set_proposal(proposal)
        model.changed.connect(self._on_box_changed)
        # the case opens on its box (centre slice, canvas fitted, editing layer active)
        self.controls.show_view(current_view(self.viewer))
        self.hint.value = f'Case {index + 1}/{len(wl)}: {case.id}' + (
            f' — {message} Draw the box by hand.' if message else ''
        )
        if message:
            self._notify(message, 'warning')
        self.refresh_table()
        self._on_box_changed()

    def _is_current(self, worker) -> bool:
        return worker is self._worker

    def _on_worker_finished(self, worker):
        if not self._is_current(worker):
            return  # a superseded worker: the current one is still loading
        self._worker = None
        self._set_nav_enabled(True)

    def _image(self):
        """The current case's CT layer, or None."""
        return self._layers[0] if self._layers else None

    @property
    def busy(self) -> bool:
        """True while a case is being loaded/proposed."""
        return self._worker is not None

    def _close_case(self):
        if self.editor is not None:
            self.editor.model.changed.disconnect(self._autosave)
            self.editor.model.changed.disconnect(self._on_box_changed)
            self.editor.close()
            self.editor = None
        for layer in self._layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self._layers = []

    def _autosave(self, sector=None):
        if self.worklist is None or self.current is None or self.editor is None:
            return
        model = self.editor.model
        if model.sector is None:
            return
        self.worklist.record(
            self.worklist.cases[self.current].id, model.sector, model.proposal
        )
        self.refresh_table()

    def _on_box_changed(self, sector=None):
        model = self.editor.model if self.editor is not None else None
        self.info.value = describe_sector(model.sector) if model is not None else ''
        has = model is not None
        self.draw_btn.enabled = has and not model.has_box
        self.controls.refresh()
        self.accept_btn.enabled = has and model.sector is not None

    def _set_nav_enabled(self, on: bool):
        wl, i = self.worklist, self.current
        self.prev_btn.enabled = on and wl is not None and i is not None and i > 0
        self.next_btn.enabled = on and wl is not None and (i is None or i + 1 < len(wl))
        if not on:
            self.accept_btn.enabled = False

    def next_case(self):
        """Open the next case (returns its worker, or None at the end)."""
        if self.worklist is None:
            return None
        return self.open_case(0 if self.current is None else self.current + 1)

    def previous_case(self):
        """Open the previous case (returns its worker, or None at the start)."""
        if self.worklist is None or not self.current:
            return None
        return self.open_case(self.current - 1)

    def accept(self):
        """Mark the current box accepted, then open the next unfinished case."""
        if self.worklist is None or self.current is None or self.editor is None:
            return None
        model = self.editor.model
        if model.sector is None:
            self._notify('Nothing to accept: draw or propose a box first.', 'warning')
            return None
        case_id = self.worklist.cases[self.current].id
        self.worklist.record(case_id, model.sector, model.proposal, status='accepted')
        self.refresh_table()
        nxt = self.worklist.next_index(self.current, unfinished=True)
        if nxt is None:
            self.hint.value = 'All cases after this one are accepted.'
            return None
        return self.open_case(nxt)

    # ---------------------------------------------------------- agreement
    def write_agreement(self):
        """Write ``agreement.csv`` + ``agreement.png`` and show the summary."""
        if self.worklist is None:
            return None
        try:
            paths = self.worklist.write_agreement()
        except HeartboxError as e:
            self._notify(str(e), 'error')
            return None
        _rows, s = self.worklist.agreement()
        if s['n_cases']:
            faces = ', '.join(
                f'{k[9:-3]} {v:.1f}'
                for k, v in s.items()
                if k.startswith('mean_abs_') and not math.isnan(v)
            )
            self.summary.value = (
                f'{s["n_cases"]} reviewed case{"s" if s["n_cases"] != 1 else ""} '
                f'(corrected or accepted): mean IoU '
                f'{s["mean_iou"]:.3f}, median {s["median_iou"]:.3f}, min {s["min_iou"]:.3f}\n'
                f'mean |face error| mm: {faces}\n{paths["png"].name} in the corrections folder'
            )
        else:
            self.summary.value = (
                'No reviewed case yet: agreement counts the cases you corrected or accepted.'
            )
        return paths

    def _on_error(self, case_id, exc):
        msg = (
            str(exc)
            if isinstance(exc, HeartboxError)
            else f'{type(exc).__name__}: {exc}'
        )
        self.hint.value = f'{case_id}: could not open ({msg})'
        self._notify(self.hint.value, 'error')

    @staticmethod
    def _notify(msg: str, level: str = 'info'):
        from napari.utils import notifications

        getattr(notifications, f'show_{level}')(msg)
