"""Find the corrected boxes (and their CTs) that ``napari-heartbox finetune`` trains on.

Two kinds of folder are accepted:

* a worklist corrections folder (``index.json`` with ``"schema":
  "heartbox.corrections/1"``, ``docs/corrections-format.md``): every case whose
  status is ``corrected`` or ``accepted``; its CT is ``index["input"] / source``;
* any folder of sector files (``heartbox.sector-file/1``, e.g. written by *Save
  sector…* or ``propose --out``; a bare ``heartbox.sector/1`` file also works)
  where each ``<name>.json`` sits beside its CT: ``<name>.nii.gz``, ``<name>.nii``
  or a DICOM folder ``<name>/``. A sector file's ``source`` key, when present, is
  the CT's path relative to the sector file's folder.

Nothing here reads pixels: :class:`CorrectedCase` holds paths and the box; the
grid is checked against the CT's when the CT is loaded (:func:`load_case`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import HeartboxError
from .sector import SCHEMA_ID
from .sector_file import FILE_SCHEMA_ID
from .worklist import INDEX_SCHEMA_ID

__all__ = ['CorrectedCase', 'find_corrected_cases', 'load_case']

TRAINABLE = ('corrected', 'accepted')


@dataclass(frozen=True)
class CorrectedCase:
    """One corrected box: ``case`` id, the CT's ``ct_path`` and the ``sector_path`` of its box.

    ``series_uid`` picks the series when ``ct_path`` holds several (an index row's
    ``series_uid``, e.g. a batch output: one case per series); None: the loader's choice.
    """

    case: str
    ct_path: Path
    sector_path: Path
    series_uid: str | None = None


def _ct_beside(sector_path: Path) -> Path | None:
    stem = sector_path.name[: -len('.json')]
    for name in (f'{stem}.nii.gz', f'{stem}.nii', stem):
        p = sector_path.with_name(name)
        if p.exists():
            return p
    return None


def find_corrected_cases(folder) -> list[CorrectedCase]:
    """The trainable cases of ``folder`` (see the module docstring), in name order.

    Raises
    ------
    HeartboxError
        One line naming the folder or file: not a folder, an unreadable
        index, a sector file without its CT, or no trainable case at all.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise HeartboxError(f'{folder}: not a folder (expected a corrections folder or sector files)')
    index = folder / 'index.json'
    cases: list[CorrectedCase] = []
    if index.is_file():
        try:
            d = json.loads(index.read_text(encoding='utf-8'))
        except (OSError, ValueError) as e:
            raise HeartboxError(f'{index}: not readable JSON ({e})') from None
        if d.get('schema') != INDEX_SCHEMA_ID:
            raise HeartboxError(f'{index}: schema is {d.get("schema")!r}, expected {INDEX_SCHEMA_ID!r}')
        root = Path(d.get('input') or '')
        if not root.is_absolute():  # relative to the index's folder (older indexes: absolute)
            root = Path(os.path.normpath(folder / root))
        for row in d.get('cases', []):
            if row.get('status') not in TRAINABLE or not row.get('file'):
                continue
            ct = root / row.get('source', '')
            if not ct.exists():
                raise HeartboxError(f'{index}: case {row.get("case")!r}: its CT {ct} does not exist')
            cases.append(CorrectedCase(str(row['case']), ct, folder / row['file'], row.get('series_uid')))
        if not cases:
            raise HeartboxError(f'{index}: no case is corrected or accepted yet (nothing to train on)')
        return cases
    for p in sorted(folder.glob('*.json'), key=lambda q: q.name):
        try:
            d = json.loads(p.read_text(encoding='utf-8'))
        except (OSError, ValueError):
            continue  # not a sector file; other JSON may live here
        if not isinstance(d, dict) or d.get('schema') not in (FILE_SCHEMA_ID, SCHEMA_ID):
            continue
        if d.get('status') not in (None, *TRAINABLE):
            continue
        ct = (p.parent / d['source']) if d.get('source') else _ct_beside(p)
        if ct is None or not ct.exists():
            raise HeartboxError(f'{p}: no CT beside it (expected {p.name[:-5]}.nii.gz, .nii or a DICOM folder)')
        cases.append(CorrectedCase(str(d.get('case') or p.name[:-5]), ct, p))
    if not cases:
        raise HeartboxError(f'{folder}: no sector files ({FILE_SCHEMA_ID}) with their CTs found')
    return cases


def load_case(case: CorrectedCase):
    """``(CTVolume, Sector)`` of a case; the box's grid must match the CT's.

    A ``found: false`` box (the reader says there is no heart) is returned as
    such: it trains "no heart anywhere".
    """
    from .io import load_ct
    from .sector_file import read_sector_file

    volume = load_ct(case.ct_path, series_uid=case.series_uid)
    box = read_sector_file(case.sector_path, grid=volume.grid).sector  # bare sectors too
    if box is None:
        raise HeartboxError(f'{case.sector_path}: holds no box')
    return volume, box
