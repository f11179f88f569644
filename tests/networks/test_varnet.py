"""Tests of pipeline.networks.varnet, including every MONAI VariationalNetworkModel limitation it fixes."""

import pytest
import torch
from monai.apps.reconstruction.networks.nets.coil_sensitivity_model import CoilSensitivityModel
from monai.apps.reconstruction.networks.nets.complex_unet import ComplexUnet
from monai.apps.reconstruction.networks.nets.varnet import VariationalNetworkModel

from pipeline.networks import ReconstructionOutput, SensitivityModel, VarNet, acs_column_window, compile_unets
from pipeline.physics import complex_abs_sq, ifft2c, rss

COILS, H, W = 3, 32, 32  # MONAI's BasicUNet needs >= 32 (four poolings, instance norm)
SMALL = dict(num_cascades=2, chans=4, pools=2, sens_chans=4, sens_pools=2)


def column_mask(columns, width=W, batch=1):
    """Bool ``(batch, 1, 1, width, 1)`` mask sampling the given columns."""
    mask = torch.zeros(batch, 1, 1, width, 1, dtype=torch.bool)
    mask[:, :, :, list(columns), :] = True
    return mask


def equispaced(acs=4, step=4, width=W):
    start = (width - acs + 1) // 2
    return column_mask(sorted(set(range(0, width, step)) | set(range(start, start + acs))), width)


