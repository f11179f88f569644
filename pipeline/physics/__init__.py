"""MRI physics: the complex-tensor convention, centred FFTs, coil combination and the multi-coil operator."""

from pipeline.physics.complex import (
    complex_abs,
    complex_abs_sq,
    complex_conj,
    complex_mul,
    check_complex,
    to_complex_numpy,
    to_tensor,
)
from pipeline.physics.coils import center_crop, complex_center_crop, rss, sense_expand, sense_reduce
from pipeline.physics.fft import fft2c, ifft2c
from pipeline.physics.operators import MultiCoilOperator

__all__ = [
    "MultiCoilOperator",
    "center_crop",
    "check_complex",
    "complex_center_crop",
    "complex_abs",
    "complex_abs_sq",
    "complex_conj",
    "complex_mul",
    "fft2c",
    "ifft2c",
    "rss",
    "sense_expand",
    "sense_reduce",
    "to_complex_numpy",
    "to_tensor",
]
