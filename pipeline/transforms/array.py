"""Array k-space transforms (one sample, no batch axis); their dictionary twins are in ``dictionary.py``.

Shapes follow ``pipeline.physics.complex``: k-space and coil images ``(C, H, W, 2)``, masks
``(1, H, W, 1)`` bool, magnitude images ``(1, H, W)`` float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.transforms import RandomizableTransform, Transform

from pipeline.physics import acs_block, center_crop, complex_abs, fft2c, ifft2c, rss_image, sense_reduce
from pipeline.seeds import stable_seed
from pipeline.transforms.masks import COLUMN_MASK_TYPES, MASK_TYPES, generate_mask
from pipeline.transforms.sensitivity import acs_sensitivity_maps, espirit_maps
from pipeline.transforms.ssdu import SELECTIONS, check_q, ssdu_split

__all__ = [
    "ApplyMask",
    "CenterCrop",
    "EstimateSensitivity",
    "FixedKspaceMask",
    "NormalizeKspace",
    "RandKspaceMask",
    "RandSSDUSplit",
    "ReadoutCrop",
    "SenseCombine",
    "ZeroFilled",
    "check_mask",
    "denormalize",
    "to_mask_tensor",
]


def check_kspace(kspace: torch.Tensor, name: str = "kspace") -> None:
    """Raise ``ValueError`` unless ``kspace`` is ``(C, H, W, 2)``."""
    if kspace.ndim != 4 or kspace.shape[-1] != 2:
        raise ValueError(f"{name} must have shape (C, H, W, 2), got {tuple(kspace.shape)}")


def check_mask(mask: torch.Tensor, kspace_shape: Sequence[int], name: str = "mask") -> None:
    """Raise ``ValueError`` unless ``mask`` is ``(1, H, W, 1)`` matching k-space ``(C, H, W, 2)``."""
    h, w = int(kspace_shape[-3]), int(kspace_shape[-2])
    if tuple(mask.shape) != (1, h, w, 1):
        raise ValueError(
            f"{name} of shape {tuple(mask.shape)} does not fit k-space {tuple(kspace_shape)}: expected (1, {h}, {w}, 1)"
        )


def to_mask_tensor(mask: np.ndarray) -> torch.Tensor:
    """Numpy bool ``(H, W)`` -> ``torch.bool`` ``(1, H, W, 1)``."""
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=bool))[None, :, :, None]


def _as_pe_range(pe_range: torch.Tensor | Sequence[int] | None) -> tuple[int, int] | None:
    if pe_range is None:
        return None
    values = torch.as_tensor(pe_range).reshape(-1).tolist()
    return int(values[0]), int(values[1])


def _crop_size(size: Sequence[int] | torch.Tensor | None, shape: Sequence[int]) -> tuple[int, int]:
    """Recon size clipped to the image ``(H, W)`` (fastMRI crops narrow brain images to ``(W, W)``-like sizes)."""
    if size is None:
        return int(shape[0]), int(shape[1])
    values = torch.as_tensor(size).reshape(-1).tolist()
    return min(int(values[0]), int(shape[0])), min(int(values[1]), int(shape[1]))


class _MaskSpec:
    """Validated (mask_type, center_fractions, accelerations) shared by the mask transforms."""

    def __init__(self, mask_type: str, center_fractions: Sequence[float], accelerations: Sequence[float]) -> None:
        if mask_type not in MASK_TYPES:
            raise ValueError(f"mask_type must be one of {MASK_TYPES}, got {mask_type!r}")
        self.mask_type = mask_type
        self.center_fractions = [float(c) for c in center_fractions]
        self.accelerations = [float(a) for a in accelerations]
        if not self.accelerations or len(self.center_fractions) != len(self.accelerations):
            raise ValueError(
                f"center_fractions and accelerations must be non-empty lists of equal length, got "
                f"{self.center_fractions} and {self.accelerations}"
            )
        for cf, acc in zip(self.center_fractions, self.accelerations):
            if not np.isfinite(acc) or acc < 1:
                raise ValueError(f"accelerations must be >= 1, got {acc}")
            if not 0.0 <= cf <= 1.0:
                raise ValueError(f"center_fractions must lie in [0, 1], got {cf}")
            if mask_type in COLUMN_MASK_TYPES and cf * acc > 1.0 + 1e-9:
                raise ValueError(
                    f"center_fractions={cf} leaves no room at accelerations={acc}: the ACS block alone "
                    f"exceeds 1/R of the columns"
                )

    def draw(self, shape: tuple[int, int], rng: np.random.RandomState, pe_range) -> tuple[np.ndarray, int]:
        """Pick one (centre fraction, acceleration) pair from ``rng`` and generate a mask ``(H, W)``."""
        index = int(rng.randint(0, len(self.accelerations)))
        return generate_mask(
            self.mask_type, shape, self.center_fractions[index], self.accelerations[index], rng, pe_range
        )


class RandKspaceMask(RandomizableTransform):
    """A new undersampling mask on every call, drawn from ``self.R`` (proxy-domain training).

    Replaces MONAI's ``RandomKspaceMask``/``EquispacedKspaceMask`` (float masks, 1-D only, no padding band,
    ZeroDivisionError at ``center_fraction = 1/R``).

    Args:
        mask_type: one of ``"random"``, ``"equispaced"``, ``"gaussian1d"``, ``"gaussian2d"``, ``"poisson"``,
            ``"radial"``, ``"spiral"``.
        center_fractions: ACS fractions of the acquired width, each in ``[0, 1]``.
        accelerations: accelerations ``R >= 1``, paired with ``center_fractions``; one pair is drawn
            uniformly per call.

    Example:
        >>> t = RandKspaceMask("equispaced", [0.08], [4]).set_random_state(0)
        >>> mask, acs = t(torch.zeros(4, 32, 25, 2))
        >>> tuple(mask.shape), acs
        ((1, 32, 25, 1), 2)
    """

    def __init__(
        self,
        mask_type: str = "random",
        center_fractions: Sequence[float] = (0.08,),
        accelerations: Sequence[float] = (4,),
    ) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        self.spec = _MaskSpec(mask_type, center_fractions, accelerations)
        self._mask: np.ndarray | None = None
        self._num_low_frequencies = 0

    def randomize(self, shape: tuple[int, int], pe_range: tuple[int, int] | None = None) -> None:
        """Draw the mask for a k-space grid ``(H, W)`` from ``self.R``."""
        super().randomize(None)
        self._mask, self._num_low_frequencies = self.spec.draw(shape, self.R, pe_range)

    def __call__(
        self, kspace: torch.Tensor, pe_range: torch.Tensor | Sequence[int] | None = None, randomize: bool = True
    ) -> tuple[torch.Tensor, int]:
        """Generate a mask for ``kspace``.

        Args:
            kspace: ``(C, H, W, 2)`` (only its shape is used).
            pe_range: acquired columns ``[start, stop)``; columns outside are never sampled.
            randomize: draw a new mask (``False`` reuses the previous draw).

        Returns:
            ``(mask, num_low_frequencies)``: bool ``(1, H, W, 1)`` and the ACS column count.
        """
        check_kspace(kspace)
        shape = (int(kspace.shape[-3]), int(kspace.shape[-2]))
        if randomize:
            self.randomize(shape, _as_pe_range(pe_range))
        if self._mask is None or self._mask.shape != shape:
            raise ValueError(f"no mask drawn for k-space grid {shape}: call with randomize=True first")
        return to_mask_tensor(self._mask), self._num_low_frequencies


class FixedKspaceMask(Transform):
    """Deterministic mask seeded by ``stable_seed(f"{volume}:{slice_idx}")`` (validation / target data).

    The same file and slice always get the same mask, across epochs, workers, processes and machines.
    Uses a private ``RandomState``; global RNG state is never touched.

    Args:
        mask_type: see :class:`RandKspaceMask`.
        center_fractions: ACS fractions, each in ``[0, 1]``.
        accelerations: accelerations ``R >= 1``; the pair is picked from the seeded generator.
    """

    def __init__(
        self,
        mask_type: str = "equispaced",
        center_fractions: Sequence[float] = (0.08,),
        accelerations: Sequence[float] = (4,),
    ) -> None:
        self.spec = _MaskSpec(mask_type, center_fractions, accelerations)

    def __call__(
        self, kspace: torch.Tensor, seed_text: str, pe_range: torch.Tensor | Sequence[int] | None = None
    ) -> tuple[torch.Tensor, int]:
        """Generate the mask for ``kspace`` identified by ``seed_text`` (e.g. ``"file1000.h5:17"``).

        Returns:
            ``(mask, num_low_frequencies)``: bool ``(1, H, W, 1)`` and the ACS column count.
        """
        check_kspace(kspace)
        rng = np.random.RandomState(stable_seed(seed_text))
        mask, num_acs = self.spec.draw((int(kspace.shape[-3]), int(kspace.shape[-2])), rng, _as_pe_range(pe_range))
        return to_mask_tensor(mask), num_acs


class ApplyMask(Transform):
    """``masked_kspace = kspace * mask``: zeros at unsampled points.

    Example:
        >>> k = torch.ones(2, 4, 5, 2); m = torch.zeros(1, 4, 5, 1, dtype=torch.bool); m[..., 2, :] = True
        >>> float(ApplyMask()(k, m).sum())
        16.0
    """

    def __call__(self, kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Args: kspace ``(C, H, W, 2)``; mask bool ``(1, H, W, 1)``. Returns masked k-space ``(C, H, W, 2)``."""
        check_kspace(kspace)
        check_mask(mask, kspace.shape)
        return kspace * mask.to(torch.bool)


