"""Start-up of a training or evaluation run: checks that fail fast, and distributed set-up.

Everything here runs from a bundle's ``initialize`` list, before any data loader or network is built, so a
wrong setting stops the run in seconds with one line that says what to fix, not an hour in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import ignite.distributed as idist
import torch
import torch.distributed as dist

from pipeline.data.errors import DataError
from pipeline.engines.interleave import schedule_from_ratio
from pipeline.engines.modes import branch_sections, training_mode

if TYPE_CHECKING:
    from pipeline.networks.registry import NetworkSpec


class ConfigError(SystemExit):
    """A bad setting: exits the bundle run with a one-line message (no traceback)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"error: {message}")


def ensure_demo_data(
    manifest: str | os.PathLike, data_root: str | os.PathLike | None = None, device: torch.device | None = None
) -> None:
    """Simulate the manifest's demo files when they are missing (rank 0 writes, every rank waits).

    A bundle step of its own (``initialize``), run before :func:`preflight` when ``generate_demo_data``
    is set; it never touches a manifest that was not made by the simulator.

    Args:
        manifest: the datalist JSON (its ``generator`` entry names the simulation preset).
        data_root: overrides the manifest's data root.
        device: the run's device; passing it makes sure ``torch.distributed`` is set up first.
    """
    if idist.get_rank() == 0:
        from pipeline.data.simulate import ensure_dataset

        try:
            ensure_dataset(manifest, data_root)
        except (DataError, ValueError) as err:
            raise ConfigError(str(err)) from None
    if idist.get_world_size() > 1:
        idist.barrier()


def is_not_rank0() -> bool:
    """True on every DDP rank but 0 (handlers that write files or track are disabled there)."""
    return dist.is_available() and dist.is_initialized() and dist.get_rank() > 0


def preflight(
    mode: str,
    manifest: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    target_section: str = "target",
    network: str = "varnet",
    network_size: str | None = None,
    tracking_uri: str | None = None,
    ratio: Mapping[str, int] | None = None,
    ckpt_path: str | os.PathLike | None = None,
    sections: tuple[str, ...] = ("validation",),
    device: torch.device | None = None,
) -> None:
    """Check a run's settings and data before anything is built; create nothing.

    Args:
        mode: training mode (``sl``, ``ssl``, ``jssl``, ``sl_target``) or ``"eval"`` for inference/evaluation.
        manifest: the datalist JSON.
        data_root: overrides the manifest's data root.
        target_section: section of the self-supervised branch (the supervised one follows from ``mode``).
        network: a name from the network registry (:data:`pipeline.networks.NETWORKS`).
        network_size: a size of that network; a network whose builder has a ``check_input`` classmethod also
            checks the size's settings against the k-space size of every file of the sections.
        tracking_uri: MLflow URI that must open.
        ratio: SL:SSL steps (not all zero).
        ckpt_path: a checkpoint that must exist (inference / evaluation).
        sections: further manifest sections that must be present and readable.
        device: the run's device; passing it here makes sure ``torch.distributed`` is set up (it is
            resolved by :func:`init_distributed`) before the checks.

    Raises:
        ConfigError: (a ``SystemExit``) with one line naming the setting to fix.
    """
    from pipeline.data.datasets import expand_slices
    from pipeline.data.manifests import load_manifest
    from pipeline.networks import network_spec

    try:
        branches = training_mode(mode).branches if mode != "eval" else ()
        spec = network_spec(network)
    except ValueError as err:
        raise ConfigError(str(err).replace("unknown network", "unknown --network")) from None
    if network_size is not None and network_size not in spec.sizes:
        raise ConfigError(f"unknown --network_size {network_size!r} for {network}; choose one of {sorted(spec.sizes)}")
    if ckpt_path is not None and not Path(ckpt_path).is_file():
        raise ConfigError(f"checkpoint {ckpt_path} does not exist: train the bundle first or set --ckpt_path")
    if not Path(manifest).is_file():
        raise ConfigError(f"manifest {manifest} does not exist: set --manifest to a MONAI datalist JSON")
    if ratio is not None and branches:
        try:
            schedule_from_ratio({b: int(ratio.get(b, 1)) for b in branches})
        except ValueError as err:
            raise ConfigError(f"--sl_ssl_ratio: {err}") from None
    try:
        needed = list(sections)
        if branches:
            needed.extend(branch_sections(mode, target_section).values())
        for section in dict.fromkeys(needed):
            items = load_manifest(manifest, section, data_root)
            expand_slices(items, on_error="raise")
            if section == target_section and "ssl" in branches:
                _check_target_masks(items)
            if network_size is not None:
                _check_network_input(spec, network, network_size, items)
    except (DataError, ValueError) as err:
        raise ConfigError(str(err)) from None
    if tracking_uri is not None and idist.get_rank() == 0:
        from pipeline.tracking.mlflow import check_tracking_uri

        try:
            check_tracking_uri(tracking_uri)
        except ValueError as err:
            raise ConfigError(f"--tracking_uri: {err}") from None


