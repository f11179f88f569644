"""What a simulated dataset is: the acquisition of each domain and the named dataset sizes."""

from __future__ import annotations

import dataclasses

__all__ = ["EXTRA_CONTRAST_SECTIONS", "DomainSpec", "Preset", "PRESETS", "get_preset"]

#: Sections acquired again at a preset's ``extra_contrasts`` (never ``test``).
EXTRA_CONTRAST_SECTIONS = ("target", "validation")


@dataclasses.dataclass(frozen=True)
class DomainSpec:
    """How one domain is acquired.

    Attributes:
        orientation: slice orientation, ``"axial"``, ``"coronal"`` or ``"sagittal"`` (the abdomen: coronal).
        contrast: brain: ``"t1"``, ``"flair"`` or ``"t2"``; abdomen: a flip angle of the series, ``"fa2"``,
            ``"fa10"``, ``"fa15"``, ``"fa20"`` or ``"fa25"``.
        acquisition: value of the ``acquisition`` attribute (fastMRI style, e.g. ``"AXT1"``).
        num_coils: receiver coils ``C``.
        coil_radius: birdcage radius relative to half the field of view (sigpy's ``r``, 1.2-1.8).
        snr: mean object RSS signal over the noise standard deviation per coil.
        anatomy: ``"brain"`` (MNI152 template, nilearn) or ``"abdomen"`` (VFA series of the ``mdreg``
            wheel); see :mod:`pipeline.data.simulate.anatomy`.
    """

    orientation: str
    contrast: str
    acquisition: str
    num_coils: int
    coil_radius: float
    snr: float
    anatomy: str = "brain"


@dataclasses.dataclass(frozen=True)
class Preset:
    """A simulated dataset.

    Attributes:
        name: preset name.
        recon_size: ``R``: the reconstruction is ``(R, R)``; k-space is ``(2 R, R + 2 pad_columns)``.
        pad_columns: never-acquired zero columns at each edge of the phase-encode axis.
        proxy: the proxy domain.
        target: the target domain (sections ``target``, ``validation``, ``test``).
        volumes: per section, ``(number of volumes, slices per volume)``.
        slice_spacing_mm: distance between neighbouring slices of a volume, in mm.
        slab_gap_mm: extra distance between neighbouring volumes (slabs), in mm.
        acceleration: undersampling factor of the stored masks (ratio, e.g. 4).
        center_fraction: fraction of the acquired columns fully sampled at the centre, in (0, 1); it
            must give at least one centre column (``round(R * center_fraction) >= 1``).
        extra_contrasts: other contrasts of the target anatomy (e.g. other flip angles of the abdominal
            series) at which the ``target`` and ``validation`` slabs are acquired once more, as extra volumes
            at the SAME slice positions with their own coil, phase, noise and mask draws; the ``test`` slabs
            never. Volume ``k * n + j`` of such a section (``n`` slabs) is slab ``j`` at contrast ``k``
            (``k = 0``: ``target.contrast``).

    Raises:
        ValueError: if ``center_fraction`` gives no centre column, ``acceleration < 1``, or an extra contrast
            repeats the target's.
    """

    name: str
    recon_size: int
    pad_columns: int
    proxy: DomainSpec
    target: DomainSpec
    volumes: dict[str, tuple[int, int]]
    slice_spacing_mm: float = 2.0
    slab_gap_mm: float = 2.0
    acceleration: int = 4
    center_fraction: float = 0.08
    extra_contrasts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        contrasts = self.target_contrasts
        if len(set(contrasts)) != len(contrasts):
            raise ValueError(f"preset {self.name!r}: extra_contrasts {self.extra_contrasts} repeat a target contrast")
        if self.acceleration < 1:
            raise ValueError(f"preset {self.name!r}: acceleration must be >= 1, got {self.acceleration}")
        if not 0 < self.center_fraction < 1 or round(self.recon_size * self.center_fraction) < 1:
            raise ValueError(
                f"preset {self.name!r}: center_fraction={self.center_fraction} must lie in (0, 1) and give at "
                f"least one centre column of the {self.recon_size} acquired ones"
            )

    @property
    def target_contrasts(self) -> tuple[str, ...]:
        """The target's contrast followed by :attr:`extra_contrasts`."""
        return (self.target.contrast, *self.extra_contrasts)

    def section_volumes(self, section: str) -> int:
        """Number of volumes of a manifest section (``target_reference`` mirrors ``target``), extra contrasts
        included."""
        section = "target" if section == "target_reference" else section
        repeats = len(self.target_contrasts) if section in EXTRA_CONTRAST_SECTIONS else 1
        return self.volumes[section][0] * repeats

    @property
    def kspace_size(self) -> tuple[int, int]:
        """``(H, W)`` of the stored k-space: 2x oversampled readout, recon width plus padding band."""
        return 2 * self.recon_size, self.recon_size + 2 * self.pad_columns

    @property
    def pe_range(self) -> tuple[int, int]:
        """Acquired phase-encode columns ``[start, stop)`` of the stored k-space (inside the padding band)."""
        return self.pad_columns, self.pad_columns + self.recon_size


