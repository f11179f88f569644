"""``python -m pipeline.federated``: federated JSSL of the bundle in NVFlare's simulator.

By default the demo datalist is split into three sites (:func:`pipeline.federated.job.demo_sites`): ``proxy``
(fully sampled proxy data, ``sl`` branch) and ``target-1``, ``target-2`` (halves of the subsampled target
data, ``ssl`` branch). ``--sites`` takes a JSON file of your own: ``{"<site>": {"mode": "ssl", "manifest":
"<datalist>"}, ...}``. Every round each site trains ``--iterations`` steps from the global network and
NVFlare's FedAvg averages the results; the final global network is ``<output_dir>/global_model.pt``
(a ``state_dict`` for ``--ckpt_path`` of the bundle's inference and evaluation).

Example (the README's command)::

    python -m pipeline.federated --rounds 4 --iterations 10 --network_size tiny --output_dir runs/federated
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "jssl_varnet"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.federated", description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default="data_manifests/demo.json", help="datalist split into sites")
    parser.add_argument("--sites", type=Path, default=None,
                        help="JSON: site -> {mode, manifest} (instead of the split)")
    parser.add_argument("--target_sites", type=int, default=2, help="target sites of the split")
    parser.add_argument("--output_dir", type=Path, default=Path("runs/federated"), help="job, workspace and results")
    parser.add_argument("--rounds", type=int, default=4, help="FedAvg rounds")
    parser.add_argument("--iterations", type=int, default=10, help="local training steps per site and round")
    parser.add_argument("--network", default="varnet", help="network of the bundle (varnet, vsharp)")
    parser.add_argument("--network_size", default="demo", help="network size preset")
    parser.add_argument("--batch_size", type=int, default=2, help="training batch size per site")
    parser.add_argument("--learning_rate", type=float, default=1e-3, help="Adam learning rate at every site")
    parser.add_argument("--num_workers", type=int, default=0, help="data-loader workers per site")
    parser.add_argument("--on_bad_site", choices=("fail", "skip"), default="fail",
                        help="a site whose data or training is bad: stop the job in that round, or leave it out")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial global network")
    parser.add_argument("--bundle_root", type=Path, default=REPO_BUNDLE, help="bundle each site trains with")
    parser.add_argument("--generate_demo_data", type=lambda t: t.lower() in ("1", "true", "yes"), default=True,
                        help="simulate the demo files when missing (default true)")
    parser.add_argument("--keep_site_weights", action="store_true", help="save what every site sends each round")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the federation; print one line per site and round, or one ``error:`` line.

    Returns:
        0 when every round completed (skipped sites included), 1 when the job failed.
    """
    args = _parser().parse_args(argv)
    from pipeline.data.errors import DataError
    from pipeline.federated.job import check_sites, demo_sites, simulate

    overrides = {"network": args.network, "network_size": args.network_size, "batch_size": args.batch_size,
                 "learning_rate": args.learning_rate, "num_workers": args.num_workers,
                 "warmup_iterations": max(1, min(50, args.rounds * args.iterations // 10))}
    try:
        if args.sites is not None:
            if not args.sites.is_file():
                raise ValueError(f"--sites {args.sites} does not exist")
            try:
                sites = check_sites(json.loads(args.sites.read_text()))
            except json.JSONDecodeError as err:
                raise ValueError(f"--sites {args.sites} is not valid JSON ({err.msg}, line {err.lineno})") from None
        else:
            if args.generate_demo_data:
                from pipeline.data.simulate import ensure_dataset

                ensure_dataset(args.manifest)
            sites = demo_sites(args.manifest, args.output_dir, args.target_sites)
        result = simulate(sites, args.output_dir, args.rounds, args.iterations, args.bundle_root, overrides,
                          args.on_bad_site, args.seed, args.keep_site_weights)
    except (DataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for site, entries in result["rounds"].items():
        for entry in entries:
            detail = f" ({entry['error']})" if "error" in entry else ""
            print(f"{site} round {entry['round']}: {entry['status']}{detail}")
    if result["global_model"] is None:
        print(f"error: federated training failed: {result['failed'][0] if result['failed'] else 'unknown'}",
              file=sys.stderr)
        return 1
    print(f"global model: {result['global_model']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
