"""SFT data: chat conversations rendered with the tokenizer's Qwen3 template, loss masked to the
assistant's generated tokens, packed into fixed rows for `SFTPackedDataLoader`.

Rendering and tokens. Each sample is rendered to text by `transformers`' `apply_chat_template`
(the tokenizer dir's own template) and the whole text is tokenized once, so the ids are exactly
`apply_chat_template(..., tokenize=True)`'s. The loss mask comes from character spans of the
assistant blocks in the rendered text mapped through the tokenizer's offsets (a token carries loss
if its characters overlap a span), never from re-tokenizing pieces.

What carries loss: of an assistant block `<|im_start|>assistant\\n ... <|im_end|>\\n`, everything
after the header through `<|im_end|>` (the think block, the answer, tool calls, the stop token);
not the header, not the trailing newline, nothing of system/user/tool blocks. A no-think turn
renders (and trains) the empty `<think>\\n\\n</think>\\n\\n`, as in Qwen3's thinking-mode fusion:
with a /no_think soft switch and enable_thinking on, the model itself must emit the empty block.

Multi-turn rule. The template drops the reasoning of assistant turns before the last user query,
so an earlier turn appears as a bare answer after `<|im_start|>assistant\\n`; training on that form
would teach the model to skip `<think>` in thinking mode. So loss goes only to assistant blocks
after the last user query (rendered in the form the model generates them, reasoning included):
  multi_turn="split" (default): one sample per assistant turn, the conversation cut after it;
      loss on that last turn only (earlier turns are context, as at inference). Every turn trains.
  multi_turn="last": one sample per conversation; loss on the turns after the last user query.

Mode. A sample is declared no_think by its `enable_thinking: false` or `mode: "no_think"`, else by
the last /think or /no_think flag in the user turns so far (Qwen3's soft switch, last flag wins);
a no_think sample's reasoning is stripped, so it renders the empty think block. Stats count a
sample as think when its trained turn renders a non-empty think block, else no_think.

Output folder (written by `prepare_sft`; meta.json last, so its presence means complete):
  tokens.npy       uint32 [rows, seq_len + 1]  token ids, rows padded with the pad token
  loss_mask.npy    uint8  [rows, seq_len + 1]  1 where the token is a training target
  sample_ends.npy  uint64 [segments]  exclusive end offsets in the row-major flattened arrays of
                   every sample and every padding run, in order (rows always end at a segment end)
  meta.json        format, seq_len, row_len, pad_id, vocab_size, seed, multi_turn, stats
A row holds whole samples, shuffled by seed then packed best-fit (see `pack`), padding at its end;
a sample longer than seq_len + 1 is truncated to one row (counted; dropped if no loss survives).
"""

from __future__ import annotations

import bisect
import gzip
import json
import random
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

FORMAT = "qwen3-recipe-sft/1"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
ASSISTANT_HEADER = IM_START + "assistant\n"
_FLAG = re.compile(r"/(no_think|think)(?![\w/])")


def read_conversations(path: str | Path) -> Iterator[dict]:
    """Conversations from a JSONL(.gz) file, one `{"messages": [...], ...}` per line."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _strip_reasoning(m: dict) -> dict:
    content = m.get("content") or ""
    if "</think>" in content:
        content = content.split("</think>")[-1].lstrip("\n")
    return {**m, "content": content, "reasoning_content": ""}


def _has_reasoning(m: dict) -> bool:
    if m.get("reasoning_content"):
        return bool(m["reasoning_content"].strip())
    content = m.get("content") or ""
    return "</think>" in content and bool(content.split("</think>")[0].split("<think>")[-1].strip())


def declared_mode(sample: dict, messages: list[dict]) -> str | None:
    """think / no_think as declared by the sample or the user turns' flags (last flag wins)."""
    if sample.get("enable_thinking") is not None:
        return "think" if sample["enable_thinking"] else "no_think"
    if sample.get("mode") in ("think", "no_think"):
        return sample["mode"]
    flags = [f for m in messages if m["role"] == "user" for f in _FLAG.findall(m.get("content") or "")]
    return flags[-1] if flags else None


def expand(sample: dict, multi_turn: str = "split") -> Iterator[tuple[list[dict], str, bool]]:
    """(messages to render, rendered mode, reasoning stripped) per training sample of a conversation.

    The rendered mode is "think" when the last (trained) turn carries reasoning after stripping."""
    messages = sample["messages"]
    if multi_turn == "split":
        cuts = [i + 1 for i, m in enumerate(messages) if m["role"] == "assistant"]
    elif multi_turn == "last":
        cuts = [max(i + 1 for i, m in enumerate(messages) if m["role"] == "assistant")] \
            if any(m["role"] == "assistant" for m in messages) else []
    else:
        raise ValueError(f"multi_turn must be 'split' or 'last', not {multi_turn!r}")
    for cut in cuts:
        prefix = messages[:cut]
        mode = declared_mode(sample, prefix)
        stripped = mode == "no_think" and any(_has_reasoning(m) for m in prefix if m["role"] == "assistant")
        if mode == "no_think":
            prefix = [_strip_reasoning(m) if m["role"] == "assistant" else m for m in prefix]
        yield prefix, "think" if _has_reasoning(prefix[-1]) else "no_think", stripped


