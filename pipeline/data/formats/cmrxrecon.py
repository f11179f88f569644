"""The CMRxRecon 2023/2024 layouts (``reader="cmrxrecon"``; ``"cmrxrecon_crop"`` adds the evaluation crop).

Source: the CMRxRecon challenges (https://cmrxrecon.github.io; data formats in the challenges' repositories
``CmrxRecon/CMRxRecon`` and ``CmrxRecon/CMRxRecon2024``, ``ChallengeDataFormat``). MATLAB ``.mat`` files,
one or more variables each:

- k-space, complex, MATLAB order ``(kx, ky, coils, slices, frames)`` (5-D), ``(kx, ky, coils, slices)``
  (4-D, 2024 BlackBlood) or single-coil ``(kx, ky, slices, frames)`` (``kspace_single_*``). Fully sampled:
  ``kspace_full`` (also ``kspace_single_full``, and ``kspace`` in later releases); undersampled:
  ``kspace_sub04/08/10`` (2023) or ``kus`` (2024);
- masks, binary: ``mask04/08/10`` (2023) or ``mask`` (2024), ``(kx, ky)``, fixed over coils, slices and
  frames, or ``(kx, ky, frames)`` (2024 k-t masks).

Files are MATLAB v7.3 (HDF5: h5py shows the axes reversed and complex values as a compound type with
fields ``real`` and ``imag``) or v5 (read with :func:`scipy.io.loadmat`, whole variables at a time).

Where the pieces live (the challenges' folder layout), relative to the file's set folder (``TrainingSet``
or ``ValidationSet``): 2023 ``AccFactorNN/Pxxx/<name>.mat`` holds ``kspace_subNN``, its mask is
``AccFactorNN/Pxxx/<name>_mask.mat`` (``maskNN``) and the reference ``FullSample/Pxxx/<name>.mat``; 2024
``UnderSample_TaskK/Pxxx/<name>_kus_<pattern>.mat`` holds ``kus``, its mask
``Mask_TaskK/Pxxx/<name>_mask_<pattern>.mat`` and the reference ``FullSample/Pxxx/<name>.mat`` (training
set only). Variables in the file itself win over companions.

Every (frame, slice) pair is one slice of the pipeline: index ``t * slices + z``. Per slice the reader
returns ``kspace`` ``(C, H=kx, W=ky, 2)``: the undersampled k-space when there is one (the measured
target) with its ``mask``, else the fully sampled one; ``target``: the RSS of the fully sampled slice
when it is known. ``recon_size`` is the whole ``(kx, ky)`` grid, or with ``"cmrxrecon_crop"`` the
challenge's evaluation crop ``(round(kx / 3), round(ky / 2))`` (MATLAB rounding), applied as the
pipeline's centre crop.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from pipeline.data.errors import DataError
from pipeline.data.formats.base import RawFormat, VolumeInfo, check_binary_mask, check_file, check_finite
from pipeline.data.formats.fastmri import is_matlab
from pipeline.data.ismrmrd import default_encoding
from pipeline.keys import Keys
from pipeline.physics import rss_image, to_tensor

__all__ = ["CMRxRecon", "MatFile"]

FULL = re.compile(r"^(kspace_full|kspace_single_full|kspace)$")
UNDERSAMPLED = re.compile(r"^(kspace_(single_)?sub\d+|kus)$")
MASK = re.compile(r"^mask(\d+)?$")
MAT5_MAGIC = b"MATLAB 5.0 MAT-file"


def _matlab_round(x: float) -> int:
    """MATLAB's ``round`` (halves away from zero) for ``x >= 0``."""
    return int(np.floor(x + 0.5))


