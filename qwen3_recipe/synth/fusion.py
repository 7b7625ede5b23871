"""Thinking-mode fusion data: two-turn conversations that switch mode mid-conversation.

Qwen3 report (arXiv:2505.09388) section 4.3: fusion SFT data holds thinking and non-thinking
samples, and multi-turn dialogs whose user turns carry /think or /no_think flags at random; the
model follows the last flag. Single-turn samples teach each mode and its flag; only a conversation
in which the flag changes teaches the switch itself (a /no_think answer after a thinking turn, and
the other way round).

Where it is built. In the synth job, for `mode: both` (`multi_turn_share` > 0): that job is where the
two modes' kept, verified samples of one prompt set meet, and where the dataset can say which
samples a conversation was built from (`built_from`). A fusion stage only reads finished datasets
and balances modes; it sees the rows as they are.

What a conversation is. Turn 1: a kept sample of prompt A in mode m; turn 2: a kept sample of a
different prompt B in the opposite mode, its user turn ending in that mode's flag (`/think` or
`/no_think`; a `mode: both` job already appends each sample's own flag, so turn 1 keeps its flag
too). Each sample joins at most one conversation; directions alternate (think -> no_think, then
no_think -> think); the choice is seeded by the recipe seed, so a rerun builds the same rows.
The row's `mode` is null (the flags say each turn's mode: SFT's `declared_mode` reads them per
turn); `built_from` lists the two sample ids; other columns are merged (verified: both,
budget_cut / majority_vote: either).

How SFT renders it (train/sft_data.py, multi_turn="split"): two samples. The first is turn 1 alone,
in its mode. The second is the whole conversation with loss on turn 2 only: the Qwen3 template
drops turn 1's reasoning (it comes before the last user query), so turn 1 is context in the form
the model sees at inference, and turn 2 renders in its own mode (its think block, or the empty
`<think>\\n\\n</think>\\n\\n` after /no_think).
"""

from __future__ import annotations

import random
import re

from qwen3_recipe.synth.sampling import FLAGS

_TRAILING_FLAG = re.compile(r"\s*/(?:no_think|think)\s*$")


def with_flag(content: str, mode: str) -> str:
    """The user turn ending in exactly the mode's flag (any trailing flag replaced)."""
    while True:
        stripped = _TRAILING_FLAG.sub("", content)
        if stripped == content:
            return content + FLAGS[mode]
        content = stripped


def switch_count(rows: int, share: float) -> int:
    """Conversations wanted so that they are `share` of the dataset next to `rows` single-turn rows."""
    return 0 if share <= 0 else round(rows * share / (1 - share))


def mode_switch_conversations(rows: list[dict], share: float, seed: int) -> list[dict]:
    """Two-turn mode-switch rows to add to a synth dataset's single-turn rows (see the module doc).

    Wanted: `share` of the resulting dataset (switch_count), at most one conversation per think
    sample and per no-think sample, partners always of different prompts: fewer when samples run out.
    """
    n = switch_count(len(rows), share)
    think = [r for r in rows if r.get("mode") == "think" and r.get("verified")]
    no_think = [r for r in rows if r.get("mode") == "no_think" and r.get("verified")]
    if not n or not think or not no_think:
        return []
    rng = random.Random(f"mode-switch:{seed}")
    rng.shuffle(think)
    rng.shuffle(no_think)
    pairs: list[tuple[dict, dict]] = []
    for t in think:
        if len(pairs) == n or not no_think:
            break
        j = next((j for j, r in enumerate(no_think) if r["prompt_id"] != t["prompt_id"]), None)
        if j is not None:
            pairs.append((t, no_think.pop(j)))
            continue
        # what is left is t's own prompt: trade partners with an earlier pair where both fit
        for k, (t2, n2) in enumerate(pairs):
            j = next((j for j, r in enumerate(no_think) if r["prompt_id"] != t2["prompt_id"]), None)
            if n2["prompt_id"] != t["prompt_id"] and j is not None:
                pairs[k] = (t2, no_think.pop(j))
                pairs.append((t, n2))
                break
    return [switch_row(*(pair if i % 2 == 0 else pair[::-1])) for i, pair in enumerate(pairs)]


def switch_row(first: dict, second: dict) -> dict:
    """The two-turn conversation: `first`'s turn, then `second`'s with its (the other) mode's flag."""
    u1, a1 = first["messages"]
    u2, a2 = second["messages"]
    think = first if first["mode"] == "think" else second
    return {**first,
            "id": f"{first['id']}+{second['id']}",
            "source": first["source"] if first["source"] == second["source"] else f"{first['source']}+{second['source']}",
            "prompt_id": None,
            "messages": [{**u1, "content": with_flag(u1["content"], first["mode"])}, a1,
                         {**u2, "content": with_flag(u2["content"], second["mode"])}, a2],
            "mode": None,
            "thinking_budget": think["thinking_budget"],
            "budget_cut": bool(first["budget_cut"] or second["budget_cut"]),
            "verified": bool(first["verified"] and second["verified"]),
            "majority_vote": bool(first["majority_vote"] or second["majority_vote"]),
            "answer": None, "gold": None,
            "built_from": [first["id"], second["id"]]}
