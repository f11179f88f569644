"""``python -m pipeline.share``: export, verify and run shared bundles.

Commands::

    python -m pipeline.share export --bundle bundles/jssl_varnet --train_dir runs/jssl_varnet \
        --out runs/share/jssl_varnet.zip
    python -m pipeline.share verify runs/share/jssl_varnet.zip
    python -m pipeline.share run runs/share/jssl_varnet.zip inference --input_dir scans --output_dir out
    python -m pipeline.share run runs/share/jssl_varnet.zip finetune --manifest local.json --output_dir ft

``run`` verifies the archive first (nothing of it is parsed before), checks it has the command's configs,
unpacks the verified files into ``--bundle_dir`` (default ``<output_dir>/bundle``; a folder from an earlier
run is replaced whole, see :func:`pipeline.share.archive.unpack`), then runs ``python -m monai.bundle run``
with the bundle's config list for the command (:data:`CONFIG_LISTS`), ``--bundle_root`` set and every further
``--name value`` passed on as a bundle setting. Any refusal is one line on stderr (``error: ...``) and exit status 1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pipeline.share.archive import ArchiveError, unpack
from pipeline.share.export import export
from pipeline.share.verify import verify

__all__ = ["CONFIG_LISTS", "main", "run_bundle"]

#: ``run`` commands -> the config files of ``monai.bundle run``, in overlay order.
CONFIG_LISTS = {
    "inference": ("train.json", "inference.json"),
    "evaluate": ("train.json", "inference.json", "evaluate.json"),
    "finetune": ("train.json", "finetune.json"),
    "train": ("train.json",),
}


def run_bundle(archive: str | Path, command: str, settings: Sequence[str], bundle_dir: str | Path | None = None) -> int:
    """Verify ``archive``, unpack it, and run one of its workflows with ``python -m monai.bundle run``.

    Args:
        archive: a shared bundle (zip or folder).
        command: a key of :data:`CONFIG_LISTS`.
        settings: further ``--name value`` bundle settings (``--output_dir``, ``--input_dir`` ...).
        bundle_dir: where to unpack; default ``<output_dir>/bundle`` when ``--output_dir`` is among
            ``settings``, else a temporary folder removed afterwards.

    Returns:
        The exit status of the bundle run.

    Raises:
        ArchiveError: the archive failed verification, lacks a config of ``command``, or ``bundle_dir`` holds
            something else than an unpacked shared bundle (nothing was unpacked or run).
    """
    verified = verify(archive)
    missing = [name for name in CONFIG_LISTS[command] if f"configs/{name}" not in verified.files]
    if missing:
        raise ArchiveError(f"{archive}: `run {command}` needs configs/{missing[0]}, which the bundle does not have")
    settings = list(settings)
    with tempfile.TemporaryDirectory() as scratch:
        if bundle_dir is None and "--output_dir" in settings[:-1]:
            bundle_dir = Path(settings[settings.index("--output_dir") + 1]) / "bundle"
        root = unpack(verified.files, Path(bundle_dir or scratch) / verified.name)
        configs = [str(root / "configs" / name) for name in CONFIG_LISTS[command]]
        cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(configs),
               "--bundle_root", str(root), *settings]
        print(f"verified {archive} (bundle hash {verified.bundle_hash}); running {command} from {root}", flush=True)
        return subprocess.run(cmd).returncode


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m pipeline.share``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.share", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p_export = commands.add_parser("export", help="pack a trained bundle into a verified, shareable archive")
    p_export.add_argument("--bundle", type=Path, default=Path("bundles/jssl_varnet"), help="bundle folder")
    p_export.add_argument("--train_dir", type=Path, required=True, help="output folder of the training run")
    p_export.add_argument("--out", type=Path, required=True, help="archive to write (.zip)")
    p_export.add_argument("--weights", type=Path,
                          help="weights (default: the file the run recorded; must have the sha256 it recorded)")
    p_export.add_argument("--tracking_uri", help="MLflow store of the run (default: the bundle's in train_dir)")
    p_verify = commands.add_parser("verify", help="check an archive before anything of it is parsed")
    p_verify.add_argument("archive", type=Path, help="shared bundle: zip or folder")
    p_run = commands.add_parser("run", help="verify, unpack and run a workflow of a shared bundle",
                                epilog="further --name value pairs are bundle settings, e.g. --input_dir scans")
    p_run.add_argument("archive", type=Path, help="shared bundle: zip or folder")
    p_run.add_argument("workflow", choices=sorted(CONFIG_LISTS), help="which configs to run")
    p_run.add_argument("--bundle_dir", type=Path, help="where to unpack (default <output_dir>/bundle)")
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "run":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "export":
            verified = export(args.bundle, args.train_dir, args.out, args.weights, args.tracking_uri)
            print(f"exported {args.out}: {len(verified.files)} files, bundle hash {verified.bundle_hash}")
        elif args.command == "verify":
            verified = verify(args.archive)
            print(f"verified {args.archive}: {len(verified.files)} files, bundle hash {verified.bundle_hash}")
        else:
            return run_bundle(args.archive, args.workflow, rest, args.bundle_dir)
    except ArchiveError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
