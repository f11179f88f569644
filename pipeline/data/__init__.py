"""Data layer: errors, ISMRMRD headers, raw formats, slice readers (MONAI transforms), manifests, datasets, simulation.

The CLIs ``python -m pipeline.data.simulate`` and ``python -m pipeline.data.preview`` are not
imported here (they pull in nilearn/sigpy/matplotlib lazily).
"""

from pipeline.data.datasets import SliceDataset, expand_slices, manifest_dataset
from pipeline.data.errors import DataError
from pipeline.data.formats import FORMATS, READERS, RawFormat, VolumeInfo, detect_format, register_format
from pipeline.data.ismrmrd import EncodingInfo, default_encoding, parse_ismrmrd_header, write_ismrmrd_header
from pipeline.data.manifests import (
    SECTIONS,
    load_manifest,
    manifest_data_root,
    manifest_digest,
    manifest_sections,
    read_manifest,
    resolve_inputs,
)
from pipeline.data.readers import LoadSlice, LoadSliced, inspect_volume

__all__ = [
    "DataError",
    "EncodingInfo",
    "FORMATS",
    "LoadSlice",
    "LoadSliced",
    "RawFormat",
    "READERS",
    "SECTIONS",
    "SliceDataset",
    "VolumeInfo",
    "default_encoding",
    "detect_format",
    "expand_slices",
    "inspect_volume",
    "load_manifest",
    "manifest_data_root",
    "manifest_dataset",
    "manifest_digest",
    "manifest_sections",
    "parse_ismrmrd_header",
    "read_manifest",
    "register_format",
    "resolve_inputs",
    "write_ismrmrd_header",
]
