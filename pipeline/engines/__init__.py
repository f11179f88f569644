"""Training and evaluation engines (MONAI/Ignite)."""

from pipeline.engines.evaluator import ReconstructionEvaluator
from pipeline.engines.interleave import MODE_BRANCHES, InterleavedLoader, schedule_from_ratio
from pipeline.engines.trainer import JSSLTrainer, autocast_context

__all__ = [
    "MODE_BRANCHES",
    "InterleavedLoader",
    "JSSLTrainer",
    "ReconstructionEvaluator",
    "autocast_context",
    "schedule_from_ratio",
]
