"""Output writers: fastMRI-submission HDF5, NIfTI, PNG previews."""

from pipeline.io.previews import save_comparison_grid, save_volume_preview
from pipeline.io.writers import VolumeWriter, write_volume

__all__ = ["VolumeWriter", "save_comparison_grid", "save_volume_preview", "write_volume"]
