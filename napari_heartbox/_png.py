"""Minimal PNG encode/decode with numpy + zlib only (no matplotlib, no Pillow).

Only what the evaluation overlays need: 8-bit greyscale ``(H, W)`` or RGB
``(H, W, 3)`` images, written without interlacing and with filter type 0
(None) on every row. :func:`read_png` reads exactly that subset back (it is
for tests and tools that inspect our own overlays, not a general decoder).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ['encode_png', 'read_png', 'write_png']

_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', crc)


def encode_png(image: np.ndarray, *, level: int = 6) -> bytes:
    """Encode an 8-bit greyscale or RGB image as PNG bytes.

    Parameters
    ----------
    image : numpy.ndarray
        ``uint8`` array, ``(H, W)`` (greyscale) or ``(H, W, 3)`` (RGB); row 0
        is the top of the picture.
    level : int
        zlib compression level (0-9).

    Returns
    -------
    bytes
        A complete PNG file.
    """
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f'PNG image must be uint8, got {a.dtype}')
    if a.ndim == 2:
        colour_type, channels = 0, 1
    elif a.ndim == 3 and a.shape[2] == 3:
        colour_type, channels = 2, 3
    else:
        raise ValueError(f'PNG image must be (H, W) or (H, W, 3), got {a.shape}')
    h, w = a.shape[:2]
    if h < 1 or w < 1:
        raise ValueError('PNG image must not be empty')
    rows = np.ascontiguousarray(a).reshape(h, w * channels)
    # every scanline starts with its filter-type byte (0 = None)
    raw = np.hstack([np.zeros((h, 1), np.uint8), rows]).tobytes()
    ihdr = struct.pack('>IIBBBBB', w, h, 8, colour_type, 0, 0, 0)
    return (
        _SIGNATURE
        + _chunk(b'IHDR', ihdr)
        + _chunk(b'IDAT', zlib.compress(raw, level))
        + _chunk(b'IEND', b'')
    )


def write_png(path, image: np.ndarray) -> Path:
    """Write ``image`` (see :func:`encode_png`) to ``path``; returns the path."""
    path = Path(path)
    path.write_bytes(encode_png(image))
    return path


def read_png(path) -> np.ndarray:
    """Read a PNG written by :func:`write_png` back into a uint8 array.

    Supports 8-bit greyscale/RGB, non-interlaced, filter type 0 rows only;
    raises ``ValueError`` for anything else.
    """
    data = Path(path).read_bytes()
    if not data.startswith(_SIGNATURE):
        raise ValueError(f'{path}: not a PNG file')
    pos, idat, ihdr = len(_SIGNATURE), [], None
    while pos < len(data):
        (n,) = struct.unpack('>I', data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b'IHDR':
            ihdr = struct.unpack('>IIBBBBB', body)
        elif kind == b'IDAT':
            idat.append(body)
        elif kind == b'IEND':
            break
    if ihdr is None:
        raise ValueError(f'{path}: PNG without IHDR')
    w, h, depth, colour_type, _, _, interlace = ihdr
    if depth != 8 or colour_type not in (0, 2) or interlace:
        raise ValueError(f'{path}: unsupported PNG variant {ihdr}')
    channels = 1 if colour_type == 0 else 3
    raw = np.frombuffer(zlib.decompress(b''.join(idat)), np.uint8)
    rows = raw.reshape(h, 1 + w * channels)
    if np.any(rows[:, 0] != 0):
        raise ValueError(f'{path}: PNG uses row filters this reader does not support')
    img = rows[:, 1:].reshape(h, w, channels)
    return img[:, :, 0].copy() if channels == 1 else img.copy()
