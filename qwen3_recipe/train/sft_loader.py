"""A torchtitan dataloader over the packed SFT rows written by `sft_data.prepare_sft`.

Each row of seq_len + 1 tokens is one training sequence: input = row[:-1], labels = row[1:] where
the target token's loss mask is 1, else IGNORE_INDEX (-100, torchtitan's `components.loss`): the
cross-entropy ignores those positions and the trainer counts only labels != -100 when it
normalises the summed loss (`global_valid_tokens`), so the loss is the mean over assistant tokens.
Positions restart at 0 at every sample (and padding run) start, so attention and RoPE stay within
samples; the label crossing into the next sample is always masked (a sample starts with a header).

Rows are dealt to data-parallel ranks in equal shares (rank r takes rows r, r + W, ... of the
epoch's order; the < W remainder rows wait for another epoch's order). Epoch 0 reads the prepared
(already shuffled) order; later epochs a permutation seeded by (meta seed, epoch) when `reshuffle`.
The read position (epoch, next row) is the dataset's state, saved and restored through torchtitan's
checkpointer like `PackedTokensDataLoader`'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.distributed.checkpoint.stateful import Stateful
from torch.utils.data import IterableDataset
from torchtitan.components.dataloader import ParallelAwareDataloader
from torchtitan.components.loss import IGNORE_INDEX
from torchtitan.tools.logging import logger

from qwen3_recipe.train.sft_data import FORMAT


class PackedSFT:
    """The rows, loss masks and segment starts of a prepared SFT folder (memory-mapped)."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        if not (folder / "meta.json").exists():
            raise FileNotFoundError(f"{folder} has no meta.json: not a (complete) prepared SFT folder")
        self.meta = json.loads((folder / "meta.json").read_text())
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{folder}: format {self.meta.get('format')!r}, expected {FORMAT!r}")
        self.tokens = np.load(folder / "tokens.npy", mmap_mode="r")
        self.mask = np.load(folder / "loss_mask.npy", mmap_mode="r")
        ends = np.load(folder / "sample_ends.npy").astype(np.int64)
        self.seg_starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        self.row_len = int(self.meta["row_len"])
        if self.tokens.shape != self.mask.shape or self.tokens.shape[1:] != (self.row_len,):
            raise ValueError(f"{folder}: tokens {self.tokens.shape} / mask {self.mask.shape} "
                             f"do not match row_len {self.row_len}")

    def __len__(self) -> int:
        return len(self.tokens)

    def sample(self, row: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        tokens = torch.from_numpy(np.asarray(self.tokens[row], dtype=np.int64))
        mask = torch.from_numpy(np.asarray(self.mask[row], dtype=bool))
        start = row * self.row_len
        idx = np.arange(start, start + self.row_len - 1, dtype=np.int64)
        k = np.searchsorted(self.seg_starts, idx, side="right") - 1
        positions = torch.from_numpy(idx - np.maximum(self.seg_starts[np.maximum(k, 0)], start))
        labels = torch.where(mask[1:], tokens[1:], torch.full_like(tokens[1:], IGNORE_INDEX))
        return {"input": tokens[:-1], "positions": positions}, labels


class SFTPackedDataset(IterableDataset, Stateful):
    def __init__(self, folder: str | Path, *, seq_len: int, dp_rank: int = 0, dp_world_size: int = 1,
                 infinite: bool = True, reshuffle: bool = True):
        self.data = PackedSFT(folder)
        if self.data.meta["seq_len"] != seq_len:
            raise ValueError(f"{folder} was packed for seq_len {self.data.meta['seq_len']}, "
                             f"training uses {seq_len}: prepare it again")
        self.seq_len = seq_len
        self.dp_rank, self.dp_world_size = dp_rank, dp_world_size
        self.infinite, self.reshuffle = infinite, reshuffle
        self.per_rank = len(self.data) // dp_world_size
        if self.per_rank == 0:
            raise ValueError(f"{folder}: {len(self.data)} rows, fewer than {dp_world_size} "
                             "data-parallel ranks")
        self.epoch = 0
        self.row = 0  # index into this rank's share of the epoch's order

    def order(self, epoch: int) -> np.ndarray:
        n = len(self.data)
        if epoch == 0 or not self.reshuffle:
            return np.arange(n)
        return np.random.default_rng([int(self.data.meta.get("seed", 0)), epoch]).permutation(n)

    def __iter__(self):
        while True:
            mine = self.order(self.epoch)[self.dp_rank::self.dp_world_size][:self.per_rank]
            while self.row < self.per_rank:
                row = int(mine[self.row])
                self.row += 1
                yield self.data.sample(row)
            if not self.infinite:
                logger.warning("packed SFT rows exhausted")
                return
            self.epoch += 1
            self.row = 0
            logger.warning(f"packed SFT rows re-looped (epoch {self.epoch})")

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "row": self.row, "seq_len": self.seq_len,
                "rows": len(self.data), "dp_world_size": self.dp_world_size}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for key, have in (("seq_len", self.seq_len), ("rows", len(self.data)),
                          ("dp_world_size", self.dp_world_size)):
            if state_dict.get(key, have) != have:
                raise ValueError(f"checkpointed SFT read position is for {key}={state_dict[key]}, "
                                 f"this run has {have}")
        self.epoch, self.row = state_dict["epoch"], state_dict["row"]


class SFTPackedDataLoader(ParallelAwareDataloader):
    """torchtitan dataloader for `prepare_sft` output folders (see module doc)."""

    @dataclass(kw_only=True, slots=True)
    class Config(ParallelAwareDataloader.Config):
        # dataset_path (inherited): the folder prepare_sft wrote (meta.json, *.npy).
        infinite: bool = True
        """Start another epoch when the rows run out."""

        reshuffle: bool = True
        """Epochs after the first read the rows in a new order (seeded by meta.json's seed)."""

    def __init__(self, config: Config, *, dp_world_size: int, dp_rank: int, tokenizer=None,
                 seq_len: int, local_batch_size: int, snapshot_every_n_steps: int | None = 1,
                 **kwargs):
        if not config.dataset_path:
            raise ValueError("SFTPackedDataLoader needs dataloader.dataset_path")
        dataset = SFTPackedDataset(config.dataset_path, seq_len=seq_len, dp_rank=dp_rank,
                                   dp_world_size=dp_world_size, infinite=config.infinite,
                                   reshuffle=config.reshuffle)
        if tokenizer is not None and dataset.data.meta["max_token_id"] >= tokenizer.get_vocab_size():
            raise ValueError(f"{config.dataset_path}: token id {dataset.data.meta['max_token_id']} "
                             f"is outside the tokenizer's {tokenizer.get_vocab_size()} ids")
        super().__init__(dataset, dp_rank=dp_rank, dp_world_size=dp_world_size,
                         num_workers=config.num_workers,
                         persistent_workers=config.persistent_workers,
                         pin_memory=config.pin_memory, prefetch_factor=config.prefetch_factor,
                         snapshot_every_n_steps=snapshot_every_n_steps,
                         batch_size=local_batch_size)
