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
import test_web_browser as twb
from test_web_browser import (
    ARTIFACTS,
    assert_same_sector,
    dicom_files,
    python_sector,
    run_main_page,
    save_artifact,
)

from napari_heartbox.io.dicom_headers import read_header
from napari_heartbox.io.dicom_pixels import _Clip, _decoded_to_hu

# the browser tests' fixtures and skip rules (chromium, playwright, vendor runtime)
pytestmark = twb.pytestmark
model_files, bundle, base_url, browser, web = (
    twb.model_files, twb.bundle, twb.base_url, twb.browser, twb.web,
)

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
    for a, h in zip(arr, headers, strict=True):
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
        for g, w in zip(got['frames'], want, strict=True):
            report[f.name] = g['ts']
            assert g['stored'] == w['stored'], f'{f.name}: stored values differ'
            assert g['hu'] == w['hu'], f'{f.name}: HU differ'
    assert len(report) == len(files)
    assert web.errors == []


def _real_series(shared_data: Path, name: str, sub: str) -> Path:
    folder = shared_data / 'ct' / name / sub
    if not folder.is_dir():
        pytest.skip(f'{folder} not found')
    return folder


@pytest.mark.realdata
@pytest.mark.parametrize(
    ('case', 'sub', 'syntax'),
    [
        ('ricord-1a-001012', 'dicom', 'JPEG Lossless SV1'),  # non-contrast chest, 248 slices
        ('totalseg-example-abdomen', 'example_ct_dicom', 'JPEG 2000'),  # overlapping slices
    ],
)
def test_real_compressed_series_gives_the_python_box(
    web, shared_data, model_files, case, sub, syntax
):
    folder = _real_series(shared_data, case, sub)
    sector, extra = run_main_page(web, dicom_files(folder))
    py = python_sector(folder, model_files)
    assert_same_sector(sector, py)
    t = extra['timings']
    # only what the schedule scores (and the axial preview's slice) is decoded
    assert 0 < t['slices_decoded'] <= t['slices_scored'] + sector['shape'][0] // 2
    page = web.page
    assert page.locator('#views').is_visible()
    page.screenshot(path=str(ARTIFACTS / f'web-main-{case}.png'), full_page=True)
    save_artifact(f'web-timings-{case}.json', extra)
    web.assert_local_only()
    assert web.errors == []


# ---------------------------------------------------- synthetic series, every syntax
def _chest(n_slices=96):
    from test_web_browser import USE_BUNDLED, _blob_volume

    if USE_BUNDLED:
        from napari_heartbox.phantom import make_phantom

        return make_phantom(
            3, matrix=(512, 512), n_slices=n_slices, slice_spacing_mm=2.0,
            coverage='chest', keep_labels=False,
        ).volume
    return _blob_volume(n_slices, heart=True)


@pytest.fixture(scope='module')
def chest_volume():
    return _chest()


ENCODER_NEEDS = {'jpeg-lossless': 'imagecodecs', 'htj2k': 'imagecodecs', 'jpeg-ls': 'jpeg_ls'}


def _write(volume, folder, syntax, **kw):
    from napari_heartbox.io import write_dicom_series

    if syntax in ENCODER_NEEDS:
        pytest.importorskip(ENCODER_NEEDS[syntax])
    if syntax == 'deflate':  # written uncompressed, then re-saved deflated by pydicom
        write_dicom_series(volume, folder, transfer_syntax='explicit', shuffle_names=True, **kw)
        for p in dicom_files(folder):
            ds = pydicom.dcmread(p)
            ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
            ds.save_as(p, enforce_file_format=True)
        return folder
    write_dicom_series(volume, folder, transfer_syntax=syntax, shuffle_names=True, **kw)
    return folder


TWO_PASS_JS = """async () => {
    const { HeartboxWorker } = await import('./heartbox.js');
    const files = Array.from(document.getElementById('two-pass').files);
    const w = new HeartboxWorker();
    const two = await w.run(files, { wholeReadBytes: 0, chunkSlices: 7 });
    w.terminate();
    return two;
}"""


