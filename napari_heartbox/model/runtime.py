"""Run the bundled ONNX heart model with onnxruntime.

One :class:`HeartModel` per model file; it checks the file's SHA-256 against
the card before creating a session, keeps the session for reuse, and runs
the volume in chunks of slices on a small thread pool (onnxruntime releases
the GIL; each run uses one intra-op thread, so chunks run in parallel).

The network sees each scored slice with its z context (the slices ``k``
below and above it, see :mod:`napari_heartbox.model.zschedule`): a chunk
of scored slices is one run whose ``hu`` input holds just the slices its
context rows read, each once, and whose ``context`` input points into it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..volume import CTVolume
from .card import CARD_NAME, ONNX_NAME, assets_dir, load_card, sha256_file
from .postprocess import CELLS, sector_from_prob, valid_cells
from .zschedule import (
    context_offset,
    context_rows,
    fill_nearest,
    fill_runs,
    gather_rows,
    scheduled_scores,
    z_step,
)

__all__ = ['HeartModel']

DEFAULT_BATCH = 16  # scored slices per run (keeps the float intermediates in cache)


class HeartModel:
    """The heart model: ONNX file + card, with a cached onnxruntime session.

    Parameters
    ----------
    onnx_path : path-like, optional
        Model file; default the bundled ``assets/heartbox.onnx``.
    card_path : path-like, optional
        Card JSON; default ``heartbox.card.json`` next to the model file.
    threads : int, optional
        Parallel chunk workers (default: card ``runtime.threads`` or
        ``min(2, os.cpu_count())``).
    batch : int, optional
        Slices per run (default: card ``runtime.batch`` or 16).

    Raises
    ------
    ModelError
        When the card or the model file is missing, or the file's SHA-256
        differs from the card's.
    """

    _default: HeartModel | None = None
    _default_lock = threading.Lock()

    def __init__(self, onnx_path=None, card_path=None, *, threads=None, batch=None):
        self.onnx_path = Path(onnx_path) if onnx_path else assets_dir() / ONNX_NAME
        self.card_path = Path(card_path) if card_path else self.onnx_path.with_name(CARD_NAME)
        if not self.onnx_path.is_file():
            raise ModelError(
                f'no model bundled yet: {self.onnx_path} not found '
                '(train one with `python -m models.train`)'
            )
        self.card = load_card(self.card_path)
        self.sha256 = sha256_file(self.onnx_path)
        if self.sha256 != self.card['sha256']:
            raise ModelError(
                f'{self.onnx_path}: SHA-256 {self.sha256[:12]}… does not match the model '
                f'card ({str(self.card["sha256"])[:12]}…); the file is corrupt or was replaced'
            )
        rt = self.card.get('runtime', {})
        self.threads = int(threads or rt.get('threads') or min(2, os.cpu_count() or 1))
        self.batch = int(batch or rt.get('batch') or DEFAULT_BATCH)
        self._session = None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path=None, *, threads=None) -> HeartModel:
        """A model from ``path``: a folder holding ``heartbox.onnx`` and
        ``heartbox.card.json`` (what ``napari-heartbox finetune --out`` writes),
        an ``.onnx`` file with its card beside it, or None for the bundled model
        (the shared :meth:`default` unless ``threads`` asks for its own)."""
        if path is None:
            return cls.default() if threads is None else cls(threads=threads)
        p = Path(path)
        if p.is_dir():
            if not (p / ONNX_NAME).is_file():
                raise ModelError(f'{p}: no {ONNX_NAME} in this folder (not a model folder)')
            return cls(p / ONNX_NAME, p / CARD_NAME, threads=threads)
        if not p.is_file():
            raise ModelError(f'{p}: no such model file or folder')
        return cls(p, threads=threads)

    @classmethod
    def default(cls) -> HeartModel:
        """The bundled model, loaded once per process."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    @property
    def postprocess(self) -> dict:
        """The card's post-processing parameters."""
        return self.card['postprocess']

    @property
    def session(self):
        """The onnxruntime session (created on first use, then reused)."""
        with self._lock:
            if self._session is None:
                import onnxruntime as ort

                so = ort.SessionOptions()
                so.intra_op_num_threads = 1  # parallelism comes from concurrent chunks
                so.inter_op_num_threads = 1
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                so.log_severity_level = 3
                try:
                    self._session = ort.InferenceSession(
                        str(self.onnx_path), so, providers=['CPUExecutionProvider']
                    )
                except Exception as e:  # noqa: BLE001 - any ORT load failure
                    raise ModelError(
                        f'{self.onnx_path}: onnxruntime cannot load the model ({e})'
                    ) from None
            return self._session

    def context_offset(self, dz: float) -> int:
        """Slices between a scored slice and its context slices at spacing ``dz`` (mm)."""
        return context_offset(dz, self.postprocess)

    def predict(
        self,
        hu: np.ndarray,
        dz: float,
        progress: Callable[[int, int], object] | None = None,
        *,
        slices: np.ndarray | None = None,
    ) -> np.ndarray:
        """Heart probability per cell, for every slice or for chosen slices.

        Parameters
        ----------
        hu : numpy.ndarray
            int16 ``(Z, H, W)`` Hounsfield units.
        dz : float
            Slice spacing (mm); sets the z context (:meth:`context_offset`).
        progress : callable, optional
            Called as ``progress(done_slices, total_slices)`` after each chunk.
        slices : numpy.ndarray of int, optional
            Score only these slice indices (in this order); default all.

        Returns
        -------
        numpy.ndarray
            float32 ``(len(slices), 64, 64)`` (``(Z, 64, 64)`` by default).
        """
        nz = hu.shape[0]
        z = np.arange(nz, dtype=np.int64) if slices is None else np.asarray(slices, np.int64)
        return self.predict_rows(hu, context_rows(z, nz, self.context_offset(dz)), progress)

    def predict_rows(
        self,
        hu: np.ndarray,
        rows: np.ndarray,
        progress: Callable[[int, int], object] | None = None,
    ) -> np.ndarray:
        """Heart probability per cell of the centre slice of each context row.

        Parameters
        ----------
        hu : numpy.ndarray
            int16 ``(Z, H, W)`` Hounsfield units.
        rows : numpy.ndarray of int
            ``(M, 3)`` slice indices into ``hu`` (lower, centre, upper), as
            :func:`~napari_heartbox.model.zschedule.context_rows` makes them.
        progress : callable, optional
            Called as ``progress(done_rows, M)`` after each chunk.

        Returns
        -------
        numpy.ndarray
            float32 ``(M, 64, 64)``.
        """
        if hu.dtype != np.int16 or hu.ndim != 3:
            raise ValueError(f'hu must be int16 (Z, H, W), got {hu.dtype} {hu.shape}')
        rows = np.asarray(rows, np.int64).reshape(-1, 3)
        sess = self.session
        # a per-slice graph (input hu only) takes rows (z, z, z): z_context_mm 0 in the card
        has_context = len(sess.get_inputs()) > 1
        if not has_context and np.any(rows != rows[:, 1:2]):
            raise ModelError(
                f'{self.onnx_path}: the graph has no context input but the card asks for z context '
                f'(postprocess.z_context_mm = {self.postprocess.get("z_context_mm")})'
            )
        n = len(rows)
        out = np.empty((n, CELLS, CELLS), np.float32)
        starts = list(range(0, n, self.batch))
        done = [0]
        done_lock = threading.Lock()

        def run(i0: int) -> None:
            part = rows[i0 : i0 + self.batch]
            needed, local = gather_rows(part)
            if needed[-1] - needed[0] + 1 == needed.size:  # a run of slices: a view
                chunk = np.ascontiguousarray(hu[needed[0] : needed[-1] + 1])
            else:  # gathers just the slices this chunk reads
                chunk = hu[needed]
            if has_context:
                out[i0 : i0 + len(part)] = sess.run(['prob'], {'hu': chunk, 'context': local})[0]
            else:  # one output per slice of the chunk: back to the rows' order
                out[i0 : i0 + len(part)] = sess.run(['prob'], {'hu': chunk})[0][local[:, 1]]
            if progress is not None:
                with done_lock:
                    done[0] += len(part)
                    progress(done[0], n)

        if self.threads <= 1 or len(starts) == 1:
            for i0 in starts:
                run(i0)
        else:
            with ThreadPoolExecutor(self.threads) as pool:
                list(pool.map(run, starts))
        return out

    def scheduled_prob(
        self, hu: np.ndarray, dz: float, progress: Callable[[int, int], object] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities of every slice by the coarse-to-fine slice schedule.

        :meth:`scheduled_scores`, with the slices that were not scored filled
        from their nearest scored slice (``zschedule.fill_nearest``).

        Returns
        -------
        prob : numpy.ndarray, float32, shape (Z, 64, 64)
        ran : numpy.ndarray of int64
            The slice indices the model ran on.
        """
        ran, p_ran = self.scheduled_scores(hu, dz, progress)
        return fill_nearest(hu.shape[0], ran, p_ran), ran

    def scheduled_scores(
        self, hu: np.ndarray, dz: float, progress: Callable[[int, int], object] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities of the slices the coarse-to-fine slice schedule scores.

        See :mod:`napari_heartbox.model.zschedule`: the model runs on every
        ``step``-th slice and on the slices around heart/no-heart transitions
        (each with its z context); the others copy their nearest scored slice.

        Parameters
        ----------
        hu : numpy.ndarray or CTSeries
            int16 ``(Z, H, W)``, or a :class:`~napari_heartbox.io.lazy.CTSeries`
            (then only the scheduled slices and their context are read from disk).
        dz : float
            Slice spacing (mm).
        progress : callable, optional
            ``progress(done, total)`` in slices of the volume (``total = Z``;
            the last call is ``(Z, Z)``).

        Returns
        -------
        ran : numpy.ndarray of int64
            The slice indices the model ran on, ascending.
        prob_ran : numpy.ndarray, float32, shape (len(ran), 64, 64)
            Their probabilities (``zschedule.fill_runs`` gives how many
            slices of the volume each one stands for).
        """
        nz = hu.shape[0]
        rows_valid, cols_valid = valid_cells(hu.shape[1], hu.shape[2])
        step = z_step(dz, self.postprocess)
        k_ctx = self.context_offset(dz)
        read: dict[int, np.ndarray] = {}  # slices of a lazy series read so far
        calls = [0]
        last = [0]

        def report(done: int) -> None:
            if progress is not None and done > last[0]:
                last[0] = done
                progress(done, nz)

        def run(indices):
            # progress in slices of the volume: the coarse pass (or the only pass)
            # covers 0 → 4/5 of them (all when every slice is scored), the
            # refinement the rest
            lo, hi = (0, nz if step <= 1 else max(1, 4 * nz // 5)) if calls[0] == 0 else (last[0], nz)
            calls[0] += 1

            def cb(k: int, n: int) -> None:
                report(max(1, lo + (hi - lo) * k // max(n, 1)))

            rows = context_rows(indices, nz, k_ctx)
            if isinstance(hu, np.ndarray):
                return self.predict_rows(hu, rows, cb)
            # a lazy series: read only these slices, each image once per schedule
            # (the refinement's context may hold slices the coarse pass read)
            needed, local = gather_rows(rows)
            missing = [int(z) for z in needed if int(z) not in read]
            fresh = hu.read_slices(missing) if missing else None
            if missing:
                read.update(zip(missing, fresh, strict=True))
            sub = fresh if len(missing) == len(needed) else np.stack([read[int(z)] for z in needed])
            return self.predict_rows(sub, local, cb)

        out = scheduled_scores(run, nz, dz, rows_valid, cols_valid, self.postprocess)
        report(nz)
        return out

    def propose(self, volume, *, margin_mm=None, progress=None):
        """The heart :class:`~napari_heartbox.sector.Sector` of a CTVolume or CTSeries.

        A :class:`~napari_heartbox.io.lazy.CTSeries` (``open_ct``) has only the
        slices that the schedule scores read from disk; the answer is the same.
        """
        src = volume.hu if isinstance(volume, CTVolume) else volume
        ran, p_ran = self.scheduled_scores(src, volume.grid.spacing[0], progress)
        return sector_from_prob(
            p_ran,
            volume.grid,
            self.postprocess,
            margin_mm=margin_mm,
            series_uid=volume.info.series_uid,
            model_sha256=self.sha256,
            z_len=fill_runs(src.shape[0], ran),  # the filled stack, run-length encoded
        )
