"""Randomised thorax CT phantoms with an exact heart label.

Used for the model's training data and for the napari sample data / demo::

    from napari_heartbox.phantom import make_phantom, sample_chest_ct
    case = make_phantom(7, matrix=(256, 256), coverage='chest')
    case.volume        # CTVolume, int16 HU (z, y, x), z index 0 = most inferior
    case.heart_mask    # bool (z, y, x): the heart label (reference-box definition)
    case.heart_box     # Sector of the mask extent (found=False when out of view)
    case.params        # every randomised parameter used

Only numpy is used (no scipy): the core package stays light. Parameters and
their ranges: :class:`PhantomRanges` and ``models/PHANTOM.md``.
"""

from .generator import PhantomCase, make_phantom, sample_chest_ct
from .params import PhantomRanges, sample_params
from .tissues import T as Tissue

__all__ = ['PhantomCase', 'PhantomRanges', 'Tissue', 'make_phantom', 'sample_chest_ct', 'sample_params']
