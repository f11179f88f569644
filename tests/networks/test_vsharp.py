"""Tests of pipeline.networks.vsharp: the vSHARP network, its blocks, sizes and training with the JSSL trainer."""

import pytest
import torch
from ignite.engine import Events
from monai.data import DataLoader
from monai.transforms import Compose
from torch import nn

from pipeline.data import manifest_dataset
from pipeline.engines import ConfigError, InterleavedLoader, JSSLTrainer, branch_sections, preflight
from pipeline.keys import Keys
from pipeline.losses import JointLoss
from pipeline.networks import (
    NETWORKS,
    VSHARP_SIZES,
    LagrangeMultipliersInitializer,
    ReconstructionOutput,
    VSharpBlock,
    VSharpNet,
    acs_column_window,
    build_network,
)
from pipeline.physics import NormalOperator, adjoint_operator, complex_abs_sq, forward_operator, ifft2c, rss
from pipeline.transforms import ApplyMaskd, FixedKspaceMaskd, NormalizeKspaced, RandKspaceMaskd, RandSSDUSplitd

COILS, H, W = 3, 24, 20
SMALL = dict(
    num_steps=3, num_steps_dc_gd=2, chans=4, pools=2, sens_chans=4, sens_pools=2,
    initializer_channels=(4, 4, 8), initializer_dilations=(1, 2, 4),
)


def equispaced(acs=4, step=3, width=W):
    mask = torch.zeros(1, 1, 1, width, 1, dtype=torch.bool)
    start = (width - acs + 1) // 2
    mask[..., ::step, :] = True
    mask[..., start : start + acs, :] = True
    return mask


