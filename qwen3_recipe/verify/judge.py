"""Pairwise LLM judging, Arena-Hard-Auto v0.1 style: the judge sees the user prompt and two answers
(A, B), writes its own answer and reasoning, and ends on a label [[A>>B]] .. [[B>>A]]. Each answer
is judged twice, against the benchmark's baseline answer in both orders, so a judge's position bias
cancels; a `>>` verdict weighs 3 battles, a tie counts half to each side, and an unreadable verdict
is dropped (Arena-Hard's show_result.py). The generation itself is the eval job's (evals/judging.py,
through the request cache); this module is the prompt, the parse and the score.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from qwen3_recipe.verify import answers as A
from qwen3_recipe.verify.verifiers import Verdict, Verifier, register

SYSTEM_PROMPT = """Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the user prompt displayed below. You will be given assistant A's answer and assistant B's answer. Your job is to evaluate which assistant's answer is better.

Begin your evaluation by generating your own answer to the prompt. You must provide your answers before judging any answers.

When evaluating the assistants' answers, compare both assistants' answers with your answer. You must identify and correct any mistakes or inaccurate information.

Then consider if the assistant's answers are helpful, relevant, and concise. Helpful means the answer correctly responds to the prompt or follows the instructions. Note when user prompt has any ambiguity or more than one interpretation, it is more helpful and appropriate to ask for clarifications or more information from the user than providing an answer based on assumptions. Relevant means all parts of the response closely connect or are appropriate to what is being asked. Concise means the response is clear and not verbose or excessive.

Then consider the creativity and novelty of the assistant's answers when needed. Finally, identify any missing important information in the assistants' answers that would be beneficial to include when responding to the user prompt.

After providing your explanation, you must output only one of the following choices as your final verdict with a label:

1. Assistant A is significantly better: [[A>>B]]
2. Assistant A is slightly better: [[A>B]]
3. Tie, relatively the same: [[A=B]]
4. Assistant B is slightly better: [[B>A]]
5. Assistant B is significantly better: [[B>>A]]

Example output: "My final verdict is tie: [[A=B]]"."""  # noqa: E501 (verbatim)
USER_TEMPLATE = ("<|User Prompt|>\n{question}\n\n<|The Start of Assistant A's Answer|>\n{answer_a}\n"
                 "<|The End of Assistant A's Answer|>\n\n<|The Start of Assistant B's Answer|>\n{answer_b}\n"
                 "<|The End of Assistant B's Answer|>")
_LABEL = re.compile(r"\[\[([AB<>=]+)\]\]")
# label -> (score of assistant B, battles it weighs)
_B_SCORE = {"A>>B": (0.0, 3), "A>B": (0.0, 1), "A=B": (0.5, 1), "B>A": (1.0, 1), "B>>A": (1.0, 3)}


def judge_messages(question: str, answer_a: str, answer_b: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_TEMPLATE.format(question=question, answer_a=answer_a, answer_b=answer_b)}]


def games(question: str, answer: str, baseline: str) -> list[list[dict]]:
    """Game 1: A = baseline, B = the model; game 2 swapped."""
    return [judge_messages(question, baseline, answer), judge_messages(question, answer, baseline)]


def parse_label(judgment: str) -> str | None:
    """The verdict label; None when there is none or the judge gave several different ones."""
    labels = set(_LABEL.findall(A.after_think(judgment) or judgment))
    return labels.pop() if len(labels) == 1 and next(iter(labels)) in _B_SCORE else None


def battles(label_game1: str | None, label_game2: str | None) -> list[tuple[float, int]]:
    """(the model's score, weight) per readable game: game 1 scores B, game 2 scores A."""
    out = []
    if label_game1 is not None:
        out.append(_B_SCORE[label_game1])
    if label_game2 is not None:
        s, w = _B_SCORE[label_game2]
        out.append((1.0 - s, w))
    return out


@register("judge")
class JudgeVerifier(Verifier):
    """`judge(messages_list) -> judgments` is the judge model (cached generations, evals/judging.py);
    `item` carries `question` and `baseline`. The verdict's reason is win, tie or loss (ok: a
    win on balance), its score the model's weighted share of the two games."""

    def __init__(self, judge: Callable[[list[list[dict]]], list[str]] | None = None):
        self.judge = judge

    def verify(self, response, gold=None, item=None):
        if self.judge is None:
            raise ValueError("a judged benchmark needs a judge model: declare `evals.judge` in the recipe")
        item = item or {}
        if A.think_state(response) == "unclosed":  # no answer to judge: a loss, not a skip
            return Verdict(False, 0.0, "unclosed_think", None, {"battles": [(0.0, 1)], "outcome": "loss"})
        answer = A.after_think(response)
        texts = self.judge(games(item["question"], answer, item["baseline"]))
        labels = [parse_label(t) for t in texts]
        fought = battles(*labels)
        details = {"labels": labels, "battles": fought, "judge": getattr(self.judge, "model_id", None),
                   "judgments": [t[-2000:] for t in texts]}
        if not fought:
            return Verdict(False, 0.0, "judge_failed", answer, {**details, "outcome": None})
        score = sum(s * w for s, w in fought) / sum(w for _, w in fought)
        outcome = "win" if score > 0.5 else "tie" if score == 0.5 else "loss"
        return Verdict(score > 0.5, score, outcome, answer, {**details, "outcome": outcome})
