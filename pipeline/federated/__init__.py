"""Federated JSSL on NVFlare: FedAvg of the bundle's network across sites that each train their own branch
(``sl`` on fully sampled proxy data, ``ssl`` on subsampled target data) with the bundle's trainer.

``python -m pipeline.federated`` runs it in NVFlare's simulator (:mod:`pipeline.federated.__main__`);
:mod:`pipeline.federated.job` builds the job from NVFlare's FedAvg recipe, :mod:`pipeline.federated.site`
is what each site runs.
"""
