"""Unrolled reconstruction networks (no training code), their shared parts and the network registry."""

from pipeline.networks.output import ReconstructionOutput
from pipeline.networks.registry import NETWORKS, NetworkSpec, build_network, network_spec, register_network
from pipeline.networks.sensitivity import SensitivityModel, acs_column_window
from pipeline.networks.unet import NormUnet, Unet
from pipeline.networks.varnet import VARNET_SIZES, VarNet, VarNetBlock

__all__ = [
    "NETWORKS",
    "NetworkSpec",
    "NormUnet",
    "ReconstructionOutput",
    "SensitivityModel",
    "Unet",
    "VARNET_SIZES",
    "VarNet",
    "VarNetBlock",
    "acs_column_window",
    "build_network",
    "network_spec",
    "register_network",
]
