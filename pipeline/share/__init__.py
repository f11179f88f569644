"""Share a trained bundle with another hospital: export, verify, run and fine-tune (``python -m pipeline.share``).

- :mod:`~pipeline.share.archive`: reading a zip or folder safely, the sha256 manifest, the bundle hash;
- :mod:`~pipeline.share.policy`: what configs may call, no patient identifiers or absolute paths;
- :mod:`~pipeline.share.verify`: every check before a shared bundle is used;
- :mod:`~pipeline.share.export`: packing a trained bundle with its provenance and model card;
- :mod:`~pipeline.share.finetune`: the parent bundle of a fine-tuning run (``configs/finetune.json``);
- :mod:`~pipeline.share.cli`: the command line.
"""

from pipeline.share.archive import CHECKSUMS, ArchiveError, bundle_hash, read_bundle
from pipeline.share.export import export, training_provenance
from pipeline.share.finetune import parent_bundle_hash, parent_weights
from pipeline.share.verify import VerifiedBundle, verify

__all__ = [
    "CHECKSUMS",
    "ArchiveError",
    "VerifiedBundle",
    "bundle_hash",
    "export",
    "parent_bundle_hash",
    "parent_weights",
    "read_bundle",
    "training_provenance",
    "verify",
]
