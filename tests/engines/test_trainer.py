"""The JSSL trainer on real simulated files, real transforms and a tiny network."""

import pytest
import torch
from ignite.engine import Events
from monai.data import DataLoader
from monai.transforms import Compose

from pipeline.data import manifest_dataset
from pipeline.engines import InterleavedLoader, JSSLTrainer, branch_sections
from pipeline.keys import Keys
from pipeline.losses import JointLoss
from pipeline.networks import build_network
from pipeline.transforms import ApplyMaskd, FixedKspaceMaskd, NormalizeKspaced, RandKspaceMaskd, RandSSDUSplitd

SL_WEIGHTS = {"l1": 1.0, "ssim": 1.0, "kspace_nmae": 1.0}
SSL_WEIGHTS = {"kspace_nmae": 1.0, "kspace_nmse": 1.0}


def _loaders(manifest, mode):
    sl = Compose([RandKspaceMaskd(mask_type="equispaced"), ApplyMaskd(), NormalizeKspaced()])
    normalize = NormalizeKspaced(source_key=Keys.KSPACE, source_mask_key=Keys.MASK)
    ssl = Compose([FixedKspaceMaskd(), RandSSDUSplitd(q=0.4), normalize])
    sections = branch_sections(mode)
    transforms = {"sl": sl, "ssl": ssl}
    return {
        branch: DataLoader(manifest_dataset(manifest, section, transforms[branch]), batch_size=2, shuffle=True)
        for branch, section in sections.items()
    }


class _Spy(torch.nn.Module):
    """Records what the network sees, then runs the real network."""

    def __init__(self):
        super().__init__()
        self.net = build_network("varnet", "tiny")
        self.calls = []

    def forward(self, kspace, mask, nlf=None):
        self.calls.append((kspace.detach().clone(), mask.detach().clone()))
        return self.net(kspace, mask, nlf)


def _trainer(manifest, mode, network, iterations=4):
    loader = InterleavedLoader(_loaders(manifest, mode), mode=mode, epoch_length=iterations)
    return JSSLTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=loader,
        network=network,
        optimizer=torch.optim.Adam(network.parameters(), lr=1e-3),
        losses={"sl": JointLoss(SL_WEIGHTS), "ssl": JointLoss(SSL_WEIGHTS)},
    )


@pytest.mark.parametrize("mode", ["sl", "ssl", "jssl", "sl_target"])
def test_each_mode_trains_with_finite_losses(tiny_dataset, mode):
    network = build_network("varnet", "tiny")
    before = [p.detach().clone() for p in network.parameters()]
    trainer = _trainer(tiny_dataset, mode, network)
    outputs = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(dict(e.state.output)))
    trainer.run()
    assert trainer.state.iteration == 4
    assert all(torch.isfinite(torch.tensor(o["loss"])) for o in outputs)
    branches = {k for o in outputs for k in o if k.startswith("loss_")}
    expected = {"sl": {"loss_sl"}, "ssl": {"loss_ssl"}, "jssl": {"loss_sl", "loss_ssl"}, "sl_target": {"loss_sl"}}[mode]
    assert branches == expected
    assert any(not torch.equal(a, b) for a, b in zip(before, network.parameters()))
    # every step reports the global gradient norm of its own branch, before clipping
    for o in outputs:
        branch = next(k[5:] for k in o if k.startswith("loss_"))
        assert o[f"{branch}/grad_norm"] > 0.0 and torch.isfinite(torch.tensor(o[f"{branch}/grad_norm"]))


def test_ssl_step_never_feeds_lambda_kspace_to_the_network(tiny_dataset):
    spy = _Spy()
    trainer = _trainer(tiny_dataset, "ssl", spy, iterations=3)
    batches = []
    trainer.add_event_handler(Events.ITERATION_STARTED, lambda e: batches.append(e.state.batch))
    trainer.run()
    assert len(spy.calls) == 3
    for (kspace_in, mask_in), batch in zip(spy.calls, batches):
        lam = batch[Keys.LOSS_MASK]
        assert lam.any(), "the loss set must not be empty"
        assert not (mask_in & lam).any()
        assert float((kspace_in * lam).abs().max()) == 0.0
        # Lambda holds measured data, which the loss does see
        assert float((batch[Keys.KSPACE] * lam).abs().max()) > 0.0


