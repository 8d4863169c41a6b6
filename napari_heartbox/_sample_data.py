"""napari sample-data contribution: "Synthetic chest CT".

Generated in-process by :func:`napari_heartbox.phantom.sample_chest_ct`
(deterministic, no download), so the plugin demos on a fresh machine.
"""

from __future__ import annotations

__all__ = ['synthetic_chest_ct']


def synthetic_chest_ct():
    """The synthetic thorax phantom as one CT Image layer (world = S, P, L mm)."""
    from ._napari.layers import layer_data_from_volume
    from .phantom import sample_chest_ct

    case = sample_chest_ct(seed=0)
    return [layer_data_from_volume(case.volume, name='Synthetic chest CT')]
