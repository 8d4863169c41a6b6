"""The correction worklist widget on a folder of three studies (GL, Xvfb)."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from napari_heartbox._napari.layers import layer_data_from_volume
from napari_heartbox._writer import write_nifti
from napari_heartbox.sector import Sector
from napari_heartbox.volume import CTVolume

pytestmark = [
    pytest.mark.gui,
    pytest.mark.skipif(
        sys.platform.startswith('linux') and not os.environ.get('DISPLAY'),
        reason='needs an X display (GL): run under xvfb-run',
    ),
]

napari = pytest.importorskip('napari')


def _bright_box(volume, margin_mm=None, model=None):
    """Test proposer: the bounding box of voxels above 0 HU (computed, not fixed)."""
    idx = np.argwhere(volume.hu > 0)
    if not len(idx):
        return Sector.not_found(volume.grid, 0.0)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    return Sector(
        volume.grid, *zip(lo.tolist(), hi.tolist(), strict=True), confidence=0.8
    )


@pytest.fixture
def studies(tmp_path):
    root = tmp_path / 'studies'
    root.mkdir()
    rng = np.random.default_rng(3)
    for i, name in enumerate(('case_a', 'case_b', 'case_c')):
        hu = rng.integers(-900, -800, size=(12, 20, 24)).astype(np.int16)
        hu[2 + i : 8, 4:14, 5 + i : 18] = 50
        vol = CTVolume.from_array(
            hu, spacing=(2.0, 0.8, 0.8), origin_lps=(0, 0, -50.0 * i)
        )
        data, meta, _ = layer_data_from_volume(vol)
        write_nifti(str(root / f'{name}.nii.gz'), data, meta)
    return root


@pytest.fixture
def wl_widget(make_napari_viewer, monkeypatch):
    import napari_heartbox._napari.worklist_widget as ww
    from napari_heartbox._widget import WorklistWidget

    monkeypatch.setattr(ww, 'run_propose', _bright_box)
    viewer = make_napari_viewer()
    widget = WorklistWidget(viewer)
    viewer.window.add_dock_widget(widget, name='worklist')
    return viewer, widget


def _wait(qtbot, widget, worker):
    assert worker is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)


def _open(qtbot, widget, studies, out):
    with qtbot.waitSignal(widget.viewer.layers.events.inserted, timeout=60_000):
        assert widget.open_worklist(studies, out)
    qtbot.waitUntil(
        lambda: widget.editor is not None and widget.editor.model.sector is not None
    )


def test_worklist_on_three_cases(wl_widget, studies, tmp_path, qtbot):
    viewer, widget = wl_widget
    out = tmp_path / 'corrections'
    _open(qtbot, widget, studies, out)
    wl = widget.worklist
    assert [c.id for c in wl.cases] == ['case_a', 'case_b', 'case_c']
    assert widget.current == 0
    # the case opened with its proposal, auto-saved as "proposed"
    assert viewer.layers[0].name == 'case_a'
    model = widget.editor.model
    assert model.sector.ranges == ((2, 8), (4, 14), (5, 18))
    assert wl.status('case_a') == 'proposed'
    # merely proposed: no IoU (it would be 1 by construction)
    assert widget.table.data[0][:2] == ['case_a', 'proposed']
    assert widget.table.data[0][2] in (None, '')
    # issue 21: the case opens on its box (the middle slice of the box, not of the CT),
    # with the box's rectangle active for editing and the dock's view buttons and sliders
    (_rows_cols, z), (z0, z1) = widget.editor.current_plane(), model.sector.z
    assert z == (z0 + z1 - 1) // 2
    assert viewer.layers.selection.active is widget.editor.rect_layer
    assert [s.value for s in widget.controls.sliders] == [(2, 8), (4, 14), (5, 18)]
    assert set(widget.controls.view_btns) == {'Axial', 'Coronal', 'Sagittal', '3D'}
    assert widget.table.data[1][1] == 'not opened'

    # an edit is auto-saved as a correction in the output folder
    model.set_face(0, 1, 9)
    saved = json.loads((out / 'cases' / 'case_a.json').read_text())
    assert saved['status'] == 'corrected' and saved['corrected']['voxel']['z'] == [2, 9]
    assert saved['proposal']['voxel']['z'] == [2, 8]
    assert widget.table.data[0][1] == 'corrected'
    assert widget.table.data[0][2] == f'{6 / 7:.3f}'
    assert widget.undo_btn.enabled and not widget.redo_btn.enabled
    widget.undo_btn.changed.emit(True)
    assert model.sector.z == (2, 8) and widget.redo_btn.enabled
    widget.redo_btn.changed.emit(True)
    assert model.sector.z == (2, 9)

    # accept → next unfinished case opens
    with qtbot.waitSignal(viewer.layers.events.inserted, timeout=60_000):
        widget.accept()
    qtbot.waitUntil(lambda: widget.current == 1 and widget.editor is not None)
    assert wl.status('case_a') == 'accepted'
    assert [layer.name for layer in viewer.layers][0] == 'case_b'
    assert 'case_a' not in [
        layer.name for layer in viewer.layers
    ]  # previous case closed
    assert widget.editor.model.sector.ranges == ((3, 8), (4, 14), (6, 18))

    # next / previous; a reopened case comes back with its saved box
    _wait(qtbot, widget, widget.next_case())
    assert widget.current == 2 and wl.status('case_c') == 'proposed'
    _wait(qtbot, widget, widget.previous_case())
    _wait(qtbot, widget, widget.previous_case())
    assert widget.current == 0
    assert widget.editor.model.sector.z == (2, 9)
    assert widget.editor.model.proposal.z == (2, 8)
    assert widget.editor.model.is_corrected and widget.reset_btn.enabled

    # agreement table and plot
    paths = widget.write_agreement()
    assert paths['png'].read_bytes()[:4] == b'\x89PNG'
    rows, summary = wl.agreement()
    assert summary['n_cases'] == 1  # the reviewed case only (b and c are merely proposed)
    a = next(r for r in rows if r['case'] == 'case_a')
    assert a['iou'] == pytest.approx(6 / 7)
    assert a['superior_mm'] == pytest.approx(
        -2.0
    )  # proposal 2 mm inside the corrected box
    assert 'mean IoU' in widget.summary.value and '1 reviewed' in widget.summary.value

    # nothing was written into the input folder
    assert sorted(p.name for p in studies.iterdir()) == [
        'case_a.nii.gz',
        'case_b.nii.gz',
        'case_c.nii.gz',
    ]
    index = json.loads((out / 'index.json').read_text())
    assert [r['status'] for r in index['cases']] == ['accepted', 'proposed', 'proposed']


def test_keyboard_shortcuts_drive_the_worklist(wl_widget, studies, tmp_path, qtbot):
    from napari.utils.key_bindings import KeyBinding

    viewer, widget = wl_widget
    _open(qtbot, widget, studies, tmp_path / 'out')
    press = lambda key: viewer.keymap[KeyBinding.from_str(key)](viewer)  # noqa: E731
    with qtbot.waitSignal(viewer.layers.events.inserted, timeout=60_000):
        press('Alt-Right')
    qtbot.waitUntil(lambda: widget.current == 1 and widget.editor is not None)
    with qtbot.waitSignal(viewer.layers.events.inserted, timeout=60_000):
        press('Alt-A')  # accept case_b, open the next unfinished one
    qtbot.waitUntil(lambda: widget.current == 2 and widget.editor is not None)
    assert widget.worklist.status('case_b') == 'accepted'
    with qtbot.waitSignal(viewer.layers.events.inserted, timeout=60_000):
        press('Alt-Left')
    qtbot.waitUntil(lambda: widget.current == 1 and widget.editor is not None)


def test_empty_folder_and_output_inside_input_give_hints(wl_widget, tmp_path, studies):
    viewer, widget = wl_widget
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert not widget.open_worklist(empty, tmp_path / 'out')
    assert 'No studies found' in widget.hint.value
    assert not widget.open_worklist(studies, studies / 'corr')
    assert 'must not be the input folder' in widget.hint.value
    assert not widget.open_worklist(tmp_path / 'missing', tmp_path / 'out')
    assert 'not a folder of studies' in widget.hint.value
    assert widget.worklist is None and len(viewer.layers) == 0


def test_late_signal_of_a_superseded_worker_is_ignored(
    wl_widget, studies, tmp_path, qtbot, monkeypatch
):
    """The worklist race: the previous case's worker emits ``finished`` (or even
    ``returned``) after the next case's worker has started. That late signal must
    neither clear ``busy``, nor re-enable navigation, nor show its case. The next
    case's load is held on an event, so the order is fixed, not left to timing."""
    import threading

    import napari_heartbox._napari.worklist_widget as ww

    viewer, widget = wl_widget
    _open(qtbot, widget, studies, tmp_path / 'corrections')
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)

    release = threading.Event()
    real = ww.load_and_propose

    def held(path, need, margin_mm=None, model=None, series_uid=None):
        release.wait(60)
        return real(path, need, margin_mm, model, series_uid)

    stale = widget.next_case()  # case 2 loads normally, then is superseded
    qtbot.waitUntil(lambda: not widget.busy and widget.current == 1, timeout=60_000)
    monkeypatch.setattr(ww, 'load_and_propose', held)
    current = widget.next_case()  # case 3: held until `release`
    try:
        assert widget.busy and not widget.prev_btn.enabled and not widget.next_btn.enabled
        stale.finished.emit()  # the late signal of the superseded worker
        stale.returned.emit(real(studies / 'case_a.nii.gz', True))
        assert widget.busy, 'a superseded worker cleared busy'
        assert not widget.prev_btn.enabled and not widget.next_btn.enabled
        assert widget.current == 1 and viewer.layers[0].name == 'case_b'
    finally:
        release.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert current is not stale
    assert widget.current == 2 and viewer.layers[0].name == 'case_c'
    assert widget.prev_btn.enabled


