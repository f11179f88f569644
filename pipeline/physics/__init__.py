"""MRI physics: the complex-tensor convention, centred FFTs, coil combination and the multi-coil operator."""

from pipeline.physics.acs import acs_block, acs_columns, acs_slice, acs_start, centre_run
from pipeline.physics.coils import (
    center_crop,
    complex_center_crop,
    normalize_sens_maps,
    rss,
    rss_image,
    sense_expand,
    sense_reduce,
)
from pipeline.physics.complex import (
    check_complex,
    complex_abs,
    complex_abs_sq,
    complex_conj,
    complex_conj_mul,
    complex_mul,
    to_complex_numpy,
    to_tensor,
)
from pipeline.physics.fft import fft2_uncentred, fft2c, fftshift2, ifft2_uncentred, ifft2c, ifftshift2
from pipeline.physics.operators import NormalOperator, adjoint_operator, forward_operator

__all__ = [
    "NormalOperator",
    "acs_block",
    "acs_columns",
    "acs_slice",
    "acs_start",
    "centre_run",
    "normalize_sens_maps",
    "rss_image",
    "adjoint_operator",
    "forward_operator",
    "center_crop",
    "check_complex",
    "complex_center_crop",
    "complex_abs",
    "complex_abs_sq",
    "complex_conj",
    "complex_conj_mul",
    "complex_mul",
    "fft2_uncentred",
    "fft2c",
    "fftshift2",
    "ifft2_uncentred",
    "ifft2c",
    "ifftshift2",
    "rss",
    "sense_expand",
    "sense_reduce",
    "to_complex_numpy",
    "to_tensor",
]