class RandSSDUSplit(RandomizableTransform):
    """SSDU split of the acquisition mask Omega into Theta (input) and Lambda (loss), fresh on every call.

    Args:
        q: ``|Lambda| / |Omega|`` in ``(0, 1)``: a float, or a list of values drawn uniformly per call.
        q_range: if given, ``q`` is drawn uniformly from ``[low, high]`` per call (overrides ``q``).
        selection: ``"gaussian"`` (centred, ``std = (N - 1) / std_scale`` per axis) or ``"uniform"``.
        center_block: ``(h, w)`` block always kept in Theta (default 4x4), or ``"acs"``: the ACS columns
            (``num_low_frequencies``, or the centre block detected from the mask) over the whole readout.
        split: ``"points"`` (individual 2-D points, the reference) or ``"columns"`` (whole phase-encode
            lines; needs a mask that is constant along ``H``).
        std_scale: divisor of ``N - 1`` for the Gaussian standard deviation.
    """

    def __init__(
        self,
        q: float | Sequence[float] = 0.4,
        q_range: Sequence[float] | None = None,
        selection: str = "gaussian",
        center_block: Sequence[int] | str = (4, 4),
        split: str = "points",
        std_scale: float = 3.5,
    ) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        self.q_values = [check_q(v) for v in (q if isinstance(q, Sequence) else [q])]
        if not self.q_values:
            raise ValueError("q must be a float or a non-empty list of floats in (0, 1)")
        self.q_range = None
        if q_range is not None:
            low, high = (check_q(v) for v in q_range)
            if low > high:
                raise ValueError(f"q_range must be (low, high) with low <= high, got {tuple(q_range)}")
            self.q_range = (low, high)
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
        if split not in ("points", "columns"):
            raise ValueError(f"split must be 'points' or 'columns', got {split!r}")
        if isinstance(center_block, str):
            if center_block != "acs":
                raise ValueError(f"center_block must be (h, w) or 'acs', got {center_block!r}")
        elif len(center_block) != 2 or min(center_block) < 0:
            raise ValueError(f"center_block must be (h, w) with sizes >= 0, got {tuple(center_block)}")
        if std_scale <= 0:
            raise ValueError(f"std_scale must be > 0, got {std_scale}")
        self.selection, self.center_block, self.split, self.std_scale = selection, center_block, split, std_scale
        self._theta: np.ndarray | None = None
        self._lam: np.ndarray | None = None
        self._q = self.q_values[0]

    def _block(self, omega: np.ndarray, num_low_frequencies: int) -> tuple[int, int]:
        if self.center_block != "acs":
            return int(self.center_block[0]), int(self.center_block[1])
        h, w = omega.shape
        width = int(num_low_frequencies) if num_low_frequencies > 0 else acs_block(torch.from_numpy(omega))[1]
        return h, width

    def randomize(self, omega: np.ndarray, num_low_frequencies: int = 0) -> None:
        """Draw ``q`` and the split of ``omega`` (bool ``(H, W)``) from ``self.R``."""
        super().randomize(None)
        if self.q_range is not None:
            self._q = float(self.R.uniform(*self.q_range))
        else:
            self._q = self.q_values[int(self.R.randint(0, len(self.q_values)))]
        block = self._block(omega, num_low_frequencies)
        if self.split == "columns":
            columns = omega[0]
            if not (omega == columns[None, :]).all():
                raise ValueError("split='columns' needs a mask that is constant along H (a 1-D column mask)")
            theta, lam = ssdu_split(columns, self._q, self.R, self.selection, (block[1],), self.std_scale)
            self._theta = np.broadcast_to(theta[None], omega.shape).copy()
            self._lam = np.broadcast_to(lam[None], omega.shape).copy()
        else:
            self._theta, self._lam = ssdu_split(omega, self._q, self.R, self.selection, block, self.std_scale)

    @property
    def last_q(self) -> float:
        """Split ratio ``q`` of the last draw."""
        return self._q

    def __call__(
        self, mask: torch.Tensor, num_low_frequencies: int = 0, randomize: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Split ``mask``.

        Args:
            mask: Omega, bool ``(1, H, W, 1)``.
            num_low_frequencies: ACS columns for ``center_block="acs"`` (``0`` = detect from the mask).
            randomize: draw a new split (``False`` reuses the previous one).

        Returns:
            ``(theta, lam)``: bool ``(1, H, W, 1)`` each, disjoint, union = ``mask``.
        """
        if mask.ndim != 4 or mask.shape[0] != 1 or mask.shape[-1] != 1:
            raise ValueError(f"mask must have shape (1, H, W, 1), got {tuple(mask.shape)}")
        omega = mask[0, :, :, 0].to(torch.bool).cpu().numpy()
        if randomize:
            self.randomize(omega, int(num_low_frequencies))
        if self._theta is None or self._theta.shape != omega.shape:
            raise ValueError(f"no split drawn for a mask of shape {omega.shape}: call with randomize=True first")
        return to_mask_tensor(self._theta), to_mask_tensor(self._lam)


class EstimateSensitivity(Transform):
    """Coil-sensitivity maps ``(C, H, W, 2)`` from k-space: ``"acs"`` (fast) or ``"espirit"`` (sigpy).

    Args:
        method: ``"acs"`` (low-resolution maps from the ACS block, E2E-VarNet style) or ``"espirit"``.
        calib_width: ESPIRiT calibration width.
        calib_block: ESPIRiT on the central ``calib_block^2`` k-space block, upsampled (``None`` = full).
        crop: ESPIRiT eigenvalue threshold: maps are zero where it is not reached (outside the object).
        thresh: ESPIRiT singular-value threshold.
    """

    def __init__(
        self,
        method: str = "acs",
        calib_width: int = 24,
        calib_block: int | None = None,
        crop: float = 0.95,
        thresh: float = 0.02,
    ) -> None:
        if method not in ("acs", "espirit"):
            raise ValueError(f"method must be 'acs' or 'espirit', got {method!r}")
        self.method, self.calib_width, self.calib_block, self.crop, self.thresh = (
            method,
            calib_width,
            calib_block,
            crop,
            thresh,
        )

    def __call__(
        self, kspace: torch.Tensor, mask: torch.Tensor | None = None, num_low_frequencies: int = 0
    ) -> torch.Tensor:
        """Args: kspace ``(C, H, W, 2)`` (full FOV); mask ``(1, H, W, 1)``; ACS columns (0 = detect).

        Returns:
            maps ``(C, H, W, 2)`` with ``sum_c |S_c|^2 = 1`` where non-zero.
        """
        check_kspace(kspace)
        if self.method == "acs":
            return acs_sensitivity_maps(kspace, int(num_low_frequencies), mask)
        return espirit_maps(
            kspace, calib_width=self.calib_width, thresh=self.thresh, crop=self.crop, calib_block=self.calib_block
        )


class ZeroFilled(Transform):
    """Zero-filled RSS image :func:`pipeline.physics.rss_image` of the masked k-space, centre-cropped.

    Example:
        >>> ZeroFilled()(torch.zeros(3, 16, 12, 2), (8, 8)).shape
        torch.Size([1, 8, 8])
    """

    def __call__(self, kspace: torch.Tensor, recon_size: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """Args: kspace ``(C, H, W, 2)``; recon_size ``(Hr, Wr)`` (clipped to ``(H, W)``; ``None`` = no crop).

        Returns:
            magnitude ``(1, Hr, Wr)`` float32, in k-space units.
        """
        check_kspace(kspace)
        return rss_image(kspace, recon_size).unsqueeze(0)


class SenseCombine(Transform):
    """SENSE (adjoint) coil combination ``sum_c conj(S_c) ifft2c(k)_c``, optionally magnitude and cropped."""

    def __init__(self, magnitude: bool = True) -> None:
        self.magnitude = magnitude

    def __call__(
        self,
        kspace: torch.Tensor,
        sens_maps: torch.Tensor,
        recon_size: Sequence[int] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Args: kspace ``(C, H, W, 2)``; sens_maps ``(C, H, W, 2)``; recon_size ``(Hr, Wr)`` or ``None``.

        Returns:
            ``(1, Hr, Wr)`` magnitude if ``magnitude`` else complex ``(Hr, Wr, 2)``.
        """
        check_kspace(kspace)
        if sens_maps.shape != kspace.shape:
            raise ValueError(f"sens_maps shape {tuple(sens_maps.shape)} must equal kspace shape {tuple(kspace.shape)}")
        image = sense_reduce(ifft2c(kspace), sens_maps)  # (H, W, 2)
        size = _crop_size(recon_size, image.shape[:2])
        image = center_crop(image, size, spatial_dims=(-3, -2))
        return complex_abs(image).unsqueeze(0) if self.magnitude else image


class CenterCrop(Transform):
    """Centre-crop the last two axes ``(..., H, W)`` to a recon size (clipped to the image)."""

    def __init__(self, size: Sequence[int] | None = None) -> None:
        self.size = size

    def __call__(self, image: torch.Tensor, size: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """Args: image ``(..., H, W)``; size ``(Hr, Wr)`` (default: the constructor's). Returns ``(..., Hr, Wr)``."""
        size = self.size if size is None else size
        if size is None:
            raise ValueError("size must be given to CenterCrop (constructor or call)")
        return center_crop(image, _crop_size(size, image.shape[-2:]))


class ReadoutCrop(Transform):
    """Crop the (2x oversampled) readout to ``height`` rows: ``fft2c(crop_H(ifft2c(k)))``.

    Exact for images: ``ifft2c`` of the result is the centre ``height`` rows of ``ifft2c(k)``. Column
    masks commute with the crop (their rows are cropped too); masks that vary along ``H`` are rejected.
    Estimate ESPIRiT maps before cropping (ESPIRiT needs the full FOV).

    Args:
        height: output readout size (``None``: must be given per call, e.g. ``recon_size[0]``).
    """

    def __init__(self, height: int | None = None) -> None:
        self.height = height

    def _height(self, height: int | None, current: int) -> int:
        height = self.height if height is None else height
        if height is None or int(height) < 1:
            raise ValueError(f"height must be a positive readout size, got {height}")
        return min(int(height), current)

    def __call__(self, kspace: torch.Tensor, height: int | None = None) -> torch.Tensor:
        """Args: kspace ``(C, H, W, 2)``; height ``Hr``. Returns ``(C, min(Hr, H), W, 2)``."""
        check_kspace(kspace)
        h = self._height(height, kspace.shape[-3])
        if h == kspace.shape[-3]:
            return kspace
        image = center_crop(ifft2c(kspace), (h, kspace.shape[-2]), spatial_dims=(-3, -2))
        return fft2c(image)

    def crop_image(self, image: torch.Tensor, height: int | None = None) -> torch.Tensor:
        """Crop an image-domain complex tensor ``(C, H, W, 2)`` (e.g. sensitivity maps) to ``Hr`` rows."""
        h = self._height(height, image.shape[-3])
        return center_crop(image, (h, image.shape[-2]), spatial_dims=(-3, -2))

    def crop_mask(self, mask: torch.Tensor, height: int | None = None) -> torch.Tensor:
        """Crop a column mask ``(1, H, W, 1)`` to ``Hr`` rows.

        Raises:
            ValueError: if the mask varies along ``H`` (a 2-D mask does not commute with the readout crop).
        """
        h = self._height(height, mask.shape[-3])
        if not bool((mask == mask[:, :1]).all()):
            raise ValueError("ReadoutCrop needs a column mask constant along H; 2-D masks cannot be readout-cropped")
        return mask[:, :h]


class NormalizeKspace(Transform):
    """Divide k-space by a robust statistic of the zero-filled input magnitude (no NaN for all-zero input).

    ``scale`` = ``percentile``-th percentile (or the max) of ``rss(ifft2c(input_kspace))`` over the full grid.
    Pass the network INPUT (masked k-space) so that the scale is available at inference.

    Args:
        statistic: ``"percentile"`` or ``"max"``.
        percentile: in ``(0, 100]``, used with ``"percentile"``.
        eps: scales below ``eps`` (or non-finite) are replaced by 1.
    """

    def __init__(self, statistic: str = "percentile", percentile: float = 99.0, eps: float = 1e-12) -> None:
        if statistic not in ("percentile", "max"):
            raise ValueError(f"statistic must be 'percentile' or 'max', got {statistic!r}")
        if not 0.0 < percentile <= 100.0:
            raise ValueError(f"percentile must lie in (0, 100], got {percentile}")
        self.statistic, self.percentile, self.eps = statistic, float(percentile), float(eps)

    def compute_scale(self, kspace: torch.Tensor) -> float:
        """Scale ``> 0`` (k-space units) of ``kspace`` ``(C, H, W, 2)``."""
        check_kspace(kspace)
        magnitude = rss_image(kspace).reshape(-1).double()
        if self.statistic == "max":
            scale = float(magnitude.max())
        else:
            scale = float(torch.quantile(magnitude, self.percentile / 100.0))
        return scale if np.isfinite(scale) and scale > self.eps else 1.0

    def __call__(self, kspace: torch.Tensor, scale: float | None = None) -> tuple[torch.Tensor, float]:
        """Return ``(kspace / scale, scale)``; ``scale`` defaults to :meth:`compute_scale` of ``kspace``."""
        scale = self.compute_scale(kspace) if scale is None else float(scale)
        return kspace / scale, scale


def denormalize(x: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """Undo :class:`NormalizeKspace`: ``x * scale``; a ``(B,)`` scale broadcasts over a batch ``(B, ...)``."""
    scale = torch.as_tensor(scale, dtype=x.dtype, device=x.device)
    if scale.ndim == 1 and x.ndim > 1 and scale.shape[0] == x.shape[0]:
        scale = scale.reshape(-1, *([1] * (x.ndim - 1)))
    return x * scale
