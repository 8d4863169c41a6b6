"""A seeded fuzzer for the CT loaders (issue 18): mutated DICOM series and NIfTI files.

Each case copies a small valid input (a 12-slice DICOM series of 48 × 40
pixels, or one NIfTI file of the same volume) into a fresh folder, applies one
mutation, then runs ``load_ct`` and ``propose(open_ct(...))`` on it. The
outcome of a case is one of:

* ``ok`` — loaded (warnings allowed);
* ``refused`` — a :class:`~napari_heartbox.errors.HeartboxError` whose message
  is one line;
* ``multiline`` — a HeartboxError spanning several lines (a defect);
* ``crash`` — any other exception, BaseExceptions of native decoders included
  (a defect);
* ``hang`` — no answer within ``--timeout`` seconds (a defect), reported by
  the parent process.

Run thousands (each case in a worker process with a 4 GiB address-space
limit, so a memory blow-up is a ``crash`` of that case, not of the machine)::

    python -m tests.fuzz_inputs --n 5000 --seed 1

``tests/test_io_fuzz.py`` runs a few hundred cases per test run.
Conventions: volumes ``(z, y, x)`` int16 HU; mutations are listed in
:data:`DICOM_TAGS`, :data:`WEIRD` and :func:`mutate`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

#: header fields that a mutation may set (DICOM keyword → kind)
DICOM_TAGS = (
    'Rows', 'Columns', 'BitsAllocated', 'BitsStored', 'HighBit', 'PixelRepresentation',
    'SamplesPerPixel', 'NumberOfFrames', 'PixelSpacing', 'SliceThickness',
    'SpacingBetweenSlices', 'ImagePositionPatient', 'ImageOrientationPatient',
    'RescaleSlope', 'RescaleIntercept', 'PhotometricInterpretation', 'Modality',
)
#: the values a mutated field takes (as numbers, strings or lists of them)
WEIRD = (
    0, -1, 1, 2, 65535, 2147483647, -2147483648, float('nan'), float('inf'), -float('inf'),
    1e30, -1e30, 1e-300, 1000.0, 0.001, '', 'abc', '1\\2\\3\\4\\5\\6\\7',
)
NIFTI_FIELDS = ('dim', 'pixdim', 'datatype', 'vox_offset', 'scl_slope', 'scl_inter', 'qform_code',
                'sform_code', 'srow_x', 'quatern_b')
LIMIT_BYTES = 4 * 1024**3


def _seed_inputs(root: Path) -> tuple[Path, Path]:
    """A valid DICOM series folder and NIfTI file under ``root`` (made once per worker)."""
    import numpy as np

    from napari_heartbox._napari.layers import layer_data_from_volume
    from napari_heartbox._writer import write_nifti
    from napari_heartbox.io import write_dicom_series
    from napari_heartbox.volume import CTVolume

    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 400, (12, 48, 40)).astype(np.int16)
    hu[3:9, 10:30, 8:30] = 300
    vol = CTVolume.from_array(hu, spacing=(2.5, 0.7, 0.7), origin_lps=(-10.0, -20.0, -30.0))
    series = root / 'series'
    write_dicom_series(vol, series)
    data, meta, _ = layer_data_from_volume(vol)
    nifti = root / 'ct.nii.gz'
    write_nifti(str(nifti), data, meta)
    return series, nifti


def _weird(rnd: random.Random):
    v = rnd.choice(WEIRD)
    if rnd.random() < 0.3 and not isinstance(v, str):
        return [v] * rnd.choice((1, 2, 3, 6))
    return v


def mutate(rnd: random.Random, series: Path, nifti: Path, work: Path) -> tuple[Path, str]:
    """Copy a seed input into ``work`` and mutate it; returns ``(path to load, description)``."""
    kind = rnd.choice(('tag', 'tag', 'tag', 'bytes', 'truncate', 'nifti', 'nifti-bytes'))
    if kind.startswith('nifti'):
        if kind == 'nifti':
            import nibabel as nib

            img = nib.load(str(nifti))
            hdr = img.header.copy()
            field = rnd.choice(NIFTI_FIELDS)
            try:
                arr = hdr[field].copy()
                if arr.ndim:
                    i = rnd.randrange(arr.size)
                    arr.flat[i] = _num(rnd)
                else:
                    arr = _num(rnd)
                hdr[field] = arr
            except (ValueError, TypeError, OverflowError):
                pass
            out = work / 'ct.nii'
            out.write_bytes(_nifti_bytes(img, hdr))
            return out, f'nifti {field}'
        raw = bytearray(nifti.read_bytes())
        import gzip

        raw = bytearray(gzip.decompress(bytes(raw)))
        for _ in range(rnd.choice((1, 2, 8))):
            i = rnd.randrange(0, min(len(raw), 352))  # the header
            raw[i] = rnd.randrange(256)
        out = work / 'ct.nii'
        out.write_bytes(bytes(raw))
        return out, 'nifti header bytes'
    folder = work / 'series'
    shutil.copytree(series, folder)
    files = sorted(folder.iterdir())
    target = rnd.choice(files) if rnd.random() < 0.7 else None  # None: every file
    victims = files if target is None else [target]
    if kind == 'tag':
        import pydicom

        tag = rnd.choice(DICOM_TAGS)
        value = _weird(rnd)
        for f in victims:
            ds = pydicom.dcmread(f)
            try:
                setattr(ds, tag, value)
                ds.save_as(f)
            except Exception:  # noqa: BLE001 - pydicom refuses some values: write raw
                _raw_set(ds, tag, value, f)
        return folder, f'{tag}={value!r} in {"all" if target is None else target.name}'
    if kind == 'bytes':
        f = victims[0]
        raw = bytearray(f.read_bytes())
        for _ in range(rnd.choice((1, 4, 32))):
            i = rnd.randrange(len(raw))
            raw[i] = rnd.randrange(256)
        f.write_bytes(bytes(raw))
        return folder, f'bytes flipped in {f.name}'
    f = victims[0]
    raw = f.read_bytes()
    f.write_bytes(raw[: rnd.randrange(len(raw))])
    return folder, f'{f.name} truncated'


def _num(rnd: random.Random):
    v = rnd.choice([x for x in WEIRD if not isinstance(x, str)])
    return v


def _nifti_bytes(img, hdr) -> bytes:
    """The image's data with a mutated header, written raw (nibabel would fix the header)."""
    import numpy as np

    data = np.asarray(img.dataobj)
    hb = hdr.binaryblock
    off = 352
    return hb + b'\0' * (off - len(hb)) + data.astype(np.int16).tobytes(order='F')


