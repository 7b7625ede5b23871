"""A torchtitan dataloader over datatrove's packed token files.

A tokens folder holds one or more `<name>_<rank>_unshuffled.ds` files (tokens, uint16, or uint32
when the vocabulary exceeds 65,535) each with a `.ds.index` (uint64 document end offsets, in
tokens) and optionally a `.ds.metadata` (first line `<tokenizer>|<token_size>`). The files, in
name order, form one token stream.

Samples are sequential windows of seq_len + 1 tokens starting every seq_len tokens (window k is
tokens [k*S, k*S + S]); input = window[:-1], labels = window[1:], positions restart at 0 at each
document start (and at the window start, so every window begins a segment). Windows are dealt
round-robin to data-parallel ranks. The read position (next window, epoch) is the dataset's
state, saved and restored through torchtitan's checkpointer via `ParallelAwareDataloader`.

With a sequence-length schedule (a stage whose length grows, train/pretrain.py) the loader yields
whole micro-batches instead: at optimizer step s, rows of the scheduled length L(s), as many as keep
the micro-batch's tokens equal to local_batch_size x seq_len. The token stream is read in order,
each micro-step's chunk split between the data-parallel ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.distributed.checkpoint.stateful import Stateful
from torch.utils.data import IterableDataset
from torchtitan.components.dataloader import ParallelAwareDataloader
from torchtitan.tools.logging import logger


def token_files(folder: str | Path) -> list[Path]:
    files = sorted(Path(folder).glob("*.ds"))
    if not files:
        raise FileNotFoundError(f"no datatrove token files (*.ds) in {folder}")
    for f in files:
        if not Path(f"{f}.index").exists():
            raise FileNotFoundError(f"{f} has no index file {f}.index")
    return files


def detect_token_size(files: list[Path], vocab_size: int | None) -> int:
    meta = Path(f"{files[0]}.metadata")
    if meta.exists():
        first = meta.read_text().splitlines()[0]
        size = first.rsplit("|", 1)[-1]
        if size.isdigit():
            return int(size)
    if vocab_size is None:
        return 2
    return 4 if vocab_size > 65535 else 2


class PackedTokens:
    """The token stream and document starts of a tokens folder (memory-mapped)."""

    def __init__(self, folder: str | Path, token_size: int):
        dtype = {2: np.uint16, 4: np.uint32}[token_size]
        self.parts: list[np.ndarray] = []
        self.part_starts: list[int] = []
        starts = []
        offset = 0
        for f in token_files(folder):
            tokens = np.memmap(f, dtype=dtype, mode="r")
            ends = np.fromfile(f"{f}.index", dtype=np.uint64).astype(np.int64)
            if len(ends) and ends[-1] != len(tokens):
                raise ValueError(f"{f}: index ends at {ends[-1]} but file has {len(tokens)} tokens")
            starts.append(offset + np.concatenate([[0], ends[:-1]]) if len(ends) else np.zeros(0, np.int64))
            self.parts.append(tokens)
            self.part_starts.append(offset)
            offset += len(tokens)
        self.n_tokens = offset
        self.doc_starts = np.concatenate(starts).astype(np.int64)

    def read(self, start: int, stop: int) -> np.ndarray:
        out = []
        for base, part in zip(self.part_starts, self.parts):
            lo, hi = max(start, base), min(stop, base + len(part))
            if lo < hi:
                out.append(np.asarray(part[lo - base:hi - base], dtype=np.int64))
        return np.concatenate(out)

    def positions(self, start: int, length: int) -> np.ndarray:
        idx = np.arange(start, start + length, dtype=np.int64)
        k = np.searchsorted(self.doc_starts, idx, side="right") - 1
        seg_start = np.maximum(self.doc_starts[np.maximum(k, 0)], start)
        return idx - seg_start


class PackedTokensDataset(IterableDataset, Stateful):
    def __init__(self, folder: str | Path, *, seq_len: int, token_size: int,
                 dp_rank: int = 0, dp_world_size: int = 1, infinite: bool = True):
        self.data = PackedTokens(folder, token_size)
        self.seq_len = seq_len
        self.dp_rank, self.dp_world_size = dp_rank, dp_world_size
        self.infinite = infinite
        self.n_windows = (self.data.n_tokens - 1) // seq_len
        if self.n_windows < dp_world_size:
            raise ValueError(f"{folder}: {self.data.n_tokens} tokens make {self.n_windows} windows "
                             f"of {seq_len}+1, fewer than {dp_world_size} data-parallel ranks")
        self.window = dp_rank  # next global window index this rank reads
        self.epoch = 0

    def __iter__(self):
        S = self.seq_len
        while True:
            while self.window < self.n_windows:
                start = self.window * S
                tokens = torch.from_numpy(self.data.read(start, start + S + 1))
                positions = torch.from_numpy(self.data.positions(start, S))
                self.window += self.dp_world_size
                yield {"input": tokens[:-1], "positions": positions}, tokens[1:]
            if not self.infinite:
                logger.warning("packed tokens exhausted")
                return
            self.epoch += 1
            self.window = self.dp_rank
            logger.warning(f"packed tokens re-looped (epoch {self.epoch})")

    def state_dict(self) -> dict[str, Any]:
        return {"window": self.window, "epoch": self.epoch, "seq_len": self.seq_len}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("seq_len", self.seq_len) != self.seq_len:
            raise ValueError(f"checkpointed read position is for seq_len {state_dict['seq_len']}, "
                             f"this run uses {self.seq_len}")
        self.window = state_dict["window"]
        self.epoch = state_dict["epoch"]


class ScheduledTokensDataset(PackedTokensDataset):
    """Micro-batches [rows, L(step)] with rows x L(step) = local_batch x seq_len (module doc)."""

    def __init__(self, folder: str | Path, *, seq_len: int, token_size: int, schedule: list[dict],
                 local_batch_size: int, grad_accum: int, dp_rank: int = 0, dp_world_size: int = 1,
                 infinite: bool = True, trace_file: str | None = None):
        super().__init__(folder, seq_len=seq_len, token_size=token_size, dp_rank=dp_rank,
                         dp_world_size=dp_world_size, infinite=infinite)
        for seg in schedule:
            if (local_batch_size * seq_len) % seg["seq_len"]:
                raise ValueError(f"a micro-batch of {local_batch_size}x{seq_len} tokens is no whole number "
                                 f"of rows of {seg['seq_len']}")
        self.schedule = sorted(schedule, key=lambda seg: seg["first_step"])
        self.micro_tokens, self.grad_accum = local_batch_size * seq_len, grad_accum
        if dp_world_size * self.micro_tokens + 1 > self.data.n_tokens:  # else __iter__ would re-loop forever
            raise ValueError(f"{folder}: {self.data.n_tokens} tokens hold no micro-step of {dp_world_size} x "
                             f"{self.micro_tokens} (+1) tokens")
        self.micro = 0  # micro-batches this rank has yielded
        self.pos = 0  # start of the next micro-step's chunk in the token stream (the same on every rank)
        # what was really fed, one line per micro-batch, by one process only: with TP/PP several
        # processes share dp_rank 0, so the writer is the global rank 0
        self.trace_file = trace_file if dp_rank == 0 and _global_rank() == 0 else None

    def seq_len_at(self, step: int) -> int:
        return [seg["seq_len"] for seg in self.schedule if seg["first_step"] <= step][-1]

    def __iter__(self):
        while True:
            length = self.seq_len_at(self.micro // self.grad_accum + 1)
            rows = self.micro_tokens // length
            chunk = self.dp_world_size * rows * length
            if self.pos + chunk + 1 > self.data.n_tokens:
                if not self.infinite:
                    logger.warning("packed tokens exhausted")
                    return
                self.epoch, self.pos = self.epoch + 1, 0
                logger.warning(f"packed tokens re-looped (epoch {self.epoch})")
                continue
            start = self.pos + self.dp_rank * rows * length
            flat = torch.from_numpy(self.data.read(start, start + rows * length + 1))
            windows = flat.unfold(0, length + 1, length)[:rows]
            positions = torch.stack([torch.from_numpy(self.data.positions(start + i * length, length))
                                     for i in range(rows)])
            self.pos += chunk
            self.micro += 1
            if self.trace_file:
                with open(self.trace_file, "a") as fh:
                    fh.write(f'{{"micro": {self.micro}, "step": {(self.micro - 1) // self.grad_accum + 1}, '
                             f'"seq_len": {length}, "rows": {rows}, "tokens": {chunk}}}\n')
            yield {"input": windows[:, :-1].contiguous(), "positions": positions}, windows[:, 1:].contiguous()

    def state_dict(self) -> dict[str, Any]:
        return {"pos": self.pos, "micro": self.micro, "epoch": self.epoch, "schedule": self.schedule}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("schedule") != self.schedule:
            raise ValueError(f"checkpointed read position is for the schedule {state_dict.get('schedule')}, "
                             f"this run uses {self.schedule}")
        self.pos, self.micro, self.epoch = state_dict["pos"], state_dict["micro"], state_dict["epoch"]


def _global_rank() -> int:
    import torch.distributed as dist
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", "0"))


class PackedTokensDataLoader(ParallelAwareDataloader):
    """torchtitan dataloader for datatrove's packed `.ds` token files (see module doc)."""

    @dataclass(kw_only=True, slots=True)
    class Config(ParallelAwareDataloader.Config):
        # dataset_path (inherited): the folder holding the `.ds` / `.ds.index` files.
        token_size: int | None = None
        """Bytes per token (2 or 4); None: from `.ds.metadata`, else from the tokenizer's vocab."""

        infinite: bool = True
        """Start again from the first window when the tokens run out."""

        min_tokens: int = 0
        """Tokens the run will read (steps x batch + 1): a folder holding fewer is refused before step 1."""

        seq_len_schedule: list[dict] | None = None
        """[{first_step, seq_len}]: lengths growing within the stage (module doc)."""

        global_batch_size: int = 0
        """Sequences of seq_len per optimizer step (with a schedule: for the micro-steps per step)."""

        trace_file: str | None = None
        """With a schedule: JSON lines of the micro-batches fed (step, seq_len, rows, tokens)."""

    def __init__(self, config: Config, *, dp_world_size: int, dp_rank: int, tokenizer=None,
                 seq_len: int, local_batch_size: int, snapshot_every_n_steps: int | None = 1,
                 **kwargs):
        if not config.dataset_path:
            raise ValueError("PackedTokensDataLoader needs dataloader.dataset_path")
        token_size = config.token_size or detect_token_size(
            token_files(config.dataset_path),
            tokenizer.get_vocab_size() if tokenizer is not None else None)
        if config.min_tokens:
            held = PackedTokens(config.dataset_path, token_size).n_tokens
            if held < config.min_tokens:
                raise ValueError(f"{config.dataset_path} holds {held:,} tokens; this run reads {config.min_tokens:,}")
        batch_size: int | None = local_batch_size
        if config.seq_len_schedule:
            dataset = ScheduledTokensDataset(
                config.dataset_path, seq_len=seq_len, token_size=token_size, schedule=config.seq_len_schedule,
                local_batch_size=local_batch_size, dp_rank=dp_rank, dp_world_size=dp_world_size,
                grad_accum=max(1, config.global_batch_size // (local_batch_size * dp_world_size)),
                infinite=config.infinite, trace_file=config.trace_file)
            batch_size = None  # the dataset yields whole micro-batches
        else:
            dataset = PackedTokensDataset(config.dataset_path, seq_len=seq_len, token_size=token_size,
                                          dp_rank=dp_rank, dp_world_size=dp_world_size,
                                          infinite=config.infinite)
        super().__init__(dataset, dp_rank=dp_rank, dp_world_size=dp_world_size,
                         num_workers=config.num_workers,
                         persistent_workers=config.persistent_workers,
                         pin_memory=config.pin_memory, prefetch_factor=config.prefetch_factor,
                         snapshot_every_n_steps=snapshot_every_n_steps,
                         batch_size=batch_size)