@pytest.mark.parametrize(
    ('syntax', 'kw'),
    [
        ('rle', {}),
        ('jpeg-lossless', {'unsigned': True}),
        ('jpeg-ls', {}),
        ('j2k', {'unsigned': True, 'slope': 0.5, 'intercept': -1024.0}),
        ('htj2k', {}),
        ('deflate', {}),
    ],
)
def test_each_syntax_gives_the_python_sector_in_one_and_two_pass_reads(
    web, tmp_path, chest_volume, model_files, syntax, kw
):
    folder = _write(chest_volume, tmp_path / syntax, syntax, **kw)
    files = dicom_files(folder)
    py = python_sector(folder, model_files)
    assert py['found']
    sector, extra = run_main_page(web, files)
    assert_same_sector(sector, py)
    t = extra['timings']
    if syntax != 'deflate':  # deflated files are inflated whole while reading headers
        assert t['slices_decoded'] <= t['slices_scored'] * 3 + 1 < len(files) * 3
        assert t['slices_decoded_ahead'] > 0  # the decode pool did the coarse step's slices
    # previews: drawn from the decoded slices (the canvases hold the scan, not black)
    page = web.page
    lit = page.evaluate(
        """() => ['view-axial', 'view-coronal', 'view-sagittal'].map((id) => {
            const c = document.getElementById(id);
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 40) n++;
            return n / (d.length / 4);
        })"""
    )
    assert min(lit) > 0.05, lit
    # header first, pixels later (series over the whole-read budget), small chunks
    page.evaluate(
        "() => { const i = document.createElement('input'); i.type = 'file';"
        " i.multiple = true; i.id = 'two-pass'; document.body.append(i); }"
    )
    page.locator('#two-pass').set_input_files([str(f) for f in files])
    assert_same_sector(page.evaluate(TWO_PASS_JS)['sector'], py)
    web.assert_local_only()
    assert web.errors == []


def _corrupt_first_codestream(path: Path) -> None:
    """Zero the 48 bytes after the codestream's start marker (its main header)."""
    data = bytearray(path.read_bytes())
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    start = len(data) - len(pydicom.dcmread(path).PixelData)
    for marker in (b'\xff\xd8', b'\xff\x4f\xff\x51'):  # JPEG SOI, J2K SOC+SIZ
        i = data.find(marker, start)
        if i >= 0:
            data[i + 2 : i + 50] = bytes(48)
            path.write_bytes(bytes(data))
            return
    raise AssertionError(f'no codestream found in {path} ({ds.file_meta.TransferSyntaxUID})')


@pytest.mark.parametrize('syntax', ['jpeg-lossless', 'j2k'])
def test_a_corrupt_frame_gives_one_line_naming_the_file(web, tmp_path, syntax):
    from test_web_browser import _blob_volume

    from napari_heartbox.io import write_dicom_series

    pytest.importorskip(ENCODER_NEEDS.get(syntax, 'pydicom'))
    paths = write_dicom_series(  # in z order
        _blob_volume(24, heart=True), tmp_path / syntax, transfer_syntax=syntax, shuffle_names=True
    )
    files = dicom_files(tmp_path / syntax)
    bad = paths[0]  # slice 0 is always scored (the coarse step's first slice)
    _corrupt_first_codestream(bad)
    page = web.open('index.html')
    page.locator('input[type=file]').first.set_input_files([str(f) for f in files])
    assert web.wait_state() == 'error'
    msg = page.locator('#status').inner_text()
    assert bad.name in msg and 'cannot decode' in msg and '\n' not in msg, msg
    assert not page.locator('#views').is_visible()
    assert web.errors == []


@pytest.mark.realdata
def test_enhanced_multiframe_ct_gives_the_python_geometry(web, shared_data, model_files):
    f = shared_data / 'dicom-zoo' / 'pydicom' / 'eCT_Supplemental.dcm'
    if not f.is_file():
        pytest.skip(f'{f} not found')
    sector, extra = run_main_page(web, [f])
    py = python_sector(f, model_files)
    assert_same_sector(sector, py)
    assert sector['shape'][0] == 2  # two frames, placed by their per-frame positions
    assert sector.get('note') == py.get('note')


@pytest.mark.realdata
@pytest.mark.parametrize(
    ('rel', 'words'),
    [
        ('pydicom/image_dfl.dcm', ['modality is OT', 'not CT']),  # deflated, inflated, then refused
        ('pydicom/JPEG-lossy.dcm', ['modality is NM', 'not CT']),
    ],
)
def test_non_ct_compressed_files_are_refused_in_one_line(web, shared_data, rel, words):
    f = shared_data / 'dicom-zoo' / rel
    if not f.is_file():
        pytest.skip(f'{f} not found')
    page = web.open('index.html')
    page.locator('input[type=file]').first.set_input_files([str(f)])
    assert web.wait_state() == 'error'
    msg = page.locator('#status').inner_text()
    assert all(w in msg for w in words) and '\n' not in msg, msg


