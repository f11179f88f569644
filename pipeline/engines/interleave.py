"""Single-domain batches from several loaders, interleaved by an explicit, logged schedule.

JSSL trains one network on two streams: supervised ("sl") batches from fully sampled proxy data and
self-supervised ("ssl") batches from subsampled target data. A batch never mixes the two. Unlike the
reference implementation, where the balance is set only by repeating dataset lists, the balance here is
an explicit schedule: a ratio of steps (``{"sl": 1, "ssl": 2}``) or a literal repeating pattern
(``["sl", "ssl", "ssl"]``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pipeline.engines.modes import training_mode
from pipeline.keys import Keys


def schedule_from_ratio(ratio: Mapping[str, int]) -> list[str]:
    """Spread integer step counts evenly over one period, e.g. ``{"sl": 1, "ssl": 2}`` -> ``["ssl", "sl", "ssl"]``.

    Raises:
        ValueError: if a count is negative or all counts are zero.
    """
    for name, count in ratio.items():
        if int(count) != count or count < 0:
            raise ValueError(f"interleaving ratio for {name!r} must be a non-negative integer, got {count!r}")
    total = int(sum(ratio.values()))
    if total == 0:
        raise ValueError(f"interleaving ratio {dict(ratio)} is zero for every branch: no training step would run")
    # each branch's k-th step sits at the centre of its k-th share of the period (Bresenham-like)
    slots = sorted(
        ((k + 0.5) / count, name) for name, count in ratio.items() for k in range(int(count))
    )
    return [name for _, name in slots]


def _num_batches(loader: Iterable) -> int | None:
    """Batches in one pass of ``loader``, or ``None`` when it has no length (an iterable dataset)."""
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None


class InterleavedLoader:
    """Iterate single-domain batches from named loaders following a repeating schedule.

    Each loader is restarted when it runs out (calling ``set_epoch`` on its batch sampler, e.g.
    :class:`pipeline.data.ShapeBatchSampler`, or its distributed sampler, so every pass is reshuffled), so
    an epoch of this iterable is ``epoch_length`` steps regardless of the sizes of the datasets. A loader
    with a length is restarted as soon as its pass's last batch is handed out, so the next pass's workers
    load while that batch trains. Every batch gets ``batch[Keys.BRANCH] = name``.

    Args:
        loaders: branch name (``"sl"``/``"ssl"``) -> DataLoader; a ``None`` value means "not built".
        mode: a training mode of :mod:`pipeline.engines.modes`; selects the branches that train.
        ratio: steps per branch in one period, e.g. ``{"sl": 1, "ssl": 1}``; ignored if ``schedule`` is given.
            Branches not used by ``mode`` are dropped from the ratio.
        schedule: an explicit repeating pattern of branch names, e.g. ``["sl", "ssl", "ssl"]``.
        epoch_length: steps per epoch; default: the summed lengths of the loaders in use.

    Raises:
        ValueError: for an unknown mode, a branch the mode needs whose loader is missing or empty, a
            schedule that names no branch of the mode, or no ``epoch_length`` with a loader that has no length.
    """

    def __init__(
        self,
        loaders: Mapping[str, Iterable | None],
        mode: str = "jssl",
        ratio: Mapping[str, int] | None = None,
        schedule: Sequence[str] | None = None,
        epoch_length: int | None = None,
    ) -> None:
        needed = training_mode(mode).branches
        for name in needed:
            loader = loaders.get(name)
            if loader is None:
                raise ValueError(f"mode {mode!r} needs the {name!r} data, but no {name!r} loader was configured")
            if _num_batches(loader) == 0:
                raise ValueError(f"mode {mode!r} needs the {name!r} data, but its dataset is empty")
        if schedule is None:
            ratio = {name: int((ratio or {}).get(name, 1)) for name in needed}
            schedule = schedule_from_ratio(ratio)
        schedule = [str(s) for s in schedule if s in needed]
        if not schedule:
            raise ValueError(f"the interleaving schedule has no step for the branches of mode {mode!r}: {needed}")
        self.mode = mode
        self.schedule = schedule
        self.loaders = {name: loaders[name] for name in needed}
        self._lengths = {name: _num_batches(loader) for name, loader in self.loaders.items()}
        if not epoch_length:
            unsized = [name for name, n in self._lengths.items() if n is None]
            if unsized:
                raise ValueError(f"the {unsized} loader(s) have no length (an iterable dataset): give epoch_length")
            epoch_length = sum(self._lengths.values())  # type: ignore[arg-type]
        self.epoch_length = int(epoch_length)
        self._iterators: dict[str, Iterator] = {}
        self._passes = dict.fromkeys(needed, 0)
        self._consumed = dict.fromkeys(needed, 0)  # batches of the current pass handed out
        self._position = 0

    def __len__(self) -> int:
        return self.epoch_length

    def state_dict(self) -> dict[str, Any]:
        """Where the schedule and every branch's pass stand (checkpointed with the trainer)."""
        return {"position": self._position, "passes": dict(self._passes), "consumed": dict(self._consumed)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue exactly where :meth:`state_dict` was taken: same pass, same next batch, same draws."""
        self._position = int(state["position"])
        self._passes.update({name: int(v) for name, v in state["passes"].items() if name in self._passes})
        self._consumed.update({name: int(v) for name, v in state["consumed"].items() if name in self._consumed})
        self._iterators.clear()

    def _start_pass(self, name: str) -> Iterator:
        """A fresh iterator over ``name``'s loader for its current pass, positioned after the consumed batches.

        The pass number reaches every sampler and dataset that takes one (``set_epoch``), so orders and
        per-sample random draws are those of that pass. A resumed pass skips its consumed batches through the
        batch sampler's ``skip`` when it has one (nothing is loaded), else by drawing and dropping them.
        """
        loader = self.loaders[name]
        epoch, consumed = self._passes[name], self._consumed[name]
        batch_sampler = getattr(loader, "batch_sampler", None)
        for part in (batch_sampler, getattr(loader, "sampler", None), getattr(loader, "dataset", None)):
            if hasattr(part, "set_epoch"):
                part.set_epoch(epoch)
        skipper = getattr(batch_sampler, "skip", None)
        if consumed and skipper is not None:
            skipper(consumed)
        iterator = iter(loader)
        if consumed and skipper is None:
            for _ in range(consumed):
                next(iterator)
        return iterator

    def _next_batch(self, name: str) -> Any:
        while True:
            if name not in self._iterators:
                self._iterators[name] = self._start_pass(name)
            try:
                batch = next(self._iterators[name])
            except StopIteration:
                self._end_pass(name)
                continue
            self._consumed[name] += 1
            if self._consumed[name] == self._lengths[name]:
                # pass complete: start the next one now, so its workers start and prefetch while this batch
                # trains (otherwise every pass begins with a wait for a fresh worker's first batch)
                self._end_pass(name)
                self._iterators[name] = self._start_pass(name)
            return batch

    def _end_pass(self, name: str) -> None:
        del self._iterators[name]
        self._passes[name] += 1
        self._consumed[name] = 0

    def __iter__(self) -> Iterator[dict]:
        for _ in range(self.epoch_length):
            name = self.schedule[self._position % len(self.schedule)]
            self._position += 1
            batch = self._next_batch(name)
            batch[Keys.BRANCH] = name
            yield batch
