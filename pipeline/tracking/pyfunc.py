"""The MLflow ``pyfunc`` flavour of a reconstruction network.

Imported only to log or load a model (importing ``mlflow.pyfunc`` takes seconds). A model folder holds the
``state_dict`` and the bundle's ``metadata.json`` as artifacts, the architecture as ``model_config`` and the
training provenance as ``metadata`` in ``MLmodel`` (see :mod:`pipeline.tracking.registry`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.models import ModelSignature
from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

#: Names of the pyfunc model's artifacts.
WEIGHTS_ARTIFACT, METADATA_ARTIFACT = "weights", "metadata"

#: Any batch, coil count and size: ``kspace (B, C, H, W, 2)``, ``mask (B, 1, H or 1, W, 1)`` -> ``image (B, H, W)``;
#: params as the bundle's inference settings: ``data_consistency`` (default true, as the bundle's) and
#: ``pe_range`` ``[start, stop)`` (the acquirable phase-encode band of every sample; default ``[]``: none).
SIGNATURE = ModelSignature(
    inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1, -1, 2), "kspace"),
                   TensorSpec(np.dtype(np.float32), (-1, 1, -1, -1, 1), "mask")]),
    outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1))]),
    params=ParamSchema([ParamSpec("data_consistency", "boolean", True), ParamSpec("pe_range", "long", [], (-1,))]),
)


class ReconstructionModel(mlflow.pyfunc.PythonModel):
    """MLflow ``pyfunc`` wrapper of a reconstruction network: named k-space inputs in, magnitude images out.

    The network is rebuilt from the model's ``model_config`` (``network``, ``network_size``) and its
    weights are loaded with :func:`pipeline.handlers.load_weights` (``weights_only=True``, architecture
    checked).
    """

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        """Build the network and load the weights artifact (CPU)."""
        from pipeline.handlers import load_weights
        from pipeline.networks import build_network

        config = context.model_config
        network = build_network(config["network"], config["network_size"])
        self.network = load_weights(network, context.artifacts[WEIGHTS_ARTIFACT]).eval()

    def predict(self, context: mlflow.pyfunc.PythonModelContext, model_input, params=None) -> np.ndarray:  # noqa: ANN001
        """Reconstruct, with the output constraints the bundle's inference applies
        (:func:`pipeline.engines.batching.constrain_output`): the measured samples replace the prediction on the
        input mask (``data_consistency``, default true as in the bundle) and, when ``pe_range`` is given, the
        k-space outside the acquirable band is zero. The images are then those of the bundle's inference.

        ``model_input`` and ``params`` carry no type hints on purpose: MLflow turns the hints of ``predict``
        into a schema of its own, which would replace :data:`SIGNATURE` (it warns about the missing hints).

        Args:
            context: the model's context (unused; the network is built in :meth:`load_context`).
            model_input: ``{"kspace": (B, C, H, W, 2) float32, "mask": (B, 1, 1, W, 1) or (B, 1, H, W, 1)}``,
                k-space intensity-normalised as in training, zero outside the mask.
            params: ``{"data_consistency": bool, "pe_range": [start, stop]}`` (both optional; columns).

        Returns:
            The RSS magnitude images ``(B, H, W)`` float32 (not cropped to the header's recon size).

        Raises:
            ValueError: a ``pe_range`` that is not ``[start, stop)`` with ``0 <= start < stop <= W``.
        """
        from pipeline.engines.batching import constrain_output
        from pipeline.keys import Keys

        params = {**{spec.name: spec.default for spec in SIGNATURE.params.params}, **(params or {})}
        kspace = torch.as_tensor(np.asarray(model_input["kspace"], dtype=np.float32))
        mask = torch.as_tensor(np.asarray(model_input["mask"])) != 0
        batch = {Keys.MASKED_KSPACE: kspace, Keys.INPUT_MASK: mask}
        if len(params["pe_range"]):
            batch[Keys.PE_RANGE] = torch.as_tensor(np.asarray(params["pe_range"], dtype=np.int64))
        with torch.no_grad():
            output = self.network(kspace, mask)
            output = constrain_output(output, batch, kspace.device, band_limit=True,
                                      data_consistency=bool(params["data_consistency"]), inputs=(kspace, mask))
        return output.image.numpy()


def save_pyfunc(
    path: Path, weights: Path, metadata: Mapping[str, Any], input_example: Mapping[str, Any]
) -> dict[str, Any]:
    """Write the ``pyfunc`` model folder ``path``; ``path`` must not exist.

    Args:
        path: the model folder to create.
        weights: the ``state_dict`` file.
        metadata: ``network`` and ``network_size`` (the architecture), ``bundle_metadata_file`` (optional: the
            bundle's ``metadata.json``, copied as an artifact; its name, version, task and intended use go
            into ``metadata["bundle"]``) and any further JSON-able provenance.
        input_example: named float32 inputs (:func:`pipeline.tracking.registry.example_input`), stored with
            the model (the signature is :data:`SIGNATURE`, for any coil count and size).

    Returns:
        The model's ``metadata`` as stored in ``MLmodel``: ``metadata`` without ``bundle_metadata_file`` (a
        local path), with ``bundle`` (name, version, task, intended use) when that file was given.
    """
    artifacts = {WEIGHTS_ARTIFACT: str(weights)}
    facts = dict(metadata)
    bundle_meta = facts.pop("bundle_metadata_file", None)
    if bundle_meta is not None:
        artifacts[METADATA_ARTIFACT] = str(bundle_meta)
        bundle = json.loads(Path(bundle_meta).read_text())
        facts["bundle"] = {key: bundle.get(key) for key in ("name", "version", "task", "intended_use")}
    mlflow.pyfunc.save_model(
        path=str(path),
        python_model=ReconstructionModel(),
        artifacts=artifacts,
        model_config={"network": facts["network"], "network_size": facts["network_size"]},
        signature=SIGNATURE,
        input_example=dict(input_example),
        metadata=facts,
        pip_requirements=[],  # the receiving site installs this package; nothing is resolved from PyPI here
    )
    return facts
