"""Dictionary twins (``...d``) of the array transforms in ``array.py``, operating on flat sample dicts.

Each twin delegates to its array transform, takes its input/output key names as arguments (defaults from
:class:`pipeline.keys.Keys`), supports ``allow_missing_keys`` and forwards ``set_random_state``.
Optional auxiliary keys (``pe_range``, ``recon_size``, ``num_low_frequencies``, ...) are used when present.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform

from pipeline.keys import Keys
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
)

__all__ = [
    "ApplyMaskd",
    "CenterCropd",
    "EstimateSensitivityd",
    "FixedKspaceMaskd",
    "NormalizeKspaced",
    "RandKspaceMaskd",
    "RandSSDUSplitd",
    "ReadoutCropd",
    "SenseCombined",
    "ZeroFilledd",
]


def _optional_int(data: Mapping, key: Hashable | None) -> int:
    """``int(data[key])`` if present, else 0 (``num_low_frequencies`` convention: 0 = unknown)."""
    if key is None or key not in data:
        return 0
    return int(torch.as_tensor(data[key]).reshape(-1)[0])


def _write_mask(transform, data: Mapping[Hashable, object], make_mask) -> dict:
    """Shared body of the mask twins: keep an existing mask unless ``overwrite``, else write
    ``make_mask(kspace, pe_range) -> (mask, num_acs)`` into the mask and ACS-count keys."""
    d = dict(data)
    if transform.mask_key in d and not transform.overwrite:
        return d
    for key in transform.key_iterator(d):
        d[transform.mask_key], d[transform.num_low_frequencies_key] = make_mask(d[key], d.get(transform.pe_range_key))
        break
    return d


class RandKspaceMaskd(RandomizableTransform, MapTransform):
    """Dictionary twin of :class:`RandKspaceMask`: writes ``mask_key`` and ``num_low_frequencies_key``.

    A mask already in the sample (a target file's own acquisition mask) wins unless ``overwrite=True``.

    Args:
        keys: the k-space key (only its shape is used), default ``Keys.KSPACE``.
        mask_type, center_fractions, accelerations: see :class:`RandKspaceMask`.
        mask_key: output mask key ``(1, H, W, 1)`` bool.
        num_low_frequencies_key: output ACS column count.
        pe_range_key: acquired-column range ``[start, stop)`` (used when present).
        overwrite: replace an existing ``mask_key``.
        allow_missing_keys: skip samples without ``keys``.
    """

    def __init__(
        self,
        keys: KeysCollection = Keys.KSPACE,
        mask_type: str = "random",
        center_fractions: Sequence[float] = (0.08,),
        accelerations: Sequence[float] = (4,),
        mask_key: Hashable = Keys.MASK,
        num_low_frequencies_key: Hashable = Keys.NUM_LOW_FREQUENCIES,
        pe_range_key: Hashable = Keys.PE_RANGE,
        overwrite: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        self.masker = RandKspaceMask(mask_type, center_fractions, accelerations)
        self.mask_key, self.num_low_frequencies_key, self.pe_range_key = mask_key, num_low_frequencies_key, pe_range_key
        self.overwrite = overwrite

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandKspaceMaskd:
        """Seed this transform and its array transform."""
        super().set_random_state(seed, state)
        self.masker.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, object], randomize: bool = True) -> dict:
        return _write_mask(self, data, lambda kspace, pe_range: self.masker(kspace, pe_range, randomize=randomize))


class FixedKspaceMaskd(MapTransform):
    """Dictionary twin of :class:`FixedKspaceMask`, seeded by ``f"{d[volume_key]}:{d[slice_key]}"``.

    Args:
        keys: the k-space key, default ``Keys.KSPACE``.
        mask_type, center_fractions, accelerations: see :class:`FixedKspaceMask`.
        mask_key, num_low_frequencies_key, pe_range_key, overwrite: as in :class:`RandKspaceMaskd`.
        volume_key, slice_key: keys of the seed's volume identity (``Keys.VOLUME``: the path relative to
            the data root, so equal file names in different folders get different masks) and slice index.
        allow_missing_keys: skip samples without ``keys``.
    """

    def __init__(
        self,
        keys: KeysCollection = Keys.KSPACE,
        mask_type: str = "equispaced",
        center_fractions: Sequence[float] = (0.08,),
        accelerations: Sequence[float] = (4,),
        mask_key: Hashable = Keys.MASK,
        num_low_frequencies_key: Hashable = Keys.NUM_LOW_FREQUENCIES,
        pe_range_key: Hashable = Keys.PE_RANGE,
        volume_key: Hashable = Keys.VOLUME,
        slice_key: Hashable = Keys.SLICE,
        overwrite: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.masker = FixedKspaceMask(mask_type, center_fractions, accelerations)
        self.mask_key, self.num_low_frequencies_key, self.pe_range_key = mask_key, num_low_frequencies_key, pe_range_key
        self.volume_key, self.slice_key, self.overwrite = volume_key, slice_key, overwrite

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        seed_text = f"{data.get(self.volume_key)}:{_optional_int(data, self.slice_key)}"
        return _write_mask(self, data, lambda kspace, pe_range: self.masker(kspace, seed_text, pe_range))


class ApplyMaskd(MapTransform):
    """Write ``output_key = d[key] * d[mask_key]`` and copy the mask to ``input_mask_key``.

    After it an SL / inference sample carries the network input (``MASKED_KSPACE``, ``INPUT_MASK``).

    Args:
        keys: k-space key(s), default ``Keys.KSPACE`` (``(C, H, W, 2)``).
        mask_key: Omega, bool ``(1, H, W, 1)``.
        output_key: masked k-space key (one key: use one transform per k-space key).
        input_mask_key: where to copy the mask (``None``: do not copy).
        allow_missing_keys: skip samples without ``keys``.
    """

    def __init__(
        self,
        keys: KeysCollection = Keys.KSPACE,
        mask_key: Hashable = Keys.MASK,
        output_key: Hashable = Keys.MASKED_KSPACE,
        input_mask_key: Hashable | None = Keys.INPUT_MASK,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.apply = ApplyMask()
        self.mask_key, self.output_key, self.input_mask_key = mask_key, output_key, input_mask_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.output_key] = self.apply(d[key], d[self.mask_key])
            if self.input_mask_key is not None:
                d[self.input_mask_key] = d[self.mask_key].clone()
            break
        return d


class RandSSDUSplitd(RandomizableTransform, MapTransform):
    """Dictionary twin of :class:`RandSSDUSplit`: Omega (``keys``) -> Theta, Lambda and ``kspace * Theta``.

    Args:
        keys: the acquisition-mask key Omega, default ``Keys.MASK``.
        q, q_range, selection, center_block, split, std_scale: see :class:`RandSSDUSplit`.
        kspace_key: measured k-space ``(C, H, W, 2)`` (``None``: do not write ``masked_kspace_key``).
        input_mask_key: output Theta.
        loss_mask_key: output Lambda.
        masked_kspace_key: output ``kspace * Theta``.
        num_low_frequencies_key: ACS columns for ``center_block="acs"`` (used when present).
        allow_missing_keys: skip samples without ``keys``.
    """

    def __init__(
        self,
        keys: KeysCollection = Keys.MASK,
        q: float | Sequence[float] = 0.4,
        q_range: Sequence[float] | None = None,
        selection: str = "gaussian",
        center_block: Sequence[int] | str = (4, 4),
        split: str = "points",
        std_scale: float = 3.5,
        kspace_key: Hashable | None = Keys.KSPACE,
        input_mask_key: Hashable = Keys.INPUT_MASK,
        loss_mask_key: Hashable = Keys.LOSS_MASK,
        masked_kspace_key: Hashable = Keys.MASKED_KSPACE,
        num_low_frequencies_key: Hashable | None = Keys.NUM_LOW_FREQUENCIES,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        self.splitter = RandSSDUSplit(q, q_range, selection, center_block, split, std_scale)
        self.kspace_key, self.input_mask_key, self.loss_mask_key = kspace_key, input_mask_key, loss_mask_key
        self.masked_kspace_key, self.num_low_frequencies_key = masked_kspace_key, num_low_frequencies_key
        self.apply = ApplyMask()

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandSSDUSplitd:
        """Seed this transform and its array transform."""
        super().set_random_state(seed, state)
        self.splitter.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, object], randomize: bool = True) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            theta, lam = self.splitter(d[key], _optional_int(d, self.num_low_frequencies_key), randomize=randomize)
            d[self.input_mask_key], d[self.loss_mask_key] = theta, lam
            if self.kspace_key is not None:
                d[self.masked_kspace_key] = self.apply(d[self.kspace_key], theta)
            break
        return d


class EstimateSensitivityd(MapTransform):
    """Dictionary twin of :class:`EstimateSensitivity`: k-space (``keys``) -> ``output_key`` maps ``(C, H, W, 2)``.

    Args:
        keys: k-space to estimate from, default ``Keys.MASKED_KSPACE`` (the network input).
        method, calib_width, calib_block, crop, thresh: see :class:`EstimateSensitivity`.
        mask_key: the mask of that k-space (ACS detection; used when present).
        num_low_frequencies_key: ACS columns (used when present and fully sampled in the mask).
        output_key: maps key.
        allow_missing_keys: skip samples without ``keys``.
    """

    def __init__(
        self,
        keys: KeysCollection = Keys.MASKED_KSPACE,
        method: str = "acs",
        calib_width: int = 24,
        calib_block: int | None = None,
        crop: float = 0.95,
        thresh: float = 0.02,
        mask_key: Hashable | None = Keys.INPUT_MASK,
        num_low_frequencies_key: Hashable | None = Keys.NUM_LOW_FREQUENCIES,
        output_key: Hashable = Keys.SENS_MAPS,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.estimator = EstimateSensitivity(method, calib_width, calib_block, crop, thresh)
        self.mask_key, self.num_low_frequencies_key, self.output_key = mask_key, num_low_frequencies_key, output_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            mask = d.get(self.mask_key) if self.mask_key is not None else None
            d[self.output_key] = self.estimator(d[key], mask, _optional_int(d, self.num_low_frequencies_key))
            break
        return d


class ZeroFilledd(MapTransform):
    """Dictionary twin of :class:`ZeroFilled`: ``output_key`` = zero-filled RSS of ``d[key]``, ``(1, Hr, Wr)``.

    Args:
        keys: masked k-space key, default ``Keys.MASKED_KSPACE``.
        recon_size_key: crop size ``(Hr, Wr)`` (no crop when absent).
        output_key: default ``Keys.ZERO_FILLED``.
        allow_missing_keys: skip samples without ``keys``.
    """

    def __init__(
        self,
        keys: KeysCollection = Keys.MASKED_KSPACE,
        recon_size_key: Hashable = Keys.RECON_SIZE,
        output_key: Hashable = Keys.ZERO_FILLED,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.zero_filled = ZeroFilled()
        self.recon_size_key, self.output_key = recon_size_key, output_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.output_key] = self.zero_filled(d[key], d.get(self.recon_size_key))
            break
        return d


class SenseCombined(MapTransform):
    """Dictionary twin of :class:`SenseCombine`: adjoint coil combination with ``sens_maps_key``.

    Args:
        keys: k-space key, default ``Keys.MASKED_KSPACE``.
        sens_maps_key: maps ``(C, H, W, 2)``.
        recon_size_key: crop size (no crop when absent).
        output_key: default ``Keys.ZERO_FILLED`` (``(1, Hr, Wr)`` magnitude).
        magnitude: write the magnitude ``(1, Hr, Wr)`` (``False``: complex ``(Hr, Wr, 2)``).
        allow_missing_keys: skip samples without ``keys``.
    """

    def __init__(
        self,
        keys: KeysCollection = Keys.MASKED_KSPACE,
        sens_maps_key: Hashable = Keys.SENS_MAPS,
        recon_size_key: Hashable = Keys.RECON_SIZE,
        output_key: Hashable = Keys.ZERO_FILLED,
        magnitude: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.combine = SenseCombine(magnitude)
        self.sens_maps_key, self.recon_size_key, self.output_key = sens_maps_key, recon_size_key, output_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.output_key] = self.combine(d[key], d[self.sens_maps_key], d.get(self.recon_size_key))
            break
        return d


class CenterCropd(MapTransform):
    """Centre-crop images ``(..., H, W)`` under ``keys`` to ``d[size_key]`` (or the fixed ``size``).

    Args:
        keys: image keys, default ``Keys.TARGET``.
        size: fixed ``(Hr, Wr)``; when ``None`` the sample's ``size_key`` is used.
        size_key: recon-size key.
        allow_missing_keys: skip missing keys.
    """

    def __init__(
        self,
        keys: KeysCollection = Keys.TARGET,
        size: Sequence[int] | None = None,
        size_key: Hashable = Keys.RECON_SIZE,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.cropper = CenterCrop(size)
        self.size, self.size_key = size, size_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        size = self.size if self.size is not None else d.get(self.size_key)
        for key in self.key_iterator(d):
            d[key] = self.cropper(d[key], size)
        return d


class ReadoutCropd(MapTransform):
    """Dictionary twin of :class:`ReadoutCrop`: crops k-space keys, masks and image-domain maps together.

    Args:
        keys: k-space keys, default ``(Keys.KSPACE, Keys.MASKED_KSPACE)``.
        height: fixed readout size; when ``None`` the sample's ``recon_size_key[0]`` is used.
        recon_size_key: recon-size key.
        mask_keys: column masks ``(1, H, W, 1)`` cropped along with it (skipped when absent).
        image_keys: image-domain ``(C, H, W, 2)`` tensors (sensitivity maps) cropped along with it.
        allow_missing_keys: skip missing ``keys`` (default ``True``: ``MASKED_KSPACE`` may not exist yet).
    """

    def __init__(
        self,
        keys: KeysCollection = (Keys.KSPACE, Keys.MASKED_KSPACE),
        height: int | None = None,
        recon_size_key: Hashable = Keys.RECON_SIZE,
        mask_keys: Sequence[Hashable] = (Keys.MASK, Keys.INPUT_MASK, Keys.LOSS_MASK),
        image_keys: Sequence[Hashable] = (Keys.SENS_MAPS,),
        allow_missing_keys: bool = True,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.cropper = ReadoutCrop(height)
        self.recon_size_key, self.mask_keys, self.image_keys = recon_size_key, tuple(mask_keys), tuple(image_keys)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        height = self.cropper.height
        if height is None:
            height = int(torch.as_tensor(d[self.recon_size_key]).reshape(-1)[0])
        for key in self.key_iterator(d):
            d[key] = self.cropper(d[key], height)
        for key in self.mask_keys:
            if key in d:
                d[key] = self.cropper.crop_mask(d[key], height)
        for key in self.image_keys:
            if key in d:
                d[key] = self.cropper.crop_image(d[key], height)
        return d


class NormalizeKspaced(MapTransform):
    """Divide ``keys`` by a robust statistic of the input k-space and store it in ``scale_key``.

    Args:
        keys: tensors divided by the scale, default ``(KSPACE, MASKED_KSPACE, TARGET)``.
        source_key: the k-space the scale is computed from (default ``MASKED_KSPACE``, the network input).
        source_mask_key: if given, the source is multiplied by this mask first, e.g. ``MASK`` (Omega) to
            take the scale of the acquired data from the stored k-space of a self-supervised sample.
        scale_key: output scale (float, k-space units).
        statistic, percentile: see :class:`NormalizeKspace`.
        allow_missing_keys: skip missing ``keys`` (default ``True``: target-domain samples have no ``TARGET``).
    """

    def __init__(
        self,
        keys: KeysCollection = (Keys.KSPACE, Keys.MASKED_KSPACE, Keys.TARGET),
        source_key: Hashable = Keys.MASKED_KSPACE,
        source_mask_key: Hashable | None = None,
        scale_key: Hashable = Keys.SCALE,
        statistic: str = "percentile",
        percentile: float = 99.0,
        allow_missing_keys: bool = True,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.normalizer = NormalizeKspace(statistic, percentile)
        self.source_key, self.source_mask_key, self.scale_key = source_key, source_mask_key, scale_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        source = d[self.source_key]
        if self.source_mask_key is not None:
            source = source * d[self.source_mask_key]
        scale = self.normalizer.compute_scale(source)
        for key in self.key_iterator(d):
            d[key] = d[key] / scale
        d[self.scale_key] = scale
        return d
