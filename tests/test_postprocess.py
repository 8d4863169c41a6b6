"""Post-processing: per-cell probabilities → Sector (docs/model.md §4)."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from napari_heartbox.grid import Grid
from napari_heartbox.model.postprocess import (
    heart_component,
    largest_component,
    sector_from_prob,
)

CFG = {
    'threshold': 0.5,
    'min_heart_volume_ml': 20.0,
    'default_margin_mm': 0.0,
    'confidence': {'bias': -3.0, 'w_mean_prob': 4.0, 'w_log_volume_ml': 0.3},
}


def _grid(z=100, h=512, w=512, sp=(2.0, 0.5, 0.5)):
    return Grid.axis_aligned((z, h, w), sp)


def _block(z=100, zr=(30, 60), rr=(20, 40), cr=(25, 45), p=1.0):
    prob = np.zeros((z, 64, 64), np.float32)
    prob[zr[0] : zr[1], rr[0] : rr[1], cr[0] : cr[1]] = p
    return prob


def _bfs_components(mask):
    """Reference labelling: BFS in raster order, 6-connectivity."""
    lab = np.zeros(mask.shape, int)
    n = 0
    sizes = []
    for start in zip(*np.nonzero(mask), strict=True):
        if lab[start]:
            continue
        n += 1
        lab[start] = n
        q = deque([start])
        size = 0
        while q:
            c = q.popleft()
            size += 1
            for ax in range(3):
                for d in (-1, 1):
                    nb = list(c)
                    nb[ax] += d
                    nb = tuple(nb)
                    if 0 <= nb[ax] < mask.shape[ax] and mask[nb] and not lab[nb]:
                        lab[nb] = n
                        q.append(nb)
        sizes.append(size)
    return lab, sizes


@pytest.mark.parametrize('seed', range(6))
def test_largest_component_matches_bfs_reference(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((12, 10, 14)) < (0.25 + 0.05 * seed)
    lab, sizes = _bfs_components(mask)
    best = int(np.argmax(sizes)) + 1  # argmax → first max = earliest in raster order
    got = largest_component(mask)
    np.testing.assert_array_equal(got, lab == best)


def test_largest_component_is_six_connected_not_diagonal():
    mask = np.zeros((3, 5, 5), bool)
    mask[1, 1, 1] = mask[1, 2, 2] = mask[2, 2, 2] = True  # (1,1,1) only touches diagonally
    got = largest_component(mask)
    assert got.sum() == 2 and got[1, 2, 2] and got[2, 2, 2] and not got[1, 1, 1]


def _split_heart():
    """A heart broken in two along z (a 3-slice gap), a small blob beside it,
    a large blob far above it, one beside it in-plane (no row overlap) and,
    just below it, a larger one that overlaps its rows and columns but reaches
    past them (the liver dome under a heart)."""
    mask = np.zeros((80, 64, 64), bool)
    mask[10:30, 20:40, 20:40] = True  # the larger half: 8000 cells
    mask[33:40, 22:38, 24:38] = True  # the other half: 1568 cells, 3 empty slices above
    mask[36:38, 5:8, 50:53] = True  # small: 18 cells
    mask[70:80, 20:40, 20:40] = True  # far above: 30 empty slices
    mask[12:20, 50:60, 20:40] = True  # beside: rows 50-60 do not overlap 20-40
    mask[0:8, 25:45, 10:35] = True  # below, 1 empty slice: 4000 cells, not inside rows/cols 20-40
    return mask


@pytest.mark.parametrize(
    ('dz', 'fraction', 'gap_mm', 'kept'),
    [
        (2.0, None, 0.0, 'largest'),  # no joining: the largest only
        (2.0, 0.1, 20.0, 'both halves'),  # 3 slices × 2 mm = 6 mm ≤ 20
        (2.0, 0.1, 5.0, 'largest'),  # 6 mm > 5
        (5.0, 0.1, 20.0, 'both halves'),  # 15 mm
        (2.0, 0.25, 20.0, 'largest'),  # 1568 < 0.25 × 8000
    ],
)
def test_heart_component_rejoins_a_heart_split_along_z(dz, fraction, gap_mm, kept):
    mask = _split_heart()
    got = heart_component(mask, dz, fraction, gap_mm)
    want = np.zeros_like(mask)
    want[10:30, 20:40, 20:40] = True
    if kept == 'both halves':
        want[33:40, 22:38, 24:38] = True
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(heart_component(mask), largest_component(mask))


def test_heart_component_does_not_join_a_piece_reaching_past_the_hearts_footprint():
    """Overlapping rows and columns are not enough: the liver dome under a heart
    overlaps its footprint, but reaches past it (models/EXPERIMENTS.md round 8)."""
    mask = np.zeros((40, 64, 64), bool)
    mask[10:30, 20:40, 20:40] = True  # the heart: 8000 cells
    mask[2:9, 25:41, 22:38] = True  # one row past the heart's rows 20-40
    got = heart_component(mask, 2.5, 0.1, 20.0)
    assert got.sum() == 8000 and not got[:10].any()
    mask[2:9, 40, 22:38] = False  # now inside: joined
    assert heart_component(mask, 2.5, 0.1, 20.0).sum() == 8000 + 7 * 15 * 16


def test_split_heart_box_spans_both_halves():
    prob = _split_heart().astype(np.float32)
    cfg = dict(CFG, join_fraction=0.1, join_gap_mm=20.0)
    grid = _grid(z=80)
    joined, alone = sector_from_prob(prob, grid, cfg), sector_from_prob(prob, grid, CFG)
    assert tuple(joined.z) == (10, 40) and tuple(alone.z) == (10, 30)
    assert joined.confidence > alone.confidence  # more cells, same mean probability


def test_empty_probabilities_give_not_found_with_zero_confidence():
    s = sector_from_prob(np.zeros((100, 64, 64), np.float32), _grid(), CFG)
    assert not s.found and s.confidence == 0.0


def test_solid_block_maps_to_exact_pixel_ranges():
    # kH = kW = 8 for 512²; p = 1 inside, 0 outside → faces on cell edges
    s = sector_from_prob(_block(), _grid(), CFG)
    assert s.found
    assert s.ranges == ((30, 60), (160, 320), (200, 360))
    assert 0.0 < s.confidence <= 1.0


def test_stray_positive_slices_are_ignored():
    prob = _block()
    prob[90:93, 5:8, 5:8] = 0.99  # a separate blob far above
    prob[2, 50, 50] = 0.99  # a single stray cell
    s = sector_from_prob(prob, _grid(), CFG)
    assert s.ranges == ((30, 60), (160, 320), (200, 360))


def test_the_larger_of_two_blobs_wins():
    prob = _block(zr=(10, 20), rr=(5, 10), cr=(5, 10))
    prob[50:80, 30:50, 30:50] = 0.9
    s = sector_from_prob(prob, _grid(), CFG)
    assert s.z == (50, 80) and s.y[0] >= 30 * 8 - 8 and s.x[1] <= 50 * 8 + 8


def test_sub_cell_edges_follow_soft_probabilities():
    prob = _block()
    prob[30:60, 20:40, 24] = 0.4  # heart reaches 0.4 of a cell further on the low-x side
    prob[30:60, 20:40, 44] = 0.75  # and covers only 0.75 of its last high-x cell
    s = sector_from_prob(prob, _grid(), CFG)
    # low x edge: (25 + 1 - (1.0 + 0.4)) cells = 24.6 cells = 196.8 px → 197
    # high x edge: 44 + 0.75 + 0 = 44.75 cells = 358 px
    assert s.x == (197, 358)
    assert s.y == (160, 320)


def test_margin_grows_each_face_in_mm():
    g = _grid(sp=(2.0, 0.5, 0.8))
    s0 = sector_from_prob(_block(), g, CFG, margin_mm=0.0)
    s5 = sector_from_prob(_block(), g, CFG, margin_mm=5.0)
    # z: 5 mm = 2.5 slices; edges 27.5 and 62.5 round half up (floor(v + 0.5)) → 28, 63
    assert s0.z == (30, 60) and s5.z == (28, 63)
    assert s5.y == (s0.y[0] - 10, s0.y[1] + 10)
    assert s5.x == (s0.x[0] - 6, s0.x[1] + 6)  # 6.25 px → rounds to 6


def test_default_margin_comes_from_config():
    cfg = dict(CFG, default_margin_mm=1.0)
    s = sector_from_prob(_block(), _grid(), cfg)
    assert s.y == (158, 322)


def test_box_is_clipped_to_the_volume():
    prob = _block(zr=(0, 20), rr=(0, 30), cr=(40, 64))
    s = sector_from_prob(prob, _grid(), CFG, margin_mm=20.0)
    assert s.z[0] == 0 and s.y[0] == 0 and s.x[1] == 512


def test_padding_cells_are_ignored_for_non_multiple_sizes():
    # H = 500 → kH = 8, valid cell rows 0..62; W = 600 → kW = 10, valid cols 0..59
    g = _grid(h=500, w=600)
    prob = _block(rr=(40, 64), cr=(40, 64))
    s = sector_from_prob(prob, g, CFG)
    assert s.y == (320, 500) and s.x == (400, 600)


def test_small_component_is_not_found_but_has_a_confidence():
    prob = _block(zr=(10, 12), rr=(10, 12), cr=(10, 12))  # 8 cells × 2·4·4 mm³ = 0.26 ml
    s = sector_from_prob(prob, _grid(), CFG)
    assert not s.found and 0.0 < s.confidence < 1.0


def test_confidence_increases_with_probability_and_carries_metadata():
    lo = sector_from_prob(_block(p=0.6), _grid(), CFG, series_uid='1.2.3', model_sha256='ab' * 32)
    hi = sector_from_prob(_block(p=0.99), _grid(), CFG)
    assert hi.confidence > lo.confidence
    assert lo.series_uid == '1.2.3' and lo.model_sha256 == 'ab' * 32


def test_wrong_shape_raises():
    with pytest.raises(ValueError, match='prob must have shape'):
        sector_from_prob(np.zeros((10, 64, 64), np.float32), _grid(), CFG)


def test_low_confidence_component_is_not_found():
    cfg = dict(CFG, min_confidence=0.999)
    s = sector_from_prob(_block(p=0.6), _grid(), cfg)
    assert not s.found and 0.0 < s.confidence < 0.999


def _run_length_case(seed):
    """A run-length stack (planes, z_len) with a split heart, a stray blob and noise."""
    rng = np.random.default_rng(seed)
    planes = int(rng.integers(8, 40))
    z_len = rng.integers(1, 6, size=planes)
    prob = (rng.random((planes, 64, 64), dtype=np.float32) * 0.4).astype(np.float32)
    a, b = sorted(rng.choice(np.arange(1, planes), 2, replace=False))
    prob[a:b, 20:40, 18:44] = rng.uniform(0.5, 1.0, size=(b - a, 20, 26)).astype(np.float32)
    if b + 2 < planes:  # the rest of a split heart, one plane of gap above
        prob[b + 1 :, 24:36, 22:40] = 0.8
    prob[0, 2:5, 50:60] = 0.97  # a blob beside the chest
    return prob, z_len


@pytest.mark.parametrize('seed', range(12))
def test_run_length_stack_gives_the_expanded_stacks_sector_bit_for_bit(seed):
    prob, z_len = _run_length_case(seed)
    grid = _grid(z=int(z_len.sum()), sp=(1.25, 0.7, 0.7))
    cfg = {**CFG, 'min_heart_volume_ml': 1.0, 'join_fraction': 0.05, 'join_gap_mm': 3.0}
    for margin in (0.0, 7.5):
        full = sector_from_prob(np.repeat(prob, z_len, axis=0), grid, cfg, margin_mm=margin)
        rle = sector_from_prob(prob, grid, cfg, margin_mm=margin, z_len=z_len)
        assert full.found and rle.found
        assert (rle.z, rle.y, rle.x) == (full.z, full.y, full.x)
        assert rle.confidence == full.confidence  # exact, not approximately


def test_run_length_lengths_that_do_not_cover_the_grid_are_refused():
    prob, z_len = _run_length_case(0)
    with pytest.raises(ValueError, match='must sum'):
        sector_from_prob(prob, _grid(z=int(z_len.sum()) + 1), CFG, z_len=z_len)
    with pytest.raises(ValueError, match='positive'):
        sector_from_prob(prob, _grid(z=int(z_len.sum())), CFG, z_len=np.where(np.arange(z_len.size) == 3, 0, z_len))


def test_run_length_planes_weigh_by_the_slices_they_stand_for():
    """One plane standing for 10 slices (10 × 100 cells) outweighs three single planes
    of 200 cells: the heart is the component with the most cells of the volume."""
    prob = np.zeros((5, 64, 64), np.float32)
    prob[0, 10:20, 10:20] = 0.9  # 100 cells × 10 slices
    prob[2:5, 40:50, 40:60] = 0.9  # 200 cells × 3 slices
    z_len = np.array([10, 1, 1, 1, 1])
    s = sector_from_prob(prob, _grid(z=14), {**CFG, 'min_heart_volume_ml': 0.0}, z_len=z_len)
    assert s.z == (0, 10) and s.y[0] < 20 * 8
