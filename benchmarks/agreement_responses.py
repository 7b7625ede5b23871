"""The fixed response set of benchmarks/verifier_agreement.py: extra benchmark rows in the hub datasets'
shapes (next to tests/benchmark_rows/) and, per item, responses of every kind: right and wrong, with a
think block and without, malformed (no answer, unbalanced box, garbage, unclosed think) and tricky
but legitimate formats. Each response is `(kind, text)`; `kind` says what it was written to be, not
how anyone scores it. Nothing here is tuned to any scorer: it is written once, from the formats."""

from __future__ import annotations

NUDGE = "Let me work through this carefully before answering."


def think(answer: str, thought: str = NUDGE) -> str:
    return f"<think>\n{thought}\n</think>\n\n{answer}"


def unclosed(thought: str) -> str:
    return f"<think>\n{thought}"


# ---- MATH-500: (problem, answer, equivalent forms, wrong answers); the solution ends in \boxed{answer}
MATH = [
    ("Compute $\\cos 60^\\circ$.", "\\frac12", ["\\dfrac{1}{2}", "0.5", "1/2"], ["\\frac{\\sqrt{3}}{2}"]),
    ("Find the domain of the expression $\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.", "[2,5)",
     ["[2, 5)", "x \\in [2,5)"], ["[2,5]"]),
    ("Solve $x+y=2$, $x-y=4$. Enter your answer as an ordered pair $(x,y)$.", "(3,-1)",
     ["(3, -1)", "\\left(3,-1\\right)"], ["(-1,3)"]),
    ("Simplify $\\sqrt{18}$.", "3\\sqrt{2}", ["3 \\sqrt 2", "3\\sqrt2"], ["2\\sqrt{3}"]),
    ("Evelyn is 12 and Alice is 10. Who is older?", "\\text{Evelyn}", ["Evelyn", "\\textbf{Evelyn}"],
     ["\\text{Alice}"]),
    ("Each angle of an equilateral triangle measures how many degrees?", "60^\\circ", ["60", "60^{\\circ}"],
     ["30^\\circ"]),
    ("Convert $135^\\circ$ to radians.", "\\frac{3\\pi}{4}", ["\\frac34\\pi", "\\dfrac{3\\pi}{4}", "0.75\\pi"],
     ["\\frac{\\pi}{4}"]),
    ("Find all solutions of $x^2-x-6=0$, separated by commas.", "-2, 3", ["3, -2", "3,-2"], ["2, -3"]),
    ("Compute $\\begin{pmatrix} 1 & 0 \\\\ 0 & 2 \\end{pmatrix}\\begin{pmatrix} 1 \\\\ 1 \\end{pmatrix}$.",
     "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", ["\\begin{bmatrix} 1 \\\\ 2 \\end{bmatrix}"],
     ["\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}"]),
    ("Expand $(x+1)^2$.", "x^2+2x+1", ["1+2x+x^2", "x^{2} + 2x + 1"], ["x^2+1"]),
    ("Three books cost $\\$6.30$ each. What is the total cost?", "\\$18.90", ["18.90", "\\$18.9"], ["\\$19.80"]),
    ("Compute $24 \\cdot 42$.", "1008", ["1,\\!008", "1{,}008"], ["1080"]),
    ("Rationalize $\\frac{1}{\\sqrt{3}}$.", "\\frac{\\sqrt{3}}{3}", ["\\frac{1}{\\sqrt{3}}", "\\dfrac{\\sqrt3}{3}"],
     ["\\sqrt{3}"]),
]
SHIPPED_MATH = {  # answer -> (equivalent forms, wrong answers) for tests/benchmark_rows/math500.jsonl
    "\\left( 3, \\frac{\\pi}{2} \\right)": (["(3, \\frac{\\pi}{2})", "\\left(3,\\dfrac{\\pi}{2}\\right)"],
                                           ["(3, \\pi)"]),
    "\\frac{14}{3}": (["\\dfrac{14}{3}", "14/3"], ["\\frac{13}{3}"]),
}


def math_rows() -> list[dict]:
    return [{"problem": p, "solution": f"Working it out, the answer is $\\boxed{{{a}}}$.", "answer": a,
             "subject": "Agreement", "level": 1, "unique_id": f"agreement/math/{i}.json"}
            for i, (p, a, _, _) in enumerate(MATH)]


