"""Export lives in the package (:mod:`napari_heartbox._training.export`) so that
``napari-heartbox finetune`` writes models the same way; this name is kept for the training scripts."""

from napari_heartbox._training.export import (
    compose,
    export_network,
    graph_ops,
    param_count,
)

__all__ = ['compose', 'export_network', 'graph_ops', 'param_count']
