"""The fast header walker agrees with pydicom on every file it accepts."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest

from napari_heartbox.io import write_dicom_series
from napari_heartbox.io.dicom_fastparse import fast_parse
from napari_heartbox.io.dicom_headers import read_header
from napari_heartbox.volume import CTVolume

FIELDS = [
    f.name
    for f in dataclasses.fields(read_header.__globals__['SliceHeader'])
    if f.name != 'dataset'
]


def assert_same_headers(path):
    fast, slow = read_header(path), read_header(path, fast=False)
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow, strict=True):
        for name in FIELDS:
            assert getattr(a, name) == getattr(b, name), (path.name, name)


@pytest.mark.parametrize(
    'kw', [{}, {'transfer_syntax': 'implicit', 'unsigned': True}, {'slope': 0.5}]
)
def test_synthetic_headers_match_pydicom(tmp_path, kw):
    vol = CTVolume.from_array(np.zeros((2, 8, 8), np.int16), spacing=(1.5, 0.5, 0.5))
    paths = write_dicom_series(vol, tmp_path, **kw)
    assert fast_parse(open(paths[0], 'rb')) is not None  # noqa: SIM115
    for p in paths:
        assert_same_headers(p)


def test_non_dicom_and_truncated_fall_back():
    assert fast_parse(io.BytesIO(b'hello')) is None
    assert fast_parse(io.BytesIO(b'\0' * 128 + b'DICM' + b'\x02\x00')) is None


@pytest.mark.realdata
def test_real_headers_match_pydicom(shared_data):
    files = sorted((shared_data / 'dicom-zoo').rglob('*.dcm'))
    files += sorted(
        (shared_data / 'ct' / 'cptac-lscc-c3n-00247' / 'dicom').glob('*.dcm')
    )[:5]
    n_fast = 0
    for p in files:
        with open(p, 'rb') as fp:
            n_fast += fast_parse(fp) is not None
        assert_same_headers(p)
    assert n_fast >= 15  # the walker really handles the uncompressed files


@pytest.mark.realdata
def test_small_read_chunks_give_the_same_walk(shared_data):
    """Buffer growth mid-element (tiny chunks) must not change the result."""
    for p in sorted((shared_data / 'dicom-zoo').rglob('*.dcm')):
        with open(p, 'rb') as fp:
            big = fast_parse(fp)
        with open(p, 'rb') as fp:
            small = fast_parse(fp, chunk=64)
        assert big == small, p.name
