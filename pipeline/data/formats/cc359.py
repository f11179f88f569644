"""The Calgary-Campinas CC-359 layout (``reader="cc359"``).

Source: the Calgary-Campinas public brain MR dataset, multi-coil raw data (https://sites.google.com/view/calgary-campinas-dataset).

``kspace`` float ``(S, H, W, 2 C)`` with real and imaginary parts interleaved on the last axis,
readout already in image space, stored for a plain (non-centred) ``ifft2``; no other datasets. It is
converted to the fastMRI convention: centred k-space ``kc = k_raw * (-1) ** (ky + kz) / sqrt(H * W)``,
so that ``|ifft2c(kc)| == |numpy.fft.ifft2(k_raw)|``. The reference is the RSS of the slice; the
volume maximum is unknown (0.0).
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np
import torch

from pipeline.data.errors import DataError
from pipeline.data.formats.base import RawFormat, VolumeInfo, check_finite, kspace_dataset, read_dataset
from pipeline.data.formats.fastmri import FASTMRI_KEYS
from pipeline.data.ismrmrd import default_encoding
from pipeline.keys import Keys
from pipeline.physics import rss_image, to_tensor

__all__ = ["CC359"]


class CC359(RawFormat):
    """Calgary-Campinas CC-359 multi-coil volumes (see the module docstring for the layout)."""

    name = "cc359"

    def detect(self, f: h5py.File) -> bool:
        """A float rank-4 ``kspace`` with an even last axis and none of the fastMRI datasets."""
        ds = f.get("kspace")
        return (
            isinstance(ds, h5py.Dataset)
            and np.issubdtype(ds.dtype, np.floating)
            and ds.ndim == 4
            and ds.shape[-1] % 2 == 0
            and not any(k in f for k in FASTMRI_KEYS)
        )

    def inspect(self, f: h5py.File, path: str) -> VolumeInfo:
        """Check dtype, rank and the interleaved coil axis; the recon size is the full ``(H, W)``.

        Raises:
            DataError: no ``kspace``, non-float dtype, rank other than 4, empty or odd channel axis,
                no slices, or odd or empty ``H``/``W``.
        """
        ds = kspace_dataset(f, path)
        if not np.issubdtype(ds.dtype, np.floating):
            raise DataError(
                path, f"'kspace' has dtype {ds.dtype}, expected float (CC-359 layout, real/imag interleaved)"
            )
        if ds.ndim != 4:
            raise DataError(
                path, f"'kspace' has rank {ds.ndim} (shape {ds.shape}); CC-359 files are 4-D (slices, H, W, 2*coils)"
            )
        num_slices, h, w, channels = ds.shape
        if channels == 0:
            raise DataError(path, f"empty coil axis: 'kspace' has shape {ds.shape}")
        if channels % 2:
            raise DataError(path, f"last axis of 'kspace' has {channels} channels; CC-359 interleaves real/imag (even)")
        if num_slices == 0 or h % 2 or w % 2 or h == 0 or w == 0:
            raise DataError(path, f"'kspace' shape {ds.shape}: CC-359 slices must be non-empty with even H and W")
        return VolumeInfo(
            file=path,
            format=self.name,
            num_slices=num_slices,
            num_coils=channels // 2,
            kspace_size=(h, w),
            encoding=default_encoding((h, w), (h, w)),
            mask_layout=None,
            target_key=None,
        )

    def read_slice(self, f: h5py.File, info: VolumeInfo, slice_idx: int) -> dict[str, Any]:
        """Centred ``kspace``, its RSS as ``target``, and ``pe_range`` from the non-zero columns."""
        path = info.file
        raw = read_dataset(path, f["kspace"], slice_idx, slice_idx)  # (H, W, 2C)
        check_finite(path, "kspace", raw, slice_idx)
        h, w = info.kspace_size
        k_raw = (raw[..., 0::2] + 1j * raw[..., 1::2]).transpose(2, 0, 1)  # (C, H, W)
        checkerboard = np.where((np.arange(h)[:, None] + np.arange(w)[None, :]) % 2 == 0, 1.0, -1.0)
        kspace = (k_raw * (checkerboard / np.sqrt(h * w))).astype(np.complex64)
        acquired = np.flatnonzero(np.any(kspace != 0, axis=(0, 1)))
        pe_range = (int(acquired[0]), int(acquired[-1]) + 1) if acquired.size else (0, w)
        return {
            Keys.KSPACE.value: to_tensor(kspace),
            Keys.TARGET.value: rss_image(to_tensor(kspace))[None],
            Keys.PE_RANGE.value: torch.tensor(pe_range, dtype=torch.int64),
        }
