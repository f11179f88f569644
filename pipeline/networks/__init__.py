"""Unrolled E2E-VarNet for JSSL (no training code): network, sensitivity model and U-Nets."""

from pipeline.networks.presets import VARNET_SIZES, build_varnet
from pipeline.networks.unet import NormUnet, Unet
from pipeline.networks.varnet import JSSLVarNet, SensitivityModel, VarNetCascade, VarNetOutput, acs_column_window

__all__ = [
    "JSSLVarNet",
    "NormUnet",
    "SensitivityModel",
    "Unet",
    "VarNetCascade",
    "VARNET_SIZES",
    "VarNetOutput",
    "acs_column_window",
    "build_varnet",
]