def kspace(batch=1, coils=COILS, h=H, w=W, seed=0):
    return torch.randn(batch, coils, h, w, 2, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def net():
    torch.manual_seed(0)
    return VarNet(**SMALL).eval()


def monai_model():
    torch.manual_seed(0)
    features = (4, 8, 16, 32, 64, 4)
    return VariationalNetworkModel(
        CoilSensitivityModel(spatial_dims=2, features=features), ComplexUnet(spatial_dims=2, features=features), 2
    ).eval()


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


def test_cascade_outputs_on_request(net):
    mask = equispaced()
    out = net(kspace() * mask, mask, return_iterates=True)
    assert len(out.kspace_iterates) == SMALL["num_cascades"]
    assert torch.equal(out.kspace_iterates[-1], out.kspace)
    assert not torch.equal(out.kspace_iterates[0], out.kspace)
    torch.manual_seed(0)
    by_default = VarNet(**SMALL, return_iterates=True).eval()
    assert len(by_default(kspace() * mask, mask).kspace_iterates) == SMALL["num_cascades"]
    assert by_default(kspace() * mask, mask, return_iterates=False).kspace_iterates == []


def test_cascades_follow_the_centred_definition(net):
    """The cascades run on uncentred k-space; each one equals ``k - w M (k - y) - F S R(S^H F^H k)`` written
    with the centred operators."""
    from pipeline.physics import adjoint_operator, forward_operator

    mask = equispaced().float()
    y = kspace() * mask
    out = net(y, mask, return_iterates=True)
    k = y
    for cascade, iterate in zip(net.cascades, out.kspace_iterates):
        refined = cascade.regulariser(adjoint_operator(k, out.sens_maps))
        k = k - (k - y) * mask * cascade.dc_weight - forward_operator(refined, out.sens_maps)
        torch.testing.assert_close(iterate, k, rtol=1e-5, atol=1e-5)


def test_monai_returns_only_the_image():
    mask = equispaced()
    out = monai_model()(kspace() * mask, mask)
    assert isinstance(out, torch.Tensor) and out.shape == (1, H, W)


# --------------------------------------------------------------------------------------------- masks
def test_float_mask_equals_bool_mask_and_monai_crashes(net):
    mask = equispaced()
    k = kspace() * mask
    torch.testing.assert_close(net(k, mask.float()).kspace, net(k, mask).kspace)
    with pytest.raises(RuntimeError):
        monai_model()(k, mask.float())


def test_per_sample_masks_match_single_sample_runs(net):
    masks = torch.cat([equispaced(acs=4, step=4), equispaced(acs=6, step=3)])  # (2, 1, 1, W, 1)
    k = kspace(batch=2) * masks
    batched = net(k, masks)
    for i in range(2):
        alone = net(k[i : i + 1], masks[i : i + 1])
        torch.testing.assert_close(batched.kspace[i : i + 1], alone.kspace, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(batched.sens_maps[i : i + 1], alone.sens_maps, rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="ambiguous"):
        monai_model()(k, masks)


def test_point_mask_output_ignores_unsampled_input(net):
    gen = torch.Generator().manual_seed(1)
    mask = torch.rand(1, 1, H, W, 1, generator=gen) < 0.4
    mask[:, :, 14:18, 14:18, :] = True  # SSDU keeps a central block in Theta
    k = kspace()
    out = net(k * mask, mask)
    out_noise_outside = net(k * mask + kspace(seed=2) * ~mask, mask)
    assert torch.isfinite(out.kspace).all()
    torch.testing.assert_close(out.kspace, out_noise_outside.kspace)
    with pytest.raises(RuntimeError, match="ambiguous"):
        monai_model()(k * mask, mask)


def test_fully_sampled_mask(net):
    mask = torch.ones(1, 1, 1, W, 1, dtype=torch.bool)
    out = net(kspace(), mask)
    assert torch.isfinite(out.kspace).all()
    assert acs_column_window(mask, None, 1).all()
    with pytest.raises(IndexError):
        monai_model()(kspace(), mask)


# --------------------------------------------------------------------------------------------- ACS
def test_acs_detection_is_per_sample_and_enlarged_by_adjacent_lines():
    masks = torch.cat([column_mask(c, width=16) for c in (range(6, 10), [0, 5, 6, 7, 8, 9, 12], [3, 9, 12])])
    window = acs_column_window(masks, None, 3)[:, 0, 0, :, 0]
    assert window.shape == (3, 16) and window.dtype == torch.float32
    assert window[0].nonzero().flatten().tolist() == [6, 7, 8, 9]
    assert window[1].nonzero().flatten().tolist() == [5, 6, 7, 8, 9]  # adjacent line 5 joins the ACS
    assert window[2].nonzero().flatten().tolist() == list(range(16))  # centre not sampled: every column


def test_acs_header_value_wins_and_zero_means_detect():
    masks = torch.cat([column_mask([0, 5, 6, 7, 8, 9, 12], width=16)] * 2)
    window = acs_column_window(masks, torch.tensor([4, 0]), 2)[:, 0, 0, :, 0]
    assert window[0].nonzero().flatten().tolist() == [6, 7, 8, 9]  # start (16 - 4 + 1) // 2 = 6
    assert window[1].nonzero().flatten().tolist() == [5, 6, 7, 8, 9]


def test_acs_of_point_mask_uses_columns_with_any_sample():
    mask = torch.zeros(1, 1, 16, 16, 1, dtype=torch.bool)
    mask[:, :, 3, 6:10, :] = True
    mask[:, :, 12, 10, :] = True
    window = acs_column_window(mask, None, 1)[0, 0, 0, :, 0]
    assert window.nonzero().flatten().tolist() == [6, 7, 8, 9, 10]


def test_explicit_low_frequencies_restrict_the_sensitivity_estimate():
    torch.manual_seed(0)
    model = SensitivityModel(chans=4, pools=2).eval()
    mask = equispaced(acs=6, step=2)
    k = kspace() * mask
    n = torch.tensor([4])
    window = acs_column_window(mask, n, 1)
    torch.testing.assert_close(model(k, mask, n), model(k * window, mask, n))
    assert not torch.allclose(model(k, mask, n), model(k, mask))


def test_sensitivities_are_normalised_as_complex_numbers(net):
    mask = equispaced()
    k = kspace() * mask
    sum_sq = complex_abs_sq(net(k, mask).sens_maps).sum(dim=1)
    torch.testing.assert_close(sum_sq, torch.ones_like(sum_sq), rtol=1e-5, atol=1e-5)
    monai_maps = monai_model().coil_sensitivity_model(k, mask)
    monai_sum_sq = complex_abs_sq(monai_maps).sum(dim=1)
    torch.testing.assert_close(monai_sum_sq, torch.full_like(monai_sum_sq, 2.0))  # MONAI: 2, not 1


# --------------------------------------------------------------------------------------------- NaN safety
def test_no_centre_lines_gives_finite_output_where_monai_gives_nan(net):
    mask = column_mask([0, 3, 11, 14, 19, 22, 27])
    k = kspace() * mask
    assert torch.isfinite(net(k, mask).kspace).all()
    assert torch.isnan(monai_model()(k, mask)).any()


def test_all_zero_input_is_finite_in_forward_and_backward():
    torch.manual_seed(0)
    model = VarNet(**SMALL)
    mask = equispaced()
    out = model(torch.zeros(1, COILS, H, W, 2), mask)
    assert all(torch.isfinite(t).all() for t in (out.kspace, out.image, out.sens_maps))
    (out.image.sum() + out.kspace.abs().sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


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
        model = VarNet(**SMALL, use_checkpoint=use_checkpoint).train()
        image = model(k, mask).image
        image.square().mean().backward()
        grads.append([p.grad for p in model.parameters()])
        images.append(image.detach())
    # float tolerance: the sensitivity U-Net runs at batch 1 per coil instead of one batch of all coils
    torch.testing.assert_close(images[1], images[0], rtol=1e-5, atol=1e-5)
    # the sensitivity U-Net coil by coil (COILS calls, batch 1) + one per unrolled step
    assert calls == [{"use_reentrant": False}] * (COILS + SMALL["num_cascades"])
    for plain, checkpointed in zip(*grads):
        torch.testing.assert_close(checkpointed, plain, rtol=1e-4, atol=1e-6)


def compiled_unets_match_eager_and_compile_once() -> None:
    import torch._dynamo

    torch.manual_seed(0)
    eager = VarNet(**SMALL).train()
    compiled = VarNet(**SMALL).train()
    compile_unets(compiled.cascades)
    compiled.load_state_dict(eager.state_dict())  # compiling leaves the parameter names as they are
    mask = equispaced()
    k = kspace() * mask
    results = []
    for model in (eager, compiled):
        image = model(k, mask).image
        image.square().mean().backward()
        results.append((image.detach(), [p.grad for p in model.parameters()]))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-5)
    for got, want in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    assert compile_unets(eager, enable=False) is eager and eager._compiled_call_impl is None


@pytest.mark.slow
def test_compiled_unets_match_eager_and_compile_once(fresh_process):
    """``compile_unets``: same outputs and gradients as eager; the cascades' U-Nets share one compiled graph.

    Only the cascades are compiled here: the sensitivity U-Net (whose input needs no gradient) is a second
    graph and would double the test's compile time (155 s for both on the shared 2-core machine). In a fresh
    process, as every ``torch.compile`` of the tests (see ``tests/conftest.py``).
    """
    fresh_process(compiled_unets_match_eager_and_compile_once)


def compiled_modules_of_the_bundle_model() -> set[str]:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config("bundles/jssl_varnet/configs/train.json")
    assert parser["compile"] is False  # default off
    parser["network_size"], parser["compile"] = "tiny", True
    model = parser.get_parsed_content("model")
    return {name for name, m in model.named_modules() if m._compiled_call_impl is not None}


def test_bundle_compile_setting_compiles_every_unet_only(fresh_process):
    compiled = fresh_process(compiled_modules_of_the_bundle_model)
    assert compiled == {"sens_net.norm_unet", "cascades.0.regulariser", "cascades.1.regulariser"}


def test_autocast_bf16_keeps_kspace_float32(net):
    mask = equispaced()
    k = kspace() * mask
    reference = net(k, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(k, mask)
    for name in ("kspace", "image", "sens_maps"):
        value = getattr(out, name)
        assert value.dtype == torch.float32 and torch.isfinite(value).all(), name
    error = (out.kspace - reference.kspace).norm() / reference.kspace.norm()
    assert 0 < error < 0.05  # the U-Nets did run in bf16, and only they


def test_share_weights():
    torch.manual_seed(0)
    shared = VarNet(**SMALL, share_weights=True)
    independent = VarNet(**SMALL)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    one_cascade = count(independent.cascades[0])
    assert count(shared) == count(independent) - (SMALL["num_cascades"] - 1) * one_cascade
    assert shared.cascades[0] is shared.cascades[1]
    mask = equispaced()
    assert torch.isfinite(shared(kspace() * mask, mask).kspace).all()


@pytest.mark.parametrize("share_weights", [False, True])
def test_torchscript_matches_eager(share_weights):
    torch.manual_seed(0)
    model = VarNet(**SMALL, share_weights=share_weights).eval()
    scripted = torch.jit.script(model)
    masks = torch.cat([equispaced(acs=4, step=4), equispaced(acs=6, step=3)]).float()
    k = kspace(batch=2) * masks
    n = torch.tensor([0, 6])
    eager, script = model(k, masks, n, True), scripted(k, masks, n, True)
    for a, b in zip(eager[:3], script[:3]):
        torch.testing.assert_close(b, a)
    assert len(script.kspace_iterates) == SMALL["num_cascades"]


# --------------------------------------------------------------------------------------------- configuration
def test_validation_errors(net):
    mask = equispaced()
    with pytest.raises(ValueError, match="num_cascades"):
        VarNet(num_cascades=0)
    with pytest.raises(ValueError, match="3-D"):
        net(torch.zeros(1, COILS, H, W, 4, 2), mask)
    with pytest.raises(ValueError, match="mask"):
        net(kspace(), mask[0])


def test_fastmri_configuration_by_arguments_alone():
    model = VarNet(num_cascades=12, chans=18, pools=4, sens_chans=8, sens_pools=4).eval()
    assert 29.5e6 < sum(p.numel() for p in model.parameters()) < 30.5e6  # fastMRI E2E-VarNet: 29.9 M
    mask = column_mask(list(range(0, 36, 4)) + list(range(16, 20)), width=36)
    with torch.no_grad():
        out = model(kspace(coils=15, h=40, w=36) * mask, mask)  # 40 x 36: padded to 48 x 48 inside
    assert out.kspace.shape == (1, 15, 40, 36, 2) and torch.isfinite(out.image).all()


@pytest.mark.slow
def test_fastmri_size_forward():
    torch.manual_seed(0)
    model = VarNet(num_cascades=12, chans=18, pools=4, sens_chans=8, sens_pools=4).eval()
    mask = column_mask(list(range(0, 368, 4)) + list(range(169, 199)), width=368)
    with torch.no_grad():
        out = model(kspace(coils=15, h=640, w=368) * mask, mask)
    assert out.image.shape == (1, 640, 368) and torch.isfinite(out.image).all()


@pytest.mark.parametrize("coil_batch", [1, 2, 4])
def test_sensitivity_coil_batches_give_the_all_coils_outputs_and_gradients(coil_batch):
    """Chunks of coils (last one short at 2 of 2x3 coil images; 4 > 3 coils per sample) = one batch of all."""
    results = []
    for batch in (0, coil_batch):
        torch.manual_seed(0)
        model = SensitivityModel(chans=4, pools=2, coil_batch=batch).train()
        k = kspace(batch=2).requires_grad_(True)
        mask = equispaced()
        maps = model(k * mask, mask)
        (maps * torch.linspace(-1, 1, W).view(1, 1, 1, W, 1)).sum().backward()  # non-trivial upstream gradient
        results.append((maps.detach(), k.grad, [p.grad for p in model.parameters()]))
    (maps0, kgrad0, pgrads0), (maps1, kgrad1, pgrads1) = results
    assert maps0.abs().sum() > 0
    torch.testing.assert_close(maps1, maps0, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(kgrad1, kgrad0, rtol=1e-4, atol=1e-5)
    assert len(pgrads1) == len(pgrads0) > 0
    for chunked, plain in zip(pgrads1, pgrads0):  # sums over 6 coil images in another order: float32 rounding
        torch.testing.assert_close(chunked, plain, rtol=1e-3, atol=1e-5 * plain.abs().max().item())


def test_sensitivity_coil_batch_must_not_be_negative():
    with pytest.raises(ValueError, match="coil_batch must be >= 0"):
        SensitivityModel(chans=4, pools=2, coil_batch=-1)


def test_sensitivity_default_coil_batch_is_one_coil_per_call_on_large_grids():
    """``coil_batch=None``: one U-Net call per coil image from PER_COIL_PIXELS pixels on, else one call."""
    model = SensitivityModel(chans=4, pools=2).eval()
    batch_sizes = []
    model.norm_unet.register_forward_pre_hook(lambda module, args: batch_sizes.append(args[0].shape[0]))
    mask = equispaced()
    model(kspace() * mask, mask)
    assert model.per_coil_pixels > H * W  # the package's threshold: 32x32 runs all coils in one call
    model.per_coil_pixels = H * W
    model(kspace() * mask, mask)
    assert batch_sizes == [COILS] + [1] * COILS
