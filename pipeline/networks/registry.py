"""The network registry: a network is a name, a builder and its named sizes.

The bundle, the start-up check, export and the benchmarks look networks up here, so adding a network
is one new module plus one :func:`register_network` line below::

    register_network("varnet", VarNet, VARNET_SIZES)
register_network("vsharp", VSharpNet, VSHARP_SIZES)

Every registered network takes ``(masked_kspace, mask, num_low_frequencies)`` and returns a
:class:`~pipeline.networks.output.ReconstructionOutput`, and its builder accepts ``use_checkpoint``
(gradient checkpointing per unrolled step) and ``return_iterates`` (deep supervision).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from pipeline.networks.varnet import VARNET_SIZES, VarNet
from pipeline.networks.vsharp import VSHARP_SIZES, VSharpNet


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """A registered network.

    Attributes:
        builder: called with the size's arguments and any overrides; returns the ``nn.Module``.
        sizes: size name -> builder arguments (e.g. ``"tiny"``, ``"demo"``, ``"fastmri"``).
    """

    builder: Callable[..., nn.Module]
    sizes: Mapping[str, Mapping[str, Any]]


NETWORKS: dict[str, NetworkSpec] = {}


def register_network(name: str, builder: Callable[..., nn.Module], sizes: Mapping[str, Mapping[str, Any]]) -> None:
    """Add a network under ``name`` (replacing any earlier entry of that name)."""
    NETWORKS[name] = NetworkSpec(builder, dict(sizes))


def network_spec(name: str) -> NetworkSpec:
    """The :class:`NetworkSpec` of ``name``.

    Raises:
        ValueError: for an unknown name (the message lists the registered ones).
    """
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose one of {sorted(NETWORKS)}")
    return NETWORKS[name]


def build_network(name: str = "varnet", size: str = "demo", **overrides: Any) -> nn.Module:
    """Build network ``name`` of a named ``size``, with any builder argument overridden.

    Raises:
        ValueError: for an unknown network or size (the message lists the valid ones).

    Example:
        >>> net = build_network("varnet", "tiny")
        >>> type(net).__name__, net.use_checkpoint
        ('VarNet', False)
    """
    spec = network_spec(name)
    if size not in spec.sizes:
        raise ValueError(f"unknown size {size!r} for network {name!r}; choose one of {sorted(spec.sizes)}")
    return spec.builder(**{**spec.sizes[size], **overrides})


register_network("varnet", VarNet, VARNET_SIZES)
register_network("vsharp", VSharpNet, VSHARP_SIZES)
