"""Correction worklist: many studies, one proposal and one corrected box each.

Pure Python (no Qt, no napari): the napari worklist widget, scripts and the
training pipeline all use this module.

Input
-----
A folder of studies, one case per entry (sorted by name):

* each ``*.nii`` / ``*.nii.gz`` file is a case (id = file name without the
  suffix);
* each sub-folder that contains DICOM files (searched recursively) is a case
  (id = sub-folder name);
* DICOM files lying directly in the folder form one case named after it.

The input is only ever read.

Corrections folder (the output; see ``docs/corrections-format.md``)
-------------------------------------------------------------------
Chosen by the user and never the input folder or inside it::

    <out>/cases/<case>.json   one heartbox.sector-file/1 per case
    <out>/index.csv           case, status, source, file, series_uid, iou, updated
    <out>/index.json          {"schema": "heartbox.corrections/1", "cases": [...]}
    <out>/agreement.csv       per-case IoU and face errors (write_agreement)
    <out>/agreement.png       the same as a plot

Statuses: ``not opened`` (no case file yet), ``proposed`` (box = proposal),
``corrected`` (box edited), ``accepted`` (the user confirmed the box).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ._atomic import atomic_write_text
from .errors import HeartboxError
from .evaluate import FACES as _EVAL_FACES
from .evaluate import box_metrics
from .io.dicom_headers import has_dicm_marker
from .sector import Sector
from .sector_file import STATUSES, SectorFile, read_sector_file, write_sector_file

__all__ = [
    'FACES',
    'INDEX_SCHEMA_ID',
    'Case',
    'Worklist',
    'agreement_row',
    'discover_cases',
    'summarize_agreement',
]

INDEX_SCHEMA_ID = 'heartbox.corrections/1'

#: anatomical face names, as in :mod:`napari_heartbox.evaluate` (the one
#: place box accuracy is defined): right/left (LPS x min/max), anterior/
#: posterior (y), inferior/superior (z)
FACES = tuple(_EVAL_FACES)

_NIFTI = ('.nii.gz', '.nii')


@dataclass(frozen=True)
class Case:
    """One study of a worklist.

    Attributes
    ----------
    id : str
        Case id (file or folder name), also the corrections file stem.
    path : Path
        What :func:`napari_heartbox.io.load_ct` opens.
    source : str
        ``path`` relative to the worklist's input folder (POSIX style).
    series_uid : str or None
        The series to open when ``path`` holds several (a batch case is one
        series, :mod:`napari_heartbox.batch`); None: the loader's choice (the
        largest axial CT series).
    """

    id: str
    path: Path
    source: str
    series_uid: str | None = None


def _is_dicom_file(p: Path) -> bool:
    return p.suffix.lower() == '.dcm' or has_dicm_marker(p)


def _has_dicom(folder: Path) -> bool:
    for root, _dirs, files in os.walk(folder):
        if any(_is_dicom_file(Path(root) / f) for f in files):
            return True
    return False


def discover_cases(folder) -> list[Case]:
    """List the cases in a folder of studies (see the module docstring).

    Raises
    ------
    HeartboxError
        If ``folder`` is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise HeartboxError(f'{folder}: not a folder of studies')
    cases: list[Case] = []
    loose_dicom = False
    for p in sorted(folder.iterdir(), key=lambda q: q.name):
        if p.name.startswith('.'):
            continue
        low = p.name.lower()
        if p.is_file() and low.endswith(_NIFTI):
            cid = p.name[: -len('.nii.gz')] if low.endswith('.nii.gz') else p.stem
            cases.append(Case(cid, p, p.name))
        elif p.is_dir() and _has_dicom(p):
            cases.append(Case(p.name, p, p.name))
        elif p.is_file() and _is_dicom_file(p):
            loose_dicom = True
    if loose_dicom:
        cases.insert(0, Case(folder.name, folder, '.'))
    return cases


def agreement_row(case_id: str, sf: SectorFile) -> dict | None:
    """Per-case agreement between proposal and corrected box, or None.

    Returns None when the case has no proposal or no corrected box, or has
    not been reviewed (status ``proposed``: its box is the proposal itself,
    and an IoU of 1 would say nothing about the model).
    """
    p, c = sf.proposal, sf.corrected
    if p is None or c is None or sf.status not in ('corrected', 'accepted'):
        return None
    if p.found and c.found:
        # the corrected box is the reference; positive error = the proposal's
        # face lies outside it (proposal too generous on that side)
        m = box_metrics(c.patient_mm(), p.patient_mm())
        iou, errs, worst = m['iou'], m['face_error_mm'], m['max_abs_face_error_mm']
    else:  # "no heart" on one or both sides: no faces to compare
        iou = 1.0 if p.found == c.found else 0.0
        errs, worst = dict.fromkeys(FACES, math.nan), math.nan
    return {
        'case': case_id,
        'status': sf.status,
        'iou': iou,
        **{f'{f}_mm': errs[f] for f in FACES},
        'max_abs_face_mm': worst,
    }