def math_responses(item: dict, k: int) -> list[tuple[str, str]]:
    """k: the item's position, to rotate the extra kinds over the items."""
    a = item["gold"]
    forms, wrongs = SHIPPED_MATH.get(a) or next((f, w) for p, g, f, w in MATH if g == a)
    out = [("right/think-boxed", think(f"So the answer is $\\boxed{{{a}}}$.")),
           ("wrong/think-boxed", think(f"The answer is $\\boxed{{{wrongs[0]}}}$."))]
    out += [(f"right/form-{j}" + ("-think" if j % 2 else ""),
             think(f"$\\boxed{{{f}}}$") if j % 2 else f"Therefore $\\boxed{{{f}}}$.") for j, f in enumerate(forms)]
    extras = [
        ("tricky/answer-phrase", f"The answer is ${a}$."),
        ("tricky/lighteval-format", f"Simplifying gives the result.\nANSWER: {a}"),
        ("tricky/minerva-format", f"Final Answer: The final answer is ${a}$. I hope it is correct."),
        ("tricky/draft-then-final-box", f"At first I got $\\boxed{{{wrongs[0]}}}$, but that is wrong. "
                                        f"Correcting it: $\\boxed{{{a}}}$."),
        ("wrong/right-in-think-wrong-committed", think(f"The answer is $\\boxed{{{wrongs[0]}}}$.",
                                                        f"Maybe $\\boxed{{{a}}}$?")),
        ("malformed/unbalanced-box", f"The answer is $\\boxed{{{a}$"),
        ("malformed/no-answer", "I could not solve this problem."),
        ("malformed/garbage", "asdf )(*&^ qwerty ]]"),
        ("unclosed/right-boxed", unclosed(f"So far it looks like $\\boxed{{{a}}}$, but let me check")),
        ("unclosed/nothing", unclosed("Let me set up the problem first")),
        ("malformed/empty", ""),
        ("malformed/think-only", think("", "I think I know it.").rstrip()),
    ]
    return out + [extras[(k * 3 + j) % len(extras)] for j in range(4)]


# ---- multiple choice (GPQA-Diamond, MMLU-Redux): extra rows, and one list of response templates
GPQA = [  # (question, correct, incorrect 1-3), invented in the benchmark's shape like the shipped rows
    ("What is the spin multiplicity of ground-state molecular oxygen?", "3 (triplet)", "1 (singlet)",
     "2 (doublet)", "4 (quartet)"),
    ("Which nucleobase pairs with adenine in double-stranded DNA?", "Thymine", "Cytosine", "Guanine", "Uracil"),
    ("A photon has a wavelength of 500 nm. Approximately what is its energy?", "2.5 eV", "0.25 eV", "25 eV",
     "250 eV"),
    ("Which quantity is conserved in an elastic collision but not in a perfectly inelastic one?",
     "Kinetic energy", "Momentum", "Mass", "Electric charge"),
    ("What is the hybridization of the carbon atoms in ethyne?", "sp", "sp2", "sp3", "sp3d"),
    ("Which organelle is the site of oxidative phosphorylation?", "Mitochondrion", "Ribosome",
     "Golgi apparatus", "Lysosome"),
    ("What is <x> in the ground state of an infinite square well symmetric about x = 0?", "0", "L/2", "L/4", "L"),
    ("How many stereoisomers does 2,3-dibromobutane have?", "3", "4", "2", "1"),
]
MMLU = [  # (question, choices, answer index), MMLU-Redux-shaped
    ("What is the chemical symbol for gold?", ["Ag", "Au", "Gd", "Go"], 1),
    ("Which planet is known as the Red Planet?", ["Venus", "Jupiter", "Mars", "Saturn"], 2),
    ("The derivative of sin(x) with respect to x is", ["cos(x)", "-cos(x)", "sin(x)", "-sin(x)"], 0),
    ("Who wrote 'Pride and Prejudice'?", ["Charlotte Brontë", "Jane Austen", "Mary Shelley", "George Eliot"], 1),
    ("What is the worst-case time complexity of binary search on a sorted array of n elements?",
     ["O(n)", "O(n log n)", "O(1)", "O(log n)"], 3),
    ("Which of the following is a prime number?", ["21", "27", "29", "33"], 2),
    ("In economics, GDP stands for", ["Gross Domestic Product", "General Debt Position", "Gross Demand Price",
                                      "Global Development Plan"], 0),
    ("Which amendment to the US Constitution abolished slavery?", ["First", "Fifth", "Thirteenth", "Nineteenth"], 2),
]


