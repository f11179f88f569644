"""Ignite/MONAI handlers: checkpoints and resume, MLflow tracking, progress."""

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
from pipeline.handlers.tracking import MLflowTracker, ValidationLogger, check_tracking_uri, code_version

__all__ = [
    "AtomicCheckpointSaver",
    "BestModelSaver",
    "ExportBundleWeights",
    "MLflowTracker",
    "MetricsReport",
    "RNGState",
    "ResumeFromLatestCheckpoint",
    "TrainingProgress",
    "ValidationLogger",
    "check_tracking_uri",
    "code_version",
    "latest_checkpoint",
    "load_weights",
    "save_atomic",
]
