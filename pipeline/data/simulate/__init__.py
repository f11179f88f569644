"""Realistic offline raw data: real anatomy (MNI152 brain via nilearn, an abdominal VFA series via mdreg),
simulated multi-coil acquisition.

Writes fastMRI-layout multi-coil ``.h5`` files plus a manifest (:mod:`pipeline.data.manifests`)::

    python -m pipeline.data.simulate --preset demo --out data/demo --manifest data_manifests/demo.json

Modules, one job each (see the project's ``simulation.md`` for the physics):

- :mod:`~pipeline.data.simulate.presets`: :class:`DomainSpec`, :class:`Preset` and :data:`PRESETS`;
- :mod:`~pipeline.data.simulate.anatomy`: the object, slices of the MNI152 2009 template and their
  contrasts (proxy: axial T1-like; target: coronal FLAIR-like, CSF dark and GM > WM), or of the coronal
  abdominal variable-flip-angle series shipped in the ``mdreg`` wheel (presets ``cpu128_abdomen``, ``cpu_abdomen``,
  ``gpu_abdomen``; ``cpu128_abdomen`` adds the series' other flip angles at its training and validation positions);
- :mod:`~pipeline.data.simulate.acquisition`: coil maps, phase, k-space, noise, masks and header of one volume;
- :mod:`~pipeline.data.simulate.files`: file names and layout, the manifest, :func:`generate` and
  :func:`ensure_dataset`;
- :mod:`~pipeline.data.simulate.cli`: the command line.

Masks are fastMRI equispaced 1-D masks (4x, 8% centre fraction by default) drawn inside the acquired
band, seeded from ``sha256(f"{seed}:{file name}:{slice}")``. Volumes are disjoint slabs of the template;
target-domain slabs for training, validation and test are interleaved along the slice axis and never
share a slice position. Everything is deterministic given ``--seed``.
"""

from pipeline.data.simulate.cli import main
from pipeline.data.simulate.files import build_manifest, ensure_dataset, file_name, generate
from pipeline.data.simulate.presets import PRESETS, DomainSpec, Preset

__all__ = [
    "DomainSpec",
    "Preset",
    "PRESETS",
    "build_manifest",
    "ensure_dataset",
    "file_name",
    "generate",
    "main",
]
