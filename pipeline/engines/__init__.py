"""Training and evaluation engines (MONAI/Ignite)."""

from pipeline.engines.evaluator import ReconstructionEvaluator
from pipeline.engines.interleave import MODE_BRANCHES, InterleavedLoader, schedule_from_ratio
from pipeline.engines.startup import (
    ConfigError,
    finalize_distributed,
    init_distributed,
    is_not_rank0,
    preflight,
    seed_everything,
    sl_section,
    wrap_ddp,
)
from pipeline.engines.trainer import JSSLTrainer, autocast_context

__all__ = [
    "ConfigError",
    "finalize_distributed",
    "init_distributed",
    "is_not_rank0",
    "preflight",
    "seed_everything",
    "sl_section",
    "wrap_ddp",
    "MODE_BRANCHES",
    "InterleavedLoader",
    "JSSLTrainer",
    "ReconstructionEvaluator",
    "autocast_context",
    "schedule_from_ratio",
]
