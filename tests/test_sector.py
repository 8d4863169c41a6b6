"""Sector / Grid / CTVolume: conversions, operations and the JSON schema."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_heartbox import CTVolume, Grid, Sector, box_iou_mm
from napari_heartbox.sector import SCHEMA_ID, sector_schema


@pytest.fixture
def grid():
    # 40 slices of 2.5 mm, 64x80 pixels of 0.7 mm; voxel (0,0,0) centre at LPS (-20, -30, -100)
    return Grid.axis_aligned((40, 64, 80), (2.5, 0.7, 0.7), (-20.0, -30.0, -100.0))


def test_grid_index_lps_round_trip(grid):
    idx = np.array([[0, 0, 0], [39, 63, 79], [10.5, 3.25, 7.0]])
    lps = grid.index_to_lps(idx)
    # x index -> L, y index -> P, z index -> S
    assert lps[0].tolist() == [-20.0, -30.0, -100.0]
    assert np.allclose(lps[1], [-20 + 79 * 0.7, -30 + 63 * 0.7, -100 + 39 * 2.5])
    assert np.allclose(grid.lps_to_index(lps), idx)
    assert grid.is_axis_aligned


def test_grid_rejects_bad_input():
    with pytest.raises(ValueError, match='spacing'):
        Grid.axis_aligned((2, 2, 2), (0, 1, 1))
    with pytest.raises(ValueError, match='singular'):
        Grid((2, 2, 2), (1, 1, 1), np.diag([0, 1, 1, 1.0]))


def test_sector_ranges_are_half_open_and_validated(grid):
    s = Sector(grid, (5, 15), (10, 40), (20, 60))
    assert s.size_voxels == (10, 30, 40)
    vol = np.zeros(grid.shape, bool)
    vol[s.slices] = True
    assert vol.sum() == 10 * 30 * 40
    assert s.contains_index((5, 10, 20)) and not s.contains_index((15, 10, 20))
    for bad in [((5, 5), (0, 1), (0, 1)), ((-1, 3), (0, 1), (0, 1)), ((0, 41), (0, 1), (0, 1))]:
        with pytest.raises(ValueError, match='range'):
            Sector(grid, *bad)


def test_patient_mm_is_at_voxel_edges(grid):
    s = Sector(grid, (4, 8), (10, 20), (0, 80))
    lo, hi = s.patient_mm()
    # inferior face half a slice below the centre of slice 4; superior half a slice above slice 7
    assert lo[2] == pytest.approx(-100 + 3.5 * 2.5)
    assert hi[2] == pytest.approx(-100 + 7.5 * 2.5)
    assert lo[1] == pytest.approx(-30 + 9.5 * 0.7)
    assert hi[0] == pytest.approx(-20 + 79.5 * 0.7)
    assert np.allclose(np.array(hi) - np.array(lo), [80 * 0.7, 10 * 0.7, 4 * 2.5])
    assert s.size_mm == pytest.approx((10.0, 7.0, 56.0))


def test_from_patient_mm_inverts_patient_mm(grid):
    s = Sector(grid, (3, 31), (7, 50), (11, 77))
    assert Sector.from_patient_mm(grid, *s.patient_mm()) == s


def test_from_patient_mm_clips_to_grid(grid):
    s = Sector.from_patient_mm(grid, (-1000, -1000, -1000), (1000, 1000, 1000))
    assert s.ranges == ((0, 40), (0, 64), (0, 80))


def test_expand_mm_rounds_up_per_axis_and_clips(grid):
    s = Sector(grid, (10, 20), (10, 20), (1, 70))
    e = s.expand_mm(5.0)
    # 5 mm = 2 slices of 2.5 mm; 5/0.7 = 7.14 -> 8 pixels
    assert e.z == (8, 22) and e.y == (2, 28)
    assert e.x == (0, 78)  # clipped at 0 on the low side
    assert s.expand_mm((0, 0, 0)) == s
    shrunk = s.expand_mm(-100.0)
    assert shrunk.size_voxels == (1, 1, 1)


def test_iou_and_intersection(grid):
    a = Sector(grid, (0, 10), (0, 10), (0, 10))
    b = Sector(grid, (5, 15), (0, 10), (0, 10))
    assert a.iou(a) == 1.0
    assert a.iou(b) == pytest.approx(500 / 1500)
    assert a.intersection(b).ranges == ((5, 10), (0, 10), (0, 10))
    c = Sector(grid, (20, 30), (0, 10), (0, 10))
    assert a.intersection(c) is None and a.iou(c) == 0.0
    nf = Sector.not_found(grid)
    assert nf.iou(Sector.not_found(grid)) == 1.0 and nf.iou(a) == 0.0
    other = Grid.axis_aligned((40, 64, 80), (2.0, 0.7, 0.7))
    with pytest.raises(ValueError, match='different grids'):
        a.iou(Sector(other, (0, 10), (0, 10), (0, 10)))


def test_box_iou_mm_matches_voxel_iou(grid):
    a = Sector(grid, (0, 10), (0, 10), (0, 10))
    b = Sector(grid, (5, 15), (2, 10), (0, 12))
    assert box_iou_mm(*a.patient_mm(), *b.patient_mm()) == pytest.approx(a.iou(b))


def test_json_round_trip_and_schema(grid):
    jsonschema = pytest.importorskip('jsonschema')
    s = Sector(
        grid, (4, 8), (10, 20), (0, 80), confidence=0.93, series_uid='1.2.3',
        model_sha256='a' * 64,
    )
    d = json.loads(s.to_json())
    jsonschema.validate(d, sector_schema())
    assert d['schema'] == SCHEMA_ID
    assert d['voxel'] == {'z': [4, 8], 'y': [10, 20], 'x': [0, 80]}
    assert d['shape'] == [40, 64, 80] and d['spacing_mm'] == [2.5, 0.7, 0.7]
    assert Sector.from_json(s.to_json()) == s
    nf = Sector.not_found(grid, confidence=0.02)
    dn = nf.to_dict()
    jsonschema.validate(dn, sector_schema())
    assert dn['found'] is False and dn['voxel'] is None and dn['patient_mm'] is None
    assert Sector.from_dict(dn) == nf


def test_schema_rejects_identifiers_and_bad_objects(grid):
    jsonschema = pytest.importorskip('jsonschema')
    d = Sector(grid, (4, 8), (10, 20), (0, 80)).to_dict()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**d, 'PatientName': 'Doe^John'}, sector_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**d, 'confidence': 1.5}, sector_schema())
    with pytest.raises(ValueError, match='not a heartbox.sector/1'):
        Sector.from_dict({'schema': 'other'})
    with pytest.raises(ValueError, match='does not match'):
        Sector.from_dict(d, Grid.axis_aligned((1, 2, 3), (1, 1, 1)))


def test_crop_keeps_patient_positions(grid):
    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 1000, size=grid.shape, dtype=np.int16)
    vol = CTVolume(hu, grid)
    s = Sector(grid, (4, 8), (10, 20), (30, 80))
    c = vol.crop(s)
    assert c.shape == (4, 10, 50)
    np.testing.assert_array_equal(c.hu, hu[4:8, 10:20, 30:80])
    # voxel (0,0,0) of the crop is voxel (4,10,30) of the original, in patient mm
    assert np.allclose(c.grid.index_to_lps([0, 0, 0]), grid.index_to_lps([4, 10, 30]))
    assert np.allclose(c.grid.index_to_lps([3, 9, 49]), grid.index_to_lps([7, 19, 79]))
    c.hu[...] = 0
    assert hu[4:8, 10:20, 30:80].any()  # a copy: the source volume is untouched
    with pytest.raises(ValueError, match='found=False'):
        vol.crop(Sector.not_found(grid))


def test_crop_on_oblique_grid():
    # a gantry-tilt style shear: z steps also move in P
    a = np.array([[0, 0, 0.5, 10], [0.2, 0.5, 0, 20], [2.0, 0, 0, 30], [0, 0, 0, 1.0]])
    g = Grid((10, 20, 30), (2.0, 0.5, 0.5), a)
    vol = CTVolume(np.zeros(g.shape, np.int16), g)
    s = Sector(g, (2, 6), (3, 9), (4, 12))
    c = vol.crop(s)
    assert np.allclose(c.grid.index_to_lps([1, 2, 3]), g.index_to_lps([3, 5, 7]))
    lo, hi = s.patient_mm()
    # by hand: voxel edges z 1.5..5.5, y 2.5..8.5, x 3.5..11.5 through the affine
    # (L = 0.5 x + 10, P = 0.2 z + 0.5 y + 20, S = 2 z + 30)
    assert np.allclose(lo, [11.75, 21.55, 33.0]) and np.allclose(hi, [15.75, 25.35, 41.0])
    assert not g.is_axis_aligned


def test_ctvolume_validates_and_converts():
    with pytest.raises(ValueError, match='int16'):
        CTVolume(np.zeros((2, 2, 2), np.float32), Grid.axis_aligned((2, 2, 2), (1, 1, 1)))
    v = CTVolume.from_array(np.array([[[40000.0, -1024.4]]]), spacing=(1, 1, 1))
    assert v.hu.dtype == np.int16 and v.hu.ravel().tolist() == [32767, -1024]
    assert 'slices' in v.describe()
