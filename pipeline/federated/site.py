"""One federated site: the bundle's :class:`~pipeline.engines.JSSLTrainer` on the site's own data, driven by
NVFlare's Client API.

Every round the site receives the global network from NVFlare's FedAvg controller, trains it for
``iterations`` steps of its mode's branch (``sl`` on fully sampled proxy data, ``ssl`` on subsampled target
data; see :mod:`pipeline.engines.modes`) and sends the weights back with the number of steps. The trainer is
built once from ``train.json`` + ``federated.json`` (no checkpoint resume, validation or tracking at the site:
the overlay keeps only the learning-rate schedule), so the optimiser and schedule carry over between rounds.

A site whose data is missing or bad, or whose local training fails or gives non-finite weights, never sends
weights (and builds its trainer anew for the next round). With ``on_bad_site="fail"`` it raises, and NVFlare's
controller (strict about client errors) stops the job in that round; with ``"skip"`` it sends an empty result,
which FedAvg leaves out of the average. Either way the round's outcome is appended to
``<output_dir>/sites/<site>.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: What a site does when its data or its local training is bad.
ON_BAD_SITE = ("fail", "skip")


class SiteError(RuntimeError):
    """A site could not train this round; the message names the site, the round and the cause."""


class SiteTrainer:
    """The bundle's trainer at one site, run ``iterations`` steps per round from the received weights.

    Args:
        site: the site's name (for messages).
        mode: ``sl``, ``ssl``, ``jssl`` or ``sl_target`` (:data:`pipeline.engines.modes.MODES`).
        manifest: the site's own datalist (the sections its mode reads).
        output_dir: the site's output folder.
        iterations: training steps per round.
        bundle_root: the bundle folder (``configs/train.json`` and ``configs/federated.json``).
        overrides: further ``train.json`` settings (``network_size``, ``batch_size``, ``learning_rate`` ...).

    Raises:
        SiteError: (one line, naming the site) the configs do not parse, the start-up check of the site's
            settings or data failed, or the trainer cannot be built from them.
    """

    def __init__(
        self,
        site: str,
        mode: str,
        manifest: str | Path,
        output_dir: str | Path,
        iterations: int,
        bundle_root: str | Path,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.site = site
        self.iterations = int(iterations)
        self.rounds = 0
        try:
            self.trainer = self._build(mode, manifest, output_dir, bundle_root, overrides)
        except SystemExit as err:  # ConfigError: the start-up check's one line
            raise SiteError(f"site {site}: {str(err.code).removeprefix('error: ')}") from None
        except Exception as err:  # noqa: BLE001 - any failure to set up is this site's failure
            raise SiteError(f"site {site}: its trainer could not be built: {_cause(err)}") from None
        self.network: torch.nn.Module = self.trainer.network

    def _build(
        self, mode: str, manifest: str | Path, output_dir: str | Path, bundle_root: str | Path,
        overrides: Mapping[str, Any] | None,
    ) -> Any:
        """Parse ``train.json`` + ``federated.json`` with the site's settings, run the start-up check, and build
        the trainer (seeded as the bundle seeds it)."""
        from monai.bundle import ConfigParser

        from pipeline.engines import preflight, seed_everything

        settings = {
            **dict(overrides or {}),
            "bundle_root": str(bundle_root),
            "mode": mode,
            "manifest": str(manifest),
            "data_root": None,
            "output_dir": str(output_dir),
            "max_epochs": 1,
            "epoch_length": self.iterations,
            "generate_demo_data": False,
        }
        parser = ConfigParser()
        parser.read_config([str(Path(bundle_root) / "configs" / f) for f in ("train.json", "federated.json")])
        for key, value in settings.items():
            parser[key] = value
        preflight(
            mode=mode,
            manifest=manifest,
            network=parser.get_parsed_content("network"),
            network_size=parser.get_parsed_content("network_size"),
            sections=(),
            on_bad_file=parser.get_parsed_content("on_bad_file"),
            batch_size=parser.get_parsed_content("batch_size"),
        )
        seed_everything(int(parser.get_parsed_content("seed")))
        return parser.get_parsed_content("trainer")

    def train_round(self, global_weights: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Load the global weights, train ``iterations`` steps, return the local weights (CPU tensors).

        Raises:
            SiteError: the weights do not fit the site's network, a file is bad, training failed, or the
                trained weights are not finite.
        """
        from pipeline.handlers.checkpoint import check_weights

        state = {key: torch.as_tensor(np.asarray(value)) for key, value in global_weights.items()}
        try:
            check_weights(self.network.state_dict(), {k: tuple(v.shape) for k, v in state.items()},
                          "of the global model")
        except ValueError as err:
            raise SiteError(f"site {self.site}: {err}") from None
        self.network.load_state_dict(state)
        if self.rounds:
            self.trainer.state.max_epochs = self.rounds + 1  # one more epoch of `iterations` steps
        try:
            self.trainer.run()
        except Exception as err:  # noqa: BLE001 - any failure of local training is this site's failure
            raise SiteError(f"site {self.site}: local training failed: {_cause(err)}") from None
        self.rounds += 1
        if self.trainer.state.iteration != self.rounds * self.iterations:
            raise SiteError(f"site {self.site}: local training stopped after {self.trainer.state.iteration} of "
                            f"{self.rounds * self.iterations} steps")
        weights = {key: value.detach().cpu().clone() for key, value in self.network.state_dict().items()}
        bad = [key for key, value in weights.items() if value.is_floating_point() and not torch.isfinite(value).all()]
        if bad:
            raise SiteError(f"site {self.site}: non-finite weights after local training ({', '.join(bad[:3])})")
        return weights


