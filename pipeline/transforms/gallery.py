"""CLI: PNG gallery of every mask type and one SSDU split.

Usage: ``python -m pipeline.transforms.gallery --out docs/images/mask_gallery.png [--seed 0]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pipeline.transforms.masks import generate_mask
from pipeline.transforms.ssdu import ssdu_split

PANELS = [
    ("random", "1-D random 4x"),
    ("equispaced", "1-D equispaced 4x"),
    ("gaussian1d", "1-D Gaussian 4x"),
    ("gaussian2d", "2-D Gaussian 8x"),
    ("poisson", "2-D Poisson-disc 5x"),
    ("radial", "radial 6x"),
    ("spiral", "spiral 6x"),
]
ACCELERATIONS = {"gaussian2d": 8, "poisson": 5, "radial": 6, "spiral": 6}


def make_gallery(out: Path, seed: int = 0, shape: tuple[int, int] = (218, 170)) -> Path:
    """Render the gallery to ``out`` (PNG) and return the path.

    Args:
        out: output file.
        seed: RNG seed of all masks.
        shape: k-space grid ``(H, W)`` (default: a CC-359 slice, 218x170); a 6-column padding band is
            left unsampled on both sides.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    pe_range = (6, shape[1] - 6)
    fig, axes = plt.subplots(2, 5, figsize=(16, 8.2))
    for ax, (mask_type, title) in zip(axes.flat, PANELS):
        cf = 0.08 if mask_type in ("random", "equispaced", "gaussian1d") else 0.06
        mask, _ = generate_mask(mask_type, shape, cf, ACCELERATIONS.get(mask_type, 4), rng, pe_range)
        acquired = mask[:, pe_range[0] : pe_range[1]]
        ax.imshow(mask, cmap="gray", interpolation="nearest")
        ax.set_title(f"{title}\nR_eff = {1 / acquired.mean():.2f}", fontsize=10)
    omega, n_acs = generate_mask("equispaced", shape, 0.08, 4, rng, pe_range)
    theta, lam = ssdu_split(omega, 0.4, rng, "gaussian", (4, 4))
    split = [("Omega (acquired)", omega), ("Theta (input)", theta), ("Lambda (loss), q=0.4", lam)]
    for ax, (name, mask) in zip(list(axes.flat)[7:], split):
        ax.imshow(mask, cmap="gray", interpolation="nearest")
        ax.set_title(f"SSDU: {name}\n{int(mask.sum())} points", fontsize=10)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"k-space masks on a {shape[0]}x{shape[1]} grid (white = sampled; phase encode horizontal)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and write the gallery."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images/mask_gallery.png"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(make_gallery(args.out, args.seed))


if __name__ == "__main__":
    main()
