"""Experiment tracking: a small :class:`Tracker` interface with the patient-identifier guard, the MLflow
backend, the Ignite handlers that work with any backend, the settings logged from a resolved config, and the
MLflow model registry (:mod:`pipeline.tracking.registry`)."""

from pipeline.tracking.base import END_STATUSES, FORBIDDEN_KEYS, Tracker, check_keys
from pipeline.tracking.handlers import TrackingHandler, ValidationLogger
from pipeline.tracking.mlflow import MLflowTracker, check_tracking_uri
from pipeline.tracking.registry import RegisterModel, inference_weights, resolve_model_uri
from pipeline.tracking.settings import code_version, loggable_settings

__all__ = [
    "END_STATUSES",
    "FORBIDDEN_KEYS",
    "MLflowTracker",
    "RegisterModel",
    "Tracker",
    "TrackingHandler",
    "ValidationLogger",
    "check_keys",
    "check_tracking_uri",
    "code_version",
    "inference_weights",
    "loggable_settings",
    "resolve_model_uri",
]
