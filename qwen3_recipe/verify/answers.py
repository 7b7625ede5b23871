"""Answer extraction shared by the verifiers and by majority voting.

Qwen3 writes `<think>...</think>\\n\\nanswer`: only the part after the think block counts, so a
model that tries several candidates while thinking is judged by the one it commits to.
"""

from __future__ import annotations

import re
from collections import Counter

OPEN, CLOSE = "<think>", "</think>"
LETTERS = "ABCDEFGHIJ"
"""Multiple-choice option letters, in order (up to MMLU-Pro's ten)."""
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# an answer runs to the end of its line or the next "answer is" on it (a corrected answer is the last)
_PHRASE = re.compile(r"\banswer\**\s*(?:is\b\s*:?|:)\s*\**\s*(?P<a>(?:(?!\banswer\**\s*(?:is\b|:))[^\n])+)",
                     re.IGNORECASE)
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
_LETTER_PAREN = re.compile(r"\(([A-J])\)")
_LETTER = re.compile(r"(?<![\w\\])([A-J])(?![\w'’])")
_FENCE = re.compile(r"```([\w+-]*)[ \t]*\n(.*?)```", re.DOTALL)


def think_state(text: str) -> str:
    """"closed", "absent" (no-think output), "unclosed" (truncated while thinking) or
    "malformed" (repeated, reversed or a lone closing tag)."""
    n_open, n_close = text.count(OPEN), text.count(CLOSE)
    if n_open == 0 and n_close == 0:
        return "absent"
    if n_open == 1 and n_close == 0:
        return "unclosed"
    if n_open == 1 and n_close == 1 and text.index(OPEN) < text.index(CLOSE):
        return "closed"
    return "malformed"


def after_think(text: str) -> str:
    """The committed answer: text after the last `</think>` ("" if thinking never ended)."""
    if CLOSE in text:
        return text.rsplit(CLOSE, 1)[1].strip()
    if OPEN in text:
        return ""
    return text.strip()


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}`, nested braces balanced; None if absent/unbalanced."""
    for m in reversed(list(_BOXED.finditer(text))):
        depth, start = 1, m.end()
        for i in range(start, len(text)):
            c = text[i]
            if c == "{" and text[i - 1] != "\\":
                depth += 1
            elif c == "}" and text[i - 1] != "\\":
                depth -= 1
                if depth == 0:
                    return text[start:i].strip()
    return None


def _clean(ans: str) -> str:
    ans = ans.strip().replace("**", "").strip()
    if ans.startswith("\\(") and ans.endswith("\\)"):
        ans = ans[2:-2]
    return ans.strip().rstrip(".").strip().strip("$").strip()


def phrase_answer(text: str) -> str | None:
    """The last "answer is X" / "Answer: X" in the text."""
    hits = list(_PHRASE.finditer(text))
    if not hits:
        return None
    ans = hits[-1].group("a")
    inner = last_boxed(ans)
    return inner if inner is not None else (_clean(ans) or None)


def extract(text: str, whole: bool = True) -> str | None:
    """Boxed answer, else an answer phrase, else (if `whole`) the whole committed text."""
    part = after_think(text)
    for ans in (last_boxed(part), phrase_answer(part)):
        if ans is not None:
            return ans
    return (part or None) if whole else None


def normalize(ans: str) -> str:
    """Strip, lowercase, collapse whitespace, drop surrounding `$` and a trailing period."""
    ans = re.sub(r"\s+", " ", ans.strip()).lower()
    ans = ans.rstrip(".").strip()
    while len(ans) >= 2 and ans[0] == "$" and ans[-1] == "$":
        ans = ans[1:-1].strip()
    return ans.rstrip(".").strip()


def canonical(ans: str) -> str:
    """`normalize` plus LaTeX noise removed, so "\\dfrac{1}{2}" and "\\frac{1}{2}" vote together."""
    ans = _TEXT.sub(r"\1", ans)
    ans = re.sub(r"\\[dt]frac", r"\\frac", ans)
    ans = re.sub(r"\\left|\\right|\\[,;!: ]", "", ans)
    ans = normalize(ans)
    return re.sub(r"\s*([^\w\s])\s*", r"\1", ans)


def final_answer(text: str) -> str | None:
    """The canonical final answer for majority voting: boxed, an answer phrase, or a short
    one-line reply; None when nothing answer-like is there."""
    ans = extract(text, whole=False)
    if ans is None:
        part = after_think(text)
        ans = part if part and "\n" not in part and len(part) <= 64 else None
    return (canonical(ans) or None) if ans is not None else None


def choice_letter(text: str, letters: str = LETTERS) -> str | None:
    """A multiple-choice letter among `letters` (the item's options): boxed, "answer is (X)",
    "Answer: X", a last "(X)", a last lone letter. A capital "I"/"A" followed by a lowercase word
    is read as a pronoun/article, not a choice."""
    part = after_think(text)
    for ans in (last_boxed(part), phrase_answer(part)):
        if ans is not None:
            m = re.match(r"^\(?([A-Ja-j])\)?(?:[.:)\s]|$)", _TEXT.sub(r"\1", ans).strip())
            if m and m.group(1).upper() in letters:
                return m.group(1).upper()
    paren = [x for x in _LETTER_PAREN.findall(part) if x in letters]
    if paren:
        return paren[-1]
    for m in reversed(list(_LETTER.finditer(part))):
        if m.group(1) not in letters or m.group(1) in "AI" and re.match(r"\s+[a-z]", part[m.end():]):
            continue
        return m.group(1)
    return None


def extract_code(response: str) -> str:
    """The last ```python block after the think block, else the last untagged block, else the
    whole committed text."""
    part = after_think(response)
    blocks = _FENCE.findall(part)
    for want in (("python", "python3", "py"), ("",)):
        tagged = [code for lang, code in blocks if lang.lower() in want]
        if tagged:
            return tagged[-1]
    return part


def majority(answers: list[str | None]) -> tuple[str | None, int]:
    """The most frequent non-None answer and its count (ties: first seen); (None, 0) if none."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None, 0
    return max(counts.items(), key=lambda kv: kv[1])
