"""The coarse-to-fine slice schedule (napari_heartbox/model/zschedule.py)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_heartbox.grid import Grid
from napari_heartbox.model.postprocess import sector_from_prob
from napari_heartbox.model.zschedule import (
    coarse_slices,
    context_offset,
    context_rows,
    fill_nearest,
    fill_runs,
    final_slices,
    fine_step,
    gather_rows,
    refine_reach,
    refine_slices,
    scheduled_prob,
    slice_positive,
    z_step,
)

CFG = {
    'threshold': 0.5,
    'min_heart_volume_ml': 20.0,
    'default_margin_mm': 0.0,
    'confidence': {'bias': -3.0, 'w_mean_prob': 4.0, 'w_log_volume_ml': 0.3},
    'z_step_mm': 4.0,
    'z_refine_mm': 12.0,
    'z_context_mm': 8.0,
}


@pytest.mark.parametrize(
    ('dz', 'k', 'mm'),
    [(0.5, 16, 8.0), (0.625, 12, 7.5), (1.0, 8, 8.0), (1.25, 6, 7.5), (2.5, 3, 7.5), (3.0, 3, 9.0), (5.0, 2, 10.0)],
)
def test_context_offset_is_whole_coarse_steps_near_8_mm(dz, k, mm):
    got = context_offset(dz, CFG)
    assert got == k and got % z_step(dz, CFG) == 0
    assert got * dz == pytest.approx(mm)


def test_context_offset_without_a_setting_means_a_per_slice_model():
    assert context_offset(1.0, {'z_step_mm': 4.0}) == 0  # rows (z, z, z): each slice alone
    needed, local = gather_rows(context_rows(np.array([3, 7]), 10, 0))
    np.testing.assert_array_equal(needed, [3, 7])
    np.testing.assert_array_equal(local, [[0, 0, 0], [1, 1, 1]])
    assert context_offset(0.0, CFG) == 1  # spacing unknown: the nearest slices


def test_context_rows_clamp_at_the_volume_ends():
    rows = context_rows(np.array([0, 3, 9]), 10, 4)
    np.testing.assert_array_equal(rows, [[0, 0, 4], [0, 3, 7], [5, 9, 9]])
    assert rows.dtype == np.int64


def test_gather_rows_reads_each_slice_once():
    rows = context_rows(np.array([8, 16, 17]), 40, 8)
    needed, local = gather_rows(rows)
    np.testing.assert_array_equal(needed, [0, 8, 9, 16, 17, 24, 25])
    np.testing.assert_array_equal(needed[local], rows)


def test_context_of_coarse_slices_is_coarse():
    """The coarse pass reads (almost) no slice it does not score: only the last
    slice's lower neighbour may fall between coarse slices."""
    for dz in (0.5, 0.625, 0.8, 1.0, 1.25, 2.0, 3.0):
        nz = 301
        coarse = coarse_slices(nz, z_step(dz, CFG))
        k = context_offset(dz, CFG)
        needed, _ = gather_rows(context_rows(coarse, nz, k))
        assert set(needed.tolist()) - set(coarse.tolist()) <= {nz - 1 - k}, dz


def test_step_and_reach_follow_the_spacing():
    assert z_step(0.5, CFG) == 8
    assert z_step(0.8, CFG) == 5  # floor(5.0 + 1e-6): an exact multiple is not lost to rounding
    assert z_step(1.25, CFG) == 3
    assert z_step(5.0, CFG) == 1  # thick slices: every slice
    assert z_step(0.5, {**CFG, 'z_step_mm': 0}) == 1
    assert z_step(0.5, {'threshold': 0.5}) == 1  # an older card: every slice
    assert refine_reach(0.5, CFG) == 24
    assert refine_reach(0.7, CFG) == 17  # floor(17.14 + 0.5)
    assert refine_reach(0.5, {'threshold': 0.5}) == 0


