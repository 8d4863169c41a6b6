"""Non-timing guards on the cost of load_ct (issue 6 §3).

Speed itself is measured in benchmarks/; here we pin the *shape* of the work:
each file is opened a bounded number of times, pixels go straight into one
preallocated volume (peak memory ≈ the volume), and the CLI does not import
Qt or napari.
"""

from __future__ import annotations

import builtins
import subprocess
import sys
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from napari_heartbox.io import load_ct, write_dicom_series
from napari_heartbox.volume import CTVolume


def _volume(nz=24, n=128):
    rng = np.random.default_rng(0)
    return CTVolume.from_array(rng.integers(-1024, 2000, (nz, n, n)).astype(np.int16))


@pytest.fixture
def open_counter(monkeypatch):
    counts: Counter = Counter()
    real_open = builtins.open

    def counting_open(file, mode='r', *args, **kwargs):
        if isinstance(file, (str, Path)) and 'r' in mode:
            counts[Path(file).name] += 1
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, 'open', counting_open)
    return counts


@pytest.mark.parametrize('kw', [{}, {'transfer_syntax': 'implicit', 'unsigned': True}])
def test_each_file_opened_at_most_twice(tmp_path, open_counter, kw):
    paths = write_dicom_series(_volume(), tmp_path, **kw)
    open_counter.clear()
    vol = load_ct(tmp_path)
    assert vol.shape[0] == len(paths)
    assert set(open_counter) == {p.name for p in paths}
    # one header parse + one raw pixel read per file
    assert max(open_counter.values()) <= 2


@pytest.mark.realdata
def test_compressed_files_opened_at_most_twice(shared_data, open_counter):
    folder = shared_data / 'ct' / 'totalseg-example-abdomen' / 'example_ct_dicom'
    load_ct(folder)
    assert len(open_counter) == 20
    assert max(open_counter.values()) <= 2


@pytest.mark.parametrize(
    'kw', [{}, {'slope': 0.5, 'intercept': -1000.0}, {'unsigned': True}]
)
def test_peak_memory_is_about_one_volume(tmp_path, kw):
    write_dicom_series(_volume(nz=40, n=256), tmp_path, **kw)
    load_ct(tmp_path)  # warm imports and caches
    tracemalloc.start()
    try:
        vol = load_ct(tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # no per-slice float64 copies, no list-of-slices + stack: a few slices of slack
    slice_bytes = vol.hu[0].nbytes
    assert peak <= vol.hu.nbytes + 8 * slice_bytes + 512 * 1024


def test_cli_info_imports_no_qt_or_napari(tmp_path):
    write_dicom_series(_volume(nz=3, n=32), tmp_path)
    code = (
        'import sys; from napari_heartbox.cli import main; '
        f'rc = main(["info", {str(tmp_path)!r}]); '
        'bad = [m for m in sys.modules if m.split(".")[0] in '
        '("napari", "PyQt5", "PyQt6", "PySide2", "PySide6", "qtpy", "torch")]; '
        'print("BAD", bad); sys.exit(rc or (1 if bad else 0))'
    )
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'BAD []' in r.stdout
