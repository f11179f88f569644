"""Crash-safe checkpoints: atomic writes, resume from the latest one, RNG state, strict weight loading.

MONAI's :class:`~monai.handlers.CheckpointSaver` writes with ``DiskSaver(atomic=False)``, so a process killed
mid-write leaves a truncated file that looks like the newest checkpoint (``tests/handlers`` shows it).
:class:`AtomicCheckpointSaver` writes to a temporary file in the same folder and renames it into place, so
the newest ``*.pt`` on disk is always complete.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver
from monai.handlers import CheckpointLoader

logger = logging.getLogger(__name__)

_INTERVAL_PATTERN = re.compile(r"^checkpoint_iteration=(\d+)\.pt$")


class RNGState:
    """Checkpointable global RNG state (Python, numpy, torch CPU and CUDA).

    Put an instance in a checkpoint's ``save_dict`` so that a resumed run draws the same random numbers
    (DataLoader worker seeds, random masks, SSDU splits) as an uninterrupted one would from that point.
    """

    def state_dict(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, cached = np.random.get_state()
        # plain containers and tensors only, so that ``torch.load(weights_only=True)`` accepts them
        state = {
            "python": random.getstate(),
            "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        random.setstate(_as_python_state(state["python"]))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.int64).astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def _as_python_state(state: Any) -> tuple:
    """``random.setstate`` needs tuples; a checkpoint round trip may turn them into lists."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def latest_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The ``checkpoint_iteration=N.pt`` with the largest ``N`` in ``checkpoint_dir``, or ``None``."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _INTERVAL_PATTERN.match(p.name))]
    return max(found)[1] if found else None


class AtomicCheckpointSaver:
    """Save the engine and ``save_dict`` every ``save_interval`` iterations and at completion, atomically.

    Files are ``<save_dir>/checkpoint_iteration=N.pt`` (the newest ``n_saved`` are kept). The engine the
    handler is attached to is saved under ``engine_key`` (so configs need no reference to the trainer
    from inside its own handler list).

    Args:
        save_dir: folder for the checkpoints (created).
        save_dict: name -> object with ``state_dict``/``load_state_dict`` (network, optimizer, ...).
        save_interval: iterations between checkpoints (> 0).
        n_saved: interval checkpoints to keep.
        engine_key: name of the engine's own state in the checkpoint (``None``: do not save it).
    """

    def __init__(
        self,
        save_dir: str | Path,
        save_dict: Mapping[str, Any],
        save_interval: int = 50,
        n_saved: int = 1,
        engine_key: str | None = "trainer",
    ) -> None:
        if save_interval <= 0:
            raise ValueError(f"save_interval must be a positive number of iterations, got {save_interval}")
        self.save_dir = Path(save_dir)
        self.save_dict = dict(save_dict)
        self.save_interval = int(save_interval)
        self.n_saved = n_saved
        self.engine_key = engine_key
        self.checkpoint: Checkpoint | None = None

    def attach(self, engine: Engine) -> None:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        to_save = {**self.save_dict, **({self.engine_key: engine} if self.engine_key else {})}
        self.checkpoint = Checkpoint(
            to_save=to_save,
            save_handler=DiskSaver(str(self.save_dir), atomic=True, require_empty=False),
            filename_pattern="checkpoint_iteration={score}.{ext}",
            score_function=lambda e: e.state.iteration,
            score_name="iteration",
            n_saved=self.n_saved,
        )
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.save_interval), self._save)
        engine.add_event_handler(Events.COMPLETED, self._save_if_new)

    def _save(self, engine: Engine) -> None:
        assert self.checkpoint is not None
        self.checkpoint(engine)
        # a resumed process does not know the files of the one before it: keep only the newest n_saved
        found = sorted((int(m.group(1)), p) for p in self.save_dir.iterdir() if (m := _INTERVAL_PATTERN.match(p.name)))
        for _, old in found[: -self.n_saved]:
            old.unlink(missing_ok=True)

    def _save_if_new(self, engine: Engine) -> None:
        if engine.state.iteration % self.save_interval:
            self._save(engine)


class BestModelSaver:
    """Keep the network with the best validation metric, written atomically (attach to the evaluator).

    Args:
        save_dir: folder for ``best_model.pt`` (a plain network ``state_dict``).
        network: the network to save.
        metric_name: key of ``engine.state.metrics`` to maximise (e.g. ``"val_ssim"``).
    """

    def __init__(self, save_dir: str | Path, network: torch.nn.Module, metric_name: str) -> None:
        self.path = Path(save_dir) / "best_model.pt"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.network = network
        self.metric_name = metric_name
        self.best: float = -float("inf")

    def state_dict(self) -> dict[str, float]:
        return {"best": self.best}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self.best = float(state["best"])

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        score = float(engine.state.metrics[self.metric_name])
        if score > self.best:
            self.best = score
            if idist.get_rank() == 0:  # every rank tracks the score, rank 0 writes
                save_atomic(_unwrap(self.network).state_dict(), self.path)
                logger.info(f"new best {self.metric_name}={score:.4f}: saved {self.path}")


def _unwrap(network: torch.nn.Module) -> torch.nn.Module:
    return network.module if isinstance(network, torch.nn.parallel.DistributedDataParallel) else network


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file next to ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