def test_coarse_slices_always_include_both_ends():
    np.testing.assert_array_equal(coarse_slices(10, 4), [0, 4, 8, 9])
    np.testing.assert_array_equal(coarse_slices(9, 4), [0, 4, 8])
    np.testing.assert_array_equal(coarse_slices(1, 4), [0])
    np.testing.assert_array_equal(coarse_slices(5, 1), [0, 1, 2, 3, 4])


def test_refine_covers_each_transition_gap_and_reaches_into_the_positive_side():
    coarse = np.array([0, 4, 8, 12, 16, 19])
    pos = np.array([0, 0, 1, 1, 0, 0], bool)
    # 0→1 between 4 and 8: 5,6,7 then 9,10 (reach 2) ; 1→0 between 12 and 16: 10,11 (reach) and 13,14,15
    np.testing.assert_array_equal(refine_slices(coarse, pos, 20, 2), [5, 6, 7, 9, 10, 11, 13, 14, 15])
    np.testing.assert_array_equal(refine_slices(coarse, pos, 20, 0), [5, 6, 7, 13, 14, 15])
    assert refine_slices(coarse, np.zeros(6, bool), 20, 2).size == 0
    # reach is clipped to the volume and never re-lists a coarse slice
    np.testing.assert_array_equal(refine_slices(np.array([0, 4, 7]), np.array([1, 0, 0], bool), 8, 9), [1, 2, 3])


FINE = dict(CFG, z_fine_mm=1.5)


@pytest.mark.parametrize(('dz', 'fine'), [(0.43, 3), (0.5, 2), (0.625, 2), (0.8, 1), (1.25, 1), (5.0, 1)])
def test_fine_step_divides_the_coarse_step_and_stays_under_z_fine_mm(dz, fine):
    got = fine_step(dz, FINE)
    assert got == fine
    assert z_step(dz, FINE) % got == 0 and context_offset(dz, FINE) % got == 0
    assert got == 1 or got * dz <= 1.5
    assert fine_step(dz, CFG) == 1  # without z_fine_mm: every slice, as before


def test_refine_on_the_fine_grid_rounds_the_reach_outwards():
    coarse = np.array([0, 8, 16, 24, 32, 39])
    pos = np.array([0, 1, 1, 1, 0, 0], bool)
    # 0→1 between 0 and 8: 2, 4, 6, then the reach 9..13 → up to 14 on the grid of 2;
    # 1→0 between 24 and 32: 26, 28, 30, and the reach 19..23 → down from 18
    np.testing.assert_array_equal(
        refine_slices(coarse, pos, 40, 5, fine=2), [2, 4, 6, 10, 12, 14, 18, 20, 22, 26, 28, 30]
    )
    np.testing.assert_array_equal(refine_slices(coarse, pos, 40, 5, fine=1)[:7], [1, 2, 3, 4, 5, 6, 7])


def test_final_slices_fill_the_gaps_where_positivity_changes():
    ran = np.array([0, 3, 6, 7, 9, 12])
    pos = np.array([0, 0, 1, 1, 0, 0], bool)
    np.testing.assert_array_equal(final_slices(ran, pos), [4, 5, 8])
    assert final_slices(ran, np.zeros(6, bool)).size == 0
    assert final_slices(np.array([4, 5]), np.array([0, 1], bool)).size == 0  # neighbours: nothing between


