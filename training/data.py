"""Real clips for training: an endless, resumable, rank-sharded stream
(docs/training.md#real-clip-sampling).

The sampler walks epoch after epoch through a permutation seeded by (seed, epoch), gives rank
r every world_size-th item, and yields `(epoch, index)` keys so each item's random clip start
and flip are a pure function of (seed, epoch, index), whichever worker loads it. Its position
(items consumed by this rank) is all that a resume needs to continue the same order.

Damaged clips (docs/datasets.md#damaged-data): workers load items with the dataset's `get`, which
replaces a damaged clip by the next readable one, and send the damage found back with the batch;
the main process warns once per clip, counts it (`ClipStream.damage`, in the tick statistics) and
stops with DamagedDataError past the limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from datasets.shards import Damage, DamageTally, checked_item, new_tally


class ResumableSampler(Sampler):
    def __init__(
        self, num_items: int, seed: int, rank: int = 0, world_size: int = 1, start: int = 0
    ):
        if num_items < world_size:
            raise ValueError(
                f"the dataset has {num_items} videos but {world_size} processes need at least one "
                "each; add videos or use fewer processes"
            )
        self.num_items, self.seed, self.rank, self.world_size = num_items, seed, rank, world_size
        self.per_rank = num_items // world_size  # like DistributedSampler(drop_last=True)
        self.start = start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start
        while True:
            epoch, offset = divmod(position, self.per_rank)
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.num_items, generator=g)[: self.per_rank * self.world_size]
            mine = order[self.rank :: self.world_size].tolist()
            for index in mine[offset:]:
                yield epoch, index
                position += 1


class _WithDamage(Dataset):
    """Items `(dataset.get(key))`: the item (or None) and the damage met reading it."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key) -> tuple[Any, list[Damage]]:
        return self.dataset.get(key)


def _collate(items: list[tuple[Any, list[Damage]]]) -> tuple[Any, list[Damage]]:
    """(the usual batch, or None if an item is missing because every clip is damaged; the damage)."""
    values = [value for value, _ in items]
    damages = [damage for _, found in items for damage in found]
    return (None if any(v is None for v in values) else default_collate(values)), damages


class ClipStream:
    """`next(stream)` -> a batch of real clips on `device`; `position` counts items consumed;
    `damage` counts the damaged clips skipped (a `datasets.shards.DamageTally`)."""

    def __init__(
        self,
        dataset: Dataset,
        batch: int,
        seed: int,
        rank: int,
        world_size: int,
        device: torch.device,
        workers: int = 2,
        start: int = 0,
    ):
        self.batch, self.device, self.position = batch, device, start
        sampler = ResumableSampler(len(dataset), seed, rank, world_size, start)
        self.damage: DamageTally = new_tally(dataset)
        self.loader = DataLoader(
            _WithDamage(dataset),
            batch_size=batch,
            sampler=sampler,
            collate_fn=_collate,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            prefetch_factor=2 if workers > 0 else None,
            persistent_workers=workers > 0,
        )
        self._iter = iter(self.loader)

    def __next__(self):
        item = next(self._iter)
        self.position += self.batch
        batch = checked_item(item, self.damage)  # warns once per clip; stops past the limit
        if isinstance(batch, (list, tuple)):
            return tuple(b.to(self.device, non_blocking=True) for b in batch)
        return batch.to(self.device, non_blocking=True)

    def __iter__(self):
        return self
