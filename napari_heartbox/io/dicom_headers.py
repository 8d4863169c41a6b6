"""Pass 1 of DICOM loading: parse each file's header once, pixels not read.

Every file is opened once. Uncompressed little-endian single-frame files are
walked by :func:`~.dicom_fastparse.fast_parse` (raw bytes of the few tags we
need, several times faster than pydicom); everything else, or anything that
walker does not recognise, goes through ``pydicom.dcmread(stop_before_pixels=
True)``, after which the reader stands exactly at the PixelData element. In
both cases the byte offset of the pixel value is recorded, so pass 2
(:mod:`.dicom_pixels`) reads uncompressed pixels straight from that offset
into the preallocated volume without parsing the header again.

An enhanced multi-frame CT file yields one :class:`SliceHeader` per frame
(positions, orientation, spacing and rescale come from the functional group
sequences).
"""

from __future__ import annotations

import math
import os
import stat
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from .dicom_fastparse import fast_parse

__all__ = ['SliceHeader', 'ScanResult', 'scan_headers', 'discover_files', 'is_regular_file', 'NATIVE_TS']

#: Uncompressed little-endian transfer syntaxes whose pixel bytes can be read
#: straight from the file (Implicit VR LE, Explicit VR LE).
NATIVE_TS = frozenset({'1.2.840.10008.1.2', '1.2.840.10008.1.2.1'})
_PIXEL_TAG = struct.pack('<HH', 0x7FE0, 0x0010)
_LONG_VRS = {
    b'OB',
    b'OW',
    b'OF',
    b'OD',
    b'OL',
    b'OV',
    b'UN',
    b'SQ',
    b'UT',
    b'UC',
    b'UR',
}


@dataclass
class SliceHeader:
    """What pass 1 learned about one image (one file, or one frame of one).

    Geometry is in DICOM LPS mm. ``iop`` is ImageOrientationPatient: the
    direction of increasing column index (row cosine) then of increasing row
    index (column cosine). ``ipp`` is the centre of the first stored pixel.
    """

    path: Path
    frame: int | None = None  # frame index in a multi-frame file
    n_frames: int = 1
    sop_class: str | None = None
    modality: str | None = None
    image_type: tuple[str, ...] = ()
    series_uid: str | None = None
    study_uid: str | None = None
    series_number: int | None = None
    description: str | None = None
    manufacturer: str | None = None
    instance_number: int | None = None
    ipp: tuple[float, float, float] | None = None
    iop: tuple[float, ...] | None = None
    pixel_spacing: tuple[float, float] | None = (
        None  # (row spacing dy, column spacing dx)
    )
    thickness: float | None = None
    tilt: float | None = None  # GantryDetectorTilt, degrees
    rows: int | None = None
    cols: int | None = None
    bits_allocated: int | None = None
    bits_stored: int | None = None
    pixel_rep: int = 0
    samples: int = 1
    slope: float = 1.0
    intercept: float = 0.0
    ts_uid: str | None = None
    has_pixels: bool = False
    #: byte offset of the PixelData *value* in the file (None: unknown)
    pixel_offset: int | None = None
    #: length of the value (None for encapsulated / undefined length)
    pixel_length: int | None = None
    #: the header dataset, kept only for files that pass 2 must decode with
    #: pydicom (compressed or unusual encodings)
    dataset: pydicom.Dataset | None = field(default=None, repr=False)

    @property
    def fast_native(self) -> bool:
        """True when pass 2 can ``readinto`` the raw pixel bytes."""
        return (
            self.ts_uid in NATIVE_TS
            and self.pixel_offset is not None
            and self.pixel_length is not None
            and self.frame is None
            and self.bits_allocated == 16
            and self.samples == 1
            and self.rows is not None
            and self.cols is not None
            and self.pixel_length >= 2 * self.rows * self.cols
        )


@dataclass
class ScanResult:
    """All headers of a scan plus the files that could not be used."""

    slices: list[SliceHeader] = field(default_factory=list)
    not_dicom: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def has_dicm_marker(path) -> bool:
    """True if ``path`` is a file with the DICOM Part 10 ``DICM`` marker at byte 128.

    A cheap sniff (reads 132 bytes) for deciding whether a path is worth
    offering to :func:`napari_heartbox.io.load_ct`; the loader itself also
    accepts preamble-less files.
    """
    if not is_regular_file(path):  # opening a FIFO would block until a writer comes
        return False
    try:
        with open(path, 'rb') as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b'DICM'


