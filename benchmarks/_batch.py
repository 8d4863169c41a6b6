"""Batch-size curve of an ONNX graph in Python onnxruntime (latency per batch and per frame).

The curve of the original demo's two speed figures: for each batch size B
(1 … 1024) one ``session.run`` on ``B`` int16 slices of 512², repeated
(median / min / max), with ``intra_op_num_threads`` = 1 and 2.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._timing import repeat

__all__ = ['make_session', 'batch_curve', 'feeds_for', 'frames']


def make_session(model, threads: int):
    """CPU session with ``threads`` intra-op threads (inter-op 1, all graph optimisations)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    src = model if isinstance(model, (bytes, str)) else str(model)
    return ort.InferenceSession(src, so, providers=['CPUExecutionProvider'])


def feeds_for(session) -> Callable[[np.ndarray], dict]:
    """``int16 [B, H, W] → input dict`` for a graph: ``hu`` alone, plus for a
    z-context graph (a second input, ``context``) every slice of the batch
    scored with its in-batch neighbours (``context_rows`` with k = 1), so a
    frame is one scored slice and the batch reads B slices."""
    from napari_heartbox.model.zschedule import context_rows

    names = [i.name for i in session.get_inputs()]
    if len(names) == 1:
        return lambda x: {names[0]: x}
    return lambda x: {names[0]: x, names[1]: context_rows(np.arange(len(x)), len(x), 1)}


def frames(hu: np.ndarray, n: int) -> np.ndarray:
    """``n`` slices taken from ``hu`` (cycled when ``n`` exceeds its depth), contiguous."""
    if n <= hu.shape[0]:
        return np.ascontiguousarray(hu[:n])
    return np.ascontiguousarray(hu[np.arange(n) % hu.shape[0]])


def batch_curve(
    session,
    feeds: Callable[[np.ndarray], dict],
    hu: np.ndarray,
    batch_sizes,
    *,
    repeats: int,
    budget_s: float,
) -> list[dict]:
    """Time ``session.run`` for each batch size.

    Parameters
    ----------
    session : onnxruntime.InferenceSession
    feeds : callable
        ``int16 [B, H, W] → input dict`` for ``session.run``.
    hu : numpy.ndarray
        Source slices ``(Z, H, W)``.
    batch_sizes : iterable of int
    repeats : int
        Maximum timed runs per size (at least 3 unless ``repeats`` < 3).
    budget_s : float
        Stop a size's repeats once they used this many seconds.

    Returns
    -------
    list of dict
        ``{'batch', 'per_batch_s': stats, 'per_frame_ms': {median,min,max}}``.
    """
    out = []
    for b in batch_sizes:
        x = frames(hu, int(b))
        f = feeds(x)
        st = repeat(
            lambda f=f: session.run(None, f),
            repeats=repeats,
            warmup=1,
            budget_s=budget_s,
        )
        out.append(
            {
                'batch': int(b),
                'per_batch_s': st,
                'per_frame_ms': {
                    k: round(st[k] * 1000.0 / b, 4) for k in ('median', 'min', 'max')
                },
            }
        )
        del x, f
    return out