def _cause(err: Exception) -> str:
    """One line for a failure: the data error's message (file and slice), else ``<type>: <first line>``."""
    from pipeline.data.errors import data_error_message

    return data_error_message(err) or f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


def _record(path: Path, entry: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps({**entry, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")


def run_site(settings_file: str | Path) -> None:
    """The site's NVFlare loop: receive the global model, train a round, send the weights (or the failure).

    Args:
        settings_file: the federation's settings (:func:`pipeline.federated.job.write_settings`): ``sites``
            (name -> ``mode``, ``manifest``), ``iterations``, ``bundle_root``, ``overrides``, ``output_dir``,
            ``on_bad_site``, ``keep_site_weights`` (save what the site sends as ``<site>/round_<r>.pt``).

    Raises:
        SiteError: with ``on_bad_site="fail"``, when this site cannot train a round.
    """
    import nvflare.client as flare
    from nvflare.apis.fl_constant import FLMetaKey
    from nvflare.app_common.abstract.fl_model import FLModel

    settings = json.loads(Path(settings_file).read_text())
    flare.init()
    site = flare.get_site_name()
    spec = settings["sites"][site]
    output = Path(settings["output_dir"]) / "sites"
    log = output / f"{site}.jsonl"
    trainer: SiteTrainer | None = None
    while flare.is_running():
        received = flare.receive()
        if received is None:
            break
        current = received.current_round
        try:
            if trainer is None:
                trainer = SiteTrainer(site, spec["mode"], spec["manifest"], output / site, settings["iterations"],
                                      settings["bundle_root"], settings.get("overrides"))
            weights = trainer.train_round(received.params)
        except SiteError as err:
            trainer = None  # a failed trainer is in no known state: the next round builds a new one
            message = f"round {current}: {err}"
            _record(log, {"round": current, "status": "failed", "error": message})
            if settings["on_bad_site"] == "fail":
                raise SiteError(message) from None
            logger.warning(f"{message}; skipped (--on_bad_site skip)")
            flare.send(FLModel(params={}, meta={"site_error": message}))
            continue
        if settings.get("keep_site_weights"):
            (output / site).mkdir(parents=True, exist_ok=True)
            torch.save(weights, output / site / f"round_{current}.pt")
        _record(log, {"round": current, "status": "trained", "iterations": trainer.iterations})
        flare.send(FLModel(params=weights, meta={FLMetaKey.NUM_STEPS_CURRENT_ROUND: trainer.iterations}))


def main(argv: Sequence[str] | None = None) -> None:
    """Command line of the site script: ``--settings <federation.json>``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", required=True, help="the federation's settings JSON")
    run_site(parser.parse_args(argv).settings)
