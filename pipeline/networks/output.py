"""What every reconstruction network of the package returns: one network-neutral output type."""

from typing import List, NamedTuple

from torch import Tensor


class ReconstructionOutput(NamedTuple):
    """The output of a reconstruction network (a TorchScript-compatible ``NamedTuple``).

    Losses, engines, writers and exports read only these fields, so a new network needs no edits there.

    Attributes:
        kspace: final predicted multi-coil k-space ``(B, C, H, W, 2)``, float32, in the input's units.
        image: RSS magnitude of ``ifft2c(kspace)`` on the full grid ``(B, H, W)`` (not cropped).
        sens_maps: coil sensitivities used ``(B, C, H, W, 2)``, ``sum_c |S_c|^2 = 1``.
        kspace_iterates: predicted k-space after each unrolled step (cascade / iteration), oldest first,
            the last one equal to ``kspace``, for deep supervision; empty unless requested.
    """

    kspace: Tensor
    image: Tensor
    sens_maps: Tensor
    kspace_iterates: List[Tensor]
