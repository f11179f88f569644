"""Start-up of a training or evaluation run: checks that fail fast, and distributed set-up.

Everything here runs from a bundle's ``initialize`` list, before any data loader or network is built, so a
wrong setting stops the run in seconds with one line that says what to fix, not an hour in.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import ignite.distributed as idist
import torch
import torch.distributed as dist
from ignite.engine import Engine, Events

from pipeline.data.errors import DataError
from pipeline.engines.interleave import schedule_from_ratio
from pipeline.engines.modes import branch_sections, training_mode

if TYPE_CHECKING:
    from pipeline.networks.registry import NetworkSpec

logger = logging.getLogger(__name__)


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
    manifest: str | os.PathLike | None,
    data_root: str | os.PathLike | None = None,
    target_section: str = "target",
    network: str = "varnet",
    network_size: str | None = None,
    tracking_uri: str | None = None,
    ratio: Mapping[str, int] | None = None,
    ckpt_path: str | os.PathLike | None = None,
    sections: tuple[str, ...] = ("validation",),
    device: torch.device | None = None,
    on_bad_file: str = "raise",
    proxy_weights: Mapping[str, float] | None = None,
    batch_size: int | None = None,
) -> None:
    """Check a run's settings and data before anything is built.

    Every file of the sections the run reads is checked at header level (and, with ``on_bad_file="skip"``,
    read once in full), through the manifest's header cache (:mod:`pipeline.data.cache`), so a second start
    over thousands of files takes seconds. The shape groups of each section (what
    :class:`~pipeline.data.ShapeBatchSampler` batches together) are logged. Under DDP rank 0 checks first
    and fills the cache; the other ranks then read it.

    Args:
        mode: training mode (``sl``, ``ssl``, ``jssl``, ``sl_target``) or ``"eval"`` for inference/evaluation.
        manifest: the datalist JSON; ``None`` when the run reads no manifest section (inference on a folder of
            files, ``sections=()``).
        data_root: overrides the manifest's data root.
        target_section: section of the self-supervised branch (the supervised one follows from ``mode``).
        network: a name from the network registry (:data:`pipeline.networks.NETWORKS`).
        network_size: a size of that network; a network whose builder has a ``check_input`` classmethod also
            checks that size against the k-space size of every file.
        tracking_uri: MLflow URI that must open.
        ratio: SL:SSL steps (not all zero).
        ckpt_path: a checkpoint that must exist (inference / evaluation) and, when ``network_size`` is given,
            hold the weights of that network and size (names and shapes, read without pickle code).
        sections: further manifest sections that must be present and readable.
        device: the run's device; passing it here makes sure ``torch.distributed`` is set up (it is
            resolved by :func:`init_distributed`) before the checks.
        on_bad_file: ``"raise"``: the first bad file stops the run; ``"skip"``: bad files (header or data) are
            left out and listed once with their problems (and returned).
        proxy_weights: sampling weight per ``source`` of the supervised section (see
            :class:`~pipeline.data.ShapeBatchSampler`); checked against the manifest.
        batch_size: training batch size; the training sections must yield at least one batch of one shape.

    Returns:
        The skipped files, one line each (``"<file>[, slice <i>]: <problem>"``); empty in raise mode. The
        bundle keeps them with :func:`record_skipped_files`, a step of its own: this check creates nothing.

    Raises:
        ConfigError: (a ``SystemExit``) with one line naming the setting or file to fix.
    """
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
    if ckpt_path is not None and network_size is not None:
        _check_checkpoint(ckpt_path, network, network_size)
    if on_bad_file not in ("raise", "skip"):
        raise ConfigError(f"--on_bad_file must be 'raise' or 'skip', got {on_bad_file!r}")
    if ratio is not None and branches:
        try:
            schedule_from_ratio({b: int(ratio.get(b, 1)) for b in branches})
        except ValueError as err:
            raise ConfigError(f"--sl_ssl_ratio: {err}") from None
    needed = {section: None for section in sections}
    if branches:
        needed.update({section: branch for branch, section in branch_sections(mode, target_section).items()})
    if manifest is None and not needed:
        _check_tracking_uri(tracking_uri)
        return []
    if manifest is None or not Path(manifest).is_file():
        raise ConfigError(f"manifest {manifest} does not exist: set --manifest to a MONAI datalist JSON")
    world = idist.get_world_size()
    if world > 1 and idist.get_rank() > 0:
        idist.barrier()  # rank 0 fills the header cache first
    try:
        skipped = _check_sections(manifest, data_root, needed, on_bad_file, proxy_weights, batch_size)
        if network_size is not None:
            _check_network_input(spec, network, network_size, needed, manifest, data_root)
    finally:
        if world > 1 and idist.get_rank() == 0:
            idist.barrier()
    _check_tracking_uri(tracking_uri)
    return skipped


def _check_tracking_uri(tracking_uri: str | None) -> None:
    """The MLflow URI must open (checked on rank 0).

    Raises:
        ConfigError: ``--tracking_uri: <why not>``.
    """
    if tracking_uri is not None and idist.get_rank() == 0:
        from pipeline.tracking.mlflow import check_tracking_uri

        try:
            check_tracking_uri(tracking_uri)
        except ValueError as err:
            raise ConfigError(f"--tracking_uri: {err}") from None


def _check_checkpoint(ckpt_path: str | os.PathLike, network: str, network_size: str) -> None:
    """The checkpoint must hold the weights of ``network`` of ``network_size``: same names, same shapes.

    A ``safetensors`` file is checked from its header (no tensor is read); a ``.pt`` file is read with
    ``weights_only=True``.

    Raises:
        ConfigError: ``checkpoint <path> was made for a different network architecture; ...`` (the keys).
    """
    from pipeline.handlers.checkpoint import check_weights, read_weights
    from pipeline.networks import build_network

    path = Path(ckpt_path)
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
        else:
            shapes = {key: tuple(value.shape) for key, value in read_weights(path).items()}
        own = build_network(network, network_size).state_dict()
        check_weights(own, shapes, f"{path} (for --network {network} --network_size {network_size})")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    except Exception as err:  # an unreadable file (truncated, not a checkpoint): one line naming it
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"checkpoint {path} cannot be read as weights: {first}") from None


SKIPPED_FILES = "skipped_files.txt"
"""Name of the skipped-files list that :func:`record_skipped_files` writes into the output folder."""


def record_skipped_files(output_dir: str | os.PathLike, lines: Sequence[str]) -> Path | None:
    """Write the skipped files that :func:`preflight` returned to ``<output_dir>/skipped_files.txt``.

    One line per file (an empty file when nothing was skipped), written on rank 0 only, for the tracker to
    log. Returns the path (``None`` on other ranks).
    """
    if idist.get_rank() != 0:
        return None
    path = Path(output_dir) / SKIPPED_FILES
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def skipped_files(output_dir: str | os.PathLike) -> list[str]:
    """The lines of ``<output_dir>/skipped_files.txt`` (``"<file>[, slice <i>]: <problem>"``), ``[]`` if none."""
    path = Path(output_dir) / SKIPPED_FILES
    return path.read_text().splitlines() if path.is_file() else []


def _check_sections(
    manifest: str | os.PathLike,
    data_root: str | os.PathLike | None,
    sections: Mapping[str, str | None],
    on_bad_file: str,
    proxy_weights: Mapping[str, float] | None,
    batch_size: int | None,
) -> list[str]:
    """Scan each section's files (cached), log their shape groups; return the skipped files' lines.

    Raises:
        ConfigError: bad file (raise mode), a section with no good file, bad weights, no complete batch.
    """
    from pipeline.data.cache import HeaderCache, default_cache_path
    from pipeline.data.datasets import report_skipped, scan_items
    from pipeline.data.manifests import load_manifest
    from pipeline.data.samplers import ShapeBatchSampler, describe_groups

    cache = HeaderCache(default_cache_path(manifest))
    skipped: list[str] = []
    for section, branch in sections.items():
        try:
            items = load_manifest(manifest, section, data_root, check_files=on_bad_file == "raise")
            scan = scan_items(items, on_error=on_bad_file, cache=cache)
        except (DataError, ValueError) as err:
            raise ConfigError(str(err)) from None
        skipped.extend(report_skipped(scan.skipped))
        if not scan.volumes:
            raise ConfigError(f"section {section!r}: every one of its {len(items)} file(s) was skipped as bad")
        keys = [info.batch_key for _, info, slices in scan.volumes for _ in slices]
        sources = [str(item.get("source") or section) for item, _, slices in scan.volumes for _ in slices]
        logger.info(
            f"section {section!r}: {len(scan.volumes)} file(s), {len(keys)} slices, {len(scan.skipped)} skipped; "
            "shape groups: " + "; ".join(describe_groups(keys, sources))
        )
        if branch == "ssl":
            try:
                _check_target_masks(scan.volumes)
            except DataError as err:
                raise ConfigError(str(err)) from None
        if branch is not None and batch_size is not None:
            dataset = _Slices(keys, sources)
            weights = proxy_weights if branch == "sl" else None
            try:
                ShapeBatchSampler(dataset, batch_size, weights=weights, num_replicas=1, rank=0)
            except ValueError as err:
                setting = "--proxy_weights" if weights is not None and "weight" in str(err) else "--batch_size"
                raise ConfigError(f"{setting} for section {section!r}: {err}") from None
    return skipped


class _Slices:
    """Per-slice batch keys and sources, the part of a dataset a batch sampler reads."""

    def __init__(self, batch_keys: list[tuple], sources: list[str]) -> None:
        self.batch_keys, self.sources = batch_keys, sources


def _check_target_masks(volumes: list) -> None:
    """A target file whose k-space is already undersampled must carry its acquisition mask.

    Raises:
        DataError: naming the file when it has zero-filled columns but no mask.
    """
    from pipeline.data.readers import LoadSlice
    from pipeline.keys import Keys

    for item, info, _ in volumes:
        if info.mask_layout is not None:
            continue
        sample = LoadSlice()(item["file"], info.num_slices // 2, reader=item.get("format"))
        start, stop = info.pe_range
        columns = sample[Keys.KSPACE][:, :, start:stop].abs().amax(dim=(0, 1, 3))
        if bool((columns == 0).any()):
            raise DataError(
                item["file"],
                "target k-space is undersampled (zero columns) but the file has no 'mask' dataset; "
                "store the acquisition mask so training does not invent one",
            )


def _check_network_input(
    spec: NetworkSpec,
    network: str,
    network_size: str,
    sections: Mapping[str, str | None],
    manifest: str | os.PathLike,
    data_root: str | os.PathLike | None,
) -> None:
    """Let the network check its size's settings against the k-space size of every file (from the cache).

    Only for builders with an optional ``check_input(kspace_size, **settings)`` classmethod (e.g.
    :meth:`pipeline.networks.VSharpNet.check_input`), which raises ``ValueError`` naming the setting.

    Raises:
        ConfigError: ``--network_size <size> of <network>: <the builder's message>``.
    """
    check_input = getattr(spec.builder, "check_input", None)
    if check_input is None:
        return
    from pipeline.data.cache import HeaderCache, default_cache_path
    from pipeline.data.datasets import scan_items
    from pipeline.data.manifests import load_manifest

    cache = HeaderCache(default_cache_path(manifest))
    sizes: dict[tuple[int, int], None] = {}
    for section in sections:
        scan = scan_items(load_manifest(manifest, section, data_root, check_files=False), "skip", cache=cache)
        sizes.update(dict.fromkeys(info.kspace_size for _, info, _ in scan.volumes))
    for size in sizes:
        try:
            check_input(size, **spec.sizes[network_size])
        except ValueError as err:
            raise ConfigError(f"--network_size {network_size} of {network}: {err}") from None


class DataErrorExit:
    """Ignite handler: a bad file met during a run stops it with the pipeline's one line, no traceback.

    Attach to the trainer (``train_handlers``). A :class:`~pipeline.data.DataError` raised while a batch is
    loaded, also inside a DataLoader worker or MONAI's transform wrapper, becomes a :class:`ConfigError`
    ``"error: <file>, slice <i>: <problem>"``; any other exception is re-raised unchanged.
    """

    def attach(self, engine: Engine) -> None:
        """Handle ``engine``'s ``EXCEPTION_RAISED`` event."""
        engine.add_event_handler(Events.EXCEPTION_RAISED, self)

    def __call__(self, engine: Engine, err: BaseException) -> None:
        from pipeline.data.errors import data_error_message

        message = data_error_message(err)
        if message is None:
            raise err
        raise ConfigError(message) from None


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
    """Tear down the process group, if any, and end a distributed rank's process (last step of a bundle run).

    The ranks first wait for each other (rank 0 still logs to MLflow when the others are done), so that no
    rank tears its gloo connections down while a peer is still using the group. Then, in a distributed run only,
    the process flushes its logs and output streams and exits with status 0 at once (``os._exit``), skipping the
    C++ static destructors: with torch 2.13 and gloo a rank aborted there now and then after a finished run
    ("terminate called without an active exception", SIGABRT, so ``torchrun`` reported a failure; 1 run in 12
    of the 2-process test on a loaded machine, 2026-12-08, with the barrier already in place). Everything a run
    writes (checkpoints, weights, the MLflow run, which the tracker ends itself) is written before this step.
    Without a process group it does nothing.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def seed_everything(seed: int) -> None:
    """``monai.utils.set_determinism`` with a per-rank offset, so DDP ranks (and their DataLoader workers)
    draw different random masks and SSDU splits."""
    from monai.utils import set_determinism

    set_determinism(seed=int(seed) + idist.get_rank())