class MatFile:
    """One open ``.mat`` file, v7.3 (HDF5) or v5, with its variables in h5py's (reversed MATLAB) axis order.

    Args:
        path: the file.

    Raises:
        DataError: if the file is neither a readable v7.3 nor a v5 MAT-file.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._h5: h5py.File | None = None
        self._v5: dict[str, np.ndarray] | None = None
        if h5py.is_hdf5(path):
            try:
                self._h5 = h5py.File(path, "r")
            except OSError as err:
                raise DataError(path, f"cannot be opened as a MATLAB v7.3 file (truncated?): {err}") from None
        else:
            from scipy.io import whosmat

            try:
                self._shapes = {name: tuple(reversed(shape)) for name, shape, _ in whosmat(path)}
            except (ValueError, OSError, TypeError) as err:
                raise DataError(path, f"cannot be read as a MATLAB v5 file: {err}") from None
            self._v5 = {}

    def close(self) -> None:
        """Close the HDF5 file (v5 variables are plain arrays)."""
        if self._h5 is not None:
            self._h5.close()

    def names(self) -> list[str]:
        """The variable names."""
        return sorted(self._h5.keys()) if self._h5 is not None else sorted(self._shapes)

    def shape(self, name: str) -> tuple[int, ...]:
        """Shape of variable ``name`` in h5py order (MATLAB order reversed).

        Raises:
            DataError: if the variable is an HDF5 group (a MATLAB struct or cell) rather than an array.
        """
        if self._h5 is not None:
            obj = self._h5[name]
            if not isinstance(obj, h5py.Dataset):
                raise DataError(self.path, f"'{name}' is an HDF5 group (a MATLAB struct/cell), expected an array")
            return tuple(obj.shape)
        return self._shapes[name]

    def is_complex(self, name: str) -> bool:
        """Whether variable ``name`` is complex (v7.3: a compound of ``real`` and ``imag``)."""
        if self._h5 is not None:
            dtype = self._h5[name].dtype
            return dtype.names is not None and {"real", "imag"} <= set(dtype.names) or dtype.kind == "c"
        return np.iscomplexobj(self._load(name))

    def read(self, name: str, index: tuple = (), slice_idx: int | None = None) -> np.ndarray:
        """``variable[index]`` in h5py order; complex variables come back as complex64.

        Raises:
            DataError: if reading fails (truncated file).
        """
        try:
            if self._h5 is not None:
                data = self._h5[name][index]
            else:
                data = self._load(name)[index]
        except OSError as err:
            raise DataError(self.path, f"reading '{name}' failed (truncated file?): {err}", slice_idx) from None
        if data.dtype.names is not None:
            data = data["real"] + 1j * data["imag"]
        return data.astype(np.complex64) if np.iscomplexobj(data) else np.asarray(data)

    def _load(self, name: str) -> np.ndarray:
        if name not in self._v5:  # type: ignore[operator]
            from scipy.io import loadmat

            try:
                value = loadmat(self.path, variable_names=[name])[name]
            except (ValueError, OSError) as err:
                raise DataError(self.path, f"reading '{name}' failed: {err}") from None
            self._v5[name] = np.asarray(value).T  # type: ignore[index]
        return self._v5[name]  # type: ignore[index]


def _mat_names(path: str) -> list[str]:
    """Variable names of a v5 MAT-file, or ``[]`` for any other file."""
    try:
        with open(path, "rb") as fh:
            if not fh.read(len(MAT5_MAGIC)) == MAT5_MAGIC:
                return []
        from scipy.io import whosmat

        return [name for name, _, _ in whosmat(path)]
    except (OSError, ValueError, TypeError):
        return []


def _is_volume(names: list[str]) -> bool:
    return any(FULL.match(n) or UNDERSAMPLED.match(n) for n in names)


class _Volume:
    """The open pieces of one CMRxRecon volume: measurement, mask and reference (variable, file)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.files: list[MatFile] = []
        main = self._open(path)
        names = main.names()
        under = [n for n in names if UNDERSAMPLED.match(n)]
        full = [n for n in names if FULL.match(n)]
        if len(under) > 1:
            raise DataError(path, f"holds several undersampled k-spaces {under}; keep one per file")
        self.measurement = (main, under[0]) if under else (main, full[0]) if full else None
        if self.measurement is None:
            raise DataError(
                path,
                f"no CMRxRecon k-space variable (kspace_full, kspace_subNN, kus, kspace): found {names or 'none'}",
            )
        self.reference = (main, full[0]) if full else self._companion_reference()
        masks = [n for n in names if MASK.match(n)]
        self.mask = (main, masks[0]) if len(masks) == 1 else None
        if under and self.mask is None:
            self.mask = self._companion_mask(under[0])

    def _open(self, path: str) -> MatFile:
        handle = MatFile(path)
        self.files.append(handle)
        return handle

    def _companion_reference(self) -> tuple[MatFile, str] | None:
        p = Path(self.path)
        stem = re.sub(r"_kus_.*$", "", p.stem)
        candidate = p.parent.parent.parent / "FullSample" / p.parent.name / f"{stem}.mat"
        if candidate == p or not candidate.is_file():
            return None
        ref = self._open(str(candidate))
        full = [n for n in ref.names() if FULL.match(n)]
        return (ref, full[0]) if full else None

    def _companion_mask(self, variable: str) -> tuple[MatFile, str]:
        p = Path(self.path)
        digits = re.search(r"(\d+)$", variable)
        if variable == "kus":  # 2024: UnderSample_TaskK/P/<x>_kus_<pattern>.mat -> Mask_TaskK/P/<x>_mask_<pattern>
            task = p.parent.parent.name.replace("UnderSample_", "Mask_")
            candidate = p.parent.parent.parent / task / p.parent.name / p.name.replace("_kus_", "_mask_")
            wanted = "mask"
        else:  # 2023: <name>_mask.mat next to the file, variable maskNN
            candidate = p.with_name(f"{p.stem}_mask.mat")
            wanted = f"mask{digits.group(1)}" if digits else "mask"
        if not candidate.is_file():
            problem = f"undersampled '{variable}' without its mask: no '{wanted}' here or in {candidate}"
            raise DataError(self.path, problem)
        handle = self._open(str(candidate))
        if wanted not in handle.names():
            raise DataError(str(candidate), f"no '{wanted}' variable for {self.path} (found {handle.names()})")
        return handle, wanted

    def close(self) -> None:
        for handle in self.files:
            handle.close()


