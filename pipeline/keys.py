"""Dictionary keys shared by readers, transforms, networks, losses and engines.

Every sample flowing through the pipeline is a ``dict``; its keys are the members of :class:`Keys`.
Shapes are per sample (no batch axis); the DataLoader adds a leading ``B``.

Complex data follows the single convention of :mod:`pipeline.physics.complex`: a real tensor with a
trailing axis of size 2 holding (real, imaginary).
"""

from __future__ import annotations

from enum import Enum


class Keys(str, Enum):
    """Sample keys. ``str`` mixin so a member can be used wherever a plain key string is expected."""

    # --- written by the readers -------------------------------------------------------------
    # (C, H, W, 2) float32, k-space as stored (fully sampled or already subsampled); never overwritten by a
    # transform. It is the loss reference: on the whole grid (SL) or only on LOSS_MASK, inside Omega (SSL).
    KSPACE = "kspace"
    MASK = "mask"  # (1, H, W, 1) bool, acquisition mask Omega (file's own mask, or generated)
    TARGET = "target"  # (1, Hr, Wr) float32, reference magnitude image (RSS / ESC), only where known
    # str, the volume's identity: its file path relative to the manifest's data root in POSIX form (e.g.
    # "knee/file1000001.h5"), or the base name for files outside a manifest. Metrics, written outputs,
    # fixed-mask seeds and logs key volumes by it, so equal base names in different folders stay apart.
    VOLUME = "volume"
    FILENAME = "filename"  # str, file base name (no directories), for display
    SLICE = "slice_idx"  # int, slice index within the volume
    NUM_SLICES = "num_slices"  # int, slices in the volume
    RECON_SIZE = "recon_size"  # (2,) int64, (Hr, Wr) centre-crop size from the ISMRMRD header
    PE_RANGE = "pe_range"  # (2,) int64, [start, stop) acquired phase-encode columns (outside: padding band)
    NUM_LOW_FREQUENCIES = "num_low_frequencies"  # int, ACS columns (0 = unknown, derive from the mask)
    MAX = "max"  # float, volume maximum of the reference image (data range of PSNR/SSIM), 0 if unknown
    ACQUISITION = "acquisition"  # str, e.g. "AXT1", "CORPD_FBK"
    DOMAIN = "domain"  # str, manifest section the sample came from: "proxy", "target", ...

    # --- written by the k-space transforms --------------------------------------------------
    MASKED_KSPACE = "masked_kspace"  # (C, H, W, 2) network input k-space (zeros outside INPUT_MASK)
    INPUT_MASK = "input_mask"  # (1, H, W, 1) bool, Theta: what the network sees (= MASK without SSDU)
    LOSS_MASK = "loss_mask"  # (1, H, W, 1) bool, Lambda: SSDU loss set (disjoint from Theta)
    SENS_MAPS = "sens_maps"  # (C, H, W, 2) coil sensitivities, sum_c |S_c|^2 = 1 inside the object
    SCALE = "scale"  # float, intensity normalisation factor: normalised = raw / scale
    ZERO_FILLED = "zero_filled"  # (1, Hr, Wr) float32, RSS of the masked input, centre-cropped

    # --- written by the engines -------------------------------------------------------------
    PRED = "pred"  # (1, Hr, Wr) float32, reconstructed magnitude image
    BRANCH = "branch"  # str, "sl" or "ssl": which training branch a batch belongs to

    def __str__(self) -> str:  # so f-strings and h5/json writers see the plain value
        return self.value
