"""JSSL losses: image-domain L1, SSIM, HFEN-L1/L2 and k-space NMSE/NMAE, one signature for SL and SSDU."""

from pipeline.losses.joint import IMAGE_TERMS, KSPACE_TERMS, REFERENCE_WEIGHTS, TERMS, JointLoss, iterate_weights
from pipeline.losses.terms import (
    hfen_loss,
    kspace_nmae,
    kspace_nmse,
    l1_image_loss,
    laplacian_of_gaussian_kernel,
    ssim_loss,
)

__all__ = [
    "IMAGE_TERMS",
    "KSPACE_TERMS",
    "REFERENCE_WEIGHTS",
    "TERMS",
    "JointLoss",
    "iterate_weights",
    "hfen_loss",
    "kspace_nmae",
    "kspace_nmse",
    "l1_image_loss",
    "laplacian_of_gaussian_kernel",
    "ssim_loss",
]
