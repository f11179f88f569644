"""Stable seeds from text: the same seed for the same name in every process, machine and Python run.

Fixed masks (per file and slice), per-sample random transforms (per seed, pass and index) and the simulator
all seed their generators here, never from ``hash`` (salted per process) or global RNG state.
"""

from __future__ import annotations

import hashlib


def stable_seed(text: str, bits: int = 32) -> int:
    """Stable seed from a string (sha256; identical across processes, machines and Python runs).

    Unlike ``hash`` it is not salted per process. The seed is the first ``ceil(bits / 8)`` bytes of the
    digest, little-endian, shifted right to ``bits`` bits.

    Args:
        text: e.g. ``f"{filename}:{slice_idx}"``.
        bits: 32 for ``numpy.random.RandomState`` (which needs ``< 2**32``), up to 64 for ``default_rng``.

    Returns:
        An integer in ``[0, 2**bits)``.

    Example:
        >>> stable_seed("file1000.h5:17")
        3351509901
    """
    if not 1 <= bits <= 256:
        raise ValueError(f"bits must lie in [1, 256], got {bits}")
    n_bytes = -(-bits // 8)
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:n_bytes], "little") >> (8 * n_bytes - bits)