class CMRxRecon(RawFormat):
    """CMRxRecon 2023/2024 ``.mat`` volumes (see the module docstring).

    Args:
        evaluation_crop: use the challenge's evaluation crop as recon size (registered as
            ``"cmrxrecon_crop"``, only by name: ``reader="auto"`` picks the uncropped ``"cmrxrecon"``).
    """

    def __init__(self, evaluation_crop: bool = False) -> None:
        self.evaluation_crop = evaluation_crop
        self.name = "cmrxrecon_crop" if evaluation_crop else "cmrxrecon"

    @contextlib.contextmanager
    def open(self, path: str, slice_idx: int | None = None) -> Iterator[_Volume]:
        """Open the file and its companions (mask, fully sampled reference)."""
        check_file(path)
        volume = None
        try:
            volume = _Volume(path)
            yield volume
        finally:
            if volume is not None:
                volume.close()

    def detect(self, f: h5py.File) -> bool:
        """A MATLAB v7.3 file with a CMRxRecon k-space variable (not the cropping variant)."""
        return not self.evaluation_crop and is_matlab(f) and _is_volume(list(f.keys()))

    def detect_file(self, path: str) -> bool:
        """A MATLAB v5 file with a CMRxRecon k-space variable (not the cropping variant)."""
        return not self.evaluation_crop and _is_volume(_mat_names(path))

    def inspect(self, f: _Volume, path: str) -> VolumeInfo:
        """Check the k-space, mask and reference variables: complex, ranks, matching grids, binary mask.

        Raises:
            DataError: no k-space variable, a non-complex k-space, an unexpected rank, a mask or reference
                that does not match the k-space grid, a non-binary mask, or a missing mask of undersampled data.
        """
        handle, name = f.measurement
        shape = self._kspace_shape(handle, name)
        frames, slices, coils, w, h = shape
        if f.reference is not None:
            ref_shape = self._kspace_shape(*f.reference)
            if ref_shape != shape:
                raise DataError(
                    path, f"reference '{f.reference[1]}' in {f.reference[0].path} has shape {ref_shape}, "
                    f"expected {shape} like '{name}'"
                )
        mask_layout = None
        fraction = 1.0
        if f.mask is not None:
            mask_handle, mask_name = f.mask
            mshape = mask_handle.shape(mask_name)
            if mshape not in ((w, h), (frames, w, h)):
                raise DataError(
                    mask_handle.path, f"mask '{mask_name}' has MATLAB shape {tuple(reversed(mshape))}, expected "
                    f"({h}, {w}) or ({h}, {w}, {frames}) for k-space {name}"
                )
            values = mask_handle.read(mask_name)
            check_binary_mask(mask_handle.path, mask_name, values)
            mask_layout = "2d" if len(mshape) == 2 else "frame_2d"
            fraction = float(np.mean(np.any(values != 0, axis=-1)))
        recon = (_matlab_round(h / 3), _matlab_round(w / 2)) if self.evaluation_crop else (h, w)
        return VolumeInfo(
            file=path,
            format=self.name,
            num_slices=frames * slices,
            num_coils=coils,
            kspace_size=(h, w),
            encoding=default_encoding((h, w), recon),
            mask_layout=mask_layout,
            target_key=f.reference[1] if f.reference is not None else None,
            acquired_fraction=fraction,
        )

    @staticmethod
    def _kspace_shape(handle: MatFile, name: str) -> tuple[int, int, int, int, int]:
        """``(frames, slices, coils, ky, kx)`` of a k-space variable."""
        if not handle.is_complex(name):
            raise DataError(handle.path, f"'{name}' is not complex k-space (MATLAB complex, or real/imag compound)")
        shape = handle.shape(name)
        single = "single" in name
        if single and len(shape) == 4:  # (t, z, ky, kx)
            return shape[0], shape[1], 1, shape[2], shape[3]
        if not single and len(shape) == 5:  # (t, z, c, ky, kx)
            return shape  # type: ignore[return-value]
        if not single and len(shape) == 4:  # BlackBlood (z, c, ky, kx)
            return 1, shape[0], shape[1], shape[2], shape[3]
        raise DataError(
            handle.path,
            f"'{name}' has MATLAB shape {tuple(reversed(shape))}; expected (kx, ky, coils, slices, frames), "
            "(kx, ky, coils, slices) or single-coil (kx, ky, slices, frames)",
        )

    def _slice(self, handle: MatFile, name: str, slice_idx: int, slices: int) -> np.ndarray:
        """One (frame, slice) as complex64 ``(C, H=kx, W=ky)``."""
        t, z = divmod(slice_idx, slices)
        ndim = len(handle.shape(name))
        index = (t, z) if ndim == 5 or "single" in name else (z,)
        data = handle.read(name, index, slice_idx)
        if data.ndim == 2:
            data = data[None]
        check_finite(handle.path, name, data, slice_idx)
        return np.ascontiguousarray(data.transpose(0, 2, 1))

    def read_slice(self, f: _Volume, info: VolumeInfo, slice_idx: int) -> dict[str, Any]:
        """The measured (or fully sampled) k-space, its mask, and the reference's RSS."""
        slices = self._kspace_shape(*f.measurement)[1]
        kspace = self._slice(*f.measurement, slice_idx, slices)
        sample: dict[str, Any] = {Keys.KSPACE.value: to_tensor(kspace)}
        h, w = info.kspace_size
        if f.mask is not None:
            handle, name = f.mask
            frame = slice_idx // slices
            values = handle.read(name, (frame,) if info.mask_layout == "frame_2d" else (), slice_idx)
            sample[Keys.MASK.value] = torch.from_numpy(np.ascontiguousarray(values.T != 0)).reshape(1, h, w, 1)
        if f.reference is not None:
            same = f.reference == f.measurement
            reference = kspace if same else self._slice(*f.reference, slice_idx, slices)
            sample[Keys.TARGET.value] = rss_image(to_tensor(reference), info.recon_size)[None]
        return sample