def summarize_agreement(rows: list[dict]) -> dict:
    """Overall agreement: case count, mean/median/min IoU, mean |face error|."""

    def _mean(vals):
        vals = [v for v in vals if not math.isnan(v)]
        return sum(vals) / len(vals) if vals else math.nan

    ious = sorted(r['iou'] for r in rows)
    n = len(ious)
    median = (
        math.nan
        if not n
        else (ious[n // 2] if n % 2 else (ious[n // 2 - 1] + ious[n // 2]) / 2)
    )
    return {
        'n_cases': n,
        'mean_iou': _mean(ious),
        'median_iou': median,
        'min_iou': ious[0] if n else math.nan,
        **{f'mean_abs_{f}_mm': _mean([abs(r[f'{f}_mm']) for r in rows]) for f in FACES},
    }


def _listed_cases(output: Path) -> tuple[Path, list[Case]] | None:
    """The input folder and cases of an index that lists its cases (``"discovery":
    "series"``, written by a batch run or a worklist opened from one), else None."""
    index = output / 'index.json'
    try:
        d = json.loads(index.read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or d.get('schema') != INDEX_SCHEMA_ID or d.get('discovery') != 'series':
        return None
    root = Path(os.path.normpath(output / (d.get('input') or '.')))
    cases = [
        Case(str(r['case']), root / r['source'], str(r['source']), r.get('series_uid'))
        for r in d.get('cases', [])
        if isinstance(r, dict) and r.get('case') and r.get('source') is not None
    ]
    return root, cases


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


class Worklist:
    """A folder of studies plus the corrections folder that records the work.

    Parameters
    ----------
    input_folder : str or Path
        The studies (read only).
    output_folder : str or Path
        Where corrections go; created if needed. Must not be the input
        folder or inside it (nor may it contain a case's own files).
    cases : list of Case, optional
        The cases, in order, instead of one per entry of the input folder
        (:func:`discover_cases`). The index then records them
        (``"discovery": "series"``), so reopening the folder gives the same
        cases: this is how a ``napari-heartbox batch`` output, one case per
        series, opens as a worklist.

    Raises
    ------
    HeartboxError
        Bad folders, with a one-line reason.
    """

    def __init__(self, input_folder, output_folder, cases: list[Case] | None = None):
        self.output = Path(output_folder).resolve()
        listed = _listed_cases(self.output) if cases is None else None
        if input_folder is None or str(input_folder) in ('', '.'):
            if listed is None:
                raise HeartboxError(
                    f'{self.output}: holds no series list (index.json written by '
                    "'napari-heartbox batch'); choose the folder of studies too"
                )
            input_folder = listed[0]
        self.input = Path(input_folder).resolve()
        if listed is not None:
            # the cases the index lists, found again under the input folder given now
            cases = [Case(c.id, self.input / c.source, c.source, c.series_uid) for c in listed[1]]
        if _inside(self.output, self.input):
            raise HeartboxError(
                f'{self.output}: the corrections folder must not be the input '
                f'folder or inside it ({self.input}); choose another folder'
            )
        self._listed = cases is not None
        self.cases = list(cases) if cases is not None else discover_cases(self.input)
        for c in self.cases:
            if _inside(self.output, c.path.resolve()):
                raise HeartboxError(
                    f'{self.output}: the corrections folder is inside case {c.id}'
                )
        self._files: dict[str, SectorFile] = {}
        for c in self.cases:
            p = self.case_file(c.id)
            if p.is_file():
                # unreadable earlier work: the case starts afresh
                with contextlib.suppress(HeartboxError):
                    self._files[c.id] = read_sector_file(p)

    # ------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.cases)

    def index_of(self, case_id: str) -> int:
        """Position of ``case_id`` in :attr:`cases`."""
        for i, c in enumerate(self.cases):
            if c.id == case_id:
                return i
        raise KeyError(case_id)

    def case_file(self, case_id: str) -> Path:
        """``<out>/cases/<case_id>.json``."""
        return self.output / 'cases' / f'{case_id}.json'

    def status(self, case_id: str) -> str:
        """One of :data:`~napari_heartbox.sector_file.STATUSES`."""
        sf = self._files.get(case_id)
        return 'not opened' if sf is None else sf.status

    def record_of(self, case_id: str) -> SectorFile | None:
        """The saved proposal/corrected box of a case, or None."""
        return self._files.get(case_id)

    def next_index(self, i: int, *, unfinished: bool = False) -> int | None:
        """Index after ``i`` (optionally the next not yet accepted), or None."""
        for j in range(i + 1, len(self.cases)):
            if not unfinished or self.status(self.cases[j].id) != 'accepted':
                return j
        return None

    # ------------------------------------------------------------- saving
    def record(
        self,
        case_id: str,
        corrected: Sector | None,
        proposal: Sector | None,
        status: str | None = None,
    ) -> Path:
        """Save a case (auto-save target) and refresh the index files.

        ``status`` defaults to ``proposed`` (box = proposal) or
        ``corrected`` (box edited); pass ``'accepted'`` when the user
        confirms the box.
        """
        self.index_of(case_id)  # KeyError for an unknown case
        if status is not None and status not in STATUSES:
            raise ValueError(f'status must be one of {STATUSES}')
        path = write_sector_file(
            self.case_file(case_id), corrected, proposal, status=status, case=case_id
        )
        self._files[case_id] = read_sector_file(path)
        self.write_index()
        return path

    def rows(self) -> list[dict]:
        """Index rows, one per case, in worklist order."""
        out = []
        for c in self.cases:
            sf = self._files.get(c.id)
            row = agreement_row(c.id, sf) if sf is not None else None
            out.append(
                {
                    'case': c.id,
                    'status': self.status(c.id),
                    'source': c.source,
                    'series_uid': sf.series_uid if sf else c.series_uid,
                    'file': f'cases/{c.id}.json' if sf else None,
                    'iou': round(row['iou'], 4) if row else None,
                    'updated': sf.timestamp if sf else None,
                }
            )
        return out

    def write_index(self) -> None:
        """Write ``index.csv`` and ``index.json`` (atomically)."""
        rows = self.rows()
        # the studies folder relative to this index (POSIX), so the index names no absolute
        # path of the user's machine and survives moving both folders together
        rel = Path(os.path.relpath(self.input, self.output)).as_posix()
        doc = {'schema': INDEX_SCHEMA_ID, 'input': rel, 'cases': rows}
        if self._listed:
            doc['discovery'] = 'series'  # the cases are these rows, not the folder's entries
        atomic_write_text(self.output / 'index.json', json.dumps(doc, indent=2) + '\n')
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ['case'])
        w.writeheader()
        for r in rows:
            w.writerow({k: '' if v is None else v for k, v in r.items()})
        atomic_write_text(self.output / 'index.csv', buf.getvalue())

    # ---------------------------------------------------------- agreement
    def agreement(self) -> tuple[list[dict], dict]:
        """Per-case agreement rows and the overall summary."""
        rows = []
        for c in self.cases:
            sf = self._files.get(c.id)
            r = agreement_row(c.id, sf) if sf is not None else None
            if r is not None:
                rows.append(r)
        return rows, summarize_agreement(rows)

    def write_agreement(self, plot: bool = True) -> dict[str, Path]:
        """Write ``agreement.csv`` (and ``agreement.png``); returns the paths."""
        rows, summary = self.agreement()
        fields = [
            'case',
            'status',
            'iou',
            *[f'{f}_mm' for f in FACES],
            'max_abs_face_mm',
        ]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r[k]) for k in fields})
        w.writerow(
            {
                'case': 'ALL (mean)',
                'status': f'n={summary["n_cases"]}',
                'iou': _fmt(summary['mean_iou']),
                **{f'{f}_mm': _fmt(summary[f'mean_abs_{f}_mm']) for f in FACES},
            }
        )
        out = {'csv': self.output / 'agreement.csv'}
        atomic_write_text(out['csv'], buf.getvalue())
        if plot:
            out['png'] = plot_agreement(rows, summary, self.output / 'agreement.png')
        return out