def gpqa_rows(template: dict) -> list[dict]:
    return [dict(template, **{"Question": q + "\n", "Correct Answer": c, "Incorrect Answer 1": w1,
                              "Incorrect Answer 2": w2, "Incorrect Answer 3": w3, "Explanation": "(invented)",
                              "Record ID": f"recAgreement{i:03d}"})
            for i, (q, c, w1, w2, w3) in enumerate(GPQA)]


def mmlu_rows() -> list[dict]:
    return [{"question": q, "choices": c, "answer": a, "error_type": "ok", "source": None, "correct_answer": None,
             "potential_reason": None} for q, c, a in MMLU]


def mc_responses(item: dict, k: int) -> list[tuple[str, str]]:
    g = item["gold"]
    w = next(x for x in "DCBA" if x != g)
    text = item["choices"]["ABCD".index(g)]
    return [
        ("right/think-paren", think(f"The answer is ({g}).")),
        ("right/answer-colon", f"Answer: {g}"),
        ("right/bold-answer", f"**Answer: {g}**"),
        ("right/answer-is-bare", f"The answer is {g}."),
        ("right/bare-letter", g),
        ("right/letter-dot-text", think(f"{g}. {text}")),
        ("right/boxed", f"$\\boxed{{{g}}}$"),
        ("right/lowercase", f"answer: {g.lower()}"),
        ("right/answer-then-because", f"Answer: {g}\nBecause the other options contradict the data, "
                                      f"this is the only consistent choice."),
        ("tricky/choice-text-only", text),
        ("tricky/self-correction", f"The answer is ({w})... wait, no. The answer is ({g})."),
        ("tricky/option-discussed-first", f"Option ({w}) is a common trap. The correct option is ({g})."),
        ("wrong/think-paren", think(f"The answer is ({w}).")),
        ("wrong/right-in-think-wrong-committed", think(f"Answer: {w}", f"The answer is ({g}).")),
        ("malformed/hedge", f"It is either {w} or {g}."),
        ("malformed/no-answer", "I am not sure about this one."),
        ("malformed/garbage", "zzz ### ??? 42"),
        ("malformed/letter-out-of-range", "The answer is (F)."),
        ("malformed/empty", ""),
        ("unclosed/right", unclosed(f"The answer is ({g})")),
    ]


# ---- IFEval: (prompt, instruction ids, non-null kwargs per instruction, compliant, violating[, loose-only])
IFEVAL_KEYS = ["num_highlights", "relation", "num_words", "num_placeholders", "prompt_to_repeat", "num_bullets",
               "section_spliter", "num_sections", "capital_relation", "capital_frequency", "keywords",
               "num_paragraphs", "language", "let_relation", "letter", "let_frequency", "end_phrase",
               "forbidden_words", "keyword", "frequency", "num_sentences", "postscript_marker", "first_word",
               "nth_paragraph"]