@pytest.mark.parametrize('dz', [0.43, 0.5, 0.625])
def test_fine_schedule_gives_the_full_resolution_box_with_fewer_slices(dz):
    full = _heart_stack(nz=900, z0=300, z1=700)
    grid = Grid.axis_aligned(full.shape[:1] + (512, 512), (dz, 0.7, 0.7))
    calls = []

    def run(idx):
        calls.append(np.asarray(idx).copy())
        return full[idx]

    prob, ran = scheduled_prob(run, full.shape[0], dz, 64, 64, FINE)
    prob_old, ran_old = scheduled_prob(lambda i: full[i], full.shape[0], dz, 64, 64, CFG)
    assert len(calls) == 3  # coarse, fine grid, final
    assert len(np.unique(np.concatenate(calls))) == sum(c.size for c in calls)  # no slice twice
    assert ran.size < 0.85 * ran_old.size
    got = sector_from_prob(prob, grid, CFG)
    old = sector_from_prob(prob_old, grid, CFG)  # every slice around the faces
    assert got.found and (got.z, got.y, got.x) == (old.z, old.y, old.x)
    assert got.z == sector_from_prob(full, grid, CFG).z  # z faces at full slice resolution


def test_slice_positive_ignores_padding_cells():
    p = np.zeros((3, 64, 64), np.float32)
    p[0, 10, 10] = 0.5  # exactly the threshold counts
    p[1, 63, 5] = 0.9  # a padding row when only 60 rows are valid
    p[2, 5, 5] = 0.49
    np.testing.assert_array_equal(slice_positive(p, 60, 64, 0.5), [True, False, False])


def test_fill_nearest_copies_the_closest_run_slice_ties_going_down():
    ran = np.array([0, 4, 9])
    vals = np.arange(3, dtype=np.float32)[:, None, None] * np.ones((1, 64, 64), np.float32)
    got = fill_nearest(11, ran, vals)[:, 0, 0]
    # z: 0 1 2 3 4 5 6 7 8 9 10 → nearest of {0,4,9}; z=2 is a tie (0 vs 4) → 0
    np.testing.assert_array_equal(got, [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])


@pytest.mark.parametrize('nz', [1, 2, 11, 97])
def test_fill_runs_is_the_run_length_form_of_fill_nearest(nz):
    rng = np.random.default_rng(nz)
    for _ in range(20):
        ran = np.unique(rng.integers(0, nz, size=rng.integers(1, nz + 1)))
        vals = rng.random((ran.size, 64, 64), dtype=np.float32)
        z_len = fill_runs(nz, ran)
        assert z_len.sum() == nz and z_len.min() >= 1
        np.testing.assert_array_equal(np.repeat(vals, z_len, axis=0), fill_nearest(nz, ran, vals))


def _heart_stack(nz=400, z0=150, z1=330):
    """A clean heart-like blob (an ellipsoid of cells) plus a stray speck below it."""
    zz, rr, cc = np.meshgrid(np.arange(nz), np.arange(64), np.arange(64), indexing='ij')
    zc, zr = (z0 + z1) / 2, (z1 - z0) / 2
    inside = ((zz - zc) / zr) ** 2 + ((rr - 30) / 12) ** 2 + ((cc - 34) / 14) ** 2 <= 1.0
    prob = np.where(inside, np.float32(0.95), np.float32(0.02)).astype(np.float32)
    prob[100:103, 5:7, 5:7] = 0.9  # a stray speck, far from the heart
    return prob


def test_schedule_gives_the_full_resolution_box_on_a_clean_heart_with_far_fewer_slices():
    full = _heart_stack()
    grid = Grid.axis_aligned(full.shape[:1] + (512, 512), (0.5, 0.7, 0.7))
    calls = []

    def run(idx):
        calls.append(np.asarray(idx).copy())
        return full[idx]

    prob, ran = scheduled_prob(run, full.shape[0], 0.5, 64, 64, CFG)
    assert prob.shape == full.shape
    # coarse pass first, then one refinement pass of slices not seen before
    np.testing.assert_array_equal(calls[0], coarse_slices(400, 8))
    assert len(calls) == 2 and not np.intersect1d(calls[0], calls[1]).size
    np.testing.assert_array_equal(ran, np.union1d(calls[0], calls[1]))
    assert ran.size < 0.5 * full.shape[0]
    np.testing.assert_array_equal(prob[ran], full[ran])  # slices that ran keep their own output
    got = sector_from_prob(prob, grid, CFG)
    want = sector_from_prob(full, grid, CFG)
    assert got.found and (got.z, got.y, got.x) == (want.z, want.y, want.x)