def plot_agreement(rows: list[dict], summary: dict, path) -> Path:
    """Save a two-panel PNG: IoU per case, and face errors (mm) per face."""
    try:
        import matplotlib

        matplotlib.use('Agg', force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise HeartboxError(
            'the agreement plot needs matplotlib: pip install "napari-heartbox[all]"'
        ) from None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    names = [r['case'] for r in rows]
    a1.bar(range(len(rows)), [r['iou'] for r in rows], color='#3d8bfd')
    a1.set_xticks(range(len(rows)), names, rotation=45, ha='right', fontsize=8)
    a1.set_ylim(0, 1)
    a1.set_ylabel('IoU (proposal vs corrected)')
    a1.set_title(
        f'{summary["n_cases"]} cases, mean IoU {summary["mean_iou"]:.3f}'
        if rows
        else 'no corrected cases yet'
    )
    data = [[r[f'{f}_mm'] for r in rows if not math.isnan(r[f'{f}_mm'])] for f in FACES]
    for i, vals in enumerate(data):
        a2.scatter([i] * len(vals), vals, color='#f0504a', alpha=0.7, s=18)
    a2.axhline(0, color='grey', lw=0.8)
    a2.set_xticks(range(len(FACES)), FACES, rotation=30, fontsize=8)
    a2.set_ylabel(
        'proposal face outside (+) / inside (−) the corrected box (mm)', fontsize=8
    )
    a2.set_title('face errors of the proposal')
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def _fmt(v):
    if isinstance(v, float):
        return '' if math.isnan(v) else f'{v:.4f}'
    return v
