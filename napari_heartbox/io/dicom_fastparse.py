"""A minimal DICOM header walker for uncompressed little-endian files.

pydicom's Python-level parse (about 0.3–0.8 ms per file) is the cost of
loading a series; this walker reads only the top-level elements up to
PixelData and keeps the raw bytes of the few tags the loader needs, which is
several times faster. It handles Explicit and Implicit VR Little Endian, the
file meta group, defined and undefined lengths and nested sequences (skipped).
Anything else — no DICM preamble, another transfer syntax, multi-frame files,
a parse surprise — returns ``None`` and the caller uses pydicom instead, so
this is an accelerator, never the only path.
"""

from __future__ import annotations

import struct

__all__ = ['WANTED_TAGS', 'fast_parse']

#: (group << 16 | element) of every tag pass 1 reads
WANTED_TAGS = frozenset(
    {
        0x00080008,  # ImageType
        0x00080016,  # SOPClassUID
        0x00080060,  # Modality
        0x00080070,  # Manufacturer
        0x0008103E,  # SeriesDescription
        0x00180050,  # SliceThickness
        0x00181120,  # GantryDetectorTilt
        0x0020000D,  # StudyInstanceUID
        0x0020000E,  # SeriesInstanceUID
        0x00200011,  # SeriesNumber
        0x00200013,  # InstanceNumber
        0x00200032,  # ImagePositionPatient
        0x00200037,  # ImageOrientationPatient
        0x00280002,  # SamplesPerPixel
        0x00280008,  # NumberOfFrames
        0x00280010,  # Rows
        0x00280011,  # Columns
        0x00280030,  # PixelSpacing
        0x00280100,  # BitsAllocated
        0x00280101,  # BitsStored
        0x00280103,  # PixelRepresentation
        0x00281052,  # RescaleIntercept
        0x00281053,  # RescaleSlope
    }
)
_PIXEL_DATA = 0x7FE00010
_PER_FRAME_FG = 0x52009230
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_LONG_VRS = frozenset(
    {
        b'OB',
        b'OD',
        b'OF',
        b'OL',
        b'OV',
        b'OW',
        b'SQ',
        b'SV',
        b'UC',
        b'UN',
        b'UR',
        b'UT',
        b'UV',
    }
)
_NATIVE = {b'1.2.840.10008.1.2': True, b'1.2.840.10008.1.2.1': False}  # -> implicit?
_UNDEFINED = 0xFFFFFFFF
_HH = struct.Struct('<HH')
_I = struct.Struct('<I')
_H = struct.Struct('<H')


class _NeedMore(Exception):
    """The buffer ended before the walk did."""


class _Unsupported(Exception):
    """Something this walker does not handle: use pydicom."""


class _Walker:
    def __init__(self, fp, chunk: int, limit: int):
        self.fp = fp
        self.buf = fp.read(chunk)
        self.chunk = chunk
        self.limit = limit
        self.eof = len(self.buf) < chunk

    def need(self, end: int) -> None:
        while end > len(self.buf):
            if self.eof or len(self.buf) >= self.limit:
                raise _NeedMore
            more = self.fp.read(max(self.chunk, end - len(self.buf)))
            self.eof = not more or len(more) < self.chunk
            self.buf += more

    def element(self, pos: int, implicit: bool):
        """(tag, vr, value offset, length) of the element at ``pos``."""
        self.need(pos + 8)
        buf = self.buf
        group, elem = _HH.unpack_from(buf, pos)
        tag = group << 16 | elem
        if implicit or group == 0xFFFE:
            return tag, None, pos + 8, _I.unpack_from(buf, pos + 4)[0]
        vr = bytes(buf[pos + 4 : pos + 6])
        if vr in _LONG_VRS:
            self.need(pos + 12)  # may grow self.buf: do not reuse ``buf``
            return tag, vr, pos + 12, _I.unpack_from(self.buf, pos + 8)[0]
        if not vr.isalpha():
            raise _Unsupported('bad VR')
        return tag, vr, pos + 8, _H.unpack_from(buf, pos + 6)[0]

    def skip_undefined(self, pos: int, implicit: bool) -> int:
        """Skip an undefined-length sequence whose items start at ``pos``."""
        while True:
            tag, _, vpos, length = self.element(pos, True)
            if tag == _SEQ_END:
                return vpos
            if tag != _ITEM:
                raise _Unsupported('expected an item')
            if length != _UNDEFINED:
                pos = vpos + length
                continue
            pos = vpos
            while True:  # undefined-length item: walk its elements
                tag, vr, vpos, length = self.element(pos, implicit)
                if tag == _ITEM_END:
                    pos = vpos
                    break
                if length == _UNDEFINED:
                    pos = self.skip_undefined(vpos, implicit or vr == b'UN')
                else:
                    pos = vpos + length


def fast_parse(fp, *, chunk: int = 16384, limit: int = 4 << 20):
    """Walk a file's header up to PixelData.

    Parameters
    ----------
    fp : binary file
        Positioned at the start of the file.
    chunk, limit : int
        Read size and the most header bytes to read before giving up.

    Returns
    -------
    dict or None
        ``{'ts': str, 'values': {tag: (bytes, vr)}, 'pixel_offset': int | None,
        'pixel_length': int | None}`` or ``None`` when pydicom must be used.
    """
    try:
        return _fast_parse(_Walker(fp, chunk, limit))
    except (_NeedMore, _Unsupported, struct.error):
        return None


def _fast_parse(w: _Walker):
    w.need(132)
    if w.buf[128:132] != b'DICM':
        return None
    pos = 132
    ts = None
    while True:  # file meta: always Explicit VR Little Endian
        w.need(pos + 2)
        if _H.unpack_from(w.buf, pos)[0] != 0x0002:
            break
        tag, _, vpos, length = w.element(pos, False)
        if length == _UNDEFINED:
            return None
        w.need(vpos + length)
        if tag == 0x00020010:
            ts = bytes(w.buf[vpos : vpos + length]).rstrip(b'\x00 ')
        pos = vpos + length
    if ts not in _NATIVE:
        return None
    implicit = _NATIVE[ts]
    values: dict[int, tuple[bytes, bytes | None]] = {}
    offset = length_px = None
    while True:
        if w.eof and pos >= len(w.buf):
            break  # no PixelData: a non-image object
        tag, vr, vpos, length = w.element(pos, implicit)
        if tag == _PIXEL_DATA:
            if length == _UNDEFINED:
                return None  # encapsulated in a native transfer syntax
            offset, length_px = vpos, length
            break
        if tag == _PER_FRAME_FG:
            return None  # enhanced multi-frame: pydicom walks the groups
        if length == _UNDEFINED:
            pos = w.skip_undefined(vpos, implicit or vr == b'UN')
            continue
        if tag in WANTED_TAGS:
            w.need(vpos + length)
            values[tag] = (bytes(w.buf[vpos : vpos + length]), vr)
        pos = vpos + length
    return {
        'ts': ts.decode('ascii'),
        'values': values,
        'pixel_offset': offset,
        'pixel_length': length_px,
    }
