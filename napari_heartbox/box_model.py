"""`BoxModel`: the one editable heart box, with undo/redo/reset.

Every view of the box in napari (the 2D rectangle, the six 3D face handles,
the wireframe, the range sliders, the numbers in the dock widget) is derived
from one :class:`BoxModel` and writes back to it. The model itself is pure
Python (no Qt, no napari) so it is tested without a display.

Conventions
-----------
* The box is a :class:`~napari_heartbox.sector.Sector`: **half-open** voxel
  ranges ``[start, stop)`` in array order ``(z, y, x)`` on the CT grid
  (z index 0 = most inferior slice). ``volume.hu[sector.slices]`` is the box.
* A *face* is named by ``(axis, side)``: ``axis`` is 0, 1, 2 for z, y, x;
  ``side`` 0 is the low face (boundary ``start``), side 1 the high face
  (boundary ``stop``). Face boundaries are voxel **edges**: the low face of
  ``[a, b)`` sits at index ``a - 0.5``, the high face at ``b - 0.5``.
* Handle ``i`` of the 3D editor is face ``(i // 2, i % 2)``.

Events are a tiny callback list (:class:`Callbacks`): ``model.changed``
fires with the new sector (or None) after every change.
"""

from __future__ import annotations

from collections.abc import Callable

from .grid import Grid
from .sector import Sector

__all__ = ['AXES', 'BoxModel', 'Callbacks', 'default_box']

AXES = ('z', 'y', 'x')


class Callbacks:
    """A minimal signal: ``connect(cb)``, ``disconnect(cb)``, ``emit(*args)``."""

    def __init__(self) -> None:
        self._callbacks: list[Callable] = []

    def connect(self, callback: Callable) -> Callable:
        """Call ``callback(*args)`` on every :meth:`emit`; returns it."""
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable) -> None:
        """Stop calling ``callback`` (no error if it was not connected)."""
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args) -> None:
        """Call every connected callback with ``args``, in connection order."""
        for cb in list(self._callbacks):
            cb(*args)


