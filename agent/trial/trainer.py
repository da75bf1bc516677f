"""The Trainer every launch trains with: transformers' own, with a batch order a relaunch replays.

With `train_sampling_strategy="group_by_length"`, transformers' training `LengthGroupedSampler`
draws each epoch's order from torch's global RNG when the epoch starts. A relaunch cannot have that
RNG where the interrupted launch had it then, so a run resumed in the middle of an epoch drew another
order, skipped other batches than the ones it had trained on, and went on with other examples than
the run it continues. Here each epoch's order comes from its own generator, seeded with
`data_seed + epoch`: the same in every launch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from transformers import Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """`LengthGroupedSampler` whose order in epoch `e` is drawn from a generator seeded with `seed + e`."""

    def __init__(self, batch_size: int, lengths: Any, seed: int):
        super().__init__(batch_size, lengths=lengths, generator=torch.Generator())
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The Trainer calls this (through accelerate's data loader) before each epoch, resumed or not."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        self.generator.manual_seed(self.seed + self.epoch)
        return super().__iter__()


class ResumableTrainer(Trainer):
    """transformers' Trainer, whose length-grouped training order is seeded per epoch."""

    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler | None:
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_train_sampler(train_dataset)
        dataset = self.train_dataset if train_dataset is None else train_dataset
        return EpochSeededLengthGroupedSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps,
            lengths=dataset[self.args.length_column_name],
            seed=self.args.seed if self.args.data_seed is None else self.args.data_seed,
        )