def test_a_series_list_opens_without_a_studies_folder(wl_widget, tmp_path, qtbot):
    """A batch-style corrections folder (one case per series, two series in one folder):
    opened with the studies field empty, each case shows its own series."""
    from napari_heartbox.io import write_dicom_series
    from napari_heartbox.worklist import Case, Worklist

    viewer, widget = wl_widget
    root = tmp_path / 'tree'
    shapes = {}
    for k, nz in enumerate((9, 14)):
        hu = np.full((nz, 20, 24), -900, np.int16)
        hu[2:6, 4:14, 5:18] = 50
        vol = CTVolume.from_array(hu, spacing=(2.0, 0.8, 0.8))
        uid = f'1.2.826.0.1.3680043.8.498.{77 + k}'
        write_dicom_series(vol, root / 'both', series_uid=uid, file_prefix=f's{k}_', seed=k)
        shapes[f'both-{k}'] = (uid, vol.shape)
    out = tmp_path / 'boxes'
    cases = [Case(c, root / 'both', 'both', uid) for c, (uid, _) in shapes.items()]
    Worklist(root, out, cases=cases).write_index()
    assert widget.input_dir.value in (None, '') or str(widget.input_dir.value) in ('', '.')
    with qtbot.waitSignal(viewer.layers.events.inserted, timeout=60_000):
        assert widget.open_worklist(None, out), widget.hint.value
    qtbot.waitUntil(lambda: widget.editor is not None and widget.editor.model.sector is not None,
                    timeout=60_000)
    assert viewer.layers[0].data.shape == shapes['both-0'][1]
    with qtbot.waitSignal(viewer.layers.events.inserted, timeout=60_000):
        widget.next_case()
    qtbot.waitUntil(lambda: not widget.busy and widget.current == 1, timeout=60_000)
    assert viewer.layers[0].data.shape == shapes['both-1'][1]
    assert [r['case'] for r in widget.worklist.rows()] == list(shapes)
