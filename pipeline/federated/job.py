"""The federated JSSL job on NVFlare: FedAvg (NVFlare's ``FedAvgRecipe``, its controller and aggregation) of the
bundle's network, with every site running :mod:`pipeline.federated.site` through NVFlare's ``ScriptRunner``, in
NVFlare's simulator.

Nothing of the federation protocol is written here: this module lays out the sites' data and settings,
configures the recipe (``on_bad_site`` maps to the controller's own client-error policy) and reads the
outcome back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pipeline.data.manifests import load_manifest, manifest_data_root
from pipeline.engines.modes import training_mode
from pipeline.federated.site import ON_BAD_SITE

#: The site script NVFlare runs (copied into the job by ``ScriptRunner``).
CLIENT_SCRIPT = Path(__file__).with_name("client.py")
#: The federation's settings file in the output folder, read by every site.
SETTINGS_FILE = "federation.json"
#: The final global model in the output folder (a plain ``state_dict``).
GLOBAL_MODEL = "global_model.pt"


def demo_sites(manifest: str | Path, output_dir: str | Path, target_sites: int = 2) -> dict[str, dict[str, str]]:
    """Split a JSSL datalist into sites, one manifest each under ``<output_dir>/manifests``.

    Site ``proxy`` holds the ``proxy`` section (fully sampled; trains the ``sl`` branch); sites ``target-1`` ...
    ``target-<target_sites>`` hold every ``target_sites``-th volume of the ``target`` section (subsampled;
    train the ``ssl`` branch). Paths stay relative to the original data root, written as absolute.

    Returns:
        Site name -> ``{"mode": ..., "manifest": <path>}``.

    Raises:
        DataError: the manifest is missing or malformed.
        ValueError: ``target_sites`` is below 1 or above the number of target volumes.
    """
    root = manifest_data_root(manifest)
    proxy = load_manifest(manifest, "proxy")
    target = load_manifest(manifest, "target")
    if not 1 <= target_sites <= len(target):
        raise ValueError(f"target_sites must be between 1 and {len(target)} (target volumes), got {target_sites}")
    folder = Path(output_dir) / "manifests"
    folder.mkdir(parents=True, exist_ok=True)

    def write(name: str, section: str, items: list[dict[str, Any]]) -> str:
        content = {
            "name": name,
            "data_root": str(root),
            section: [{"file": str(Path(item["file"]).relative_to(root)), **_extra(item)} for item in items],
        }
        path = folder / f"{name}.json"
        path.write_text(json.dumps(content, indent=1) + "\n")
        return str(path)

    sites = {"proxy": {"mode": "sl", "manifest": write("proxy", "proxy", proxy)}}
    for i in range(target_sites):
        name = f"target-{i + 1}"
        sites[name] = {"mode": "ssl", "manifest": write(name, "target", target[i::target_sites])}
    return sites


def _extra(item: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest item's own fields besides the file (``source``, ``format``)."""
    return {key: item[key] for key in ("source", "format") if key in item}


def check_sites(sites: Any) -> dict[str, dict[str, str]]:
    """The sites of a federation, checked: ``{"<site>": {"mode": "<mode>", "manifest": "<datalist>"}, ...}``.

    Args:
        sites: the parsed ``--sites`` JSON (or :func:`demo_sites`).

    Returns:
        Site name -> ``{"mode": ..., "manifest": <absolute path>}``: manifests resolved against the current
        directory, since NVFlare's simulator runs each site in a folder of its own.

    Raises:
        ValueError: (one line) not a non-empty mapping of site names to ``mode`` / ``manifest`` strings, an unknown
            mode, or a manifest that does not exist.
    """
    if not isinstance(sites, Mapping) or not sites:
        raise ValueError('--sites must map site names to {"mode": ..., "manifest": ...}; a federation needs at '
                         "least one site")
    checked = {}
    for name, spec in sites.items():
        if not isinstance(spec, Mapping) or not all(isinstance(spec.get(key), str) for key in ("mode", "manifest")):
            raise ValueError(f'--sites: site {name!r} must be {{"mode": "<mode>", "manifest": "<datalist>"}}, '
                             f"got {json.dumps(spec)[:80]}")
        training_mode(spec["mode"])
        manifest = Path(spec["manifest"]).resolve()
        if not manifest.is_file():
            raise ValueError(f"--sites: manifest of site {name!r} ({spec['manifest']}) does not exist")
        checked[name] = {**spec, "manifest": str(manifest)}
    return checked


def write_settings(
    output_dir: str | Path,
    sites: Mapping[str, Mapping[str, str]],
    iterations: int,
    bundle_root: str | Path,
    overrides: Mapping[str, Any],
    on_bad_site: str,
    keep_site_weights: bool = False,
) -> Path:
    """Write the settings every site reads (:func:`pipeline.federated.site.run_site`).

    Every path in the settings is absolute (the sites run in folders of NVFlare's simulator workspace).

    Raises:
        ValueError: an unknown ``on_bad_site``, ``iterations`` below 1, or bad sites (:func:`check_sites`).
    """
    if on_bad_site not in ON_BAD_SITE:
        raise ValueError(f"--on_bad_site must be one of {ON_BAD_SITE}, got {on_bad_site!r}")
    if iterations < 1:
        raise ValueError(f"--iterations must be >= 1, got {iterations}")
    settings = {
        "sites": check_sites(sites),
        "iterations": int(iterations),
        "bundle_root": str(Path(bundle_root).resolve()),
        "overrides": dict(overrides),
        "output_dir": str(Path(output_dir).resolve()),
        "on_bad_site": on_bad_site,
        "keep_site_weights": bool(keep_site_weights),
    }
    path = Path(output_dir) / SETTINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=1) + "\n")
    return path