_PROXY = DomainSpec("axial", "t1", "AXT1", num_coils=8, coil_radius=1.5, snr=40.0)
_TARGET = DomainSpec("coronal", "flair", "CORFLAIR", num_coils=6, coil_radius=1.25, snr=25.0)

_SMALL_VOLUMES = {"proxy": (4, 6), "target": (4, 3), "validation": (1, 2), "test": (3, 3)}
_ABDOMEN = DomainSpec("coronal", "fa15", "CORVFA15", num_coils=6, coil_radius=1.25, snr=25.0, anatomy="abdomen")



def _quality_preset(
    name: str, recon_size: int, proxy: DomainSpec, target: DomainSpec, extra_contrasts: tuple[str, ...] = ()
) -> Preset:
    """A quality-benchmark scenario: 5 mm slices and gaps, proxies 4 x 6, target slabs 4 x 3, 1 x 2, 3 x 3
    (training and validation slabs also at ``extra_contrasts``)."""
    return Preset(name=name, recon_size=recon_size, pad_columns=4, proxy=proxy, target=target,
                  volumes=_SMALL_VOLUMES, slice_spacing_mm=5.0, slab_gap_mm=5.0, extra_contrasts=extra_contrasts)


#: The other flip angles of the abdominal series, acquired again at the training and validation positions
#: (fa15 is the target's own, and the only one at test positions).
_ABDOMEN_EXTRA = ("fa2", "fa10", "fa20", "fa25")


PRESETS: dict[str, Preset] = {
    "demo": Preset(
        name="demo",
        recon_size=128,
        pad_columns=4,
        proxy=_PROXY,
        target=_TARGET,
        volumes={"proxy": (6, 8), "target": (6, 8), "validation": (2, 4), "test": (3, 6)},
    ),
    "tiny": Preset(
        name="tiny",
        recon_size=64,
        pad_columns=4,
        proxy=dataclasses.replace(_PROXY, num_coils=4),
        target=dataclasses.replace(_TARGET, num_coils=4),
        volumes={"proxy": (2, 3), "target": (2, 3), "validation": (1, 2), "test": (1, 2)},
        slice_spacing_mm=4.0,
        slab_gap_mm=8.0,
    ),
    # fastMRI brain size (15 coils, k-space 640x368): a handful of slices for the speed benchmark's data wait
    "fastmri": Preset(
        name="fastmri",
        recon_size=320,
        pad_columns=24,
        proxy=dataclasses.replace(_PROXY, num_coils=15),
        target=dataclasses.replace(_TARGET, num_coils=15),
        volumes={"proxy": (1, 4), "target": (1, 4), "validation": (1, 1), "test": (1, 1)},
    ),
    # quality benchmark, CPU profile: 128 px, 4 coils, the abdomen's training and validation slabs at all 5 flip
    # angles (60 target training slices); brain proxy -> brain target at 128 px
    "cpu128_abdomen": _quality_preset("cpu128_abdomen", 128, dataclasses.replace(_PROXY, num_coils=4),
                                      dataclasses.replace(_ABDOMEN, num_coils=4), _ABDOMEN_EXTRA),
    "cpu128_brain": _quality_preset("cpu128_brain", 128, dataclasses.replace(_PROXY, num_coils=4),
                                    dataclasses.replace(_TARGET, num_coils=4)),
    # quality benchmark, CPU profile before 2026-12-01 (profile cpu64): 64 px, 4 coils; brain proxy -> brain
    # target (contrast/orientation shift)
    "cpu_brain": _quality_preset("cpu_brain", 64, dataclasses.replace(_PROXY, num_coils=4),
                                 dataclasses.replace(_TARGET, num_coils=4)),
    # quality benchmark, CPU profile: brain proxy -> real abdomen target (anatomy shift)
    "cpu_abdomen": _quality_preset("cpu_abdomen", 64, dataclasses.replace(_PROXY, num_coils=4),
                                   dataclasses.replace(_ABDOMEN, num_coils=4)),
    # quality benchmark, GPU profile: the demo's sizes, for both scenarios
    "gpu_brain": _quality_preset("gpu_brain", 128, _PROXY, _TARGET),
    "gpu_abdomen": _quality_preset("gpu_abdomen", 128, _PROXY, _ABDOMEN),
}
"""Available presets. ``demo``: the documented demo dataset; ``tiny``: seconds, for unit tests; ``fastmri``:
fastMRI brain size (15 coils, k-space 640x368) for the speed benchmark; ``cpu128_brain`` / ``cpu128_abdomen``
(profile ``cpu``), ``cpu_brain`` / ``cpu_abdomen`` (64 px, profile
``cpu64``) and ``gpu_brain`` / ``gpu_abdomen``: the quality benchmark's brain-to-brain and brain-to-abdomen
scenarios (disjoint target slice positions for training, validation and test; ``cpu128_abdomen`` also
acquires its training and validation positions at the series' other flip angles)."""


def get_preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
        ValueError: for an unknown name (the message lists the valid ones).

    Example:
        >>> get_preset("tiny").kspace_size
        (128, 72)
    """
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name]
