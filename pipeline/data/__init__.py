"""Data layer: errors, ISMRMRD headers, raw formats, slice readers (MONAI transforms), manifests, datasets,
the header cache, shape-bucketed batch sampling, simulation.

The CLIs ``python -m pipeline.data.simulate``, ``python -m pipeline.data.preview``, ``python -m
pipeline.data.inspect`` and ``python -m pipeline.data.convert_prostate`` are not imported
here.
"""

from pipeline.data.cache import HeaderCache, default_cache_path
from pipeline.data.datasets import Scan, SliceDataset, expand_slices, manifest_dataset, scan_items
from pipeline.data.errors import DataError, data_error_message
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
    volume_id,
)
from pipeline.data.readers import LoadSlice, LoadSliced, check_volume_data, inspect_volume
from pipeline.data.samplers import ShapeBatchSampler, describe_groups

__all__ = [
    "DataError",
    "EncodingInfo",
    "FORMATS",
    "HeaderCache",
    "Scan",
    "ShapeBatchSampler",
    "LoadSlice",
    "LoadSliced",
    "RawFormat",
    "READERS",
    "SECTIONS",
    "SliceDataset",
    "VolumeInfo",
    "check_volume_data",
    "data_error_message",
    "default_cache_path",
    "default_encoding",
    "describe_groups",
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
    "scan_items",
    "volume_id",
    "write_ismrmrd_header",
]
