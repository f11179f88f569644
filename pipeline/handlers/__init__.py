"""Ignite/MONAI handlers: checkpoints and resume, progress, evaluation report (tracking: :mod:`pipeline.tracking`)."""

from pipeline.handlers.checkpoint import (
    AtomicCheckpointSaver,
    BestModelSaver,
    ExportBundleWeights,
    ResumeFromLatestCheckpoint,
    RNGState,
    bundle_weights,
    check_weights,
    latest_checkpoint,
    load_weights,
    read_weights,
    save_atomic,
)
from pipeline.handlers.progress import TrainingProgress
from pipeline.handlers.report import MetricsReport

__all__ = [
    "AtomicCheckpointSaver",
    "BestModelSaver",
    "ExportBundleWeights",
    "MetricsReport",
    "RNGState",
    "ResumeFromLatestCheckpoint",
    "TrainingProgress",
    "bundle_weights",
    "check_weights",
    "latest_checkpoint",
    "load_weights",
    "read_weights",
    "save_atomic",
]
