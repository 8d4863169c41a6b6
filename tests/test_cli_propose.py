"""``napari-heartbox propose PATH [--json] [--out FILE] [--margin-mm M]``."""

from __future__ import annotations

import json

import pytest

from napari_heartbox.cli import main
from napari_heartbox.sector import sector_schema

jsonschema = pytest.importorskip('jsonschema')


@pytest.fixture(scope='module')
def dicom_dir(tmp_path_factory):
    from napari_heartbox.io.write_dicom import write_dicom_series
    from napari_heartbox.phantom import make_phantom

    case = make_phantom(900_011, coverage='chest', matrix=(512, 512), slice_spacing_mm=3.0)
    d = tmp_path_factory.mktemp('phantom_dicom')
    write_dicom_series(case.volume, d, shuffle_names=True)
    return d, case


def test_propose_json_validates_against_the_schema(dicom_dir, capsys, tmp_path):
    d, case = dicom_dir
    out = tmp_path / 'box.json'
    assert main(['propose', str(d), '--json', '--out', str(out), '--margin-mm', '0']) == 0
    printed = json.loads(capsys.readouterr().out)
    jsonschema.validate(printed, sector_schema())
    assert json.loads(out.read_text()) == printed
    assert printed['found'] is True
    assert printed['shape'] == list(case.volume.shape)
    # the box lies around the phantom heart
    v = printed['voxel']
    hz = case.heart_box.z
    assert v['z'][0] <= hz[0] + 3 and v['z'][1] >= hz[1] - 3


def test_propose_summary_line_and_margin(dicom_dir, capsys):
    d, _ = dicom_dir
    assert main(['propose', str(d), '--margin-mm', '0']) == 0
    line0 = capsys.readouterr().out
    assert line0.startswith('heart box: z [')
    assert main(['propose', str(d), '--json', '--margin-mm', '10']) == 0
    wide = json.loads(capsys.readouterr().out)
    assert main(['propose', str(d), '--json', '--margin-mm', '0']) == 0
    tight = json.loads(capsys.readouterr().out)
    assert wide['voxel']['y'][0] < tight['voxel']['y'][0]


def test_bad_input_is_one_line_error(tmp_path, capsys):
    assert main(['propose', str(tmp_path / 'nope')]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('napari-heartbox: error:') and '\n' not in err and 'nope' in err


def test_bad_margin_is_refused(tmp_path, capsys):
    assert main(['propose', str(tmp_path), '--margin-mm', '-3']) == 2
    assert '--margin-mm' in capsys.readouterr().err


def test_heart_free_series_prints_no_heart_found(tmp_path, capsys):
    from napari_heartbox.io.write_dicom import write_dicom_series
    from napari_heartbox.phantom import make_phantom

    case = make_phantom(900_012, coverage='abdomen', matrix=(256, 256), slice_spacing_mm=5.0)
    assert not case.heart_box.found
    write_dicom_series(case.volume, tmp_path / 'abd')
    assert main(['propose', str(tmp_path / 'abd')]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith('no heart found (confidence 0.') and '\n' not in out


def test_out_pointing_at_a_folder_is_a_one_line_error(dicom_dir, tmp_path, capsys):
    d, _ = dicom_dir
    assert main(['propose', str(d), '--json', '--out', str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('napari-heartbox: error:') and '\n' not in err and str(tmp_path) in err


def test_no_subcommand_prints_help_and_fails(capsys):
    assert main([]) == 1
    assert 'usage: napari-heartbox' in capsys.readouterr().out


def test_version(capsys):
    from napari_heartbox import __version__

    with pytest.raises(SystemExit) as e:
        main(['--version'])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f'napari-heartbox {__version__}'


def test_series_uid_and_file_arguments(dicom_dir, tmp_path, capsys):
    """A folder with two series: the larger is taken with a warning on stderr,
    ``--series-uid`` picks the other; several file paths work like their folder."""
    from napari_heartbox.io.write_dicom import write_dicom_series
    from napari_heartbox.phantom import make_phantom

    d, case = dicom_dir
    both = tmp_path / 'both'
    both.mkdir()
    for f in d.iterdir():
        (both / f.name).write_bytes(f.read_bytes())
    small = make_phantom(900_013, coverage='abdomen', matrix=(128, 128), slice_spacing_mm=5.0, n_slices=10)
    write_dicom_series(small.volume, both, series_uid='2.25.900013', file_prefix='other_')
    assert main(['propose', str(both), '--json', '--margin-mm', '0']) == 0
    cap = capsys.readouterr()
    chosen = json.loads(cap.out)
    assert chosen['shape'] == list(case.volume.shape) and chosen['found'] is True
    assert main(['propose', str(both), '--margin-mm', '0']) == 0
    assert 'warning: 1 other series found and not loaded' in capsys.readouterr().err
    assert main(['propose', str(both), '--json', '--series-uid', '2.25.900013']) == 0
    other = json.loads(capsys.readouterr().out)
    assert other['shape'] == [10, 128, 128] and other['found'] is False
    files = sorted(str(f) for f in d.iterdir())
    assert main(['propose', *files, '--json', '--margin-mm', '0']) == 0
    assert json.loads(capsys.readouterr().out)['voxel'] == chosen['voxel']


def test_ctrl_c_exits_130_with_one_line(monkeypatch, tmp_path, capsys):
    import napari_heartbox.cli._propose as cli_propose

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_propose, 'run', interrupted)
    assert main(['propose', str(tmp_path)]) == 130
    assert capsys.readouterr().err == 'napari-heartbox: interrupted\n'


def test_json_carries_the_loading_warnings_and_stderr_repeats_them(dicom_dir, capsys, tmp_path):
    """Issue 18: ``--json`` used to drop every loading warning. A series with a missing
    slice (a gap) prints it in the JSON's ``warnings`` and on stderr; the JSON is strict."""
    import shutil

    import pydicom

    d, _case = dicom_dir
    gap = tmp_path / 'gap'
    shutil.copytree(d, gap)
    files = sorted(gap.iterdir(), key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))
    files[len(files) // 2].unlink()  # one slice out of the middle
    assert main(['propose', str(gap), '--json', '--margin-mm', '0']) == 0
    cap = capsys.readouterr()
    printed = json.loads(cap.out, parse_constant=lambda c: pytest.fail(f'{c} in the JSON'))
    jsonschema.validate(printed, sector_schema())
    assert printed['warnings'] and any('gap' in w for w in printed['warnings'])
    assert all(f'warning: {w}' in cap.err for w in printed['warnings'])


def test_json_safe_replaces_non_finite_numbers():
    from napari_heartbox.cli._propose import json_safe

    doc = json_safe({'a': [1.0, float('nan')], 'b': {'c': float('-inf')}, 'd': 'x'})
    assert doc == {'a': [1.0, None], 'b': {'c': None}, 'd': 'x'}
    json.dumps(doc, allow_nan=False)
