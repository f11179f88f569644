"""Ignite/MONAI handlers: checkpoints and resume, progress, evaluation report (tracking: :mod:`pipeline.tracking`)."""

from pipeline.handlers.checkpoint import (
    AtomicCheckpointSaver,
    BestModelSaver,
    ExportBundleWeights,
    ResumeFromLatestCheckpoint,
    RNGState,
    latest_checkpoint,
    load_weights,
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
    "latest_checkpoint",
    "load_weights",
    "save_atomic",
]