def simulate(
    sites: Mapping[str, Mapping[str, str]],
    output_dir: str | Path,
    rounds: int,
    iterations: int,
    bundle_root: str | Path,
    overrides: Mapping[str, Any] | None = None,
    on_bad_site: str = "fail",
    seed: int = 0,
    keep_site_weights: bool = False,
) -> dict[str, Any]:
    """Run federated JSSL in NVFlare's simulator: ``rounds`` of FedAvg over ``sites``.

    The initial global network is ``build_network(network, network_size)`` under ``torch.manual_seed(seed)``
    (saved as ``<output_dir>/initial_model.pt``).
    The simulator's workspace is ``<output_dir>/nvflare``; the final global model is copied to
    ``<output_dir>/global_model.pt``.

    Args:
        sites: name -> ``{"mode": ..., "manifest": ...}`` (e.g. :func:`demo_sites`).
        output_dir: the federation's folder.
        rounds: FedAvg rounds.
        iterations: local training steps per site and round.
        bundle_root: the bundle folder.
        overrides: ``train.json`` settings of every site (``network``, ``network_size``, ``batch_size`` ...).
        on_bad_site: ``"fail"``: a site that cannot train stops the job in that round (NVFlare's controller
            is strict about client errors); ``"skip"``: its empty result is left out of the average.
        seed: seed of the initial network.
        keep_site_weights: every site also saves what it sends, ``<output_dir>/sites/<site>/round_<r>.pt``
            (an audit of the average).

    Returns:
        ``{"global_model": path or None, "rounds": {site: [round outcomes]}, "failed": [messages]}``; the
        global model is ``None`` when the job did not complete (a site failed it with ``on_bad_site="fail"``).

    Raises:
        ValueError: bad settings (see :func:`write_settings`).
    """
    from nvflare.app_opt.pt.recipes.fedavg import FedAvgRecipe
    from nvflare.recipe import SimEnv

    from pipeline.networks import build_network, network_spec

    overrides = dict(overrides or {})
    output = Path(output_dir).resolve()
    settings = write_settings(output, sites, iterations, bundle_root, overrides, on_bad_site, keep_site_weights)
    for log in (output / "sites").glob("*.jsonl"):
        log.unlink()
    name, size = overrides.get("network", "varnet"), overrides.get("network_size", "demo")
    torch.manual_seed(seed)
    initial = output / "initial_model.pt"
    torch.save(build_network(name, size).state_dict(), initial)
    builder = network_spec(name).builder  # NVFlare rebuilds the network from its class and arguments
    model = {"class_path": f"{builder.__module__}.{builder.__qualname__}", "args": dict(network_spec(name).sizes[size])}

    class Recipe(FedAvgRecipe):
        """NVFlare's FedAvg recipe with the controller's client-error policy set from ``on_bad_site``."""

        def _get_controller_kwargs(self) -> dict[str, Any]:
            return {"ignore_result_error": on_bad_site == "skip"}

    recipe = Recipe(
        name="federated_jssl",
        model=model,
        initial_ckpt=str(initial),
        min_clients=len(sites),
        num_rounds=int(rounds),
        train_script=str(CLIENT_SCRIPT),
        train_args=f"--settings {settings}",
    )
    env = SimEnv(clients=list(sites), num_threads=len(sites), workspace_root=str(output / "nvflare"))
    # the sites' processes import this same package
    package_root = str(Path(__file__).resolve().parents[2])
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    try:
        recipe.execute(env)
        simulator_error = None
    except RuntimeError as err:  # the simulator's exit status; the sites' logs say which site failed
        simulator_error = str(err)
    return _outcome(output, sites, simulator_error)


def _outcome(output: Path, sites: Mapping[str, Any], simulator_error: str | None) -> dict[str, Any]:
    """The sites' round logs and, when the job completed, the final global model (as a plain ``state_dict``)."""
    rounds = {}
    for site in sites:
        log = output / "sites" / f"{site}.jsonl"
        rounds[site] = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    failed = [entry["error"] for entries in rounds.values() for entry in entries if entry["status"] == "failed"]
    model = None
    saved = sorted((output / "nvflare").rglob("FL_global_model.pt"), key=lambda p: p.stat().st_mtime)
    if simulator_error is None and saved:
        state = torch.load(saved[-1], map_location="cpu", weights_only=True)
        state = state.get("model", state)
        model = output / GLOBAL_MODEL
        torch.save({key: torch.as_tensor(value) for key, value in state.items()}, model)
    elif simulator_error is not None and not failed:
        failed = [f"the simulator stopped: {simulator_error}"]
    return {"global_model": model, "rounds": rounds, "failed": failed}