def _check_network_input(spec: NetworkSpec, network: str, network_size: str, items: list[dict]) -> None:
    """Let the network check its size's settings against the stored k-space size of every file.

    Only for builders with an optional ``check_input(kspace_size, **settings)`` classmethod (e.g.
    :meth:`pipeline.networks.VSharpNet.check_input`), which raises ``ValueError`` naming the setting.

    Raises:
        ValueError: ``--network_size <size> of <network>: <the builder's message>``.
    """
    from pipeline.data.readers import inspect_volume

    check_input = getattr(spec.builder, "check_input", None)
    if check_input is None:
        return
    for size in dict.fromkeys(inspect_volume(item["file"]).kspace_size for item in items):
        try:
            check_input(size, **spec.sizes[network_size])
        except ValueError as err:
            raise ValueError(f"--network_size {network_size} of {network}: {err}") from None


def _check_target_masks(items: list[dict]) -> None:
    """A target file whose k-space is already undersampled must carry its acquisition mask.

    Raises:
        DataError: naming the file when it has zero-filled columns but no ``mask`` dataset.
    """
    from pipeline.data.readers import LoadSlice, inspect_volume
    from pipeline.keys import Keys

    for item in items:
        info = inspect_volume(item["file"])
        if info.mask_layout is not None:
            continue
        sample = LoadSlice()(item["file"], info.num_slices // 2)
        start, stop = info.pe_range
        columns = sample[Keys.KSPACE][:, :, start:stop].abs().amax(dim=(0, 1, 3))
        if bool((columns == 0).any()):
            raise DataError(
                item["file"],
                "target k-space is undersampled (zero columns) but the file has no 'mask' dataset; "
                "store the acquisition mask so training does not invent one",
            )


def init_distributed(backend: str | None = None) -> torch.device:
    """Initialise ``torch.distributed`` from ``torchrun``'s environment and return this rank's device.

    ``nccl`` with one GPU per rank when CUDA is available, else ``gloo`` on the CPU. Without ``torchrun``
    (no ``WORLD_SIZE``) nothing is initialised.
    """
    use_cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not dist.is_initialized():
        dist.init_process_group(backend=backend or ("nccl" if use_cuda else "gloo"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def wrap_ddp(network: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Wrap ``network`` in ``DistributedDataParallel`` when a process group is running."""
    if not (dist.is_available() and dist.is_initialized()):
        return network
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(network, device_ids=device_ids)


def finalize_distributed() -> None:
    """Tear down the process group, if any (last step of a bundle run)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    """``monai.utils.set_determinism`` with a per-rank offset, so DDP ranks (and their DataLoader workers)
    draw different random masks and SSDU splits."""
    from monai.utils import set_determinism

    set_determinism(seed=int(seed) + idist.get_rank())
