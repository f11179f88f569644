"""fastMRI-exact NMSE / PSNR / SSIM (functions on numpy or torch volumes) and Ignite volume metrics."""

from pipeline.metrics.functional import METRIC_NAMES, nmse, psnr, ssim, ssim_slices, volume_metrics
from pipeline.metrics.handlers import VolumeMetrics, aggregate_volumes, method_metrics, volume_output_transform

__all__ = [
    "METRIC_NAMES",
    "VolumeMetrics",
    "aggregate_volumes",
    "method_metrics",
    "nmse",
    "psnr",
    "ssim",
    "ssim_slices",
    "volume_metrics",
    "volume_output_transform",
]
