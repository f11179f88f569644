"""CLI benchmark of reconstruction QUALITY: classical baselines vs SL / SSL / JSSL / oracle on the demo data.

Usage (paths relative to the current directory; ``--bundle`` and ``--manifest`` default to
``bundles/jssl_varnet`` and ``data_manifests/demo.json``)::

    python -m pipeline.bench.quality --profile cpu        # both scenarios, 4x/8x/16x, 3 seeds, ablations
    python -m pipeline.bench.quality --profile cpu --jobs 2   # the same as 2 processes (one per core)
    python -m pipeline.bench.quality --profile cpu --ablation q_0.2   # one ablation row
    python -m pipeline.bench.quality                      # the demo data only (brain to brain, 4x and 8x)
    python -m pipeline.bench.quality --quick              # smoke run on the tiny preset (< 1 min)
    python -m pipeline.bench.quality --help

On the demo domain-shift data (proxy = fully sampled axial T1-like, target = coronal FLAIR-like), at
every requested acceleration (equispaced 1-D masks, centre fraction 0.08 at 4x, 0.04 at 8x), it trains
the learned methods with the SAME iteration budget and scores every method on the held-out ``test``
section:

=====================  ==========================================================================
zero-filled, SENSE     the evaluation's ``baselines`` (:data:`pipeline.baselines.BASELINES`),
(CG), compressed       computed once per acceleration (deterministic: no std)
sensing (L1-wavelet)
SL on proxy only       ``train.json`` with ``mode = sl``
SSL on target only     ``train.json`` with ``mode = ssl``
JSSL                   ``train.json`` with ``mode = jssl``
SL on target (oracle)  ``train.json`` with ``mode = sl_target`` (the target training slices fully sampled)
=====================  ==========================================================================

The target domain uses the section ``target_reference`` with ``override_stored_masks=True``: every
target training / validation / test slice gets ONE fixed mask of the requested acceleration (seeded
from file name and slice), and the SSL branch sees only that subsampled k-space. Scores are fastMRI
per-volume NMSE / PSNR / SSIM (:class:`pipeline.metrics.VolumeMetrics`); a learned method's row is the
mean and the sample standard deviation over seeds of the per-seed means over test volumes.

With ``--profile cpu`` (or ``gpu``) the data are two simulated scenarios (:mod:`~pipeline.bench.quality.profiles`):
a brain proxy with a real abdomen target (the anatomy shift of the paper's setting) and a brain proxy with a
brain target in another contrast and orientation, each with its own table, targets (JSSL vs SSL and vs SL-proxy
beyond ±1 std, share of the SSL->oracle SSIM gap closed, SSL vs zero-filled), convergence check (validation
SSIM gains < 0.005 over the last 20 % of the budget) and figure with learning curves; then the ablation rows
(JSSL on the anatomy shift at 8x with one setting changed: SL:SSL ratio, proxy amount, SSDU q, SSL on
everything, vSHARP). ``--report-only`` writes the report from finished runs; ``--jobs N`` runs the work as N
parallel processes split by seed (:func:`~pipeline.bench.quality.cli.process_commands`), then writes the report.

Modules: :mod:`~pipeline.bench.quality.methods` (methods, labels, masks, defaults),
:mod:`~pipeline.bench.quality.profiles` (profiles, scenarios, ablations), :mod:`~pipeline.bench.quality.report`
(the ``--profile`` report),
:mod:`~pipeline.bench.quality.runs` (train / evaluate through the bundle, reuse of finished runs),
:mod:`~pipeline.bench.quality.tables` (aggregation, JSSL vs SSL, markdown),
:mod:`~pipeline.bench.quality.figure` (``quality.png``) and :mod:`~pipeline.bench.quality.cli`.

Outputs in ``--out``: ``quality.json`` (settings, machine, every per-seed and per-volume number, wall
times), ``quality.md`` (the table) and ``quality.png`` (metric bars with error bars, and one test slice
reconstructed by every method at the highest acceleration, with error maps). Completed runs are kept in
``--work-dir`` and reused when the benchmark is started again with the same settings (``--fresh`` to
retrain), so a killed run resumes where it stopped.

Bundle config ids used. ``configs/train.json`` (one run per method, seed and acceleration) gets
``bundle_root``, ``manifest``, ``generate_demo_data``, ``output_dir``, ``model_path``, ``run_name``,
``mode``, ``seed``, ``acceleration``, ``center_fraction``, ``mask_type``, ``target_section``,
``override_stored_masks``, ``readout_crop``, ``network_size``, ``batch_size``, ``num_workers``,
``max_epochs``, ``epoch_length``, ``val_interval``, ``checkpoint_interval``, ``log_every`` and any
``--set``. Evaluation reads ``configs/inference.json`` with ``configs/evaluate.json`` on top and gets
``bundle_root``, ``manifest``, ``section``, ``generate_demo_data``, ``output_dir``, ``network_size``,
``readout_crop``, ``acceleration``, ``center_fraction``, ``mask_type``, ``override_stored_masks``,
``baselines``, ``ckpt_path`` and, for the classical methods, ``metrics`` and the network module
(``model``, or ``network`` in older bundles) set to ``None``; the figure reads ``dataset`` and the network
module. Results are read from the evaluation's ``metrics.json`` (``summary`` / ``per_volume`` per method).
"""

from pipeline.bench.quality.cli import main, parse_args, process_commands, reproduce_command

__all__ = ["main", "parse_args", "process_commands", "reproduce_command"]
