"""Fine-tuning from corrected boxes: finding the cases, the weak-label targets and loss,
rebuilding the network from ONNX, and (slow) the boxes moving towards shifted corrections.

The torch tests skip with the reason when torch (the ``finetune`` extra) is absent.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from napari_heartbox.corrected_cases import find_corrected_cases, load_case
from napari_heartbox.errors import HeartboxError
from napari_heartbox.grid import Grid
from napari_heartbox.sector import Sector
from napari_heartbox.sector_file import write_sector_file
from napari_heartbox.worklist import Worklist

SHAPE = (6, 8, 10)


def _write_nifti(path, shape=SHAPE):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros(shape[::-1], np.int16), np.eye(4)), str(path))


@pytest.fixture
def grid():
    return Grid.axis_aligned(SHAPE, (1.0, 1.0, 1.0))


def test_worklist_folder_gives_corrected_and_accepted_cases(tmp_path, grid):
    studies = tmp_path / 'studies'
    studies.mkdir()
    for name in ('a', 'b', 'c'):
        _write_nifti(studies / f'{name}.nii.gz')
    wl = Worklist(studies, tmp_path / 'corrections')
    box = Sector(grid, (1, 5), (2, 6), (2, 8), confidence=0.8)
    wl.record('a', box, box)  # proposed only: not a label
    wl.record('b', box.with_ranges(z=(1, 4)), box)
    wl.record('c', box, box, status='accepted')
    cases = find_corrected_cases(tmp_path / 'corrections')
    assert [c.case for c in cases] == ['b', 'c']
    assert cases[0].ct_path == studies / 'b.nii.gz'
    assert cases[0].sector_path == tmp_path / 'corrections' / 'cases' / 'b.json'


def test_sector_files_beside_their_cts(tmp_path, grid):
    box = Sector(grid, (1, 5), (2, 6), (2, 8))
    _write_nifti(tmp_path / 'p1.nii.gz')
    write_sector_file(tmp_path / 'p1.json', box)
    (tmp_path / 'notes.json').write_text('{"not": "a sector file"}')
    cases = find_corrected_cases(tmp_path)
    assert [(c.case, c.ct_path.name) for c in cases] == [('p1', 'p1.nii.gz')]
    # the file's grid is checked against its CT
    write_sector_file(tmp_path / 'p2.json', Sector(Grid.axis_aligned((7, 8, 10), (1, 1, 1)), (1, 5), (2, 6), (2, 8)))
    _write_nifti(tmp_path / 'p2.nii.gz')
    vol, got = load_case(find_corrected_cases(tmp_path)[0])
    assert got.ranges == box.ranges and vol.shape == SHAPE
    with pytest.raises(HeartboxError, match='p2'):
        load_case(find_corrected_cases(tmp_path)[1])


def test_unusable_folders_fail_with_one_line(tmp_path, grid):
    with pytest.raises(HeartboxError, match='not a folder'):
        find_corrected_cases(tmp_path / 'missing')
    with pytest.raises(HeartboxError, match='no sector files'):
        find_corrected_cases(tmp_path)
    write_sector_file(tmp_path / 'lonely.json', Sector(grid, (1, 5), (2, 6), (2, 8)))
    with pytest.raises(HeartboxError, match=r'lonely\.json: no CT beside it'):
        find_corrected_cases(tmp_path)
    wl_dir = tmp_path / 'wl'
    wl_dir.mkdir()
    (wl_dir / 'index.json').write_text(json.dumps({'schema': 'heartbox.corrections/1', 'input': str(tmp_path),
                                                   'cases': [{'case': 'x', 'status': 'proposed'}]}))
    with pytest.raises(HeartboxError, match='no case is corrected or accepted'):
        find_corrected_cases(wl_dir)


def test_cli_finetune_bad_folder_is_one_line_exit_2(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'napari_heartbox', 'finetune', str(tmp_path / 'nope'),
                        '--out', str(tmp_path / 'm')], capture_output=True, text=True)
    if 'needs torch and onnx' in r.stderr:
        pytest.skip('torch not installed (the finetune extra)')
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count('\n') == 0 and 'not a folder' in r.stderr
    assert not (tmp_path / 'm').exists()


def test_cell_flags_inside_outside_and_cut():
    from napari_heartbox._training.finetune import _cell_flags

    f = _cell_flags(5, 20, 4, 250)  # pixels [5, 20), cells of 4 pixels
    assert f[0] == 0 and f[1] == -1  # [0,4) outside, [4,8) cut by the face at 5
    assert (f[2:5] == 1).all() and f[5] == 0  # [8,20) inside, [20,24) outside
    assert f[63] == 0  # [252, 256) is padding beyond 250 pixels


# ------------------------------------------------------------------ torch
@pytest.fixture(scope='module')
def torch():
    return pytest.importorskip('torch', reason='torch not installed (the finetune extra)')


def test_network_rebuilt_from_onnx_computes_what_the_graph_computes(torch):
    from napari_heartbox._training.from_onnx import check_against_onnx, net_from_onnx
    from napari_heartbox.model.runtime import HeartModel

    path = HeartModel.default().onnx_path
    cells = np.random.default_rng(0).uniform(-1024, 600, (6, 3, 64, 64)).astype(np.float32)
    assert check_against_onnx(net_from_onnx(path), path, cells) < 1e-4


def test_a_warm_start_that_does_not_move_the_weights_keeps_the_graph(torch):
    """models.train's --init: with a zero learning rate, training leaves the network the graph's
    (its BatchNorms stay fixed; in train mode they would renormalise by batch statistics)."""
    from models.train import train_net
    from napari_heartbox._training.from_onnx import check_against_onnx
    from napari_heartbox.model.runtime import HeartModel

    path = HeartModel.default().onnx_path
    rng = np.random.default_rng(1)
    x = rng.uniform(-1024, 600, (16, 3, 64, 64)).astype(np.float32)
    y = rng.uniform(0, 1, (16, 64, 64)) > 0.8
    net = train_net(x, y, steps=4, batch=8, lr=0.0, seed=0, threads=1, init=path)
    assert check_against_onnx(net, path, x[:6]) < 1e-4


def test_box_loss_prefers_a_heart_that_fills_the_box(torch):
    from napari_heartbox._training.finetune import BoxCase, _cell_flags, box_loss

    s = 8
    in_z = np.zeros(s, bool)
    in_z[2:6] = True
    core = np.zeros(s, bool)
    core[3:5] = True
    rows, cols = _cell_flags(40, 120, 4, 256), _cell_flags(60, 160, 4, 256)
    case = BoxCase('t', np.zeros((s, 3, 64, 64), np.float32), in_z, core, rows, cols, True)
    inside = torch.zeros(s, 64, 64, dtype=torch.bool)
    inside[2:6, 10:30, 15:40] = True
    fills = torch.where(inside, 8.0, -8.0)
    empty = torch.full((s, 64, 64), -8.0)
    spills = fills.clone()
    spills[:, :, 50:] = 8.0  # heart outside the box
    half = fills.clone()
    half[:, 20:30] = -8.0  # leaves the box's lower rows empty
    lf, le, ls, lh = (float(box_loss(x, case)) for x in (fills, empty, spills, half))
    assert lf < 0.01 and lf < lh < le and lf < ls
    no_heart = BoxCase('n', case.cells, np.zeros(s, bool), np.zeros(s, bool), rows, cols, False)
    assert float(box_loss(empty, no_heart)) < 0.01 < float(box_loss(fills, no_heart))


# ------------------------------------------------- end to end on phantoms
def _phantom_corrections(folder, n, shift_mm):
    """``n`` phantom CTs (NIfTI) beside sector files whose superior face is moved by ``shift_mm``."""
    import nibabel as nib

    from napari_heartbox._writer import nifti_affine
    from napari_heartbox.phantom import make_phantom

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        case = make_phantom(700 + i, matrix=(192, 192), coverage='chest', slice_spacing_mm=2.5,
                            keep_labels=False)
        v = case.volume
        nib.save(nib.Nifti1Image(np.ascontiguousarray(v.hu.transpose(2, 1, 0)), nifti_affine(v.grid.matrix)),
                 str(folder / f'p{i}.nii.gz'))
        z0, z1 = case.heart_box.ranges[0]
        k = int(round(shift_mm / float(v.spacing[0])))
        write_sector_file(folder / f'p{i}.json', case.heart_box.with_ranges(z=(z0, min(v.shape[0], z1 + k))))
    return folder


@pytest.mark.slow
def test_boxes_move_towards_systematically_shifted_corrections(torch, tmp_path):
    """Six phantoms whose corrected boxes all stop 12 mm below the heart top: every case is
    scored by a model fine-tuned without it (5 folds), and the superior face follows the
    corrections (measured on this machine: median |error| 12.5 -> 3.8 mm)."""
    from napari_heartbox._training.finetune import finetune
    from napari_heartbox.model.card import CARD_NAME, ONNX_NAME
    from napari_heartbox.model.runtime import HeartModel

    folder = _phantom_corrections(tmp_path / 'corr', 6, -12.0)
    r = finetune(folder, tmp_path / 'model', steps=150, replay=8, log=lambda *a: None)
    assert r['report']['scheme'] == '5-fold' and len(r['per_case']) == 6
    before = [row['before']['face_error_mm']['superior'] for row in r['per_case']]
    after = [row['after']['face_error_mm']['superior'] for row in r['per_case']]
    # the base model ends at the heart top: about 12 mm beyond every corrected box
    assert np.median(before) >= 7.5
    assert np.median(np.abs(after)) <= np.median(np.abs(before)) - 5.0, (before, after)
    # a model folder every view can load, with the same graph contract and size limits
    model = HeartModel.load(tmp_path / 'model')
    card = json.loads((tmp_path / 'model' / CARD_NAME).read_text())
    base = HeartModel.default()
    assert card['finetuned']['base_sha256'] == base.sha256 and model.sha256 == card['sha256']
    assert card['params'] == base.card['params'] <= 60_000
    assert (tmp_path / 'model' / ONNX_NAME).stat().st_size <= 250_000
    assert '| p0 |' in (tmp_path / 'model' / 'finetune_report.md').read_text()
