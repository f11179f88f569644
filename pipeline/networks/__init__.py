"""Unrolled reconstruction networks (no training code), their shared parts and the network registry."""

from pipeline.networks.output import ReconstructionOutput
from pipeline.networks.registry import NETWORKS, NetworkSpec, build_network, network_spec, register_network
from pipeline.networks.sensitivity import SensitivityModel, acs_column_window
from pipeline.networks.unet import NormUnet, PaddedUnet, Unet, compile_unets
from pipeline.networks.varnet import VARNET_SIZES, VarNet, VarNetBlock
from pipeline.networks.vsharp import VSHARP_SIZES, LagrangeMultipliersInitializer, VSharpBlock, VSharpNet

__all__ = [
    "NETWORKS",
    "LagrangeMultipliersInitializer",
    "NetworkSpec",
    "NormUnet",
    "PaddedUnet",
    "ReconstructionOutput",
    "SensitivityModel",
    "Unet",
    "VARNET_SIZES",
    "VarNet",
    "VarNetBlock",
    "VSHARP_SIZES",
    "VSharpBlock",
    "VSharpNet",
    "acs_column_window",
    "build_network",
    "compile_unets",
    "network_spec",
    "register_network",
]
