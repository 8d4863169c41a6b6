"""Compressed and enhanced DICOM in the browser (issue 19): pixel parity with Python.

Every compressed CT file of ``../shared/data/dicom-zoo`` is decoded in Chromium by the
app's own modules (``dicom.js`` + ``codecs.js``, the code the workers run) and compared
with pydicom + pylibjpeg: the stored values (as the HU arithmetic reads them: masked to
BitsStored or sign-extended) and the HU, by SHA-256 of the arrays. A real JPEG Lossless
chest CT (RICORD, 248 slices) goes through the whole page and must give the same voxel
box and patient mm as ``napari-heartbox propose``; synthetic series written in each
syntax by the project's DICOM writer must give the same sector as their uncompressed
twin; a corrupt frame gives one line naming the file, never a hang.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from test_web_browser import (  # noqa: F401 - fixtures
    ARGS,
    base_url,
    browser,
    bundle,
    dicom_files,
    model_files,
    pytestmark,
    python_sector,
    run_main_page,
    assert_same_sector,
    web,
)

from napari_heartbox.io.dicom_headers import read_header
from napari_heartbox.io.dicom_pixels import _Clip, _decoded_to_hu

UNCOMPRESSED = {
    '1.2.840.10008.1.2',
    '1.2.840.10008.1.2.1',
    '1.2.840.10008.1.2.2',
}

# the page-side decoder: the app's modules, one file → per frame {shape, sha of stored ints, sha of HU}
DECODE_JS = """async ([b64, name]) => {
    const d = await import('./dicom.js');
    const c = await import('./codecs.js');
    let buf = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0)).buffer;
    const at = d.deflatedAt(buf);
    if (at !== null) buf = await d.inflateDataset(buf, at, name);
    const hex = async (a) => Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', a.buffer)),
        (b) => b.toString(16).padStart(2, '0')).join('');
    const out = [];
    try {
        for (const r of d.frameRecords(d.parseHeader(buf, name))) {
            if (r.error) return { error: r.error };
            let values;
            if (d.isCompressed(r)) {
                await c.loadCodec(r.transferSyntax);
                values = c.decodeFrame(r.transferSyntax, d.compressedFrame(r), r.rows, r.cols, r.name);
            } else {
                values = d.storedValues(r);
            }
            // the stored value as the HU arithmetic reads it
            const bs = r.bitsStored > 0 && r.bitsStored <= 16 ? r.bitsStored : 16;
            const sh = 32 - bs;
            const mask = bs === 16 ? 0xffff : (1 << bs) - 1;
            const ints = Int32Array.from(values, (v) => (r.pixelRepresentation === 1 ? (v << sh) >> sh : v & mask));
            const hu = new Int16Array(r.rows * r.cols);
            d.lazySlice(r, values, { transpose: false, flipY: false, flipX: false }).hu(hu);
            out.push({ rows: r.rows, cols: r.cols, ts: r.transferSyntax, stored: await hex(ints), hu: await hex(hu) });
        }
    } catch (e) {
        return { error: String(e.message || e), user: e instanceof d.DicomError };
    }
    return { frames: out };
}"""


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def python_frames(path: Path) -> list[dict]:
    """pydicom + pylibjpeg's stored values and the Python loader's HU, per frame."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    if int(ds.get('NumberOfFrames', 1) or 1) == 1:
        arr = arr[None]
    headers = read_header(path, fast=False)
    out = []
    for a, h in zip(arr, headers):
        hu = _decoded_to_hu(a, h, _Clip())
        out.append({'stored': _sha(a.astype(np.int32)), 'hu': _sha(hu.astype(np.int16))})
    return out


def decode_in_page(page, path: Path) -> dict:
    return page.evaluate(
        DECODE_JS, [base64.b64encode(path.read_bytes()).decode(), path.name]
    )


def zoo_ct_files(shared_data: Path) -> list[Path]:
    """The zoo's CT images that Python decodes (the known-bad JPEG is not CT)."""
    out = []
    for p in sorted((shared_data / 'dicom-zoo').rglob('*.dcm')):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        if ds.get('Modality') in ('CT', None) and 'Rows' in ds:
            out.append(p)
    return out


@pytest.mark.realdata
def test_every_zoo_ct_file_decodes_to_the_python_values(web, shared_data):
    files = zoo_ct_files(shared_data)
    compressed = [
        f
        for f in files
        if pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID
        not in UNCOMPRESSED
    ]
    # the zoo holds RLE, JPEG Lossless, JPEG-LS (lossless and near), J2K (lossless and lossy)
    syntaxes = {
        str(pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        for f in compressed
    }
    assert {'1.2.840.10008.1.2.5', '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.80',
            '1.2.840.10008.1.2.4.81', '1.2.840.10008.1.2.4.90',
            '1.2.840.10008.1.2.4.91'} <= syntaxes, syntaxes
    page = web.open('index.html')
    report = {}
    for f in files:
        got = decode_in_page(page, f)
        assert 'error' not in got, (f.name, got)
        want = python_frames(f)
        assert len(got['frames']) == len(want), f.name
        for g, w in zip(got['frames'], want):
            report[f.name] = g['ts']
            assert g['stored'] == w['stored'], f'{f.name}: stored values differ'
            assert g['hu'] == w['hu'], f'{f.name}: HU differ'
    assert len(report) == len(files)
    assert web.errors == []
