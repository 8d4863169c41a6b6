"""The "Heart sector" dock widget and the box editor in a real napari viewer.

GL tests: run under Xvfb, e.g.
``xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python -m pytest tests/test_napari_widget.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_heartbox._napari import attach_box_editor
from napari_heartbox._napari.layers import layer_data_from_volume, volume_from_layer
from napari_heartbox.errors import ModelError
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


def _volume():
    # noise plus a bright block, on an anisotropic grid away from the origin
    rng = np.random.default_rng(0)
    hu = rng.integers(-900, -700, size=(30, 48, 56)).astype(np.int16)
    hu[8:20, 12:30, 20:40] = 60 + np.arange(12, dtype=np.int16)[:, None, None]
    return CTVolume.from_array(
        hu, spacing=(3.0, 0.75, 0.6), origin_lps=(-20.0, -150.0, -210.0)
    )


@pytest.fixture
def ct(make_napari_viewer):
    """(viewer, image layer, widget, volume) with the widget docked."""
    from napari_heartbox._widget import HeartSectorWidget

    viewer = make_napari_viewer()
    vol = _volume()
    data, meta, _ = layer_data_from_volume(vol, name='chest')
    layer = viewer.add_image(data, **meta)
    widget = HeartSectorWidget(viewer)
    viewer.window.add_dock_widget(widget, name='Heart sector')
    return viewer, layer, widget, vol


def _box(vol):
    return Sector(
        vol.grid, (8, 20), (12, 30), (20, 40), confidence=0.9, series_uid='1.2.840.1'
    )


def _wait_propose(qtbot, widget):
    worker = widget.propose()
    assert worker is not None
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60_000)


def _propose_with_the_bundled_model(qtbot, widget):
    _wait_propose(qtbot, widget)
    assert widget.model.sector is not None, f'propose failed: {widget.status.value}'


def test_propose_on_sample_data(make_napari_viewer, qtbot):
    from napari_heartbox import propose
    from napari_heartbox._sample_data import synthetic_chest_ct
    from napari_heartbox._widget import HeartSectorWidget
    from napari_heartbox.phantom import sample_chest_ct

    viewer = make_napari_viewer()
    [(data, meta, _)] = synthetic_chest_ct()
    layer = viewer.add_image(data, **meta)
    widget = HeartSectorWidget(viewer)
    assert widget.ct.value is layer
    _propose_with_the_bundled_model(qtbot, widget)
    got = widget.model.sector
    assert got == propose(volume_from_layer(layer), margin_mm=widget.margin.value)
    truth = sample_chest_ct(seed=0).heart_box
    assert got.found
    # the default margin (model card) puts the whole heart box inside the proposal
    assert all(g[0] <= t[0] and t[1] <= g[1] for g, t in zip(got.ranges, truth.ranges, strict=True))
    assert propose(volume_from_layer(layer), margin_mm=0.0).iou(truth) > 0.5  # the tight box fits
    assert 'voxels' in widget.info.value and 'LPS min' in widget.info.value
    assert widget.model.sector.found == bool(widget.editor.handles_layer.data.size)


@pytest.mark.realdata
@pytest.mark.slow
def test_propose_on_real_cptac(make_napari_viewer, qtbot, shared_data):
    import json

    from napari_heartbox._reader import get_reader
    from napari_heartbox._widget import HeartSectorWidget

    folder = shared_data / 'ct' / 'cptac-lscc-c3n-00247' / 'dicom'
    ref = json.loads((folder.parent / 'reference_box.json').read_text())
    viewer = make_napari_viewer()
    [(data, meta, _)] = get_reader(str(folder))(str(folder))
    layer = viewer.add_image(data, **meta)
    assert data.shape == (99, 512, 512)
    widget = HeartSectorWidget(viewer)
    assert widget.ct.value is layer
    _propose_with_the_bundled_model(qtbot, widget)
    s = widget.model.sector
    assert s.found
    # the proposal contains the centre of the hand-drawn reference heart box
    centre = [(a + b) / 2 for a, b in (ref['voxel_inclusive'][k] for k in 'zyx')]
    assert s.contains_index([round(c) for c in centre]), s


def test_propose_error_is_a_notification_not_a_crash(ct, qtbot, monkeypatch):
    viewer, layer, widget, vol = ct
    import napari_heartbox._napari.sector_widget as sw

    def broken(volume, margin_mm, progress=None, model=None):
        raise ModelError('no model bundled yet: test')

    monkeypatch.setattr(sw, 'run_propose', broken)
    _wait_propose(qtbot, widget)
    assert widget.status.value == 'no model bundled yet: test'
    assert widget.model.sector is None and widget.propose_btn.enabled


def test_no_heart_found_is_said_plainly(ct, qtbot, monkeypatch):
    viewer, layer, widget, vol = ct
    import napari_heartbox._napari.sector_widget as sw

    monkeypatch.setattr(
        sw, 'run_propose', lambda v, m, progress=None, model=None: Sector.not_found(v.grid, 0.03)
    )
    _wait_propose(qtbot, widget)
    assert widget.status.value == 'No heart found in this CT.'
    assert 'No heart found' in widget.info.value
    assert len(widget.editor.handles_layer.data) == 0
    assert widget.draw_btn.enabled
    widget.draw_btn.clicked()  # the user draws a box by hand
    assert widget.model.has_box and len(widget.editor.handles_layer.data) == 6


def test_sliders_edit_the_box_and_undo(ct):
    viewer, layer, widget, vol = ct
    editor = attach_box_editor(viewer, layer, _box(vol))
    assert widget.model is editor.model  # one editor per CT layer
    widget._update_ui()
    assert tuple(widget.sliders[0].value) == (8, 20)
    widget.sliders[0].value = (10, 20)
    widget.sliders[2].value = (20, 45)
    assert editor.model.sector.ranges == ((10, 20), (12, 30), (20, 45))
    # the handles follow: z-low handle on voxel 10, x-high handle on voxel 44
    np.testing.assert_allclose(editor.handles_layer.data[0, 0], 10)
    np.testing.assert_allclose(editor.handles_layer.data[5, 2], 44)
    assert widget.undo_btn.enabled and widget.reset_btn.enabled
    widget.undo_btn.clicked()
    assert editor.model.sector.x == (20, 40)
    assert tuple(widget.sliders[2].value) == (20, 40)
    widget.redo_btn.clicked()
    assert editor.model.sector.x == (20, 45)
    widget.reset_btn.clicked()
    assert editor.model.sector.ranges == _box(vol).ranges
    assert 'voxels  z [8, 20)  y [12, 30)  x [20, 40)' in widget.info.value


def _drag(layer, start, end, **kw):
    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import (
        mouse_move_callbacks,
        mouse_press_callbacks,
        mouse_release_callbacks,
    )

    class Event:
        def __init__(self, kind, position, is_dragging=False):
            self.type = kind
            self.position = tuple(float(v) for v in position)
            self.is_dragging = is_dragging
            self.modifiers = []
            self.pos = np.zeros(2)
            self.handled = False
            for k, v in kw.items():
                setattr(self, k, v)

    ev = lambda *a, **k: ReadOnlyWrapper(Event(*a, **k), exceptions=('handled',))  # noqa: E731
    mouse_press_callbacks(layer, ev('mouse_press', start))
    mouse_move_callbacks(layer, ev('mouse_move', start, True))
    mouse_move_callbacks(layer, ev('mouse_move', end, True))
    mouse_release_callbacks(layer, ev('mouse_release', end, True))


def test_face_handle_drag_in_3d_moves_only_its_axis(ct):
    viewer, layer, widget, vol = ct
    editor = attach_box_editor(viewer, layer, _box(vol))
    viewer.dims.ndisplay = 3
    handles = editor.handles_layer
    handles.mode = 'select'
    # z-high face handle (index 1) sits on voxel 19; drag +6 slices in z and
    # +3 voxels in x (off-axis, must be discarded), looking along y
    start = handles.data_to_world(handles.data[1])
    end = handles.data_to_world(handles.data[1] + np.array([6.0, 0.0, 3.0]))
    _drag(
        handles,
        start,
        end,
        view_direction=[0, 1, 0],
        up_direction=[1, 0, 0],
        dims_displayed=[0, 1, 2],
    )
    assert editor.model.sector.ranges == ((8, 26), (12, 30), (20, 40))
    # the handle is re-snapped onto its axis (x back at the box centre)
    np.testing.assert_allclose(handles.data[1], [25, 20.5, 29.5])
    assert editor.model.undo() and editor.model.sector.z == (8, 20)
    assert not editor.model.can_undo  # the whole drag was one undo step


def test_keyboard_nudge_of_selected_face(ct):
    viewer, layer, widget, vol = ct
    editor = attach_box_editor(viewer, layer, _box(vol))
    editor.handles_layer.selected_data = {4}  # x low face
    assert editor.nudge_selected(-2)
    assert editor.model.sector.x == (18, 40)
    editor.handles_layer.selected_data = {2, 3}  # both y faces
    editor.nudge_selected(5)
    assert editor.model.sector.y == (17, 35)
    # the same through the layer's key bindings
    from napari.utils.key_bindings import KeyBinding

    press = lambda key: editor.handles_layer.keymap[KeyBinding.from_str(key)](  # noqa: E731
        editor.handles_layer
    )
    editor.handles_layer.selected_data = {1}  # z high face
    press(']')
    press('Shift-]')
    assert editor.model.sector.z == (8, 26)
    press('Control-Z')
    assert editor.model.sector.z == (8, 21)
    press('Control-Shift-Z')
    assert editor.model.sector.z == (8, 26)


def _rect_bounds(editor, axes):
    [rect] = editor.rect_layer.data
    return [(rect[:, a].min(), rect[:, a].max()) for a in axes]


def test_rectangle_in_axial_and_coronal_views(ct):
    viewer, layer, widget, vol = ct
    editor = attach_box_editor(viewer, layer, _box(vol))
    # axial: slice z = 12 cuts the box; the rectangle is at voxel edges in y, x
    viewer.dims.set_point(0, layer.data_to_world([12, 0, 0])[0])
    assert editor.current_plane() == ((1, 2), 12)
    assert _rect_bounds(editor, (1, 2)) == [(11.5, 29.5), (19.5, 39.5)]
    # outside the box's z range there is no rectangle
    viewer.dims.set_point(0, layer.data_to_world([25, 0, 0])[0])
    assert len(editor.rect_layer.data) == 0
    # coronal: order (y, z, x) shows z against x at a y slice
    viewer.dims.order = (1, 0, 2)
    viewer.dims.set_point(1, layer.data_to_world([0, 20, 0])[1])
    assert editor.current_plane() == ((0, 2), 20)
    assert _rect_bounds(editor, (0, 2)) == [(7.5, 19.5), (19.5, 39.5)]
    # edit the rectangle (as napari's resize handles do): move its top edge
    # to z = 24.2 and tilt one corner; the model snaps it axis-aligned
    rect = editor.rect_layer.data[0].copy()
    rect[rect[:, 0] > 15, 0] = 24.2
    rect[1, 2] += 0.7  # corner (z lo, x hi): x max 39.5 -> 40.2
    editor.rect_layer.data = [rect]
    assert editor.model.sector.ranges == ((8, 25), (12, 30), (20, 41))
    assert _rect_bounds(editor, (0, 2)) == [(7.5, 24.5), (19.5, 40.5)]
    # the y range (not displayed) never changes from a coronal edit
    assert editor.model.sector.y == (12, 30)
    # sagittal
    viewer.dims.order = (2, 0, 1)
    viewer.dims.set_point(2, layer.data_to_world([0, 0, 30])[2])
    assert editor.current_plane() == ((0, 1), 30)
    assert _rect_bounds(editor, (0, 1)) == [(7.5, 24.5), (11.5, 29.5)]


def test_helper_layers_share_the_ct_transform_and_keep_dims(ct):
    viewer, layer, widget, vol = ct
    viewer.dims.set_point(0, layer.data_to_world([17, 0, 0])[0])
    point = tuple(viewer.dims.point)
    editor = attach_box_editor(viewer, layer, _box(vol))
    assert tuple(viewer.dims.point) == point
    for helper in editor.layers:
        np.testing.assert_allclose(helper.scale, layer.scale)
        np.testing.assert_allclose(helper.translate, layer.translate)
    assert editor.handles_layer.name == 'heart box: chest'
    assert not editor.handles_layer.bounding_box.visible  # 2D: the rectangle
    viewer.dims.ndisplay = 3
    assert editor.handles_layer.bounding_box.visible  # 3D: the wireframe
    # the wireframe (handles' extent padded by half a voxel) is on the box edges
    lo, hi = editor.handles_layer.extent.data
    np.testing.assert_allclose(lo - 0.5, [7.5, 11.5, 19.5])
    np.testing.assert_allclose(hi + 0.5, [19.5, 29.5, 39.5])


def test_crop_voxels_and_world_position(ct):
    viewer, layer, widget, vol = ct
    attach_box_editor(viewer, layer, _box(vol))
    widget._update_ui()
    crop = widget.crop()
    assert crop.name == 'chest heart crop'
    np.testing.assert_array_equal(crop.data, vol.hu[8:20, 12:30, 20:40])
    # every cropped voxel sits where the same voxel of the CT sits in world mm
    for idx in ([0, 0, 0], [11, 17, 19], [5, 3, 7]):
        src = np.array(idx) + [8, 12, 20]
        np.testing.assert_allclose(crop.data_to_world(idx), layer.data_to_world(src))
        assert crop.data[tuple(idx)] == layer.data[tuple(src)]


def test_save_load_round_trip(ct, tmp_path):
    viewer, layer, widget, vol = ct
    editor = attach_box_editor(viewer, layer, _box(vol))
    editor.model.set_face(0, 1, 18)
    path = widget.save_sector(tmp_path / 'out' / 'box.json')
    # the napari writer contribution saves the same content from the layer
    [written] = napari.save_layers(
        str(tmp_path / 'layer.json'), [editor.handles_layer], plugin='napari-heartbox'
    )
    from napari_heartbox.sector_file import read_sector_file

    for p in (path, written):
        sf = read_sector_file(p)
        assert sf.corrected.z == (8, 18) and sf.proposal.z == (8, 20)
        assert sf.series_uid == '1.2.840.1' and sf.status == 'corrected'
    editor.model.set_face(2, 0, 30)
    assert widget.load_sector(path)
    assert editor.model.sector.ranges == ((8, 18), (12, 30), (20, 40))
    assert editor.model.proposal.ranges == _box(vol).ranges
    assert editor.model.undo() and editor.model.sector.z == (8, 20)  # undoable
    # a broken file is a notification, not an exception
    (tmp_path / 'bad.json').write_text('{')
    assert not widget.load_sector(tmp_path / 'bad.json')


def test_2d_and_rgb_images_get_a_hint(make_napari_viewer):
    from napari_heartbox._widget import HeartSectorWidget

    viewer = make_napari_viewer()
    widget = HeartSectorWidget(viewer)
    assert 'Open a 3D CT first' in widget.hint.value
    viewer.add_image(np.zeros((32, 32)), name='slice')
    assert widget.ct.value is None
    assert '"slice" is 2D' in widget.hint.value
    assert not widget.propose_btn.enabled
    viewer.add_image(np.zeros((8, 8, 3), np.uint8), name='photo', rgb=True)
    assert '"photo" is an RGB image' in widget.hint.value
    assert widget.propose() is None  # pressing Propose anyway is harmless
    viewer.add_image(np.zeros((4, 8, 8), np.int16), name='ct', scale=(2.5, 0.7, 0.7))
    assert widget.ct.value.name == 'ct' and widget.hint.value == ''


def test_a_ct_without_geometry_is_warned_about_and_shown_in_voxels_only(make_napari_viewer):
    """Issue 21: a CT from napari's built-in reader (scale 1, no position) is usable, but
    the dock says it has no geometry and claims no millimetres."""
    from napari_heartbox._widget import HeartSectorWidget

    viewer = make_napari_viewer()
    widget = HeartSectorWidget(viewer)
    viewer.add_image(np.zeros((40, 64, 64), np.int16), name='plain')
    assert widget.ct.value is not None and widget.propose_btn.enabled
    assert 'no CT geometry' in widget.hint.value and 'napari-heartbox' in widget.hint.value
    assert widget.draw_box()
    assert 'voxels  z [' in widget.info.value
    assert 'mm' not in widget.info.value.replace('no mm', '')
    assert 'LPS' not in widget.info.value


def test_sample_data_and_widget_contributions(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample('napari-heartbox', 'synthetic_chest_ct')
    assert viewer.layers[-1].name == 'Synthetic chest CT'
    dw, widget = viewer.window.add_plugin_dock_widget('napari-heartbox', 'Heart sector')
    assert widget.ct.value is viewer.layers['Synthetic chest CT']


def test_view_buttons_centre_on_the_box(ct):
    viewer, layer, widget, vol = ct
    editor = attach_box_editor(viewer, layer, _box(vol))
    widget.view_btns['Coronal'].clicked()
    # coronal plane through the box's centre voxel (y range [12, 30) → slice 20), superior up
    assert editor.current_plane() == ((0, 2), 20)
    # the slicing point is a voxel centre: napari shows a rectangle only within half a
    # voxel of its integer plane, so a point between two voxels hid it (even-length ranges)
    pos = np.asarray(layer.world_to_data(viewer.dims.point), float)
    np.testing.assert_allclose(pos, np.round(pos), atol=1e-6)
    from napari_heartbox._napari.sector_widget import camera_of

    assert tuple(map(str, camera_of(viewer).orientation2d)) == ('up', 'right')
    assert len(editor.rect_layer.data) == 1
    widget.view_btns['Axial'].clicked()
    assert editor.current_plane() == ((1, 2), 13)  # z range [8, 20): centre voxel 13
    widget.view_btns['3D'].clicked()
    assert viewer.dims.ndisplay == 3 and editor.current_plane() is None
    assert (
        len(editor.rect_layer.data) == 0 and editor.handles_layer.bounding_box.visible
    )


def test_viewer_open_uses_the_plugin_reader(make_napari_viewer, tmp_path):
    from napari_heartbox.io import write_dicom_series
    from napari_heartbox.sector_file import write_sector_file

    vol = _volume()
    write_dicom_series(vol, tmp_path / 'study', shuffle_names=True)
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / 'study'), plugin='napari-heartbox')
    np.testing.assert_array_equal(layer.data, vol.hu)
    np.testing.assert_allclose(layer.scale, vol.spacing)
    assert layer.contrast_limits == [-160.0, 240.0]
    path = write_sector_file(tmp_path / 'box.json', _box(vol))
    [handles] = viewer.open(str(path), plugin='napari-heartbox')
    # the handles of a saved box land on the box faces in the CT's world
    lo = handles.data_to_world(handles.data.min(axis=0))
    np.testing.assert_allclose(lo, layer.data_to_world([8, 12, 20]), atol=1e-6)


def test_opening_a_sector_file_loads_it_onto_the_ct(ct, qtbot, tmp_path):
    from napari_heartbox.sector_file import write_sector_file

    viewer, layer, widget, vol = ct
    corrected = _box(vol).with_ranges(z=(9, 19))
    path = write_sector_file(tmp_path / 'box.json', corrected, _box(vol))
    viewer.open(str(path), plugin='napari-heartbox')
    qtbot.waitUntil(
        lambda: widget.model is not None and widget.model.sector is not None
    )
    assert widget.model.sector.ranges == corrected.ranges
    assert widget.model.proposal.ranges == _box(vol).ranges
    qtbot.waitUntil(
        lambda: 'box heart sector (file)' not in [ly.name for ly in viewer.layers]
    )


def test_propose_reports_progress_per_slice(ct, qtbot, monkeypatch):
    viewer, layer, widget, vol = ct
    import napari_heartbox._napari.sector_widget as sw

    def slow_model(volume, margin_mm, progress=None, model=None):
        for done in range(0, volume.shape[0] + 1, 5):
            progress(min(done, volume.shape[0]), volume.shape[0])
        return _box(volume)

    monkeypatch.setattr(sw, 'run_propose', slow_model)
    widget.propose()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60_000)
    assert widget.slices_done == vol.shape[0]  # one progress step per slice
    assert widget.model.sector.ranges == _box(vol).ranges
    assert widget.status.value == 'Proposed (confidence 0.90).'


def test_draw_box_without_any_proposal(ct):
    viewer, layer, widget, vol = ct
    assert widget.model is None and widget.draw_btn.enabled
    widget.draw_btn.clicked()
    assert widget.model.has_box
    assert widget.model.sector.ranges == ((10, 20), (16, 32), (18, 38))
    assert len(widget.editor.handles_layer.data) == 6 and widget.crop_btn.enabled


def test_export_web_button_writes_the_bundle(ct, tmp_path, monkeypatch):
    viewer, layer, widget, vol = ct
    from napari_heartbox.errors import HeartboxError
    from napari_heartbox.model.card import sha256_file
    from napari_heartbox.web import export as web_export

    index = widget.export_web(tmp_path / 'web')
    if index is None:  # a notification instead of a bundle: only for a missing runtime
        with pytest.raises(HeartboxError, match='make web-vendor') as info:
            web_export.export_web(tmp_path / 'again')
        pytest.skip(f'no browser runtime here: {info.value}')
    assert index.name == 'index.html' and index.is_file()
    onnx = tmp_path / 'web' / 'heartbox.onnx'
    assert sha256_file(onnx) == sha256_file(web_export.MODEL_ASSETS / 'heartbox.onnx')
    # a failure is a notification, never an exception in the UI
    def boom(*a, **k):
        raise HeartboxError('runtime files missing: run make web-vendor')

    monkeypatch.setattr(web_export, 'export_web', boom)
    assert widget.export_web(tmp_path / 'x') is None


def test_model_picker_runs_the_chosen_model(make_napari_viewer, qtbot, tmp_path):
    """The widget's model field: a bad folder is a one-line note (bundled model kept); a
    model folder is what Propose runs (a copy of the bundled graph whose card asks for a
    300 L heart finds none where the bundled model finds one)."""
    import json
    import shutil

    from napari_heartbox._sample_data import synthetic_chest_ct
    from napari_heartbox._widget import HeartSectorWidget
    from napari_heartbox.model.card import CARD_NAME, ONNX_NAME, assets_dir

    viewer = make_napari_viewer()
    [(data, meta, _)] = synthetic_chest_ct()
    viewer.add_image(data, **meta)
    widget = HeartSectorWidget(viewer)
    picker = widget.model_picker
    assert not picker.use(tmp_path)  # an empty folder
    assert 'model not changed' in picker.note.value and 'heartbox.onnx' in picker.note.value
    assert picker.model is None and '\n' not in picker.note.value
    _propose_with_the_bundled_model(qtbot, widget)
    assert widget.model.sector.found

    folder = tmp_path / 'strict'
    folder.mkdir()
    shutil.copy(assets_dir() / ONNX_NAME, folder / ONNX_NAME)
    card = json.loads((assets_dir() / CARD_NAME).read_text())
    card['postprocess']['min_heart_volume_ml'] = 300_000.0
    (folder / CARD_NAME).write_text(json.dumps(card))
    picker.path.value = folder  # as the user picks it
    assert picker.model is not None and 'strict' in picker.note.value
    # chosen from code, the field shows it too; back to the bundled model clears it
    assert picker.use(None) and picker.path.line_edit.value == ''
    assert picker.use(folder) and Path(picker.path.value) == folder
    _wait_propose(qtbot, widget)
    assert widget.model.sector is not None and not widget.model.sector.found


def test_after_propose_the_box_is_centred_editable_and_the_dock_keeps_its_width(
    make_napari_viewer, qtbot, monkeypatch
):
    """Issue 21: after Propose the view is on the box's middle slice, the rectangle layer
    is active with its rectangle selected (resize handles shown), the dock has not grown
    (its text wraps), and 3D shows an attenuated MIP whose window comes from the data and
    is given back on return to 2D."""
    from qtpy.QtWidgets import QApplication

    from napari_heartbox._napari import sector_widget as sw
    from napari_heartbox._napari.box_controls import WINDOW_3D_HU
    from napari_heartbox._widget import HeartSectorWidget

    vol = _volume()
    monkeypatch.setattr(sw, 'run_propose', lambda v, m, progress=None, model=None: _box(vol))
    viewer = make_napari_viewer(show=True)
    data, meta, _ = layer_data_from_volume(vol, name='chest')
    layer = viewer.add_image(data, **meta)
    widget = HeartSectorWidget(viewer)
    dock = viewer.window.add_dock_widget(widget, name='Heart sector')
    for _ in range(5):
        QApplication.processEvents()
    width = dock.width()
    _wait_propose(qtbot, widget)
    for _ in range(5):
        QApplication.processEvents()
    editor = widget.editor
    assert editor.current_plane()[1] == (8 + 20 - 1) // 2  # the box's middle slice
    assert viewer.layers.selection.active is editor.rect_layer
    assert str(editor.rect_layer.mode) == 'select' and editor.rect_layer.selected_data == {0}
    assert 'Drag' in widget.controls.edit_hint.value
    assert dock.width() == width and 'LPS min' in widget.info.value

    before = tuple(layer.contrast_limits)
    widget.show_view('3D')
    assert str(layer.rendering) == 'attenuated_mip'
    lo, hi = layer.contrast_limits
    assert WINDOW_3D_HU[0] <= lo < hi <= WINDOW_3D_HU[1] and hi <= data.max()
    assert viewer.layers.selection.active is editor.handles_layer
    assert 'face handle' in widget.controls.edit_hint.value
    widget.show_view('Coronal')
    assert tuple(layer.contrast_limits) == before
    assert viewer.layers.selection.active is editor.rect_layer
