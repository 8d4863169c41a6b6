"""``napari-heartbox info``: human and JSON output, errors as one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_heartbox.cli import main
from napari_heartbox.io import write_dicom_series
from napari_heartbox.volume import CTVolume


def _write(folder, nz=5, uid='1.2.3.10', **kw):
    z, y, x = np.meshgrid(np.arange(nz), np.arange(16), np.arange(20), indexing='ij')
    hu = (-900 + 50 * z + y + x).astype(np.int16)
    vol = CTVolume.from_array(hu, spacing=(2.5, 0.75, 0.75), origin_lps=(0, 0, -100))
    write_dicom_series(vol, folder, series_uid=uid, **kw)
    return vol


def test_human_output(tmp_path, capsys):
    _write(tmp_path, shuffle_names=True)
    assert main(['info', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert '5 slices of 16 x 20' in out
    assert 'spacing (z, y, x) mm: (2.5, 0.75, 0.75)' in out
    assert 'warnings: none' in out
    assert 'Synthetic^Phantom' not in out and 'SYNTHETIC' not in out  # no patient data


def test_json_output_lists_other_series_and_warnings(tmp_path, capsys):
    vol = _write(tmp_path / 'a', nz=6, uid='1.2.3.10')
    _write(tmp_path / 'b', nz=3, uid='1.2.3.20', file_prefix='b')
    assert main(['info', str(tmp_path), '--json']) == 0
    d = json.loads(capsys.readouterr().out)
    assert d['shape'] == [6, 16, 20]
    assert d['spacing_mm'] == pytest.approx([2.5, 0.75, 0.75])
    assert d['series']['series_uid'] == '1.2.3.10'
    assert d['hu_range'] == [int(vol.hu.min()), int(vol.hu.max())]
    found = {s['series_uid']: s for s in d['series_found']}
    assert found['1.2.3.10']['loaded'] and not found['1.2.3.20']['loaded']
    assert found['1.2.3.20']['n_slices'] == 3
    assert any('1.2.3.20' in w for w in d['warnings'])
    assert np.allclose(np.array(d['affine_lps']), vol.affine)
    assert 'PatientName' not in json.dumps(d)


def test_series_uid_option(tmp_path, capsys):
    _write(tmp_path / 'a', nz=6, uid='1.2.3.10')
    _write(tmp_path / 'b', nz=3, uid='1.2.3.20', file_prefix='b')
    assert main(['info', str(tmp_path), '--series-uid', '1.2.3.20', '--json']) == 0
    d = json.loads(capsys.readouterr().out)
    assert d['n_slices'] == 3


def test_bad_input_is_one_line_error(tmp_path, capsys):
    _write(tmp_path, modality='MR')
    assert main(['info', str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('napari-heartbox: error: ')
    assert 'modality is MR' in err and '\n' not in err and 'Traceback' not in err


def test_missing_path(tmp_path, capsys):
    assert main(['info', str(tmp_path / 'nothing')]) == 2
    assert 'no such file or folder' in capsys.readouterr().err


@pytest.mark.realdata
def test_cptac_done_when(shared_data, capsys):
    assert (
        main(['info', str(shared_data / 'ct' / 'cptac-lscc-c3n-00247' / 'dicom')]) == 0
    )
    out = capsys.readouterr().out
    assert '99 slices of 512 x 512' in out
    assert 'spacing (z, y, x) mm: (3.0, 0.5645, 0.5645)' in out
    assert 'warnings: none' in out


def test_progress_bar_callback_tolerates_shrinking_total(monkeypatch):
    """On a terminal the bar is live; when the series is chosen and fewer
    files remain, the total shrinks and the count still ends at the total."""
    import io

    import tqdm

    from napari_heartbox.cli._info import _progress_bar

    class Tty(io.StringIO):
        def isatty(self):
            return True

    bars = []

    class Recording(tqdm.tqdm):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            bars.append(self)

    monkeypatch.setattr('sys.stderr', Tty())
    monkeypatch.setattr(tqdm, 'tqdm', Recording)
    progress, close = _progress_bar()
    for done in range(1, 11):
        progress(done, 20)
    assert len(bars) == 1 and not bars[0].disable, 'a terminal gets a live bar'
    assert (bars[0].n, bars[0].total) == (10, 20)
    for done in range(11, 16):  # the series was chosen: fewer images to read
        progress(done, 15)
    assert (bars[0].n, bars[0].total) == (15, 15)
    close()
    assert len(bars) == 1
