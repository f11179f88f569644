"""Training and evaluation engines (MONAI/Ignite), the training-mode table and batch helpers."""

from pipeline.engines.batching import autocast_context, data_range, intensity_scale, loss_arguments, network_inputs
from pipeline.engines.cli import keep_text_settings
from pipeline.engines.evaluator import ReconstructionEvaluator
from pipeline.engines.interleave import InterleavedLoader, schedule_from_ratio
from pipeline.engines.memory import return_freed_memory
from pipeline.engines.modes import MODES, TrainingMode, branch_sections, training_mode, uses_branch
from pipeline.engines.startup import (
    ConfigError,
    DataErrorExit,
    ensure_demo_data,
    finalize_distributed,
    init_distributed,
    is_not_rank0,
    preflight,
    record_skipped_files,
    seed_everything,
    skipped_files,
    wrap_ddp,
)
from pipeline.engines.trainer import JSSLTrainer

__all__ = [
    "MODES",
    "ConfigError",
    "DataErrorExit",
    "InterleavedLoader",
    "JSSLTrainer",
    "ReconstructionEvaluator",
    "TrainingMode",
    "autocast_context",
    "branch_sections",
    "data_range",
    "ensure_demo_data",
    "finalize_distributed",
    "init_distributed",
    "intensity_scale",
    "keep_text_settings",
    "is_not_rank0",
    "loss_arguments",
    "network_inputs",
    "preflight",
    "record_skipped_files",
    "return_freed_memory",
    "schedule_from_ratio",
    "seed_everything",
    "skipped_files",
    "training_mode",
    "uses_branch",
    "wrap_ddp",
]
