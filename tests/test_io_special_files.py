"""Special files never hang the loaders (issue 18): a FIFO, which blocks ``open`` until
something writes to it, inside a series folder is left out; given directly it is a one-line
error. Each call runs in a thread with a deadline, so a regression fails instead of hanging."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from napari_heartbox.errors import CTLoadError
from napari_heartbox.io import load_ct, open_ct, write_dicom_series
from napari_heartbox.volume import CTVolume

pytestmark = pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='no FIFOs on this platform')


def _within(fn, seconds=60):
    """``fn()``'s result, or a test failure if it is still running after ``seconds``."""
    out: dict = {}

    def run():
        try:
            out['value'] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out['error'] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f'still running after {seconds} s (blocked on a FIFO?)'
    if 'error' in out:
        raise out['error']
    return out['value']


@pytest.fixture
def series_with_fifo(tmp_path):
    hu = np.random.default_rng(0).integers(-1000, 400, (6, 32, 32)).astype(np.int16)
    folder = tmp_path / 'series'
    write_dicom_series(CTVolume.from_array(hu, spacing=(2.0, 0.7, 0.7)), folder)
    os.mkfifo(folder / 'zz_pipe.dcm')
    os.mkfifo(folder / 'aa_pipe')
    return folder, hu


def test_fifo_in_a_series_folder_is_left_out(series_with_fifo):
    folder, hu = series_with_fifo
    vol = _within(lambda: load_ct(folder))
    assert np.array_equal(vol.hu, hu)
    assert _within(lambda: open_ct(folder)).shape == hu.shape


def test_napari_reader_does_not_block_on_a_fifo(series_with_fifo):
    from napari_heartbox._reader import get_reader

    folder, _ = series_with_fifo
    assert callable(_within(lambda: get_reader(str(folder))))
    assert _within(lambda: get_reader(str(folder / 'aa_pipe'))) is None


def test_fifo_given_directly_is_a_one_line_error(series_with_fifo):
    folder, _ = series_with_fifo
    with pytest.raises(CTLoadError, match=r'aa_pipe: not a regular file') as e:
        _within(lambda: load_ct(folder / 'aa_pipe'))
    assert '\n' not in str(e.value)