class ResumeFromLatestCheckpoint:
    """At start, restore the engine and ``load_dict`` from the newest checkpoint in ``checkpoint_dir``.

    A no-op when there is none (a new run). Delegates the loading to MONAI's
    :class:`~monai.handlers.CheckpointLoader`; the engine's own state is read from ``engine_key``.
    """

    def __init__(
        self,
        checkpoint_dir: str | Path,
        load_dict: Mapping[str, Any],
        map_location: Any = "cpu",
        engine_key: str | None = "trainer",
    ) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.load_dict = dict(load_dict)
        self.map_location = map_location
        self.engine_key = engine_key
        self.resumed_from: Path | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        path = latest_checkpoint(self.checkpoint_dir)
        if path is None:
            logger.info(f"no checkpoint in {self.checkpoint_dir}: starting a new run")
            return
        load_dict = {**self.load_dict, **({self.engine_key: engine} if self.engine_key else {})}
        CheckpointLoader(load_path=str(path), load_dict=load_dict, map_location=self.map_location)(engine)
        self.resumed_from = path
        logger.info(f"resumed from {path} at iteration {engine.state.iteration}")


#: Weights files of a bundle: a shared archive's ``safetensors`` file (no pickle), or the ``state_dict`` that
#: training writes.
BUNDLE_WEIGHTS = ("models/model.safetensors", "models/model.pt")


def bundle_weights(bundle_root: str | Path) -> Path:
    """The weights file of the bundle in ``bundle_root``: ``models/model.safetensors`` or ``models/model.pt``,
    whichever exists (``models/model.pt`` when neither does yet: the start-up check names it then).

    Both at once is refused rather than guessed: they may come from different runs (a shared archive's weights
    next to a later training's), and which one a run used must be known.

    Raises:
        ConfigError: (one line) both files exist.

    Example:
        >>> bundle_weights("bundles/jssl_varnet").as_posix()
        'bundles/jssl_varnet/models/model.pt'
    """
    root = Path(bundle_root)
    found = [root / name for name in BUNDLE_WEIGHTS if (root / name).is_file()]
    if len(found) > 1:
        from pipeline.engines.startup import ConfigError

        raise ConfigError(f"{root} holds both {BUNDLE_WEIGHTS[0]} and {BUNDLE_WEIGHTS[1]}: remove the one not "
                          "meant, or pass --ckpt_path")
    return found[0] if found else root / BUNDLE_WEIGHTS[-1]


def weights_digest(path: str | Path) -> str:
    """SHA-256 (hex) of a weights file's bytes, read in 1 MiB blocks.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
    """
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_weights(path: str | Path, map_location: Any = "cpu") -> dict[str, torch.Tensor]:
    """The ``state_dict`` in ``path``, read without running pickle code.

    ``*.safetensors`` files are read with :func:`safetensors.torch.load_file`; anything else with
    ``torch.load(weights_only=True)``, accepting a plain ``state_dict`` or a training checkpoint with a
    ``"network"`` entry.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist: train the bundle first or set --ckpt_path")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))  # on the CPU; ``load_state_dict`` copies onto the network's device
    state = torch.load(path, map_location=map_location, weights_only=True)
    if isinstance(state, Mapping) and "network" in state and isinstance(state["network"], Mapping):
        state = state["network"]
    return dict(state)


def check_weights(own: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]], source: str | Path) -> None:
    """Refuse weights whose names or shapes differ from a network's ``state_dict``.

    Args:
        own: the network's ``state_dict`` (tensors, or anything with ``.shape``).
        shapes: name -> shape of the weights to load.
        source: the weights file, for the message.

    Raises:
        ValueError: naming the missing, unexpected and wrongly shaped keys (the first five of each).
    """
    missing = sorted(set(own) - set(shapes))
    unexpected = sorted(set(shapes) - set(own))
    wrong = sorted(k for k in set(own) & set(shapes) if tuple(own[k].shape) != tuple(shapes[k]))
    if not (missing or unexpected or wrong):
        return

    def _few(keys: list[str]) -> str:
        return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")

    problems = []
    if missing:
        problems.append(f"missing keys: {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_few(unexpected)}")
    if wrong:
        pairs = [f"{k} {tuple(shapes[k])} vs {tuple(own[k].shape)}" for k in wrong]
        problems.append(f"shape mismatch: {_few(pairs)}")
    raise ValueError(f"checkpoint {source} was made for a different network architecture; " + "; ".join(problems))


def load_weights(network: torch.nn.Module, path: str | Path, map_location: Any = "cpu") -> torch.nn.Module:
    """Load a ``state_dict`` (:func:`read_weights`: ``safetensors`` or a ``weights_only`` checkpoint) into
    ``network``, refusing any mismatch with a clear message.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming the missing, unexpected and wrongly shaped keys when the checkpoint was made
            for a different architecture.
    """
    state = read_weights(path, map_location)
    check_weights(network.state_dict(), {k: tuple(v.shape) for k, v in state.items()}, path)
    network.load_state_dict(state)
    return network


class ExportBundleWeights:
    """When training completes, write the bundle's ``models/model.pt``: the best validated network if one
    was saved, else the final one (a plain ``state_dict``, atomically).

    Args:
        network: the trained network.
        best_model: the :class:`BestModelSaver` of the run (optional).
        model_path: the bundle's weights file.
    """

    def __init__(
        self, network: torch.nn.Module, model_path: str | Path, best_model: BestModelSaver | None = None
    ) -> None:
        self.network = network
        self.best_model = best_model
        self.model_path = Path(model_path)

    def attach(self, engine: Engine) -> None:
        """Write the weights when ``engine`` (the trainer) completes.

        Args:
            engine: the trainer.
        """
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if self.best_model is not None and self.best_model.path.is_file():
            state = torch.load(self.best_model.path, map_location="cpu", weights_only=True)
            source = f"best {self.best_model.metric_name}={self.best_model.best:.4f}"
        else:
            state = _unwrap(self.network).state_dict()
            source = f"final iteration {engine.state.iteration}"
        save_atomic(state, self.model_path)
        logger.info(f"bundle weights ({source}) written to {self.model_path}")
