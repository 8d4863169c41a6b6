"""Model inputs and labels at the network's 64×64 cells, shared by training and fine-tuning.

The inputs are made ONLY by running the preprocessing graph
(:func:`napari_heartbox.model.graph.build_preprocess_model`) in onnxruntime, so
training sees exactly what the shipped model sees; no torch here.
"""

from __future__ import annotations

import numpy as np

from napari_heartbox.model.postprocess import CELLS, cell_size
from napari_heartbox.model.zschedule import gather_rows

__all__ = ['heart_fraction', 'prep_session', 'run_prep']


def prep_session(threads: int = 1):
    """onnxruntime session of the preprocessing graph (``hu``, ``context`` → ``context_cells``)."""
    import onnxruntime as ort

    from napari_heartbox.model.graph import build_preprocess_model

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(
        build_preprocess_model().SerializeToString(), so, providers=['CPUExecutionProvider']
    )


def run_prep(sess, hu: np.ndarray, rows: np.ndarray, batch: int = 16) -> np.ndarray:
    """``context_cells`` float32 ``(M, 3, 64, 64)`` of context ``rows`` (int ``(M, 3)``)
    of an int16 ``(Z, H, W)`` volume, in chunks of ``batch`` rows, each chunk
    reading only its rows' slices (as the runtime does)."""
    rows = np.asarray(rows, np.int64)
    out = []
    for i in range(0, len(rows), batch):
        needed, local = gather_rows(rows[i : i + batch])
        out.append(sess.run(None, {'hu': np.ascontiguousarray(hu[needed]), 'context': local})[0])
    return np.concatenate(out)


def heart_fraction(mask: np.ndarray) -> np.ndarray:
    """Label: fraction of each cell's pixels inside ``mask`` (float32 ``(Z, 64, 64)``)."""
    z, h, w = mask.shape
    kh, kw = cell_size(h, w)
    m = np.zeros((z, CELLS * kh, CELLS * kw), np.float32)
    m[:, :h, :w] = mask
    s = m.reshape(z, CELLS, kh, CELLS * kw).sum(axis=2)
    s = s.reshape(z, CELLS, CELLS, kw).sum(axis=3)
    return s / np.float32(kh * kw)
