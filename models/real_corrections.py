"""Every real chest CT with a box, as a folder that ``napari-heartbox finetune`` trains on.

``python -m models.real_corrections OUT [--lidc]`` writes ``OUT/<case>.json`` (a
``heartbox.sector-file/1`` with status ``corrected``) beside a symbolic link ``OUT/<case>`` (DICOM
folder) or ``OUT/<case>.nii.gz`` to its CT, for: the shared hand-boxed cases
(``../shared/data/ct/*/reference_box.json``), the fetched :mod:`models.eval_cases` with our hand
boxes, and with ``--lidc`` LIDC-IDRI-0001 with the box of its label-derived heart
(:func:`models.real_data.convention_heart_mask`). Nothing is copied; the CTs stay where they are.

The hand boxes are LPS mm at voxel edges; each is turned into the sector of its CT's grid with
:meth:`napari_heartbox.sector.Sector.from_patient_mm`.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path


def boxed_cases(lidc: bool = False):
    """``(case name, CT path, (lps_min, lps_max) or a Sector factory)`` of every real chest CT with a box."""
    from models.train import lidc_reference, real_cases

    out = []
    for cid, path, ref in real_cases():
        if ref is None:
            continue
        b = ref['patient_mm_lps']
        out.append((re.sub(r'[^A-Za-z0-9._-]+', '-', cid.split('/')[-1]), Path(path), (b['min'], b['max'])))
    if lidc:
        from models import real_data

        if lidc_reference() is not None:
            out.append(('lidc-idri-0001', real_data.data_dir() / 'cxr.nii.gz', 'lidc'))
    return out


def write_folder(out: Path, lidc: bool = False, log=print) -> list[Path]:
    """Write the sector files and CT links of :func:`boxed_cases` into ``out``; returns the sector files."""
    from napari_heartbox.io import load_ct
    from napari_heartbox.sector import Sector
    from napari_heartbox.sector_file import write_sector_file

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, ct, box in boxed_cases(lidc):
        vol = load_ct(ct)
        if box == 'lidc':
            from models.train import lidc_reference

            lo, hi = lidc_reference()[2]
        else:
            lo, hi = box
        sec = Sector.from_patient_mm(vol.grid, lo, hi, series_uid=vol.info.series_uid)
        link = out / (name if ct.is_dir() else name + ''.join(ct.suffixes[-2:]))
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(ct.resolve(), link)
        written.append(write_sector_file(out / f'{name}.json', sec, status='corrected', case=name))
        log(f'{name}: {sec.ranges} ({ct})')
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('out', type=Path)
    ap.add_argument('--lidc', action='store_true', help='add LIDC-IDRI-0001 with its label-derived box')
    args = ap.parse_args(argv)
    write_folder(args.out, args.lidc)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
