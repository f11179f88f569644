"""Per-volume outputs of inference: fastMRI-submission ``.h5``, ``.nii.gz`` and a PNG preview."""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import Any

import h5py
import numpy as np
from ignite.engine import Engine, Events

from pipeline.io.previews import save_volume_preview
from pipeline.keys import Keys

logger = logging.getLogger(__name__)


def write_volume(
    volume: np.ndarray, output_dir: str | Path, name: str, voxel_size_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> dict[str, Path]:
    """Write one reconstructed volume in every output format.

    Args:
        volume: ``(slices, Hr, Wr)`` magnitude, any float dtype (stored as float32).
        output_dir: folder for the files (created).
        name: output stem relative to ``output_dir``: the volume's identity without its suffix, e.g.
            ``"test_000"`` or ``"knee/file1000001"`` (sub-folders are created).
        voxel_size_mm: ``(row, column, slice)`` spacing for the NIfTI affine.

    Returns:
        ``{"h5": ..., "nifti": ..., "png": ...}`` paths. The ``.h5`` holds ``reconstruction`` float32
        ``(slices, Hr, Wr)``, the fastMRI submission layout.
    """
    import nibabel as nib

    output_dir = Path(output_dir)
    (output_dir / name).parent.mkdir(parents=True, exist_ok=True)
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3:
        raise ValueError(f"a volume must be (slices, H, W), got shape {volume.shape}")
    h5_path = output_dir / f"{name}.h5"
    tmp = h5_path.with_name(f".{h5_path.name}.tmp")
    with h5py.File(tmp, "w") as f:
        f.create_dataset("reconstruction", data=volume)
    tmp.replace(h5_path)
    # NIfTI axes (i, j, k) = (column, row, slice), flipped so viewers show the image upright
    affine = np.diag([voxel_size_mm[1], voxel_size_mm[0], voxel_size_mm[2], 1.0])
    nifti = nib.Nifti1Image(np.ascontiguousarray(volume.transpose(2, 1, 0)[:, ::-1]), affine)
    nifti_path = output_dir / f"{name}.nii.gz"
    nib.save(nifti, nifti_path)
    png_path = save_volume_preview(volume, output_dir / f"{name}.png", title=name)
    return {"h5": h5_path, "nifti": nifti_path, "png": png_path}


def output_stem(volume: str) -> str:
    """Where a volume's outputs go, relative to the output folder: its identity without the file suffix.

    The identity is the input's path relative to the data root, so the input's folder structure is kept
    and two inputs of the same name in different folders get two outputs; an absolute identity (a file
    outside the data root) keeps its folders below the output folder.

    >>> output_stem("knee/file1000001.h5"), output_stem("test_000.h5"), output_stem("/scratch/a/b.h5")
    ('knee/file1000001', 'test_000', 'scratch/a/b')
    """
    path = PurePosixPath(volume)
    return "/".join(part for part in path.with_name(path.stem).parts if part not in ("/", "..", "."))


class VolumeWriter:
    """Collect predicted slices per volume and write each volume as soon as all its slices are in.

    Attach to a :class:`~pipeline.engines.ReconstructionEvaluator`. Memory stays bounded by the volumes in
    flight, not the dataset. Volumes are told apart by ``Keys.VOLUME`` and written to
    ``output_dir / output_stem(volume)`` (``.h5``, ``.nii.gz``, ``.png``), keeping the inputs' folders.

    Args:
        output_dir: folder for the outputs.
        output_key: which prediction to write (``Keys.PRED`` or a baseline name).
    """

    def __init__(self, output_dir: str | Path, output_key: str = Keys.PRED) -> None:
        self.output_dir = Path(output_dir)
        self.output_key = str(output_key)
        self._pending: dict[str, dict[int, np.ndarray]] = {}
        self._expected: dict[str, int] = {}
        self.written: dict[str, dict[str, Path]] = {}

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._flush_incomplete)

    def _collect(self, engine: Engine) -> None:
        out: dict[str, Any] = engine.state.output
        preds = out[self.output_key].detach().cpu().numpy()
        for i in range(preds.shape[0]):
            name = output_stem(str(out[Keys.VOLUME][i]))
            self._pending.setdefault(name, {})[int(out[Keys.SLICE][i])] = preds[i, 0]
            self._expected[name] = int(out[Keys.NUM_SLICES][i])
            if len(self._pending[name]) == self._expected[name]:
                self._write(name)

    def _write(self, name: str) -> None:
        slices = self._pending.pop(name)
        volume = np.stack([slices[k] for k in sorted(slices)])
        self.written[name] = write_volume(volume, self.output_dir, name)
        logger.info(f"wrote {name}: {volume.shape[0]} slices -> {self.output_dir}")

    def _flush_incomplete(self, engine: Engine) -> None:
        for name in list(self._pending):
            logger.warning(
                f"{name}: only {len(self._pending[name])} of {self._expected[name]} slices were reconstructed; "
                "writing the partial volume"
            )
            self._write(name)
