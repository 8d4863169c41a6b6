"""Torch side of the package: the network definition, its ONNX export, rebuilding a
network from a shipped ONNX graph, and fine-tuning from corrected boxes.

Needs the ``finetune`` extra (``pip install "napari-heartbox[finetune]"``: torch, onnx).
Nothing else in the package imports this subpackage at import time; it imports no
napari or Qt. The training pipeline (``models/``) uses the same definitions.
"""

from __future__ import annotations


def require_torch():
    """Import torch and onnx, or raise a one-line :class:`~napari_heartbox.errors.HeartboxError`."""
    from napari_heartbox.errors import HeartboxError

    try:
        import onnx  # noqa: F401
        import torch
    except ImportError as e:
        raise HeartboxError(
            f'fine-tuning needs torch and onnx ({e.name} is not installed): '
            'pip install "napari-heartbox[finetune]"  (pins the CPU-capable torch==2.13.0)'
        ) from None
    return torch
