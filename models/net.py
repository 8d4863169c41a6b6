"""The network's definition lives in the package (:mod:`napari_heartbox._training.net`) so that
``napari-heartbox finetune`` can rebuild it; this name is kept for the training scripts."""

from napari_heartbox._training.net import DSBlock, HeartNet, count_macs, count_params

__all__ = ['DSBlock', 'HeartNet', 'count_macs', 'count_params']
