"""``SectorWidget``: edit the heart box in a plain notebook cell, no Qt, no display.

Built on `anywidget <https://anywidget.dev>`_ (the ``jupyter`` extra): it runs
in JupyterLab, Notebook 7, VS Code and JupyterHub, also on a remote server,
because everything is drawn by the browser that shows the notebook::

    from napari_heartbox import load_ct
    from napari_heartbox.jupyter import SectorWidget

    w = SectorWidget(load_ct('ct/'))      # axial / coronal / sagittal, box editable with the mouse
    w.propose()                           # or the Propose button
    w                                     # show it
    w.observe(lambda ch: print(ch['new']), names='sector')
    w.sector                              # a napari_heartbox.Sector, two-way synced
    w.save('heart.json'); small = w.crop()

Pixels: the volume goes to the browser once, windowed to uint8 and
point-sampled to at most :data:`PREVIEW_PX` pixels in-plane and a z stride
that keeps it under :data:`PREVIEW_BYTES`. The slice each view shows is then
sent again at full resolution when its slider stops (about 0.25-0.5 MB per
view). Changing the window preset re-sends the preview. The box is kept in
full-resolution voxels (half-open ranges ``[start, stop)``, array order
``(z, y, x)``, z index 0 = most inferior), so nothing is lost to the preview's
sampling. Edits go through :class:`~napari_heartbox.box_model.BoxModel` (the
napari editor's model): one undo history, one set of rules.

The browser side reuses the web app's sector maths (``web/app/sector.js``)
for the LPS millimetres it shows while dragging.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np

try:
    import anywidget
    import traitlets
except ImportError as e:  # pragma: no cover - exercised by a fresh core install
    raise ImportError(
        "napari_heartbox.jupyter needs anywidget: pip install 'napari-heartbox[jupyter]'"
    ) from e

from ..box_model import BoxModel
from ..errors import HeartboxError
from ..sector import Sector
from ..volume import CTVolume

__all__ = ['PREVIEW_BYTES', 'PREVIEW_PX', 'WINDOWS', 'SectorWidget']

#: longest in-plane side of the preview sent at open (pixels)
PREVIEW_PX = 256
#: most bytes of preview voxels sent at open (uint8, one per voxel)
PREVIEW_BYTES = 24_000_000
#: window presets: name -> (level, width) in HU
WINDOWS = {
    'soft tissue': (40, 400),
    'mediastinum': (50, 350),
    'lung': (-600, 1500),
    'bone': (400, 1800),
}


def _esm() -> str:
    """The widget's ES module: the web app's sector maths, then the widget itself."""
    pkg = resources.files('napari_heartbox')
    sector_js = pkg.joinpath('web/app/sector.js').read_text(encoding='utf-8')
    widget_js = pkg.joinpath('jupyter/widget.js').read_text(encoding='utf-8')
    return sector_js + '\n' + widget_js


def _css() -> str:
    return resources.files('napari_heartbox').joinpath('jupyter/widget.css').read_text(encoding='utf-8')


def window_uint8(hu: np.ndarray, window: str) -> np.ndarray:
    """``hu`` windowed to uint8 (0 = level - width/2, 255 = level + width/2)."""
    level, width = WINDOWS[window]
    lo = level - width / 2
    out = (hu.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / width)
    return np.clip(out, 0, 255).astype(np.uint8)


def preview_strides(shape, px: int = PREVIEW_PX, max_bytes: int = PREVIEW_BYTES) -> tuple[int, int]:
    """``(z stride, in-plane stride)`` of the preview of a ``(Z, Y, X)`` volume."""
    nz, ny, nx = shape
    s = max(1, math.ceil(max(ny, nx) / px))
    per_slice = math.ceil(ny / s) * math.ceil(nx / s)
    sz = max(1, math.ceil(nz * per_slice / max_bytes))
    return sz, s


class SectorWidget(anywidget.AnyWidget):
    """An editable heart box over a CT, in a notebook cell.

    Parameters
    ----------
    volume : CTVolume
        The CT (HU, ``(z, y, x)``).
    sector : Sector, optional
        The box to start from (e.g. a saved one); its grid must be the volume's.
        Without one the widget opens with no box: press Propose (or call
        :meth:`propose`), or type the six numbers.
    window : str
        One of :data:`WINDOWS`.

    Attributes
    ----------
    sector : Sector or None
        The current box; setting it redraws the page, and every edit in the
        page sets it (observe it with ``widget.observe(fn, names='sector')``).
    proposal : Sector or None
        The model's last proposal (what Reset returns to).
    """

    _esm = traitlets.Unicode(_esm()).tag(sync=True)
    _css = traitlets.Unicode(_css()).tag(sync=True)

    # geometry and preview (Python -> page)
    shape = traitlets.List(traitlets.Int(), []).tag(sync=True)
    spacing = traitlets.List(traitlets.Float(), []).tag(sync=True)
    affine = traitlets.List(traitlets.List(traitlets.Float()), []).tag(sync=True)
    preview = traitlets.Bytes(b'').tag(sync=True)
    preview_shape = traitlets.List(traitlets.Int(), []).tag(sync=True)
    preview_stride = traitlets.List(traitlets.Int(), []).tag(sync=True)  # (z, in-plane)
    window = traitlets.Unicode('soft tissue').tag(sync=True)
    windows = traitlets.List(traitlets.Unicode(), list(WINDOWS)).tag(sync=True)
    # the box (both ways): [z0, z1, y0, y1, x0, x1], full-resolution voxels; [] = no box
    box = traitlets.List(traitlets.Int(), []).tag(sync=True)
    found = traitlets.Bool(False).tag(sync=True)
    status = traitlets.Unicode('').tag(sync=True)
    can_undo = traitlets.Bool(False).tag(sync=True)
    # the Python-side value
    sector = traitlets.Instance(Sector, allow_none=True)

    def __init__(self, volume: CTVolume, sector: Sector | None = None, *, window: str = 'soft tissue',
                 model=None, **kwargs):
        if not isinstance(volume, CTVolume):
            raise HeartboxError('SectorWidget needs a CTVolume (napari_heartbox.load_ct(path))')
        if window not in WINDOWS:
            raise HeartboxError(f'window {window!r}: choose one of {", ".join(WINDOWS)}')
        self.volume = volume
        self._model = model
        self.boxes = BoxModel(volume.grid)
        super().__init__(**kwargs)
        self._syncing = False
        self.shape = list(volume.shape)
        self.spacing = [float(v) for v in volume.spacing]
        self.affine = [[float(v) for v in row] for row in volume.grid.affine]
        sz, s = preview_strides(volume.shape)
        self.preview_stride = [sz, s]
        self.window = window
        self._send_preview()
        self.observe(lambda _ch: self._send_preview(), names='window')
        self.observe(self._on_box, names='box')
        self.observe(self._on_sector, names='sector')
        self.boxes.changed.connect(self._from_model)
        self.on_msg(self._on_msg)
        if sector is not None:
            self.boxes.set_proposal(sector)  # raises on a sector of another grid
        self._from_model(self.boxes.sector)

    # -------------------------------------------------------------- API
    @property
    def proposal(self) -> Sector | None:
        return self.boxes.proposal

    def propose(self, margin_mm: float | None = None) -> Sector:
        """Run the heart model on the volume; its box becomes the proposal and the current box."""
        from ..model import propose

        self.status = 'proposing…'
        try:
            s = propose(self.volume, margin_mm=margin_mm, model=self._model)
        except HeartboxError as e:
            self.status = str(e)
            raise
        self.boxes.set_proposal(s)
        return s

    def reset(self) -> None:
        """Back to the proposal."""
        self.boxes.reset()

    def undo(self) -> None:
        """Undo the last edit."""
        self.boxes.undo()

    def save(self, path) -> Path:
        """Write the box (and the proposal) as a ``heartbox.sector-file/1``; returns the path."""
        from ..sector_file import write_sector_file

        if self.sector is None:
            raise HeartboxError('no box to save yet: press Propose or draw one')
        return write_sector_file(path, self.sector, self.proposal)

    def crop(self) -> CTVolume:
        """The CT inside the current box (a new volume, same patient positions)."""
        if self.sector is None or not self.sector.found:
            raise HeartboxError('no box to crop to yet: press Propose or draw one')
        return self.volume.crop(self.sector)

    # ------------------------------------------------------------- sync
    def _send_preview(self) -> None:
        sz, s = self.preview_stride
        small = self.volume.hu[::sz, ::s, ::s]
        self.preview_shape = list(small.shape)
        self.preview = window_uint8(small, self.window).tobytes()

    def _from_model(self, sector: Sector | None) -> None:
        """BoxModel changed (propose, undo, reset, an edit): mirror it in the traits."""
        self._syncing = True
        try:
            self.sector = sector
            self.found = bool(sector is not None and sector.found)
            self.box = [v for r in sector.ranges for v in r] if self.found else []
            self.can_undo = self.boxes.can_undo
            if sector is None:
                self.status = 'no box yet: press Propose, or type the six numbers'
            elif not sector.found:
                self.status = f'no heart found (confidence {sector.confidence:.2f})' + (
                    f': {sector.note}' if sector.note else '')
            else:
                tag = 'edited' if self.boxes.is_corrected else 'proposed'
                self.status = f'{tag}; confidence {sector.confidence:.2f}; {sector.volume_ml:.0f} ml'
        finally:
            self._syncing = False

    def _on_box(self, change) -> None:
        """The page moved a face (or typed a number): one undoable edit."""
        if self._syncing:
            return
        b = list(change['new'])
        if len(b) != 6:
            return
        cur = self.boxes.sector
        base = cur if cur is not None and cur.found else Sector(self.volume.grid, (0, 1), (0, 1), (0, 1))
        try:
            new = base.with_ranges(z=(b[0], b[1]), y=(b[2], b[3]), x=(b[4], b[5]))
        except ValueError as e:
            self._from_model(cur)  # put the page back
            self.status = f'not a valid box: {e}'
            return
        if not self.boxes.set_sector(new):
            self._from_model(cur)

    def _on_sector(self, change) -> None:
        """``widget.sector = s`` from Python: one undoable edit, redrawn in the page."""
        if self._syncing:
            return
        s = change['new']
        if s is not None and s.grid != self.volume.grid:
            self._from_model(self.boxes.sector)
            raise HeartboxError('that sector belongs to another grid (another CT or a resampled one)')
        self.boxes.set_sector(s)

    def _on_msg(self, _widget, content, _buffers) -> None:
        kind = content.get('type') if isinstance(content, dict) else None
        try:
            if kind == 'propose':
                self.propose()
            elif kind == 'reset':
                self.reset()
            elif kind == 'undo':
                self.undo()
            elif kind == 'slice':
                self._send_slice(str(content.get('view')), int(content.get('index', 0)))
        except HeartboxError as e:
            self.status = str(e)

    def _send_slice(self, view: str, index: int) -> None:
        """The full-resolution slice a view shows (refinement on demand)."""
        hu = self.volume.hu
        nz, ny, nx = hu.shape
        if view == 'axial':
            img = hu[min(max(index, 0), nz - 1)]
        elif view == 'coronal':
            img = hu[:, min(max(index, 0), ny - 1), :]
        elif view == 'sagittal':
            img = hu[:, :, min(max(index, 0), nx - 1)]
        else:
            return
        data = window_uint8(np.ascontiguousarray(img), self.window)
        self.send({'type': 'slice', 'view': view, 'index': index, 'shape': list(data.shape),
                   'window': self.window}, [data.tobytes()])
