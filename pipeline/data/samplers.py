"""Shape-bucketed, source-weighted batch sampling for heterogeneous collections.

Real collections mix k-space shapes (coils, readout, phase encode, recon size): fastMRI knee and brain,
brain files of several widths, 15- and 20-coil scanners. The default collate stacks tensors, so one batch
may only hold slices that agree in :attr:`pipeline.data.formats.VolumeInfo.batch_key`.
:class:`ShapeBatchSampler` groups a dataset's slices by that key and by ``source`` (a sub-collection such
as ``knee`` / ``brain``), cuts each group into batches, and orders the batches of an epoch from a
seeded generator: the same ``(seed, epoch)`` gives the same batches on every rank and after a resume.

Explicit source weights replace the reference implementation's repeated list entries: with
``weights={"knee": 1, "brain": 3}`` three in four batches of an epoch come from brain, whatever the
number of slices of each (a source's batches are reshuffled and reused when it runs out).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = ["ShapeBatchSampler", "describe_groups"]


def describe_groups(keys: Sequence[Sequence[Any]], sources: Sequence[str] | None = None) -> list[str]:
    """One line per batch group: ``"knee (15, 640, 368) recon 320x320: 350 slices"``, largest first.

    Args:
        keys: per slice, a :attr:`~pipeline.data.formats.VolumeInfo.batch_key`
            ``(C, H, W, Hr, Wr, has_target, has_mask)``.
        sources: per slice, its source (omitted from the lines when ``None``).

    >>> describe_groups([(4, 64, 48, 32, 32, True, False)] * 3 + [(6, 64, 48, 32, 32, True, False)])
    ['(4, 64, 48) recon 32x32: 3 slices', '(6, 64, 48) recon 32x32: 1 slices']
    """
    counts: dict[tuple, int] = {}
    for i, key in enumerate(keys):
        group = (sources[i] if sources is not None else "", tuple(key))
        counts[group] = counts.get(group, 0) + 1
    lines = []
    for (source, key), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        c, h, w, hr, wr = key[:5]
        extras = [name for flag, name in zip(key[5:], ("reference", "mask")) if not flag]
        prefix = f"{source} " if source else ""
        suffix = f" (no {', no '.join(extras)})" if len(extras) == 2 else ""
        lines.append(f"{prefix}({c}, {h}, {w}) recon {hr}x{wr}{suffix}: {n} slices")
    return lines


class ShapeBatchSampler(Sampler[list[int]]):
    """Batches whose slices all share one shape group (and one source), for ``monai.data.DataLoader``.

    Pass it as ``batch_sampler=`` (then the loader takes no ``batch_size``, ``shuffle``, ``sampler`` or
    ``drop_last``). Under ``torch.distributed`` every rank builds the same epoch and takes every
    ``num_replicas``-th batch; the epoch is padded by repeating its first batches so that every rank gets
    the same number of steps. Call :meth:`set_epoch` before each pass for a new order
    (:class:`pipeline.engines.InterleavedLoader` does).

    Args:
        dataset: anything with ``batch_keys`` and ``sources`` (per-slice lists), e.g.
            :class:`pipeline.data.SliceDataset`.
        batch_size: slices per batch.
        shuffle: shuffle slices within groups and batches within the epoch (else dataset order).
        drop_last: drop each group's last incomplete batch (else keep it, smaller).
        weights: source -> sampling weight (>= 0). ``None``: every batch once per epoch, in proportion to
            the data. Given: the epoch (same number of batches) draws each source's share of batches in
            proportion to its weight; every source of the dataset needs a weight.
        seed: base seed of the order; must be the same on every rank.
        num_replicas: DDP world size (default: from ``torch.distributed`` if initialised, else 1).
        rank: this rank (default: from ``torch.distributed``, else 0).

    Raises:
        ValueError: for ``batch_size < 1``, an empty dataset, no complete batch (with ``drop_last``),
            negative weights, weights that name unknown sources or miss one, or all weights zero.

    Example:
        >>> class Slices:
        ...     batch_keys = [(4, 64, 48)] * 4 + [(6, 64, 48)] * 2
        ...     sources = ["knee"] * 6
        >>> sampler = ShapeBatchSampler(Slices(), batch_size=2, seed=0, num_replicas=1, rank=0)
        >>> batches = list(sampler)
        >>> len(batches), sorted(len({Slices.batch_keys[i] for i in b}) for b in batches)  # one shape per batch
        (3, [1, 1, 1])
        >>> sorted(i for b in batches for i in b)
        [0, 1, 2, 3, 4, 5]
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = True,
        weights: Mapping[str, float] | None = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        keys, sources = list(dataset.batch_keys), list(dataset.sources)
        if not keys:
            raise ValueError("the dataset is empty: no batch can be drawn")
        distributed = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if distributed else 1
        if rank is None:
            rank = dist.get_rank() if distributed else 0
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.batch_size, self.shuffle, self.drop_last, self.seed = int(batch_size), shuffle, drop_last, int(seed)
        self.epoch = 0
        self.start = 0
        groups: dict[tuple[str, Hashable], list[int]] = {}
        for index, (key, source) in enumerate(zip(keys, sources)):
            groups.setdefault((source, tuple(key)), []).append(index)
        self.groups = groups
        self.weights = self._check_weights(weights, sorted({s for s in sources}))
        counts = {source: 0 for source in self.weights or {s: 1 for s in sources}}
        for (source, _), members in groups.items():
            counts[source] += self._batches_of(len(members))
        for source, weight in (self.weights or {}).items():
            if weight > 0 and counts[source] == 0:
                raise ValueError(f"source {source!r} has weight {weight} but no complete batch of {self.batch_size}")
        self.total = sum(counts.values())
        if self.total == 0:
            raise ValueError(f"no shape group holds a complete batch of {self.batch_size} slices (drop_last=True)")
        self.per_rank = -(-self.total // self.num_replicas)

    def _batches_of(self, n: int) -> int:
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @staticmethod
    def _check_weights(weights: Mapping[str, float] | None, sources: list[str]) -> dict[str, float] | None:
        if weights is None:
            return None
        weights = {str(k): float(v) for k, v in weights.items()}
        unknown = sorted(set(weights) - set(sources))
        missing = sorted(set(sources) - set(weights))
        if unknown or missing:
            problems = [f"unknown {unknown}"] if unknown else []
            problems += [f"missing {missing}"] if missing else []
            raise ValueError(f"sampling weights must name exactly the sources {sources}: {'; '.join(problems)}")
        if any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
            raise ValueError(f"sampling weights must be >= 0 and not all zero, got {weights}")
        return weights

    def set_epoch(self, epoch: int) -> None:
        """Use the order of pass ``epoch`` (same on every rank)."""
        self.epoch = int(epoch)

    def skip(self, batches: int) -> None:
        """Start the next pass at its ``batches``-th batch (a resumed run: nothing is loaded to get there)."""
        if not 0 <= int(batches) <= len(self):
            raise ValueError(f"cannot skip {batches} of the {len(self)} batches of a pass")
        self.start = int(batches)

    def __len__(self) -> int:
        return self.per_rank

    def _source_batches(self, rng: np.random.Generator) -> dict[str, list[list[int]]]:
        out: dict[str, list[list[int]]] = {}
        for (source, _), members in self.groups.items():  # dataset order: a group sits where it starts
            order = rng.permutation(members).tolist() if self.shuffle else list(members)
            size, cut = self.batch_size, self._batches_of(len(order))
            out.setdefault(source, []).extend(order[i * size : (i + 1) * size] for i in range(cut))
        return out

    def _epoch(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        per_source = self._source_batches(rng)
        if self.weights is None:
            batches = [b for source in per_source for b in per_source[source]]
            order = rng.permutation(len(batches)) if self.shuffle else np.arange(len(batches))
            return [batches[i] for i in order]
        # largest-remainder apportionment of the epoch's batches to the sources by weight
        total_weight = sum(self.weights.values())
        shares = {s: self.total * w / total_weight for s, w in self.weights.items()}
        counts = {s: int(np.floor(v)) for s, v in shares.items()}
        for s in sorted(shares, key=lambda s: (counts[s] - shares[s], s))[: self.total - sum(counts.values())]:
            counts[s] += 1
        slots = [s for s in sorted(counts) for _ in range(counts[s])]
        if self.shuffle:
            slots = [slots[i] for i in rng.permutation(len(slots))]
        streams = {s: list(per_source.get(s, [])) for s in counts}
        used = dict.fromkeys(counts, 0)
        epoch = []
        for source in slots:
            stream = streams[source]
            if used[source] == len(stream):  # reuse the source's batches in a fresh order
                stream[:] = [stream[i] for i in rng.permutation(len(stream))] if self.shuffle else stream
                used[source] = 0
            epoch.append(stream[used[source]])
            used[source] += 1
        return epoch

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._epoch()
        padded = self.per_rank * self.num_replicas
        batches = (batches * (padded // len(batches) + 1))[:padded]
        start, self.start = self.start, 0
        yield from batches[self.rank :: self.num_replicas][start:]