_LONG = " ".join(["Raymond ruled Tripoli for many years and held the county against rivals on every side."] * 24)
IFEVAL_SHIPPED = {  # key -> (compliant, violating[, loose-only]) for tests/benchmark_rows/ifeval.jsonl
    1000: ("*Early life*\n" + _LONG + "\n\n*Regency*\n" + _LONG + "\n\n*Legacy*\nHe is remembered as a count.",
           "Raymond III, Count of Tripoli, was a crusader lord. *Life*, *Rule*, *Death*."),
    1001: ("the sea is wide and deep\nit sings to the shore at night\nand sleeps at dawn",
           "The Sea is wide and deep\nIt sings to the shore at night"),
}
REPEAT = "Write a haiku about autumn."
IFEVAL = [
    ("Describe a sunrise. Your entire response should be in English, and in all capital letters.",
     ["change_case:english_capital"], [{}],
     "THE SUN RISES SLOWLY OVER THE QUIET HILLS. GOLDEN LIGHT SPILLS ACROSS THE VALLEY AND WAKES THE BIRDS.",
     "The sun rises slowly over the quiet hills."),
    ("List three fruits. Your answer must contain exactly 3 bullet points in markdown format.",
     ["detectable_format:number_bullet_lists"], [{"num_bullets": 3}],
     "* Apples are rich in fiber.\n* Bananas provide potassium.\n* Oranges contain vitamin C.",
     "* Apples are rich in fiber.\n* Bananas provide potassium."),
    ("Explain photosynthesis in less than 50 words.", ["length_constraints:number_words"],
     [{"relation": "less than", "num_words": 50}],
     "Plants use sunlight, water and carbon dioxide to make sugar and release oxygen.",
     " ".join(["Plants use sunlight to make sugar."] * 10)),
    ("Write a sentence about the sea. Include the keywords ocean and salt.", ["keywords:existence"],
     [{"keywords": ["ocean", "salt"]}], "The ocean tastes of salt.", "The ocean is very large."),
    ("Describe the sky at dusk. Do not include the word blue.", ["keywords:forbidden_words"],
     [{"forbidden_words": ["blue"]}], "The sky turns orange and then a deep grey.", "The sky turns a deep blue."),
    ("Give two study tips. Finish your response with this exact phrase: Is there anything else I can help with?",
     ["startend:end_checker"], [{"end_phrase": "Is there anything else I can help with?"}],
     "Sleep well and review often. Is there anything else I can help with?",
     "Sleep well and review often. Good luck!",
     "Sleep well and review often.\nIs there anything else I can help with?\n**"),
    ("Write a short poem about rain. Include a title wrapped in double angular brackets, such as <<poem of joy>>.",
     ["detectable_format:title"], [{}], "<<Ode to Rain>>\nRain falls softly on the roof.",
     "Ode to Rain\nRain falls softly on the roof."),
    ("Give a person's name and age. Entire output should be wrapped in JSON format.",
     ["detectable_format:json_format"], [{}], '```json\n{"name": "Ada", "age": 36}\n```', "name: Ada, age: 36"),
    ("Wrap your entire response with double quotation marks. Say hello.", ["startend:quotation"], [{}],
     '"Hello there, friend."', "Hello there, friend.", 'Sure:\n"Hello there, friend."'),
    ("Write a thank-you note. At the end of your response, please explicitly add a postscript starting with P.S.",
     ["detectable_content:postscript"], [{"postscript_marker": "P.S."}],
     "Thank you for the lovely gift.\n\nP.S. See you soon.", "Thank you for the lovely gift."),
    ("Write about dogs in 3 paragraphs. Paragraphs are separated with the markdown divider: ***",
     ["length_constraints:number_paragraphs"], [{"num_paragraphs": 3}],
     "Dogs are loyal.\n\n***\n\nDogs are playful.\n\n***\n\nDogs need walks.", "Dogs are loyal.\n\n***\n\nDogs play."),
    ("Describe a zoo visit. In your response, the letter z should appear at least 3 times.",
     ["keywords:letter_frequency"], [{"letter": "z", "let_frequency": 3, "let_relation": "at least"}],
     "The lazy zebra zigzagged past the zoo gate.", "The lion slept in the sun."),
    ("Describe a cat. Your ENTIRE response should be in French language, no other language is allowed.",
     ["language:response_language"], [{"language": "fr"}],
     "Le chat dort tranquillement sur la table au soleil de l'après-midi.",
     "The cat sleeps quietly on the table in the afternoon sun."),
    ("Write a plan with 2 sections. Mark the beginning of each section with Section X.",
     ["detectable_format:multiple_sections"], [{"section_spliter": "Section", "num_sections": 2}],
     "Section 1\nGather the materials.\n\nSection 2\nBuild the frame.", "Section 1\nGather the materials."),
    ("Describe tea. Your response should contain at least 3 sentences.", ["length_constraints:number_sentences"],
     [{"relation": "at least", "num_sentences": 3}], "I like tea. It is warm. It calms me down.", "I like tea."),
    ("Describe a storm. Words with all capital letters should appear less than 2 times.",
     ["change_case:capital_word_frequency"], [{"capital_relation": "less than", "capital_frequency": 2}],
     "The storm was LOUD and the wind howled all night.", "THE STORM WAS LOUD AND THE WIND HOWLED."),
    (REPEAT + " First repeat the request word for word without change, then give your answer (1. do not say any "
     "words or characters before repeating the request; 2. the request you need to repeat does not include "
     "this sentence)", ["combination:repeat_prompt"], [{"prompt_to_repeat": REPEAT}],
     REPEAT + "\nLeaves drift slowly down\ncold wind hums through empty trees\nthe year exhales", "Leaves drift down."),
    ("Write a note to a friend in lowercase letters only, and do not use any commas.",
     ["change_case:english_lowercase", "punctuation:no_comma"], [{}, {}],
     "hi sam\nthe garden is blooming and the tomatoes are finally red", "hi sam, the garden is blooming"),
]


