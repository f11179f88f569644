"""Named network sizes, so that a config says ``network_size: fastmri`` instead of five numbers."""

from __future__ import annotations

from typing import Any

from pipeline.networks.varnet import JSSLVarNet

#: name -> :class:`JSSLVarNet` arguments.
VARNET_SIZES: dict[str, dict[str, int]] = {
    # unit tests and smoke runs: trains in seconds
    "tiny": {"num_cascades": 2, "chans": 8, "pools": 2, "sens_chans": 4, "sens_pools": 2},
    # CPU demo: trains in minutes on the embedded demo data
    "demo": {"num_cascades": 4, "chans": 12, "pools": 3, "sens_chans": 6, "sens_pools": 3},
    # the fastMRI E2E-VarNet (about 30 M parameters)
    "fastmri": {"num_cascades": 12, "chans": 18, "pools": 4, "sens_chans": 8, "sens_pools": 4},
}


def build_varnet(size: str = "demo", **overrides: Any) -> JSSLVarNet:
    """Build a :class:`JSSLVarNet` of a named size, with any argument overridden.

    Raises:
        ValueError: for an unknown size (the message lists the known ones).
    """
    if size not in VARNET_SIZES:
        raise ValueError(f"unknown network size {size!r}; choose one of {sorted(VARNET_SIZES)}")
    return JSSLVarNet(**{**VARNET_SIZES[size], **overrides})
