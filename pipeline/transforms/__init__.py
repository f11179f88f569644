"""K-space transforms: mask generators, SSDU split, sensitivity maps, image formation, normalisation.

Array transforms live in :mod:`pipeline.transforms.array`, their dictionary twins (``...d``) in
:mod:`pipeline.transforms.dictionary`, pure numpy generators in :mod:`pipeline.transforms.masks` and
:mod:`pipeline.transforms.ssdu`, map estimation in :mod:`pipeline.transforms.sensitivity`.
"""

from pipeline.transforms.array import (
    ApplyMask,
    CenterCrop,
    EstimateSensitivity,
    FixedKspaceMask,
    NormalizeKspace,
    RandKspaceMask,
    RandSSDUSplit,
    ReadoutCrop,
    SenseCombine,
    ZeroFilled,
    denormalize,
)
from pipeline.transforms.dictionary import (
    ApplyMaskd,
    CenterCropd,
    EstimateSensitivityd,
    FixedKspaceMaskd,
    NormalizeKspaced,
    RandKspaceMaskd,
    RandSSDUSplitd,
    ReadoutCropd,
    SenseCombined,
    ZeroFilledd,
)
from pipeline.transforms.masks import MASK_TYPES, generate_mask
from pipeline.transforms.sensitivity import acs_sensitivity_maps, espirit_maps
from pipeline.transforms.ssdu import ssdu_split

__all__ = [
    "MASK_TYPES",
    "ApplyMask",
    "ApplyMaskd",
    "CenterCrop",
    "CenterCropd",
    "EstimateSensitivity",
    "EstimateSensitivityd",
    "FixedKspaceMask",
    "FixedKspaceMaskd",
    "NormalizeKspace",
    "NormalizeKspaced",
    "RandKspaceMask",
    "RandKspaceMaskd",
    "RandSSDUSplit",
    "RandSSDUSplitd",
    "ReadoutCrop",
    "ReadoutCropd",
    "SenseCombine",
    "SenseCombined",
    "ZeroFilled",
    "ZeroFilledd",
    "acs_sensitivity_maps",
    "denormalize",
    "espirit_maps",
    "generate_mask",
    "ssdu_split",
]
