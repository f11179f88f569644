"""The compared methods, their labels, the masks per acceleration and the default budget of a full run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.baselines import BASELINES
from pipeline.engines.modes import MODES

__all__ = [
    "CENTER_FRACTIONS",
    "CLASSICAL",
    "DEFAULT_ACCELERATIONS",
    "DEFAULT_ITERATIONS",
    "DEFAULT_SEEDS",
    "LABELS",
    "LEARNED",
    "METHODS",
    "METRIC_LABELS",
    "NETWORK_LABELS",
    "SHORT_LABELS",
    "network_label",
]

#: Table label of every method, in display order (a new baseline or training mode needs one here).
LABELS = {
    "zero_filled": "zero-filled",
    "sense": "SENSE (CG)",
    "compressed_sensing": "compressed sensing (L1-wavelet)",
    "sl": "SL on proxy only",
    "ssl": "SSL on target only",
    "jssl": "JSSL (proxy SL + target SSL)",
    "sl_target": "SL on target (oracle)",
}
#: Figure label of every method.
SHORT_LABELS = {
    "zero_filled": "zero-filled",
    "sense": "SENSE",
    "compressed_sensing": "CS",
    "sl": "SL proxy",
    "ssl": "SSL",
    "jssl": "JSSL",
    "sl_target": "SL target\n(oracle)",
}
#: Classical baselines (:data:`pipeline.baselines.BASELINES`), deterministic.
CLASSICAL = tuple(sorted(BASELINES, key=list(LABELS).index))
#: Learned methods = the training modes (:data:`pipeline.engines.modes.MODES`).
LEARNED = tuple(sorted(MODES, key=list(LABELS).index))
METHODS = CLASSICAL + LEARNED
#: Centre fraction per acceleration (fastMRI / JSSL convention).
CENTER_FRACTIONS = {2: 0.16, 4: 0.08, 8: 0.04, 16: 0.02}
#: Label of every network of :func:`pipeline.networks.build_network` (the bundle setting ``network``).
NETWORK_LABELS = {"varnet": "E2E-VarNet", "vsharp": "vSHARP"}
#: Label of every score of :data:`pipeline.metrics.handlers.METRIC_NAMES`.
METRIC_LABELS = {"nmse": "NMSE", "psnr": "PSNR (dB)", "ssim": "SSIM"}

# Defaults of the full run, chosen from a timing measurement on the 2-core CPU (see --help epilog).
DEFAULT_ITERATIONS = 150
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_ACCELERATIONS = (4, 8)


def network_label(settings: Mapping[str, Any]) -> str:
    """``"<size> <network>"`` of the learned runs of ``settings`` (``network`` from its ``--set`` overrides, else
    train.json's default, the E2E-VarNet), e.g. ``"tiny vSHARP"``."""
    network = settings.get("overrides", {}).get("network", "varnet")
    return f"{settings['network_size']} {NETWORK_LABELS.get(network, network)}"