def loss_spans(text: str, n_assistant: int, last_only: bool) -> list[tuple[int, int]]:
    """Character spans [start, end) of the assistant blocks after the last user query."""
    starts = [m.start() for m in re.finditer(re.escape(IM_START), text)]
    blocks = [(s, text[s + len(IM_START):]) for s in starts]
    assistant = [s for s, rest in blocks if rest.startswith("assistant\n")]
    if len(assistant) != n_assistant:  # a role header inside some content: refuse to guess
        raise ValueError(f"rendered text has {len(assistant)} assistant blocks, messages {n_assistant}")
    users = [s for s, rest in blocks if rest.startswith("user\n") and not rest[5:].startswith("<tool_response>")]
    after = [s for s in assistant if not users or s > users[-1]]
    spans = []
    for s in after[-1:] if last_only else after:
        end = text.find(IM_END, s + len(ASSISTANT_HEADER))
        if end < 0:
            raise ValueError("assistant block without <|im_end|>")
        spans.append((s + len(ASSISTANT_HEADER), end + len(IM_END)))
    return spans


def offsets_mask(offsets, spans: list[tuple[int, int]]) -> np.ndarray:
    """1 for tokens whose characters overlap a span (byte pieces of one character share it)."""
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    s, e = off[:, 0], off[:, 1]
    mask = np.zeros(len(off), dtype=bool)
    for a, b in spans:
        mask |= ((s < b) & (e > a)) | ((s == e) & (s >= a) & (s < b))
    return mask.astype(np.uint8)


def encode(tok, messages: list[dict], *, last_only: bool, tools=None) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, loss mask) of one sample rendered with the tokenizer's chat template."""
    kwargs = {"tools": tools} if tools else {}
    text = tok.apply_chat_template(messages, tokenize=False, **kwargs)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    spans = loss_spans(text, sum(m["role"] == "assistant" for m in messages), last_only)
    return np.asarray(enc["input_ids"], dtype=np.uint32), offsets_mask(enc["offset_mapping"], spans)


def pack(samples: list[tuple[np.ndarray, np.ndarray]], row_len: int, pad_id: int):
    """Best-fit greedy packing of whole samples into rows of row_len tokens, padded at the end.

    In the given (shuffled) order each sample goes to the open row with the least room that still
    holds it, else starts a row: far less padding than next-fit, and deterministic. Open rows are
    kept by room (at most row_len distinct values), so a sample costs O(log + row_len) at worst.
    Returns (tokens [rows, row_len], mask [rows, row_len], segment ends in the flattened arrays).
    """
    rows: list[list[int]] = []
    by_room: dict[int, list[int]] = {}
    rooms: list[int] = []  # sorted keys of by_room
    for i, (t, _) in enumerate(samples):
        k = bisect.bisect_left(rooms, len(t))
        if k < len(rooms):
            room, r = rooms[k], by_room[rooms[k]].pop()
            if not by_room[room]:
                del by_room[room], rooms[k]
        else:
            room, r = row_len, len(rows)
            rows.append([])
        rows[r].append(i)
        room -= len(t)
        if room > 0:
            if room not in by_room:
                bisect.insort(rooms, room)
            by_room.setdefault(room, []).append(r)
    tokens = np.full((len(rows), row_len), pad_id, dtype=np.uint32)
    mask = np.zeros((len(rows), row_len), dtype=np.uint8)
    ends = []
    for r, members in enumerate(rows):
        at = 0
        for i in members:
            t, m = samples[i]
            tokens[r, at:at + len(t)], mask[r, at:at + len(t)] = t, m
            at += len(t)
            ends.append(r * row_len + at)
        if at < row_len:
            ends.append((r + 1) * row_len)  # the padding run
    return tokens, mask, np.asarray(ends, dtype=np.uint64)


def prepare_sft(conversations: Iterable[dict], tokenizer_dir: str | Path, out_dir: str | Path,
                seq_len: int, seed: int = 0, multi_turn: str = "split") -> dict:
    """Render, mask, shuffle (by seed) and pack conversations into out_dir; returns the stats."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.convert_tokens_to_ids(IM_END)
    row_len = seq_len + 1
    stats = dict(conversations=0, samples=0, think=0, no_think=0, reasoning_stripped=0, truncated=0,
                 dropped_no_loss=0, invalid=0)
    samples = []
    for conv in conversations:
        stats["conversations"] += 1
        for messages, mode, stripped in expand(conv, multi_turn):
            try:
                t, m = encode(tok, messages, last_only=multi_turn == "split", tools=conv.get("tools"))
            except ValueError:
                stats["invalid"] += 1
                continue
            if len(t) > row_len:
                t, m = t[:row_len], m[:row_len]
                stats["truncated"] += 1
            if not m[1:].any():
                stats["dropped_no_loss"] += 1
                continue
            samples.append((t, m))
            stats["samples"] += 1
            stats[mode] += 1
            stats["reasoning_stripped"] += stripped
    random.Random(seed).shuffle(samples)
    tokens, mask, ends = pack(samples, row_len, pad_id)
    stats.update(rows=len(tokens), tokens=int(sum(len(t) for t, _ in samples)),
                 padding=int(tokens.size - sum(len(t) for t, _ in samples)), loss_tokens=int(mask.sum()))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)
    np.save(out / "tokens.npy", tokens)
    np.save(out / "loss_mask.npy", mask)
    np.save(out / "sample_ends.npy", ends)
    meta = dict(format=FORMAT, seq_len=seq_len, row_len=row_len, pad_id=int(pad_id), vocab_size=len(tok),
                max_token_id=int(tokens.max()) if tokens.size else -1, seed=seed, multi_turn=multi_turn,
                tokenizer_dir=str(tokenizer_dir), stats=stats)
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return stats