def test_lossy_dct_jpeg_is_refused_naming_the_syntax(web, tmp_path):
    """JPEG Baseline/Extended (8/12-bit lossy): no browser decoder is shipped; the refusal
    names the syntax and its UID before any pixel is read."""
    from pydicom.encaps import encapsulate
    from test_web_browser import _blob_volume

    folder = _write(_blob_volume(3, heart=False), tmp_path / 'dct', 'explicit')
    for p in dicom_files(folder):
        ds = pydicom.dcmread(p)
        ds.file_meta.TransferSyntaxUID = '1.2.840.10008.1.2.4.51'
        ds.PixelData = encapsulate([b'\xff\xd8\xff\xd9'])
        ds['PixelData'].VR = 'OB'
        ds.save_as(p, enforce_file_format=True)
    page = web.open('index.html')
    page.locator('input[type=file]').first.set_input_files([str(f) for f in dicom_files(folder)])
    assert web.wait_state() == 'error'
    msg = page.locator('#status').inner_text()
    assert 'JPEG Extended' in msg and '1.2.840.10008.1.2.4.51' in msg and 'propose' in msg, msg


@pytest.mark.realdata
def test_compressed_enhanced_ct_frames_split_as_python(web, shared_data, tmp_path):
    """The enhanced CT sample re-encoded (RLE, J2K) with and without a Basic Offset Table:
    the frames are split and decoded to the same values as pydicom's."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless, RLELossless

    src = shared_data / 'dicom-zoo' / 'pydicom' / 'eCT_Supplemental.dcm'
    if not src.is_file():
        pytest.skip(f'{src} not found')
    made = []
    for uid in (RLELossless, JPEG2000Lossless):
        ds = pydicom.dcmread(src)
        ds.compress(uid)
        p = tmp_path / f'{uid.name.split()[0]}-bot.dcm'
        ds.save_as(p, enforce_file_format=True)
        made.append(p)
        # the same frames without an offset table: one fragment per frame
        from pydicom.encaps import generate_frames

        frames = list(generate_frames(ds.PixelData, number_of_frames=2))
        ds.PixelData = encapsulate(frames, has_bot=False)
        q = tmp_path / f'{uid.name.split()[0]}-nobot.dcm'
        ds.save_as(q, enforce_file_format=True)
        made.append(q)
    page = web.open('index.html')
    for f in made:
        got = decode_in_page(page, f)
        assert 'error' not in got, (f.name, got)
        want = python_frames(f)
        assert len(got['frames']) == len(want) == 2, f.name
        for g, w in zip(got['frames'], want, strict=True):
            assert (g['stored'], g['hu']) == (w['stored'], w['hu']), f.name


def test_a_damaged_fragment_list_is_one_line(web):
    """Encapsulated pixel data whose items are broken is refused naming the file."""
    page = web.open('index.html')
    msgs = page.evaluate(
        """async () => {
            const { encapsulatedFrames, DicomError } = await import('./dicom.js');
            const item = (elem, len) => { const b = new Uint8Array(8); const v = new DataView(b.buffer);
                v.setUint16(0, 0xfffe, true); v.setUint16(2, elem, true); v.setUint32(4, len, true); return b; };
            const cat = (...xs) => { const n = xs.reduce((a, x) => a + x.length, 0); const o = new Uint8Array(n);
                let k = 0; for (const x of xs) { o.set(x, k); k += x.length; } return o; };
            const cases = {
                runs_past_end: cat(item(0xe000, 0), item(0xe000, 100), new Uint8Array(10)),
                no_delimiter: cat(item(0xe000, 0), item(0xe000, 2), new Uint8Array(2)),
                three_frags_two_frames: cat(item(0xe000, 0), item(0xe000, 2), new Uint8Array(2),
                    item(0xe000, 2), new Uint8Array(2), item(0xe000, 2), new Uint8Array(2), item(0xe0dd, 0)),
            };
            const out = {};
            for (const [k, bytes] of Object.entries(cases)) {
                try { encapsulatedFrames(bytes, 0, k === 'three_frags_two_frames' ? 2 : 1, 'x.dcm'); out[k] = 'no error'; }
                catch (e) { out[k] = (e instanceof DicomError ? '' : 'NOT A DicomError: ') + e.message; }
            }
            return out;
        }"""
    )
    for k, m in msgs.items():
        assert m.startswith('x.dcm: the compressed pixel data is damaged'), (k, m)
