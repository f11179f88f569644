"""Output writers: fastMRI-submission HDF5, NIfTI, PNG previews; atomic file and folder updates."""

from pipeline.io.atomic import replace_folder, write_atomic
from pipeline.io.previews import save_comparison_grid, save_volume_preview
from pipeline.io.writers import VolumeWriter, write_volume

__all__ = [
    "VolumeWriter", "replace_folder", "save_comparison_grid", "save_volume_preview", "write_atomic", "write_volume",
]
