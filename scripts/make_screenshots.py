"""Make the napari screenshots used in the README and docs/napari.md.

Run under a display (or Xvfb)::

    xvfb-run -a -s "-screen 0 1400x1000x24" .venv/bin/python scripts/make_screenshots.py

Writes, for the built-in synthetic chest CT (committed in ``docs/images/``):

* ``napari-axial.png``, ``napari-coronal.png``, ``napari-3d.png`` — the
  heart box on the CT with the "Heart sector" dock widget;
* ``napari-worklist.png`` and ``worklist-agreement.png`` — the correction
  worklist on three synthetic studies and its agreement plot.

With ``--real`` it also renders the same three views of the real CPTAC chest
CT from ``../shared/data`` (TCIA CPTAC-LSCC, C3N-00247; CC BY 3.0) as
``cptac-axial.png``, ``cptac-coronal.png`` and ``cptac-3d.png`` into
``--out``: the README shows them, with the attribution the licence asks for.
The CT itself is never copied; without ``../shared`` these are skipped.

Every view is what the dock's view buttons show (the script sets no window,
rendering or camera of its own), window size 1400 × 900.

The box shown is the model's proposal when the bundled model finds one;
otherwise the CT's known box (the phantom's exact heart box, or the
hand-drawn ``reference_box.json`` for the real CT), and the script says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CPTAC = REPO.parent / 'shared' / 'data' / 'ct' / 'cptac-lscc-c3n-00247'


def _box_for(volume, fallback, label):
    from napari_heartbox import propose
    from napari_heartbox.errors import ModelError

    try:
        s = propose(volume)
        if s.found:
            print(f'{label}: model proposal {s}')
            return s, 'model proposal'
        print(f'{label}: the model found no heart; showing the known box')
    except ModelError as e:
        print(f'{label}: no model proposal ({e}); showing the known box')
    return fallback, 'known box'


def _shoot(viewer, path: Path) -> Path:
    from qtpy.QtWidgets import QApplication

    for _ in range(3):  # let Qt lay out the dock widgets before grabbing
        QApplication.processEvents()
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    _compress(path)
    return path


def _compress(path: Path) -> None:
    """Re-save as a 256-colour PNG (a quarter of the size, same look)."""
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as im:
        small = im.convert('RGB').quantize(colors=256, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def _views(viewer, widget, out: Path, prefix: str):
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for view in ('Axial', 'Coronal', '3D'):
        widget.show_view(view)  # exactly what the button does
        written.append(_shoot(viewer, out / f'{prefix}-{view.lower()}.png'))
    widget.show_view('Axial')
    return written


def _sector_views(viewer, volume, box, how, name, out, prefix):
    from napari_heartbox import add_ct_layer

    layer = add_ct_layer(viewer, volume, name=name)
    _dock, widget = viewer.window.add_plugin_dock_widget(
        'napari-heartbox', 'Heart sector'
    )
    widget.ct.value = layer
    widget.editor.model.set_proposal(box)
    widget.status.value = f'Showing the {how}.'
    return _views(viewer, widget, out, prefix)


def phantom_views(out: Path):
    import napari

    from napari_heartbox.phantom import sample_chest_ct

    case = sample_chest_ct(seed=0)
    box, how = _box_for(case.volume, case.heart_box, 'synthetic chest CT')
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    paths = _sector_views(
        viewer, case.volume, box, how, 'Synthetic chest CT', out, 'napari'
    )
    viewer.close()
    return paths


def real_views(out: Path):
    import napari

    from napari_heartbox import Sector, load_ct

    volume = load_ct(CPTAC / 'dicom')
    ref = json.loads((CPTAC / 'reference_box.json').read_text())
    known = Sector.from_inclusive(
        volume.grid, *(ref['voxel_inclusive'][k] for k in 'zyx')
    )
    box, how = _box_for(volume, known, 'CPTAC')
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    paths = _sector_views(viewer, volume, box, how, 'CPTAC chest CT', out, 'cptac')
    viewer.close()
    return paths


def worklist_views(out: Path):
    """Three synthetic studies, one corrected and one accepted, + agreement."""
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_heartbox._napari.layers import layer_data_from_volume
    from napari_heartbox._writer import write_nifti
    from napari_heartbox.phantom import sample_chest_ct

    tmp = Path(tempfile.mkdtemp(prefix='heartbox-worklist-'))
    studies = tmp / 'studies'
    studies.mkdir()
    for seed in (0, 1, 2):
        data, meta, _ = layer_data_from_volume(sample_chest_ct(seed=seed).volume)
        write_nifti(str(studies / f'study-{seed + 1:03d}.nii.gz'), data, meta)

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    _dock, widget = viewer.window.add_plugin_dock_widget(
        'napari-heartbox', 'Heart sector worklist'
    )

    def settle():
        while widget.busy:
            QApplication.processEvents()
        QApplication.processEvents()

    widget.open_worklist(studies, tmp / 'corrections')
    settle()
    for step in range(3):
        model = widget.editor.model
        if not model.has_box:  # no usable proposal: draw a box by hand
            model.start_box()
        if step == 0:
            model.nudge(0, 1, 2)  # a correction: superior face up two slices
            model.nudge(2, 0, -6)
        widget.accept() if step < 2 else None
        settle()
    widget.write_agreement()
    QApplication.processEvents()
    shot = _shoot(viewer, out / 'napari-worklist.png')
    agreement = out / 'worklist-agreement.png'
    agreement.write_bytes((tmp / 'corrections' / 'agreement.png').read_bytes())
    viewer.close()
    return [shot, agreement]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', type=Path, default=REPO / 'docs' / 'images')
    p.add_argument('--real', action='store_true',
                   help='also render the real CPTAC CT (README images, CC BY 3.0)')
    args = p.parse_args(argv)
    paths = phantom_views(args.out) + worklist_views(args.out)
    if args.real:
        if not CPTAC.is_dir():
            print(f'{CPTAC} not found: real-CT screenshots skipped', file=sys.stderr)
        else:
            paths += real_views(args.out)
    for path in paths:
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
