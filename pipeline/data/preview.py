"""PNG grid of a few slices of a manifest's data, to check the simulated (or real) data by eye.

::

    python -m pipeline.data.preview --manifest data_manifests/demo.json --out docs/images/demo_slices.png

Rows: proxy RSS images; target-domain reference RSS images (validation section); target training
zero-filled images (RSS of the stored subsampled k-space); the target training masks (columns
sampled along W, the padding band shaded). Images are centre-cropped to the recon size.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.data.datasets import expand_slices
from pipeline.data.manifests import load_manifest
from pipeline.data.readers import LoadSlice
from pipeline.keys import Keys
from pipeline.physics import rss_image

__all__ = ["render_preview", "main"]


def _pick(items: list[dict], count: int) -> list[dict]:
    """``count`` slices spread evenly over ``items``."""
    if len(items) <= count:
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, count).round()]


def render_preview(
    manifest: str | os.PathLike, out: str | os.PathLike, num_slices: int = 4, data_root: str | None = None
) -> Path:
    """Write the preview PNG.

    Args:
        manifest: manifest JSON file.
        out: PNG path (parent directories are created).
        num_slices: columns of the grid (slices per row), spread over each section.
        data_root: overrides the manifest's ``data_root``.

    Returns:
        The PNG path.

    Raises:
        DataError: if the manifest or its data cannot be read.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loader = LoadSlice()
    rows: list[tuple[str, list[np.ndarray], list[str]]] = []

    def add_row(title: str, section: str, kind: str) -> None:
        items = _pick(expand_slices(load_manifest(manifest, section, data_root)), num_slices)
        images, labels = [], []
        for item in items:
            sample = loader(item["file"], item["slice_idx"], section)
            label = f"{sample[Keys.VOLUME.value]} s{sample[Keys.SLICE.value]}"
            stored_image = rss_image(sample[Keys.KSPACE.value], sample[Keys.RECON_SIZE.value]).numpy()
            if kind == "reference":
                target = sample.get(Keys.TARGET.value)
                images.append(target[0].numpy() if target is not None else stored_image)
            elif kind == "zero_filled":
                images.append(stored_image)
            else:
                mask = sample[Keys.MASK.value][0, :, :, 0].numpy().astype(float)
                start, stop = (int(v) for v in sample[Keys.PE_RANGE.value])
                mask[:, :start] = mask[:, stop:] = 0.35  # padding band: never acquired
                images.append(mask)
                label += f" {mask[0, start:stop].mean():.0%} of cols"
            labels.append(label)
        rows.append((title, images, labels))

    add_row("proxy: RSS", "proxy", "reference")
    add_row("target (validation): reference RSS", "validation", "reference")
    add_row("target train: zero-filled RSS", "target", "zero_filled")
    add_row("target train: mask (grey = padding band)", "target", "mask")

    fig, axes = plt.subplots(len(rows), num_slices, figsize=(2.6 * num_slices, 2.8 * len(rows)), squeeze=False)
    for r, (title, images, labels) in enumerate(rows):
        for c in range(num_slices):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(images) or "mask" not in title:  # masks keep a frame: sampled columns are white
                ax.set_frame_on(False)
            if c < len(images):
                image = images[c]
                vmax = 1.0 if "mask" in title else float(np.percentile(image, 99.5))
                aspect = "auto" if "mask" in title else "equal"
                ax.imshow(image, cmap="gray", vmin=0.0, vmax=vmax, aspect=aspect, interpolation="nearest")
                ax.set_title(labels[c], fontsize=7)
        axes[r, 0].text(
            -0.08, 0.5, title, transform=axes[r, 0].transAxes, rotation=90, va="center", ha="right", fontsize=8
        )
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m pipeline.data.preview --help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.data.preview",
        description="Write a PNG grid of proxy and target slices (RSS, zero-filled input and its mask) of a manifest.",
    )
    parser.add_argument("--manifest", type=Path, default=Path("data_manifests/demo.json"), help="manifest JSON")
    parser.add_argument("--out", type=Path, default=Path("docs/images/demo_slices.png"), help="PNG to write")
    parser.add_argument("--num-slices", type=int, default=4, help="slices per row (default: 4)")
    parser.add_argument("--data-root", default=None, help="override the manifest's data_root")
    args = parser.parse_args(argv)
    if args.num_slices < 1:
        parser.error("--num-slices must be >= 1")
    print(f"wrote {render_preview(args.manifest, args.out, args.num_slices, args.data_root)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