def kspace(batch=1, coils=COILS, h=H, w=W, seed=0):
    return torch.randn(batch, coils, h, w, 2, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def net():
    torch.manual_seed(0)
    return VSharpNet(**SMALL).eval()


# --------------------------------------------------------------------------------------------- outputs
def test_output_fields_and_image_is_rss_of_kspace(net):
    mask = equispaced()
    out = net(kspace() * mask, mask)
    assert isinstance(out, ReconstructionOutput)
    assert out.kspace.shape == (1, COILS, H, W, 2) and out.kspace.dtype == torch.float32
    assert out.sens_maps.shape == (1, COILS, H, W, 2)
    assert out.image.shape == (1, H, W)
    torch.testing.assert_close(out.image, rss(ifft2c(out.kspace)))
    assert out.kspace_iterates == []


def test_every_iterate_is_returned_when_asked(net):
    mask = equispaced()
    k = kspace() * mask
    out = net(k, mask, return_iterates=True)
    assert len(out.kspace_iterates) == SMALL["num_steps"]
    assert torch.equal(out.kspace_iterates[-1], out.kspace)
    assert not torch.equal(out.kspace_iterates[0], out.kspace)
    # each iterate is F S x_t of the step's image (no mask)
    images = net.image_iterates(k * mask, mask.float(), out.sens_maps, keep_all=True)
    for image, iterate in zip(images, out.kspace_iterates):
        torch.testing.assert_close(iterate, forward_operator(image, out.sens_maps))
    torch.manual_seed(0)
    by_default = VSharpNet(**SMALL, return_iterates=True).eval()
    assert len(by_default(k, mask).kspace_iterates) == SMALL["num_steps"]
    assert by_default(k, mask, return_iterates=False).kspace_iterates == []


def test_data_consistency_uses_only_the_input_mask(net):
    """SSDU: samples outside the input mask (Lambda) never reach the network."""
    gen = torch.Generator().manual_seed(1)
    mask = torch.rand(1, 1, H, W, 1, generator=gen) < 0.4
    mask[:, :, 10:14, 8:12, :] = True
    k = kspace()
    out = net(k * mask, mask)
    noisy = net(k * mask + kspace(seed=2) * ~mask, mask)
    torch.testing.assert_close(noisy.kspace, out.kspace)


def test_per_sample_masks_match_single_sample_runs(net):
    masks = torch.cat([equispaced(acs=4, step=3), equispaced(acs=6, step=4)])
    k = kspace(batch=2) * masks
    batched = net(k, masks)
    for i in range(2):
        alone = net(k[i : i + 1], masks[i : i + 1])
        torch.testing.assert_close(batched.kspace[i : i + 1], alone.kspace, rtol=1e-5, atol=1e-5)


def test_sensitivities_normalised_and_selectable(net):
    mask = equispaced()
    k = kspace() * mask
    sum_sq = complex_abs_sq(net(k, mask).sens_maps).sum(dim=1)
    torch.testing.assert_close(sum_sq, torch.ones_like(sum_sq), rtol=1e-5, atol=1e-5)
    acs_only = VSharpNet(**SMALL, sens_refinement=False).eval()
    assert sum(p.numel() for p in acs_only.sens_net.parameters()) == 0
    expected = ifft2c(k * acs_column_window(mask, None, 1))
    expected = expected / torch.linalg.vector_norm(expected, dim=(1, -1), keepdim=True)
    torch.testing.assert_close(acs_only(k, mask).sens_maps, expected, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------- algorithm
class _KeepX(nn.Module):
    """Denoiser returning its ``x`` channels, so ``z = x`` and the step is pure gradient descent."""

    def forward(self, x):
        return x[:, 2:4]


@pytest.mark.parametrize("num_steps_dc_gd, eta", [(1, 0.5), (1, 1.0), (3, 0.8), (3, 1.5)])
def test_data_consistency_step_lowers_the_data_residual(num_steps_dc_gd, eta):
    torch.manual_seed(0)
    mask = equispaced().float()
    sens = torch.randn(1, COILS, H, W, 2)
    sens = sens / torch.linalg.vector_norm(sens, dim=(1, -1), keepdim=True)
    y = kspace() * mask
    x = torch.randn(1, H, W, 2)
    block = VSharpBlock(_KeepX(), num_steps_dc_gd)
    u = torch.zeros_like(x)
    sense_image, normal = adjoint_operator(y, sens), NormalOperator(sens, mask)
    x_new, z, u_new = block(x, x, u, sense_image, normal, torch.tensor(0.3), torch.full((num_steps_dc_gd,), eta))

    def residual(image):
        return float((forward_operator(image, sens, mask) - y).norm())

    assert residual(x_new) < residual(x)
    torch.testing.assert_close(z, x)
    # one step by hand: x - eta A^H (A x - y)
    if num_steps_dc_gd == 1:
        torch.testing.assert_close(x_new, x - eta * adjoint_operator(forward_operator(x, sens, mask) - y, sens))
    torch.testing.assert_close(u_new, u + 0.3 * (x_new - z))


def test_first_image_is_sense_and_multiplier_initialiser_keeps_the_grid(net):
    init = LagrangeMultipliersInitializer((4, 8), (1, 3))
    assert init(torch.randn(2, 7, 5, 2)).shape == (2, 7, 5, 2)
    assert [m.padding for m in init.features if isinstance(m, nn.ReplicationPad2d)] == [(1, 1, 1, 1), (3, 3, 3, 3)]
    with pytest.raises(ValueError, match="initializer_channels and initializer_dilations"):
        LagrangeMultipliersInitializer((4, 8), (1,))
    with pytest.raises(ValueError, match=r"initializer_dilations\[1\]"):
        LagrangeMultipliersInitializer((4, 8), (1, 0))


def test_learned_parameters_follow_the_reference():
    torch.manual_seed(0)
    model = VSharpNet(**SMALL)
    assert model.rho.shape == (SMALL["num_steps"],) and model.learning_rate_eta.shape == (SMALL["num_steps_dc_gd"],)
    assert (model.rho >= 0).all() and (model.learning_rate_eta >= 0).all()
    assert len({id(b.denoiser) for b in model.blocks}) == SMALL["num_steps"]
    shared = VSharpNet(**SMALL, share_weights=True)
    assert len({id(b.denoiser) for b in shared.blocks}) == 1
    one = sum(p.numel() for p in model.blocks[0].parameters())
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(shared) == count(model) - (SMALL["num_steps"] - 1) * one


# --------------------------------------------------------------------------------------------- NaN safety
def test_all_zero_input_is_finite_in_forward_and_backward():
    torch.manual_seed(0)
    model = VSharpNet(**SMALL)
    mask = equispaced()
    out = model(torch.zeros(1, COILS, H, W, 2), mask, return_iterates=True)
    assert all(torch.isfinite(t).all() for t in (out.kspace, out.image, out.sens_maps, *out.kspace_iterates))
    (out.image.sum() + sum(k.abs().sum() for k in out.kspace_iterates)).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.rho.grad is not None and model.learning_rate_eta.grad is not None


# --------------------------------------------------------------------------------------------- training features
def test_checkpointing_gives_identical_gradients(monkeypatch):
    calls = []
    checkpoint = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", lambda *a, **kw: calls.append(kw) or checkpoint(*a, **kw))
    mask = equispaced()
    k = kspace() * mask
    grads, images = [], []
    for use_checkpoint in (False, True):
        torch.manual_seed(0)
        model = VSharpNet(**SMALL, use_checkpoint=use_checkpoint).train()
        out = model(k, mask, return_iterates=True)
        (out.image.square().mean() + sum(i.square().mean() for i in out.kspace_iterates)).backward()
        grads.append([p.grad for p in model.parameters()])
        images.append(out.image.detach())
    # float tolerance: the sensitivity U-Net runs at batch 1 per coil instead of one batch of all coils
    torch.testing.assert_close(images[1], images[0], rtol=1e-5, atol=1e-5)
    # the sensitivity U-Net coil by coil (COILS calls, batch 1) + one per unrolled step
    assert calls == [{"use_reentrant": False}] * (COILS + SMALL["num_steps"])
    for plain, checkpointed in zip(*grads):
        torch.testing.assert_close(checkpointed, plain, rtol=1e-4, atol=1e-6)


def test_autocast_bf16_keeps_outputs_float32(net):
    mask = equispaced()
    k = kspace() * mask
    reference = net(k, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(k, mask, return_iterates=True)
    for value in (out.kspace, out.image, out.sens_maps, *out.kspace_iterates):
        assert value.dtype == torch.float32 and torch.isfinite(value).all()
    error = (out.kspace - reference.kspace).norm() / reference.kspace.norm()
    assert 0 < error < 0.1  # the convolutions did run in bf16
    training = VSharpNet(**SMALL, use_checkpoint=True).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = training(k, mask).image.mean()
    loss.backward()  # recomputation under the same autocast state
    assert all(torch.isfinite(p.grad).all() for p in training.parameters())


@pytest.mark.parametrize("share_weights", [False, True])
def test_torchscript_matches_eager(share_weights):
    torch.manual_seed(0)
    model = VSharpNet(**SMALL, share_weights=share_weights).eval()
    scripted = torch.jit.script(model)
    masks = torch.cat([equispaced(acs=4, step=3), equispaced(acs=6, step=4)]).float()
    k = kspace(batch=2) * masks
    n = torch.tensor([0, 6])
    eager, script = model(k, masks, n, True), scripted(k, masks, n, True)
    for a, b in zip(eager[:3], script[:3]):
        torch.testing.assert_close(b, a)
    assert len(script.kspace_iterates) == SMALL["num_steps"]


# --------------------------------------------------------------------------------------------- configuration
def test_sizes_are_registered_and_validated():
    assert isinstance(build_network("vsharp", "tiny"), VSharpNet)
    assert set(VSHARP_SIZES) >= {"tiny", "demo", "paper"}
    with pytest.raises(ValueError, match=r"unknown network 'vsarp'; choose one of \[.*'varnet', 'vsharp'"):
        build_network("vsarp")
    for setting in ("num_steps", "num_steps_dc_gd", "chans", "pools", "sens_pools"):
        with pytest.raises(ValueError, match=f"^{setting} must be an integer >= 1, got 0"):
            VSharpNet(**{**SMALL, setting: 0})
    VSharpNet(**{**SMALL, "sens_pools": 0}, sens_refinement=False)  # no sensitivity U-Net, nothing to check
    net = VSharpNet(**SMALL)
    with pytest.raises(ValueError, match="3-D"):
        net(torch.zeros(1, COILS, H, W, 4, 2), equispaced())
    with pytest.raises(ValueError, match="mask"):
        net(kspace(), equispaced()[0])


def test_check_input_names_the_pool_depth_the_grid_cannot_take():
    VSharpNet.check_input((128, 72), **VSHARP_SIZES["paper"])
    with pytest.raises(ValueError, match=r"^pools=4 needs a k-space of at least 16 pixels per side, got \(128, 12\)"):
        VSharpNet.check_input((128, 12), **VSHARP_SIZES["paper"])
    with pytest.raises(ValueError, match="^sens_pools=5"):
        VSharpNet.check_input((24, 20), **{**VSHARP_SIZES["tiny"], "sens_pools": 5})
    with pytest.raises(ValueError, match="^num_steps must be"):
        VSharpNet.check_input((24, 20), **{**VSHARP_SIZES["tiny"], "num_steps": 0})


def test_preflight_runs_the_networks_input_check(tiny_dataset, monkeypatch):
    preflight("sl", tiny_dataset, network="vsharp", network_size="paper")  # k-space 128 x 72
    monkeypatch.setitem(NETWORKS["vsharp"].sizes, "deep", {**VSHARP_SIZES["tiny"], "pools": 7})
    with pytest.raises(ConfigError, match=r"^error: --network_size deep of vsharp: pools=7 needs a k-space of at "
                                          r"least 128 pixels per side, got \(128, 72\)$"):
        preflight("sl", tiny_dataset, network="vsharp", network_size="deep")


def test_paper_size_parameter_count():
    with torch.device("meta"):  # no memory, no forward at this size
        model = build_network("vsharp", "paper")
    total = sum(p.numel() for p in model.parameters())
    sens = sum(p.numel() for p in model.sens_net.parameters())
    assert len(model.blocks) == 12 and model.blocks[0].num_steps_dc_gd == 10
    assert model.blocks[0].denoiser.unet.down[0][0].out_channels == 32 and len(model.blocks[0].denoiser.unet.down) == 4
    assert abs((total - sens) / 93.2e6 - 1) < 0.01  # JSSL paper / DIRECT vSHARP: 93.2 M with the initialiser
    assert 1.9e6 < sens < 2.0e6  # DIRECT's JSSL configs: 16-filter, 4-pool sensitivity U-Net


# --------------------------------------------------------------------------------------------- training
def _loaders(manifest, mode):
    sl = Compose([RandKspaceMaskd(mask_type="equispaced"), ApplyMaskd(), NormalizeKspaced()])
    ssl = Compose([FixedKspaceMaskd(), RandSSDUSplitd(q=0.4),
                   NormalizeKspaced(source_key=Keys.KSPACE, source_mask_key=Keys.MASK)])
    transforms = {"sl": sl, "ssl": ssl}
    return {
        branch: DataLoader(manifest_dataset(manifest, section, transforms[branch]), batch_size=2, shuffle=True)
        for branch, section in branch_sections(mode).items()
    }


@pytest.mark.parametrize("mode", ["sl", "ssl"])
def test_trains_with_the_jssl_trainer_and_deep_supervision(tiny_dataset, mode):
    torch.manual_seed(0)
    network = build_network("vsharp", "tiny", return_iterates=True)
    before = [p.detach().clone() for p in network.parameters()]
    weights = {"sl": {"l1": 1.0, "ssim": 1.0, "kspace_nmae": 1.0}, "ssl": {"kspace_nmae": 1.0, "kspace_nmse": 1.0}}
    trainer = JSSLTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=InterleavedLoader(_loaders(tiny_dataset, mode), mode=mode, epoch_length=3),
        network=network,
        optimizer=torch.optim.Adam(network.parameters(), lr=1e-3),
        losses={b: JointLoss(w, cascade_weighting=True) for b, w in weights.items()},
    )
    outputs = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(dict(e.state.output)))
    trainer.run()
    assert trainer.state.iteration == 3
    assert all(torch.isfinite(torch.tensor(o["loss"])) and o["loss"] > 0 for o in outputs)
    assert {k for o in outputs for k in o if k.startswith("loss_")} == {f"loss_{mode}"}
    changed = [not torch.equal(a, b) for a, b in zip(before, network.parameters())]
    assert all(changed[-2:])  # the step sizes and the penalties learn