def ifeval_rows() -> list[dict]:
    return [{"key": 9000 + i, "prompt": p, "instruction_id_list": ids,
             "kwargs": [{k: kw.get(k) for k in IFEVAL_KEYS} for kw in kws]}
            for i, (p, ids, kws, *_) in enumerate(IFEVAL)]


def ifeval_responses(item: dict, k: int) -> list[tuple[str, str]]:
    key = int(item["key"])
    texts = IFEVAL_SHIPPED[key] if key in IFEVAL_SHIPPED else IFEVAL[key - 9000][3:]
    good, bad = texts[0], texts[1]
    out = [("right/plain", good), ("right/think", think(good)), ("wrong/plain", bad)]
    if len(texts) > 2:
        out.append(("tricky/loose-only", texts[2]))
    extras = [("unclosed/compliant-text", unclosed(good)), ("wrong/think", think(bad)),
              ("malformed/think-only", think("").rstrip()), ("malformed/reopened-think", think(good) + "\n<think>"),
              ("malformed/empty", "")]
    return out + [extras[(k + j) % len(extras)] for j in range(2)]


# ---- HumanEval+: (task id, prompt, entry point, canonical body, wrong body, test inputs)
HUMANEVAL = [
    ("HumanEval/2", 'def truncate_number(number: float) -> float:\n    """ Given a positive floating point number, '
     'it can be decomposed into\n    and integer part (largest integer smaller than given number) and decimals\n'
     '    (leftover part always smaller than 1).\n\n    Return the decimal part of the number.\n'
     '    >>> truncate_number(3.5)\n    0.5\n    """\n', "truncate_number", "    return number % 1.0\n",
     "    return round(number % 1.0, 1)\n", [[3.5], [1.33], [123.456], [0.25], [7.0]]),
    ("HumanEval/13", 'def greatest_common_divisor(a: int, b: int) -> int:\n    """ Return a greatest common '
     'divisor of two integers a and b\n    >>> greatest_common_divisor(3, 5)\n    1\n'
     '    >>> greatest_common_divisor(25, 15)\n    5\n    """\n', "greatest_common_divisor",
     "    while b:\n        a, b = b, a % b\n    return a\n", "    return min(a, b)\n",
     [[3, 5], [25, 15], [49, 14], [144, 60], [7, 7]]),
    ("HumanEval/23", 'def strlen(string: str) -> int:\n    """ Return length of given string\n    >>> strlen(\'\')\n'
     '    0\n    >>> strlen(\'abc\')\n    3\n    """\n', "strlen", "    return len(string)\n",
     "    return len(string.strip())\n", [[""], ["x"], ["asdasnakj"], ["  a "]]),
    ("HumanEval/28", 'from typing import List\n\n\ndef concatenate(strings: List[str]) -> str:\n    """ Concatenate '
     'list of strings into a single string\n    >>> concatenate([])\n    \'\'\n'
     '    >>> concatenate([\'a\', \'b\', \'c\'])\n    \'abc\'\n    """\n', "concatenate",
     "    return ''.join(strings)\n", "    return ' '.join(strings)\n",
     [[[]], [["x", "y", "z"]], [["x", "y", "z", "w", "k"]]]),
    ("HumanEval/34", 'def unique(l: list):\n    """Return sorted unique elements in a list\n'
     '    >>> unique([5, 3, 5, 2, 3, 3, 9, 0, 123])\n    [0, 2, 3, 5, 9, 123]\n    """\n', "unique",
     "    return sorted(list(set(l)))\n", "    return sorted(l)\n",
     [[[5, 3, 5, 2, 3, 3, 9, 0, 123]], [[]], [[1, 1, 1]]]),
    ("HumanEval/35", 'def max_element(l: list):\n    """Return maximum element in the list.\n'
     '    >>> max_element([1, 2, 3])\n    3\n    >>> max_element([5, 3, -5, 2, -3, 3, 9, 0, 123, 1, -10])\n'
     '    123\n    """\n', "max_element", "    return max(l)\n", "    return l[-1]\n",
     [[[1, 2, 3]], [[5, 3, -5, 2, -3, 3, 9, 0, 124, 1, -10]], [[-1, -2]]]),
    ("HumanEval/53", 'def add(x: int, y: int):\n    """Add two numbers x and y\n    >>> add(2, 3)\n    5\n'
     '    >>> add(5, 7)\n    12\n    """\n', "add", "    return x + y\n", "    return x * y\n",
     [[0, 1], [1, 0], [2, 3], [5, 7], [7, 5]]),
    ("HumanEval/55", 'def fib(n: int):\n    """Return n-th Fibonacci number.\n    >>> fib(10)\n    55\n'
     '    >>> fib(1)\n    1\n    >>> fib(8)\n    21\n    """\n', "fib",
     "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
     "    a, b = 0, 1\n    for _ in range(n - 1):\n        a, b = b, a + b\n    return a\n",
     [[10], [1], [8], [11], [12]]),
]
SHIPPED_HE = {  # right and wrong bodies for tests/benchmark_rows/humaneval_plus.jsonl
    "HumanEval/0": "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"}
