"""CLI benchmark: speed and memory of JSSL training and inference, side by side with references.

Usage: ``python -m pipeline.bench.speed [--quick] [--out bench_results/speed] [--repeats 7]
[--bundle bundles/jssl_varnet] [--manifest data_manifests/demo.json] [--peer-sizes ...]`` (paths relative to the current
directory).

Every comparison is a RATIO of two things timed alternately in the same process (A-B / B-A order swapped
every repetition, median of the per-repetition ratios, :func:`pipeline.bench.common.paired`), so that load
from other processes on a shared machine cancels out as far as possible. One module per part:

1. :mod:`~pipeline.bench.speed.engine`: the bundle's trainer step against the bare step on the same batch,
   and the fraction of wall time the trainer waits for data;
2. :mod:`~pipeline.bench.speed.peers`: forward and training step of the package's VarNet and vSHARP against
   DIRECT's E2E-VarNet and vSHARP (benchmark-only install, skipped and reported when missing) and MONAI's
   ``VariationalNetworkModel`` at matched maths, one fresh process per input size;
3. :mod:`~pipeline.bench.speed.inference`: network forward per slice against L1-wavelet compressed sensing;
4. :mod:`~pipeline.bench.speed.memory`: peak memory of a training step with and without gradient
   checkpointing, one fresh subprocess per configuration;
5. :mod:`~pipeline.bench.speed.gpu` (only with CUDA): step time, peak allocated memory, bf16 AMP speed-up.

:mod:`~pipeline.bench.speed.report` makes ``speed.json``, ``speed.md`` and ``speed.png`` (bar chart of the
ratios); :mod:`~pipeline.bench.speed.cli` is the command line. ``--quick`` is a smoke test (tiny network,
few repetitions, no fastMRI-size runs).

Bundle config ids used (``configs/train.json``): set ``bundle_root``, ``manifest``, ``output_dir``,
``epoch_length``, ``max_epochs`` and, when asked, ``network_size``, ``num_workers``; read ``device``,
``train_loader``, ``optimizer``, ``losses``, ``lr_scheduler``, ``preprocessing``, ``tracker`` (``--mlflow``),
the settings ``precision``, ``grad_clip_norm``, ``branch_weights``, ``batch_size``, ``num_workers``,
``network_size``, ``mode``, and the network module (``model``, or ``network`` in older bundles). Trained
weights, when present, are read from ``<bundle>/models/model.pt``.
"""

from pipeline.bench.speed.cli import main

__all__ = ["main"]
