"""``napari_heartbox.jupyter.SectorWidget``: the Python side (no browser, no kernel)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip('anywidget', reason='the Jupyter widget needs the jupyter extra (anywidget)')

from napari_heartbox.errors import HeartboxError  # noqa: E402
from napari_heartbox.jupyter import (  # noqa: E402
    PREVIEW_BYTES,
    SectorWidget,
    preview_strides,
    window_uint8,
)
from napari_heartbox.sector import Sector  # noqa: E402
from napari_heartbox.volume import CTVolume  # noqa: E402


@pytest.fixture(scope='module')
def chest():
    from napari_heartbox.phantom import make_phantom

    return make_phantom(11, coverage='chest', matrix=(256, 256), fov_mm=380.0, keep_labels=False)


def _msg(w, **content):
    w._on_msg(w, content, [])


def test_a_700_slice_volume_sends_a_small_preview():
    vol = CTVolume.from_array(np.zeros((700, 512, 512), np.int16), spacing=(0.7, 0.7, 0.7))
    w = SectorWidget(vol)
    sz, s = preview_strides(vol.shape)
    assert (sz, s) == (2, 2) and w.preview_shape == [350, 256, 256]
    assert len(w.preview) == 350 * 256 * 256 <= PREVIEW_BYTES < 40e6
    assert w.box == [] and w.sector is None and 'Propose' in w.status


def test_window_presets_map_hu_to_grey():
    hu = np.array([-1000, -160, 40, 240, 3000], np.int16)
    np.testing.assert_array_equal(window_uint8(hu, 'soft tissue'), [0, 0, 127, 255, 255])


def test_box_and_sector_stay_in_sync_both_ways(chest):
    w = SectorWidget(chest.volume, chest.heart_box)
    seen = []
    w.observe(lambda ch: seen.append(ch['new']), names='sector')
    assert w.sector == chest.heart_box and w.found
    assert w.box == [v for r in chest.heart_box.ranges for v in r]
    # the page drags the right face (x1) 5 voxels out
    b = list(w.box)
    b[5] += 5
    w.box = b
    assert w.sector.ranges[2] == (chest.heart_box.ranges[2][0], chest.heart_box.ranges[2][1] + 5)
    assert seen and seen[-1] == w.sector and w.can_undo and 'edited' in w.status
    # Python sets the sector: the page's box follows
    s = w.sector.with_ranges(z=(3, 9))
    w.sector = s
    assert w.box[:2] == [3, 9] and w.sector == s
    # undo twice from the page's buttons: back to the start
    _msg(w, type='undo')
    _msg(w, type='undo')
    assert w.sector.ranges == chest.heart_box.ranges and not w.can_undo
    _msg(w, type='reset')
    assert w.sector.ranges == chest.heart_box.ranges


def test_an_impossible_box_from_the_page_is_refused_and_put_back(chest):
    w = SectorWidget(chest.volume, chest.heart_box)
    before = list(w.box)
    w.box = [5, 5, 0, 10, 0, 10]  # empty z range
    assert w.box == before and 'not a valid box' in w.status
    with pytest.raises(HeartboxError, match='another grid'):
        w.sector = Sector(CTVolume.from_array(np.zeros((4, 4, 4), np.int16)).grid, (0, 2), (0, 2), (0, 2))
    assert w.box == before


def test_propose_save_and_crop(chest, tmp_path):
    from napari_heartbox.sector_file import read_sector_file

    w = SectorWidget(chest.volume)
    with pytest.raises(HeartboxError, match='no box'):
        w.save(tmp_path / 'x.json')
    _msg(w, type='propose')  # the Propose button
    assert w.found and w.proposal is not None and w.sector == w.proposal
    assert w.sector.iou(chest.heart_box) > 0.3 and 'confidence' in w.status
    p = w.save(tmp_path / 'heart.json')
    sf = read_sector_file(p, grid=chest.volume.grid)
    assert sf.sector.ranges == w.sector.ranges and sf.proposal.ranges == w.proposal.ranges
    small = w.crop()
    assert small.shape == tuple(b - a for a, b in w.sector.ranges)
    np.testing.assert_array_equal(small.hu, chest.volume.hu[w.sector.slices])


def test_slices_are_refined_on_demand_at_full_resolution(chest, monkeypatch):
    w = SectorWidget(chest.volume, chest.heart_box)
    sent = []
    monkeypatch.setattr(w, 'send', lambda content, buffers=None: sent.append((content, buffers)))
    _msg(w, type='slice', view='coronal', index=100)
    (content, (buf,)), = sent
    nz, ny, nx = chest.volume.shape
    assert content['shape'] == [nz, nx] and content['view'] == 'coronal'
    np.testing.assert_array_equal(
        np.frombuffer(buf, np.uint8).reshape(nz, nx), window_uint8(chest.volume.hu[:, 100, :], w.window))
    w.window = 'lung'  # a new preset re-sends the preview
    assert w.preview == window_uint8(chest.volume.hu[:: w.preview_stride[0], :: w.preview_stride[1],
                                                     :: w.preview_stride[1]], 'lung').tobytes()


def test_the_page_module_carries_the_web_apps_sector_maths():
    esm = SectorWidget._esm.default_value
    assert 'export function sectorToDict' in esm and 'export default { render }' in esm
    assert 'import ' not in esm.replace('// ', '')  # one self-contained module, nothing fetched
    assert 'http://' not in esm and 'https://' not in esm
