"""``models.threshold_study``: the replayed slice schedule and the threshold rule."""

from __future__ import annotations

import json
import shutil

from models.threshold_study import pick_threshold, score_thresholds
from napari_heartbox.model import HeartModel
from napari_heartbox.model.card import CARD_NAME, ONNX_NAME, assets_dir


def _model_with_threshold(tmp_path, t: float) -> HeartModel:
    d = tmp_path / f'thr_{t}'
    d.mkdir()
    shutil.copy(assets_dir() / ONNX_NAME, d / ONNX_NAME)
    card = json.loads((assets_dir() / CARD_NAME).read_text())
    card['postprocess']['threshold'] = t
    (d / CARD_NAME).write_text(json.dumps(card))
    return HeartModel(d / ONNX_NAME, d / CARD_NAME)


def test_replayed_schedule_gives_the_box_propose_gives(tmp_path):
    """Scoring every slice once and replaying the schedule per threshold is
    exactly what ``propose`` computes with that threshold in the card (1 mm
    slices: a coarse pass every 4th slice plus refinement)."""
    from napari_heartbox.evaluate import evaluate_volume
    from napari_heartbox.phantom import make_phantom

    case = make_phantom(900_003, coverage='chest', matrix=(256, 256), fov_mm=360.0,
                        slice_spacing_mm=1.0)
    assert case.heart_box.found
    ref = {'heart_mask': case.heart_mask, 'heart': True}
    thresholds = (0.5, 0.8)
    rows = score_thresholds(HeartModel(), case.volume, thresholds, **ref)
    for t, row in zip(thresholds, rows, strict=True):
        sector = _model_with_threshold(tmp_path, t).propose(case.volume, margin_mm=0.0)
        direct = evaluate_volume(case.volume, proposed=sector, **ref)
        assert row['found'] == direct['found'] is True
        assert row['face_error_mm'] == direct['face_error_mm']
        assert row['iou'] == direct['iou'] > 0.5
    assert rows[0]['face_error_mm'] != rows[1]['face_error_mm']  # the threshold reached the schedule


def test_pick_threshold_takes_the_best_seed_mean_and_the_lower_of_ties():
    def s(v):
        return {'iou_mean': v}

    per = {'a': {0.5: s(0.80), 0.6: s(0.84), 0.7: s(0.88)},
           'b': {0.5: s(0.82), 0.6: s(0.84), 0.7: s(0.82)}}
    assert pick_threshold(per, (0.5, 0.6, 0.7)) == 0.7  # seed means 0.81, 0.84, 0.85
    per['b'][0.7] = s(0.80)
    assert pick_threshold(per, (0.5, 0.6, 0.7)) == 0.6  # 0.84 twice: the lower threshold
    # a candidate without a heart case (iou_mean None) counts as 0
    per['c'] = {0.5: s(None), 0.6: s(0.9), 0.7: s(0.9)}
    assert pick_threshold(per, (0.5, 0.6, 0.7)) == 0.6
