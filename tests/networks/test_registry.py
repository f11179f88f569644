"""The network registry: adding a network is one module plus one registry line, nothing else."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.engines import ConfigError, preflight
from pipeline.losses import JointLoss
from pipeline.networks import NETWORKS, ReconstructionOutput, VarNet, build_network, register_network
from pipeline.physics import rss_image


class ZeroFilledNet(nn.Module):
    """The smallest network honouring the contract: returns its input k-space (one learnable gain)."""

    def __init__(self, gain: float = 1.0, use_checkpoint: bool = False, return_iterates: bool = False) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(gain))
        self.use_checkpoint, self.return_iterates = use_checkpoint, return_iterates

    def forward(self, masked_kspace, mask, num_low_frequencies=None):
        kspace = masked_kspace * mask * self.gain
        iterates = [kspace] if self.return_iterates else []
        return ReconstructionOutput(kspace, rss_image(kspace), torch.ones_like(kspace), iterates)


@pytest.fixture
def registered():
    register_network("zero_filled_net", ZeroFilledNet, {"tiny": {"gain": 0.5}})
    yield
    NETWORKS.pop("zero_filled_net")


def test_builtin_sizes_and_unknown_names():
    assert isinstance(build_network("varnet", "tiny"), VarNet)
    with pytest.raises(ValueError, match=r"unknown network 'unet3d'; choose one of \['varnet', 'vsharp'\]"):
        build_network("unet3d")
    with pytest.raises(ValueError, match="unknown size 'huge' for network 'varnet'"):
        build_network("varnet", "huge")
    assert build_network("varnet", "tiny", use_checkpoint=True).use_checkpoint


def test_a_registered_network_works_everywhere_without_other_edits(registered, tiny_dataset):
    net = build_network("zero_filled_net", "tiny", return_iterates=True)
    assert float(net.gain) == 0.5
    mask = torch.ones(1, 1, 1, 8, 1)
    kspace = torch.randn(1, 2, 8, 8, 2)
    total, terms = JointLoss({"kspace_nmse": 1.0, "l1": 1.0}, cascade_weighting=True)(net(kspace, mask), kspace)
    assert total > 0 and set(terms) == {"kspace_nmse", "l1"}
    preflight("sl", tiny_dataset, network="zero_filled_net", network_size="tiny")
    with pytest.raises(ConfigError, match="unknown --network_size 'demo' for zero_filled_net"):
        preflight("sl", tiny_dataset, network="zero_filled_net", network_size="demo")