def is_regular_file(path) -> bool:
    """True for a regular file (symlinks followed); False for FIFOs, sockets, devices, folders."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def discover_files(folder: Path) -> list[Path]:
    """All regular files under ``folder`` (recursive), sorted, no hidden ones.

    FIFOs, sockets and device files are left out: reading one would block or
    never end (a FIFO blocks ``open`` until something writes to it).
    """
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        out.extend(p for f in files if not f.startswith('.') and is_regular_file(p := Path(root) / f))
    return sorted(out)


def _float(v, default=None):
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def _floats(v, n):
    try:
        vals = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        return None
    return vals if len(vals) == n else None


def _int(v, default=None):
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def _str(v):
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def _first_item(ds, keyword):
    seq = ds.get(keyword)
    if seq is None or len(seq) == 0:
        return None
    return seq[0]


def _functional(ds, keyword, frame_item, shared_item):
    """First item of a functional-group macro, per-frame before shared."""
    for group in (frame_item, shared_item):
        if group is not None:
            item = _first_item(group, keyword)
            if item is not None:
                return item
    return None


def _pixel_element(fp, ds) -> tuple[int | None, int | None]:
    """Offset and length of the PixelData value at the reader's position."""
    implicit, little = getattr(ds, 'original_encoding', (None, None))
    if not little:
        return None, None
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8 or head[:4] != _PIXEL_TAG:
        return None, None
    if implicit:
        (length,) = struct.unpack('<I', head[4:8])
        offset = start + 8
    elif head[4:6] in _LONG_VRS:
        (length,) = struct.unpack('<I', head[8:12])
        offset = start + 12
    else:
        (length,) = struct.unpack('<H', head[6:8])
        offset = start + 8
    if length == 0xFFFFFFFF:
        return offset, None
    return offset, length


class _Fast:
    """Read header values from pydicom's raw elements without its conversion.

    pydicom converts an element's bytes lazily and that conversion costs
    more than the parse itself; the few values pass 1 needs are decoded here
    directly (little-endian files; anything else falls back to pydicom).
    """

    def __init__(self, ds):
        self.ds = ds
        self.little = getattr(ds, 'original_encoding', (None, True))[1] is not False

    def _raw(self, tag):
        elem = self.ds.get_item(tag)
        if elem is None:
            return None, None
        if isinstance(elem, pydicom.dataelem.RawDataElement):
            return elem.value, elem.VR
        return elem, 'converted'

    def strs(self, tag) -> list[str] | None:
        """Backslash-separated string values."""
        val, vr = self._raw(tag)
        if val is None:
            return None
        if vr == 'converted':
            v = val.value
            if v is None or v == '':
                return None
            if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
                return [str(x).strip() for x in v]
            return [str(v).strip()]
        text = val.decode('latin-1').rstrip('\x00 ').strip()
        if not text:
            return None
        return [t.strip().rstrip('\x00') for t in text.split('\\')]

    def str(self, tag) -> str | None:
        v = self.strs(tag)
        return '\\'.join(v) if v else None

    def floats(self, tag, n):
        v = self.strs(tag)
        return _floats(v, n) if v else None

    def float(self, tag, default=None):
        v = self.strs(tag)
        return _float(v[0], default) if v else default

    def int(self, tag, default=None):
        v = self.strs(tag)
        return _int(v[0], default) if v else default

    def us(self, tag, default=None):
        """An unsigned short (VR US) value."""
        val, vr = self._raw(tag)
        if val is None:
            return default
        if vr == 'converted' or not self.little or vr not in ('US', None):
            return _int(self.ds[tag].value, default)
        if len(val) < 2:
            return default
        return int.from_bytes(val[:2], 'little')


class _RawValues(_Fast):
    """The same accessors over the raw bytes found by :func:`fast_parse`."""

    def __init__(self, values: dict):
        self.values = values
        self.little = True

    def _raw(self, tag):
        return self.values.get(tag, (None, None))

    def us(self, tag, default=None):
        val, vr = self._raw(tag)
        if val is None or len(val) < 2:
            return default
        if vr not in (b'US', None):
            raise ValueError(f'unexpected VR {vr!r} for tag {tag:08X}')
        return int.from_bytes(val[:2], 'little')