def default_box(grid: Grid) -> Sector:
    """A starting box when there is none: the central third on each axis.

    Used when the model says "no heart found" and the user wants to draw a
    box by hand.
    """
    ranges = []
    for n in grid.shape:
        a = n // 3
        b = max(a + 1, n - n // 3)
        ranges.append((a, b))
    return Sector(grid, *ranges, confidence=1.0)


class BoxModel:
    """The evented heart box: current sector, proposal and edit history.

    Parameters
    ----------
    grid : Grid
        The CT grid all sectors must live on.
    proposal : Sector, optional
        The model's proposal; it also becomes the current box.
    max_history : int
        Undo depth.

    Attributes
    ----------
    changed : Callbacks
        Emitted with the new current sector (or None) after every change.
    proposal_changed : Callbacks
        Emitted with the new proposal when :meth:`set_proposal` is called.
    """

    def __init__(
        self, grid: Grid, proposal: Sector | None = None, max_history: int = 500
    ) -> None:
        self.grid = grid
        self.changed = Callbacks()
        self.proposal_changed = Callbacks()
        self._max_history = int(max_history)
        self._sector: Sector | None = None
        self._proposal: Sector | None = None
        self._undo: list[Sector | None] = []
        self._redo: list[Sector | None] = []
        self._coalesce_key: str | None = None
        if proposal is not None:
            self.set_proposal(proposal)

    # ------------------------------------------------------------- state
    @property
    def sector(self) -> Sector | None:
        """The current box (None before any proposal or edit)."""
        return self._sector

    @property
    def proposal(self) -> Sector | None:
        """The model's proposal (what :meth:`reset` returns to)."""
        return self._proposal

    @property
    def has_box(self) -> bool:
        """True when there is a current box with ``found=True``."""
        return self._sector is not None and self._sector.found

    @property
    def is_corrected(self) -> bool:
        """True when the current box differs from the proposal's ranges."""
        if self._sector is None:
            return False
        if self._proposal is None:
            return True
        return _key(self._sector) != _key(self._proposal)

    @property
    def can_undo(self) -> bool:
        """Whether :meth:`undo` would change anything."""
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        """Whether :meth:`redo` would change anything."""
        return bool(self._redo)

    # ------------------------------------------------------------ editing
    def set_proposal(self, sector: Sector | None) -> None:
        """Store a new proposal, make it current and clear the history."""
        if sector is not None:
            self._check_grid(sector)
        self._proposal = sector
        self._undo.clear()
        self._redo.clear()
        self._coalesce_key = None
        self._sector = sector
        self.proposal_changed.emit(sector)
        self.changed.emit(sector)

    def set_sector(self, sector: Sector | None, *, coalesce: str | None = None) -> bool:
        """Replace the current box, recording one undo step.

        Parameters
        ----------
        sector : Sector or None
            The new box (on this model's grid).
        coalesce : str, optional
            Consecutive edits with the same non-None key (e.g. one slider
            drag) share a single undo step.

        Returns
        -------
        bool
            False when nothing changed (no event is emitted then).
        """
        if sector is not None:
            self._check_grid(sector)
        if _key(sector) == _key(self._sector):
            return False
        if coalesce is None or coalesce != self._coalesce_key or not self._undo:
            self._undo.append(self._sector)
            del self._undo[: -self._max_history]
        self._coalesce_key = coalesce
        self._redo.clear()
        self._sector = sector
        self.changed.emit(sector)
        return True

    def set_range(
        self, axis: int, start: int, stop: int, *, coalesce: str | None = None
    ) -> bool:
        """Set the half-open range of one axis (clamped to the grid, non-empty).

        Parameters
        ----------
        axis : int
            0, 1, 2 for z, y, x.
        start, stop : int
            New half-open voxel range ``[start, stop)``.
        """
        base = self._editable()
        n = self.grid.shape[axis]
        start = int(min(max(int(round(start)), 0), n - 1))
        stop = int(min(max(int(round(stop)), start + 1), n))
        ranges = list(base.ranges)
        ranges[axis] = (start, stop)
        return self.set_sector(base.with_ranges(*ranges), coalesce=coalesce)

    def set_face(
        self, axis: int, side: int, boundary: int, *, coalesce: str | None = None
    ) -> bool:
        """Move one face to a voxel boundary, keeping the box non-empty.

        Parameters
        ----------
        axis : int
            0, 1, 2 for z, y, x.
        side : int
            0 moves ``start`` (low face), 1 moves ``stop`` (high face).
        boundary : int
            The new value of ``start`` or ``stop``. It is clamped so that the
            range stays inside the grid and at least one voxel thick; the
            opposite face never moves.
        """
        base = self._editable()
        a, b = base.ranges[axis]
        n = self.grid.shape[axis]
        boundary = int(round(boundary))
        if side == 0:
            a = min(max(boundary, 0), b - 1)
        else:
            b = max(min(boundary, n), a + 1)
        ranges = list(base.ranges)
        ranges[axis] = (a, b)
        return self.set_sector(base.with_ranges(*ranges), coalesce=coalesce)

    def nudge(self, axis: int, side: int, delta: int = 1) -> bool:
        """Move one face by ``delta`` voxels (see :meth:`set_face`)."""
        base = self._editable()
        return self.set_face(axis, side, base.ranges[axis][side] + int(delta))

    def start_box(self) -> bool:
        """Give the model a hand-editable box when there is none.

        When the current answer is "no heart found" (or empty), the central
        third of the volume (:func:`default_box`) becomes the box, as one
        undoable step. Does nothing if a box already exists.
        """
        if self.has_box:
            return False
        return self.set_sector(default_box(self.grid))

    def undo(self) -> bool:
        """Step back one edit; returns False when there is nothing to undo."""
        if not self._undo:
            return False
        self._redo.append(self._sector)
        self._sector = self._undo.pop()
        self._coalesce_key = None
        self.changed.emit(self._sector)
        return True

    def redo(self) -> bool:
        """Re-apply the last undone edit; False when there is none."""
        if not self._redo:
            return False
        self._undo.append(self._sector)
        self._sector = self._redo.pop()
        self._coalesce_key = None
        self.changed.emit(self._sector)
        return True

    def reset(self) -> bool:
        """Return to the proposal (undoable); False if already there."""
        return self.set_sector(self._proposal)

    def end_coalesce(self) -> None:
        """Close the current coalesced edit (e.g. on slider release)."""
        self._coalesce_key = None

    # ------------------------------------------------------------- helpers
    def _editable(self) -> Sector:
        if not self.has_box:
            raise ValueError(
                'there is no heart box to edit (no proposal yet, or no heart '
                'found): start a box first'
            )
        return self._sector

    def _check_grid(self, sector: Sector) -> None:
        if sector.grid.shape != self.grid.shape:
            raise ValueError(
                f'sector grid {sector.grid.shape} does not match the box '
                f'model grid {self.grid.shape}'
            )


def _key(s: Sector | None):
    """What counts as 'the same box' for history purposes."""
    if s is None:
        return None
    return (s.found, s.ranges)