def test_schedule_runs_every_slice_when_the_card_has_no_step():
    full = _heart_stack(nz=60, z0=10, z1=50)
    seen = []
    prob, ran = scheduled_prob(lambda i: seen.append(i) or full[i], 60, 0.5, 64, 64, {'threshold': 0.5})
    assert len(seen) == 1
    np.testing.assert_array_equal(ran, np.arange(60))
    np.testing.assert_array_equal(prob, full)


def test_schedule_with_no_heart_runs_only_the_coarse_slices():
    empty = np.zeros((300, 64, 64), np.float32)
    seen = []
    prob, ran = scheduled_prob(lambda i: seen.append(i) or empty[i], 300, 0.5, 64, 64, CFG)
    assert len(seen) == 1
    np.testing.assert_array_equal(ran, coarse_slices(300, 8))
    assert not prob.any()


@pytest.mark.slow
def test_bundled_model_schedule_matches_every_slice_on_a_thin_slice_phantom():
    """Real model, real phantom (1 mm slices): the schedule scores under half the slices and
    its box stays within a few voxels of the box from scoring every slice."""
    from napari_heartbox.model.runtime import HeartModel
    from napari_heartbox.phantom import make_phantom

    model = HeartModel()
    case = make_phantom(3, matrix=(256, 256), slice_spacing_mm=1.0, coverage='chest')
    vol = case.volume
    prob, ran = model.scheduled_prob(vol.hu, vol.grid.spacing[0])
    assert ran.size < 0.6 * vol.grid.shape[0]
    full = sector_from_prob(model.predict(vol.hu, vol.grid.spacing[0]), vol.grid, model.postprocess)
    sched = sector_from_prob(prob, vol.grid, model.postprocess)
    assert full.found and sched.found
    assert sched.iou(full) >= 0.95
    prop = model.propose(vol, margin_mm=model.postprocess['default_margin_mm'])
    # propose runs the schedule, post-processing its run-length form: the same sector exactly
    assert (prop.z, prop.y, prop.x, prop.confidence) == (sched.z, sched.y, sched.x, sched.confidence)


@pytest.mark.slow
@pytest.mark.parametrize('dz', [0.4, 0.625, 1.25, 2.5, 5.0])
def test_bundled_schedule_keeps_the_box_of_the_every_slice_refinement(dz):
    """Issue 23: the fine-grid refinement (card ``z_fine_mm``) gives the box of the
    refinement that scored every slice around the faces, within one slice in z and
    one voxel in-plane, on a real-model phantom at each slice spacing; and it never
    scores more slices."""
    from napari_heartbox.model.runtime import HeartModel
    from napari_heartbox.phantom import make_phantom

    model = HeartModel()
    assert model.postprocess.get('z_fine_mm')  # the bundled card uses it
    vol = make_phantom(5, matrix=(256, 256), slice_spacing_mm=dz, coverage='chest').volume
    prob, ran = model.scheduled_prob(vol.hu, dz)
    new = sector_from_prob(prob, vol.grid, model.postprocess, margin_mm=0)
    old_cfg = {k: v for k, v in model.postprocess.items() if k != 'z_fine_mm'}
    run = lambda idx: model.predict(vol.hu, dz, slices=idx)  # noqa: E731
    prob_old, ran_old = scheduled_prob(run, vol.shape[0], dz, 64, 64, old_cfg)
    old = sector_from_prob(prob_old, vol.grid, old_cfg, margin_mm=0)
    assert new.found and old.found
    assert ran.size <= ran_old.size
    diff = np.abs(np.subtract([*new.z, *new.y, *new.x], [*old.z, *old.y, *old.x]))
    assert diff.max() <= 1, diff
