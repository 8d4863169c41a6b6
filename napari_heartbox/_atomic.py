"""Atomic file writes: a temporary file in the same folder, then ``os.replace``.

A reader (or a run killed half-way) sees the old file or the new one, never a
part of one. Used for every output that other tools read back: sector files,
worklist indexes, batch records and tables.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ['atomic_write_bytes', 'atomic_write_text']


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (its folder is created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix='.' + path.name, suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode('utf-8'))
