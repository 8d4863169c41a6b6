"""Sector files: a model proposal plus the corrected box for one CT series.

A *sector file* is the JSON the napari plugin saves (and the correction
worklist writes, one per case). Its schema, ``heartbox.sector-file/1``, lives
next to the sector schema in ``napari_heartbox/schemas/`` and wraps two
``heartbox.sector/1`` objects::

    {"schema": "heartbox.sector-file/1", "series_uid": "1.2...",
     "proposal": {heartbox.sector/1} | null,
     "corrected": {heartbox.sector/1} | null,
     "model_sha256": "..." | null, "plugin_version": "0.1.0",
     "timestamp": "2026-11-26T01:02:03Z", "status": "corrected",
     "case": "case-001" | null}

Reading also accepts a bare ``heartbox.sector/1`` object (taken as the
corrected box, e.g. the output of ``napari-heartbox propose --out``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from ._atomic import atomic_write_text
from .errors import HeartboxError
from .grid import Grid
from .sector import SCHEMA_ID, Sector

__all__ = [
    'FILE_SCHEMA_ID',
    'STATUSES',
    'SectorFile',
    'read_sector_file',
    'sector_file_dict',
    'sector_file_schema',
    'write_sector_file',
]

FILE_SCHEMA_ID = 'heartbox.sector-file/1'

#: worklist statuses, in workflow order
STATUSES = ('not opened', 'proposed', 'corrected', 'accepted')


def sector_file_schema() -> dict:
    """Return the ``heartbox.sector-file/1`` JSON Schema (a dict)."""
    text = (
        resources.files('napari_heartbox')
        .joinpath('schemas/sector-file.schema.json')
        .read_text(encoding='utf-8')
    )
    return json.loads(text)


@dataclass(frozen=True)
class SectorFile:
    """The parsed content of a sector file.

    Attributes
    ----------
    corrected : Sector or None
        The box to use (hand-corrected or accepted as proposed).
    proposal : Sector or None
        What the model proposed.
    status : str
        One of :data:`STATUSES`.
    series_uid : str or None
        SeriesInstanceUID of the CT.
    case : str or None
        Worklist case id, if any.
    timestamp : str or None
        When it was saved (ISO 8601 UTC).
    """

    corrected: Sector | None
    proposal: Sector | None = None
    status: str = 'corrected'
    series_uid: str | None = None
    case: str | None = None
    timestamp: str | None = None

    @property
    def sector(self) -> Sector | None:
        """The best box in the file: corrected, else the proposal."""
        return self.corrected if self.corrected is not None else self.proposal


def sector_file_dict(
    corrected: Sector | None,
    proposal: Sector | None = None,
    *,
    status: str | None = None,
    case: str | None = None,
) -> dict:
    """Build a ``heartbox.sector-file/1`` object.

    Parameters
    ----------
    corrected, proposal : Sector or None
        The current box and the model's proposal.
    status : str, optional
        One of :data:`STATUSES`; by default ``'corrected'`` when the boxes
        differ, ``'proposed'`` otherwise.
    case : str, optional
        Worklist case id.
    """
    from . import __version__

    if status is None:
        same = (
            corrected is not None
            and proposal is not None
            and (corrected.found, corrected.ranges) == (proposal.found, proposal.ranges)
        )
        status = 'proposed' if same or corrected is None else 'corrected'
    if status not in STATUSES:
        raise ValueError(f'status must be one of {STATUSES}, got {status!r}')
    ref = corrected if corrected is not None else proposal
    return {
        'schema': FILE_SCHEMA_ID,
        'series_uid': ref.series_uid if ref is not None else None,
        'proposal': proposal.to_dict() if proposal is not None else None,
        'corrected': corrected.to_dict() if corrected is not None else None,
        'model_sha256': proposal.model_sha256 if proposal is not None else None,
        'plugin_version': __version__,
        'timestamp': datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
        'status': status,
        'case': case,
    }


def write_sector_file(path, corrected, proposal=None, **kw) -> Path:
    """Write a sector file atomically (temporary file + rename).

    Parameters
    ----------
    path : str or Path
        Destination ``.json`` file; its folder is created if needed.
    corrected, proposal, **kw
        See :func:`sector_file_dict`.

    Returns
    -------
    Path
        The written path.
    """
    text = json.dumps(sector_file_dict(corrected, proposal, **kw), indent=2)
    return atomic_write_text(path, text + '\n')


def read_sector_file(path, grid: Grid | None = None) -> SectorFile:
    """Read a sector file (or a bare ``heartbox.sector/1`` JSON).

    Parameters
    ----------
    path : str or Path
        The JSON file.
    grid : Grid, optional
        Attach the sectors to this grid (its shape must match).

    Raises
    ------
    HeartboxError
        With a one-line message naming the file when it is not valid JSON,
        not a sector file, or does not fit ``grid``.
    """
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HeartboxError(f'{path}: cannot read a sector file ({e})') from None
    try:
        return parse_sector_file(d, grid)
    except (KeyError, TypeError, ValueError) as e:
        raise HeartboxError(f'{path}: not a usable sector file ({e})') from None


def parse_sector_file(d, grid: Grid | None = None) -> SectorFile:
    """Parse a loaded JSON object (see :func:`read_sector_file`)."""
    if not isinstance(d, dict):
        raise ValueError(f'expected a JSON object, got {type(d).__name__}')
    schema = d.get('schema')
    if schema == SCHEMA_ID:
        s = Sector.from_dict(d, grid)
        return SectorFile(corrected=s, status='corrected', series_uid=s.series_uid)
    if schema != FILE_SCHEMA_ID:
        raise ValueError(
            f'schema is {schema!r}, expected {FILE_SCHEMA_ID!r} or {SCHEMA_ID!r}'
        )

    def _get(key):
        v = d.get(key)
        return None if v is None else Sector.from_dict(v, grid)

    status = d.get('status', 'corrected')
    if status not in STATUSES:
        raise ValueError(f'unknown status {status!r}')
    return SectorFile(
        corrected=_get('corrected'),
        proposal=_get('proposal'),
        status=status,
        series_uid=d.get('series_uid'),
        case=d.get('case'),
        timestamp=d.get('timestamp'),
    )