def _raw_set(ds, tag, value, path) -> None:
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import DataElement

    t = tag_for_keyword(tag)
    try:
        ds[t] = DataElement(t, 'LO' if isinstance(value, str) else dictionary_VR(t), str(value))
        ds.save_as(path)
    except Exception:  # noqa: BLE001 - leave the file as it is
        pass


def run_case(path: Path) -> tuple[str, str]:
    """``(outcome, detail)`` of loading and proposing ``path`` (see the module docstring)."""
    from napari_heartbox import propose
    from napari_heartbox.errors import HeartboxError
    from napari_heartbox.io import load_ct, open_ct

    try:
        load_ct(path)
        propose(open_ct(path))
    except HeartboxError as e:
        msg = str(e)
        return ('multiline' if '\n' in msg or not msg.strip() else 'refused'), msg[:300]
    except BaseException as e:  # noqa: BLE001 - the point: anything else is a defect
        if isinstance(e, KeyboardInterrupt):
            raise
        return 'crash', f'{type(e).__module__}.{type(e).__name__}: {str(e)[:200]}'
    return 'ok', ''


def _worker(conn, seed_dir: str) -> None:
    import logging
    import resource
    import warnings

    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))
    warnings.filterwarnings('ignore')  # pydicom and nibabel complain about the mutations
    logging.getLogger('nibabel').setLevel(logging.ERROR)
    logging.getLogger('pydicom').setLevel(logging.ERROR)
    series, nifti = Path(seed_dir) / 'series', Path(seed_dir) / 'ct.nii.gz'
    while True:
        job = conn.recv()
        if job is None:
            return
        seed, i = job
        rnd = random.Random(f'{seed}-{i}')
        work = Path(tempfile.mkdtemp(prefix='heartbox-fuzz-'))
        try:
            path, what = mutate(rnd, series, nifti, work)
            outcome, detail = run_case(path)
        except Exception as e:  # noqa: BLE001 - a fuzzer bug, reported as such
            what, outcome, detail = 'mutation failed', 'fuzzer', repr(e)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        conn.send((i, what, outcome, detail))


def _describe(seed: int, i: int, seed_dir: str) -> str:
    work = Path(tempfile.mkdtemp(prefix='heartbox-fuzz-'))
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return mutate(random.Random(f'{seed}-{i}'), Path(seed_dir) / 'series',
                          Path(seed_dir) / 'ct.nii.gz', work)[1]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fuzz(n: int, seed: int, timeout: float = 20.0) -> list[dict]:
    """Run ``n`` cases; returns one dict per case (``i``, ``mutation``, ``outcome``, ``detail``).

    One worker process runs the cases in turn; a case that does not answer
    within ``timeout`` s is a ``hang``, and the worker is replaced.
    """
    ctx = mp.get_context('spawn')
    seed_dir = tempfile.mkdtemp(prefix='heartbox-fuzz-seed-')
    _seed_inputs(Path(seed_dir))
    results, proc, conn = [], None, None
    try:
        for i in range(n):
            if proc is None:
                conn, child = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(child, seed_dir), daemon=True)
                proc.start()
            conn.send((seed, i))
            if conn.poll(timeout):
                try:
                    _i, what, outcome, detail = conn.recv()
                except EOFError:  # the worker died (e.g. killed by the memory limit)
                    what, outcome, detail = '?', 'crash', 'worker process died'
                    proc = None
            else:
                what, outcome, detail = '?', 'hang', f'no answer in {timeout:.0f} s'
                proc.kill()
                proc = None
            if proc is not None and not proc.is_alive():
                proc = None
            if what == '?':  # the worker is gone: redo the (deterministic) mutation to name it
                what = _describe(seed, i, seed_dir)
            results.append({'i': i, 'mutation': what, 'outcome': outcome, 'detail': detail})
        if proc is not None:
            conn.send(None)
            proc.join(5)
    finally:
        if proc is not None and proc.is_alive():
            proc.kill()
        shutil.rmtree(seed_dir, ignore_errors=True)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=500)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--timeout', type=float, default=20.0)
    ap.add_argument('--json', type=Path, help='write every case here')
    args = ap.parse_args(argv)
    res = fuzz(args.n, args.seed, args.timeout)
    counts: dict[str, int] = {}
    for r in res:
        counts[r['outcome']] = counts.get(r['outcome'], 0) + 1
    print(json.dumps(counts))
    for r in res:
        if r['outcome'] not in ('ok', 'refused'):
            print(f"{r['i']:5d} {r['outcome']:9s} {r['mutation']}: {r['detail']}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0 if all(r['outcome'] in ('ok', 'refused') for r in res) else 1


if __name__ == '__main__':
    sys.path.insert(0, os.fspath(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