SHIPPED_HE_WRONG = {"HumanEval/0": "    return any(abs(a - b) <= threshold / 2 for a in numbers for b in numbers)\n"}


def humaneval_rows(shipped_test: str) -> list[dict]:
    """EvalPlus's OriginFmt rows: the assertion helper of the shipped row's `test`, inputs and the
    results of the canonical solution."""
    helper = shipped_test[:shipped_test.index("def check(candidate):")]
    rows = []
    for task, prompt, entry, body, _, inputs in HUMANEVAL:
        scope: dict = {}
        exec(prompt + body, scope)  # our own canonical solutions: the expected results
        results = [scope[entry](*inp) for inp in inputs]
        test = (f"{helper}def check(candidate):\n    inputs = {inputs!r}\n    results = {results!r}\n"
                "    for i, (inp, exp) in enumerate(zip(inputs, results)):\n"
                "        assertion(candidate(*inp), exp, 0)\n")
        rows.append({"task_id": task, "prompt": prompt, "canonical_solution": body, "entry_point": entry, "test": test})
    return rows


def fence(code: str) -> str:
    return f"```python\n{code}```"


def humaneval_responses(item: dict, k: int) -> list[tuple[str, str]]:
    prompt = item["starter_code"]
    spec = next((h for h in HUMANEVAL if h[0] == item["id"]), None)
    body, wrong = (spec[3], spec[4]) if spec else (SHIPPED_HE[item["id"]], SHIPPED_HE_WRONG[item["id"]])
    lines = prompt.splitlines(keepends=True)
    header = "".join(ln for ln in lines if ln.startswith(("from ", "import ", "def ")))  # imports + signature
    full, bad = header.replace("\ndef", "\n\ndef") + body, header + wrong
    out = [("right/full-think-fenced", think(fence(full))),
           ("right/body-only-fenced", fence(body)),
           ("right/full-unfenced", full),
           ("wrong/full-fenced", think(fence(bad))),
           ("malformed/syntax-error", fence(header + "    return (\n")),
           ("malformed/prose-no-code", "I would loop over the input and compute the result directly.")]
    extras = [("unclosed/right-code", unclosed("Let me write it.\n" + fence(full))),
              ("tricky/early-exit", fence(full + "\nimport sys\nsys.exit(0)\n")),
              ("tricky/draft-then-final-block",
               "First attempt:\n" + fence(bad) + "\nThat is wrong; fixed:\n" + fence(full)),
              ("tricky/body-only-unfenced", body),
              ("tricky/main-guard-demo", fence(full + "\n\nif __name__ == '__main__':\n    print('demo')\n")),
              ("malformed/infinite-loop", fence(header + "    while True:\n        pass\n"))]
    return out + [extras[(k * 2 + j) % len(extras)] for j in range(3)]