def _header_from_fast(parsed: dict, path: Path) -> SliceHeader | None:
    """A :class:`SliceHeader` from :func:`fast_parse` output (None: use pydicom)."""
    f = _RawValues(parsed['values'])
    if (f.int(0x00280008, 1) or 1) > 1:
        return None  # multi-frame
    h = SliceHeader(**_common(f, path, parsed['ts']))
    h.ipp = f.floats(0x00200032, 3)
    h.iop = f.floats(0x00200037, 6)
    h.pixel_spacing = f.floats(0x00280030, 2)
    h.thickness = f.float(0x00180050)
    h.slope = f.float(0x00281053, 1.0) or 1.0
    h.intercept = f.float(0x00281052, 0.0)
    _check_finite(h)
    h.pixel_offset, h.pixel_length = parsed['pixel_offset'], parsed['pixel_length']
    h.has_pixels = h.pixel_offset is not None
    if not h.fast_native and h.has_pixels:
        return None  # unusual pixel layout: pass 2 needs pydicom's dataset
    return h


def _check_finite(h: SliceHeader) -> None:
    """``ValueError`` (file reported unreadable, the series goes on) for NaN/inf geometry,
    or a pixel spacing that is not positive."""
    for name, v in (('ImagePositionPatient', h.ipp), ('ImageOrientationPatient', h.iop),
                    ('PixelSpacing', h.pixel_spacing)):
        if v is not None and not all(math.isfinite(x) for x in v):
            raise ValueError(f'{name} {list(v)} is not finite')
    if h.pixel_spacing is not None and min(h.pixel_spacing) <= 0:
        raise ValueError(f'PixelSpacing {list(h.pixel_spacing)} is not positive')


def _common(f: _Fast, path: Path, ts_uid: str | None) -> dict:
    return {
        'path': path,
        'sop_class': f.str(0x00080016),
        'modality': f.str(0x00080060),
        'image_type': tuple(v.upper() for v in (f.strs(0x00080008) or ())),
        'series_uid': f.str(0x0020000E),
        'study_uid': f.str(0x0020000D),
        'series_number': f.int(0x00200011),
        'description': f.str(0x0008103E),
        'manufacturer': f.str(0x00080070),
        'instance_number': f.int(0x00200013),
        'rows': f.us(0x00280010),
        'cols': f.us(0x00280011),
        'bits_allocated': f.us(0x00280100),
        'bits_stored': f.us(0x00280101),
        'pixel_rep': f.us(0x00280103, 0),
        'samples': f.us(0x00280002, 1),
        'ts_uid': ts_uid,
        'tilt': f.float(0x00181120),
    }


#: most frames one file may claim (a CT volume has a few thousand at most); checked
#: before the per-frame loop, which would otherwise run once per claimed frame
MAX_FRAMES = 20_000


