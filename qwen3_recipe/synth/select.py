"""Rejection sampling: per-sample filters (unclosed think block, repetition, language mixing,
duplicates) and the choice of up to k verified samples per prompt, with a majority-vote answer
when a prompt has no gold answer."""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass, field


def split_think(text: str) -> tuple[str | None, str, bool]:
    """(thinking or None, answer part, think block well formed) of a Qwen3 output."""
    if "<think>" not in text and "</think>" not in text:
        return None, text.strip(), True
    head, sep, tail = text.partition("</think>")
    closed = bool(sep) and head.count("<think>") <= 1 and "<think>" not in tail and "</think>" not in tail
    return head.replace("<think>", "").strip(), tail.strip(), closed


def repetition_ratio(text: str, n: int = 4) -> float:
    """Share of word n-grams that repeat an earlier one (degenerate loops score near 1)."""
    words = text.split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


def _script(ch: str) -> str:
    try:
        return unicodedata.name(ch).split(" ")[0]
    except ValueError:
        return "UNKNOWN"


def language_mix(text: str) -> float:
    """Share of letters outside the text's dominant script (LATIN, CJK, CYRILLIC, ...)."""
    scripts = Counter(_script(ch) for ch in text if ch.isalpha())
    total = sum(scripts.values())
    return 0.0 if not total else 1.0 - scripts.most_common(1)[0][1] / total


def filter_reason(text: str, mode: str, finish_reason: str | None, cfg) -> str | None:
    """Why a sample is rejected before verification, or None."""
    if finish_reason == "length":
        return "truncated"
    thinking, _, closed = split_think(text)
    if cfg.require_closed_think and (not closed or (mode == "think" and thinking is None)):
        return "unclosed_think"
    if cfg.max_repetition_ratio is not None and repetition_ratio(text) > cfg.max_repetition_ratio:
        return "repetition"
    if cfg.max_language_mix is not None and language_mix(text) > cfg.max_language_mix:
        return "language_mix"
    return None


@dataclass
class Candidate:
    sample_id: str
    text: str
    answer: str | None
    verified: bool
    reason: str | None = None          # set when filtered out
    decision: str = "dropped"
    majority_vote: bool = False
    extra: dict = field(default_factory=dict)


def choose(candidates: list[Candidate], keep: int, dedup: bool, has_gold: bool,
           majority_vote: bool) -> list[Candidate]:
    """Mark up to `keep` candidates kept (in order), setting each one's decision and reason."""
    majority = None
    if not has_gold and majority_vote:
        votes = Counter(c.answer for c in candidates if c.reason is None and c.answer)
        if votes:
            majority, count = votes.most_common(1)[0]
            if count * 2 <= sum(votes.values()):
                majority = None  # no majority: keep nothing rather than guess
    seen: set[str] = set()
    kept = 0
    for c in candidates:
        if c.reason is not None:
            continue
        if not has_gold and majority_vote:
            c.verified, c.majority_vote = majority is not None and c.answer == majority, True
        if not c.verified:
            c.reason = "no_majority" if c.majority_vote else c.reason or "not_verified"
            continue
        key = " ".join(c.text.split())
        if dedup and key in seen:
            c.reason = "duplicate"
            continue
        seen.add(key)
        if kept >= keep:
            c.reason = "over_keep"
            continue
        c.decision, c.reason = "kept", None
        kept += 1
    return candidates