def test_trainer_refuses_a_leaking_ssl_batch(tiny_dataset):
    network = build_network("varnet", "tiny")
    trainer = _trainer(tiny_dataset, "ssl", network, iterations=1)

    def leak(engine):  # put the measured Lambda k-space into the input, as a buggy pipeline would
        batch = engine.state.batch
        batch[Keys.MASKED_KSPACE] = batch[Keys.KSPACE].clone()

    trainer.add_event_handler(Events.ITERATION_STARTED, leak)
    with pytest.raises(RuntimeError, match="non-zero on the SSDU loss set"):
        trainer.run()


def test_branch_weights_scale_the_loss(tiny_dataset):
    network = build_network("varnet", "tiny")
    trainer = _trainer(tiny_dataset, "sl", network, iterations=1)
    trainer.branch_weights["sl"] = 0.0
    trainer.run()
    assert trainer.state.output["loss"] == 0.0 and trainer.state.output["loss_sl"] > 0.0
    assert trainer.state.output["sl/grad_norm"] == 0.0


def test_bad_precision_and_weights_fail_at_construction(tiny_dataset):
    network = build_network("varnet", "tiny")
    kwargs = dict(device="cpu", max_epochs=1, train_data_loader=[{}], network=network,
                  optimizer=torch.optim.Adam(network.parameters()), losses={"sl": JointLoss(SL_WEIGHTS)})
    with pytest.raises(ValueError, match="precision"):
        JSSLTrainer(**kwargs, precision="fp8")
    with pytest.raises(ValueError, match="fp16"):
        JSSLTrainer(**kwargs, precision="fp16")
    with pytest.raises(ValueError, match="branch weight"):
        JSSLTrainer(**kwargs, branch_weights={"sl": -1.0})


def test_blank_slices_keep_every_parameter_finite(tiny_dataset):
    """All-zero k-space and reference (padded series): two supervised steps leave the weights finite."""
    network = build_network("varnet", "tiny")
    trainer = _trainer(tiny_dataset, "sl", network, iterations=2)

    def blank(engine):
        for key in (Keys.KSPACE, Keys.MASKED_KSPACE, Keys.TARGET):
            engine.state.batch[key] = torch.zeros_like(engine.state.batch[key])

    trainer.add_event_handler(Events.ITERATION_STARTED, blank)
    trainer.run()
    assert trainer.state.skipped_steps == 0 and trainer.state_dict()["skipped_steps"] == 0
    assert all(torch.isfinite(p).all() for p in network.parameters())


class _NaNAfter(torch.nn.Module):
    """The tiny network, whose output turns NaN (so do its gradients) on the calls listed."""

    def __init__(self, bad_calls):
        super().__init__()
        self.net, self.bad_calls, self.calls = build_network("varnet", "tiny"), set(bad_calls), 0

    def forward(self, kspace, mask, nlf=None):
        self.calls += 1
        out = self.net(kspace, mask, nlf)
        if self.calls in self.bad_calls:
            return out._replace(kspace=out.kspace * float("nan"), image=out.image * float("nan"))
        return out


def test_a_non_finite_step_is_skipped_counted_and_logged(tiny_dataset):
    network = _NaNAfter(bad_calls={2})
    trainer = _trainer(tiny_dataset, "sl", network, iterations=3)
    weights = {}
    outputs = []
    trainer.add_event_handler(Events.ITERATION_STARTED(once=2), lambda e: weights.update(
        {n: p.detach().clone() for n, p in network.named_parameters()}))
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(dict(e.state.output)))
    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=2), lambda e: weights.update(
        {"unchanged": all(torch.equal(p, weights[n]) for n, p in network.named_parameters())}))
    trainer.run()
    assert weights["unchanged"]  # the bad step did not touch the weights
    assert [o["skipped_steps"] for o in outputs] == [0.0, 1.0, 1.0]
    assert all(torch.isfinite(p).all() for p in network.parameters())


def test_consecutive_non_finite_steps_stop_naming_the_slices(tiny_dataset):
    network = _NaNAfter(bad_calls={1, 2, 3})
    trainer = _trainer(tiny_dataset, "sl", network, iterations=4)
    trainer.max_nonfinite_steps = 3
    with pytest.raises(FloatingPointError) as err:
        trainer.run()
    message = str(err.value)
    assert "3 training steps in a row" in message and message.count("iteration") == 3
    assert "proxy_0" in message and "slice" in message
    assert all(torch.isfinite(p).all() for p in network.parameters())