def _enhanced_frames(ds, common: dict, pixel_length: int | None = None) -> list[SliceHeader]:
    """One header per frame of an enhanced (multi-frame) image.

    Raises ``ValueError`` (the file is then reported unreadable) when
    NumberOfFrames is outside ``1..MAX_FRAMES`` or claims more uncompressed
    frames than the pixel data holds.
    """
    n = _int(ds.get('NumberOfFrames'), 1) or 1
    if not 1 <= n <= MAX_FRAMES:
        raise ValueError(f'NumberOfFrames {n} is outside 1..{MAX_FRAMES}')
    rows, cols, bits = common.get('rows'), common.get('cols'), common.get('bits_allocated')
    if pixel_length and rows and cols and bits and common.get('ts_uid') in NATIVE_TS:
        frame_bytes = rows * cols * max(1, bits // 8) * (common.get('samples') or 1)
        if n * frame_bytes > pixel_length:
            raise ValueError(
                f'NumberOfFrames {n} but the pixel data holds {pixel_length // frame_bytes} '
                f'frame(s) of {rows}×{cols}'
            )
    shared = _first_item(ds, 'SharedFunctionalGroupsSequence')
    per_frame = ds.get('PerFrameFunctionalGroupsSequence') or []
    out = []
    for i in range(n):
        fi = per_frame[i] if i < len(per_frame) else None
        pos = _functional(ds, 'PlanePositionSequence', fi, shared)
        ori = _functional(ds, 'PlaneOrientationSequence', fi, shared)
        meas = _functional(ds, 'PixelMeasuresSequence', fi, shared)
        pvt = _functional(ds, 'PixelValueTransformationSequence', fi, shared)
        h = SliceHeader(**common, frame=i, n_frames=n)
        # a functional-group item when present, else the top-level attribute
        h.ipp = _floats((pos or ds).get('ImagePositionPatient'), 3)
        h.iop = _floats((ori or ds).get('ImageOrientationPatient'), 6)
        if meas is not None:
            h.pixel_spacing = _floats(meas.get('PixelSpacing'), 2)
            h.thickness = _float(meas.get('SliceThickness'))
        h.slope = _float((pvt or ds).get('RescaleSlope'), 1.0)
        h.intercept = _float((pvt or ds).get('RescaleIntercept'), 0.0)
        h.has_pixels = True
        out.append(h)
    return out


def read_header(path: Path, *, fast: bool = True) -> list[SliceHeader]:
    """Parse one file's header; one :class:`SliceHeader` per image in it.

    ``fast=False`` forces the pydicom path (tests compare the two).

    Raises
    ------
    pydicom.errors.InvalidDicomError
        When the file is not DICOM.
    Exception
        Anything pydicom raises on a corrupt file (the caller records it).
    """
    with open(path, 'rb') as fp:
        parsed = fast_parse(fp) if fast else None
        if parsed is not None:
            try:
                h = _header_from_fast(parsed, path)
            except ValueError:
                h = None
            if h is not None:
                return [h]
        fp.seek(0)
        try:
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
        except InvalidDicomError:
            # DICOM without the 128-byte preamble: try only when the file
            # starts like a dataset (group 0002 or 0008, little endian), and
            # accept only if it parses to something image-like
            fp.seek(0)
            if fp.read(4)[:2] not in (b'\x02\x00', b'\x08\x00'):
                raise
            fp.seek(0)
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
            if 'SOPClassUID' not in ds and 'Rows' not in ds:
                raise InvalidDicomError(
                    'no DICM marker and no DICOM image tags'
                ) from None
        offset, length = _pixel_element(fp, ds)
    meta = getattr(ds, 'file_meta', None)
    ts_uid = _str(meta.get('TransferSyntaxUID')) if meta is not None else None
    if ts_uid is None:  # no file meta: the encoding pydicom detected tells
        implicit, little = getattr(ds, 'original_encoding', (None, None))
        if little and implicit is not None:
            ts_uid = '1.2.840.10008.1.2' if implicit else '1.2.840.10008.1.2.1'
            ds.file_meta = (
                ds.file_meta if meta is not None else pydicom.dataset.FileMetaDataset()
            )
            ds.file_meta.TransferSyntaxUID = ts_uid
    common = _common(_Fast(ds), path, ts_uid)
    if (_Fast(ds).int(0x00280008, 1) or 1) > 1 or 0x52009230 in ds:
        frames = _enhanced_frames(ds, common, length)
        for h in frames:
            h.dataset = ds
        return frames
    f = _Fast(ds)
    h = SliceHeader(**common)
    h.ipp = f.floats(0x00200032, 3)
    h.iop = f.floats(0x00200037, 6)
    h.pixel_spacing = f.floats(0x00280030, 2)
    h.thickness = f.float(0x00180050)
    h.slope = f.float(0x00281053, 1.0) or 1.0
    h.intercept = f.float(0x00281052, 0.0)
    _check_finite(h)
    h.pixel_offset, h.pixel_length = offset, length
    # stop_before_pixels leaves the reader at PixelData when there is one
    h.has_pixels = offset is not None or (
        h.ts_uid not in NATIVE_TS and h.rows is not None and h.sop_class is not None
    )
    if not h.fast_native:
        h.dataset = ds
    return [h]


def scan_headers(
    files: Iterable[Path], progress=None, progress_total=None
) -> ScanResult:
    """Run pass 1 over ``files``.

    Parameters
    ----------
    files : iterable of Path
        Candidate files.
    progress : callable, optional
        ``progress(done, total)`` after each file.
    progress_total : int, optional
        ``total`` passed to ``progress`` (defaults to the number of files).
    """
    files = list(files)
    total = progress_total or len(files)
    res = ScanResult()
    for i, path in enumerate(files):
        try:
            res.slices.extend(read_header(path))
        except InvalidDicomError:
            res.not_dicom.append(path)
        except Exception as e:  # noqa: BLE001 - corrupt files are reported, not raised
            res.unreadable.append(
                (path, f'{type(e).__name__}: {e}'.splitlines()[0][:120])
            )
        if progress is not None:
            progress(i + 1, total)
    return res
