"""Generated test corpora: documents with a known fate (kept, or dropped for a known reason)."""

from __future__ import annotations

import json
import random
from pathlib import Path

SUBJECTS = ["farmer", "teacher", "neighbour", "committee", "visitor", "guide", "baker", "curator",
            "student", "council", "captain", "brother", "doctor", "engineer", "nurse", "painter", "sailor",
            "writer", "gardener", "mayor"]
ADJECTIVES = ["old", "young", "quiet", "careful", "heavy", "broken", "northern", "unusual", "bright", "narrow",
              "ancient", "modern", "gentle", "crowded", "distant", "golden", "simple", "curious", "wooden", "frozen",
              "patient", "busy", "tiny", "famous", "hidden"]
NOUNS = ["bridge", "window", "letter", "map", "train", "basket", "harbour", "garden", "box", "song", "road",
         "library", "festival", "field", "market", "river", "tower", "school", "forest", "kitchen", "lantern",
         "village", "meadow", "station", "workshop"]
VERBS = ["noticed", "described", "carried", "repaired", "painted", "measured", "collected", "explained",
         "remembered", "discovered", "organised", "questioned", "welcomed", "followed", "protected", "visited",
         "opened", "cleaned", "studied", "admired"]
PREPS = ["near", "behind", "beside", "across", "beyond", "under", "above", "inside", "around", "along"]
GERMAN = ("der alte Bauer ging langsam über die Brücke und sah viele Boote im Hafen während Kinder "
          "lange im Garten spielten Eltern tranken Kaffee sprachen über Wetter Schule Arbeit Reise "
          "Stadt Dorf Berg Fluss Wald Wiese Sonne Regen Abend Morgen Brot Käse Milch Haus").split()


def german(rng: random.Random, words: int = 80) -> str:
    sentences, out = [], []
    for _ in range(words):
        out.append(rng.choice(GERMAN))
        if len(out) == 10:
            sentences.append(" ".join(out).capitalize() + ".")
            out = []
    return " ".join(sentences)


def sentence(rng: random.Random) -> str:
    a, n, v, p = rng.choice, rng.choice, rng.choice, rng.choice
    return (f"The {a(ADJECTIVES)} {n(SUBJECTS)} {v(VERBS)} a {a(ADJECTIVES)} {n(NOUNS)} {p(PREPS)} the "
            f"{a(ADJECTIVES)} {n(NOUNS)} and then {v(VERBS)} the {n(NOUNS)} of the {a(ADJECTIVES)} {n(SUBJECTS)}.")


def prose(rng: random.Random, sentences: int = 14) -> str:
    chosen = [sentence(rng) for _ in range(sentences)]
    paragraphs = [" ".join(chosen[i:i + 4]) for i in range(0, len(chosen), 4)]
    return "\n\n".join(paragraphs)


def benchmark_items() -> list[dict]:
    return [{"id": f"b{i}", "question": q, "answer": a} for i, (q, a) in enumerate([
        ("A train leaves the station at nine and travels at sixty kilometres per hour towards the coast "
         "for three hours; how far does it go", "180"),
        ("Maria buys seven notebooks for four dollars each and pays with a fifty dollar bill; how much "
         "change does she receive from the cashier", "22"),
        ("If a garden has twelve rows of tomatoes with eight plants in every row and half of them are "
         "harvested, how many plants remain", "48"),
    ])]


def write_corpus(folder: Path, seed: int = 0, files: int = 1) -> dict[str, str]:
    """Writes `web-*.jsonl` under folder; returns doc id -> expected fate ('kept' or a reason)."""
    rng = random.Random(seed)
    items = benchmark_items()
    docs: list[tuple[str, str | None, str]] = []  # (id, text or raw line, fate)
    for i in range(60):
        docs.append((f"good-{i}", prose(rng), "kept"))
    for i in range(6):
        docs.append((f"boiler-{i}", "Click here. Subscribe now!", "too_short_chars"))
    for i in range(6):
        line = "Buy cheap watches online today at the best prices guaranteed."
        docs.append((f"repeat-{i}", "\n".join([line] * 30), "repetition"))
    for i in range(5):
        docs.append((f"german-{i}", german(rng), "gopher_enough_stop_words"))
    for i, item in enumerate(items):  # planted contamination inside otherwise good prose
        text = prose(rng, 6) + "\n\n" + item["question"] + "?\n\n" + prose(rng, 6)
        docs.append((f"contaminated-{i}", text, "contaminated"))
    rng.shuffle(docs)
    fates = {}
    lines_per_file: list[list[str]] = [[] for _ in range(files)]
    for n, (doc_id, text, fate) in enumerate(docs):
        lines_per_file[n % files].append(json.dumps({"id": doc_id, "text": text, "url": f"https://example.org/{doc_id}"}))
        fates[f"web/{doc_id}"] = fate
    lines_per_file[0].insert(3, '{"id": "broken", "text": "unterminated')  # malformed JSON
    lines_per_file[-1].append(json.dumps({"id": "empty-1", "text": ""}))
    fates["web/web-00000.jsonl:3" if files >= 1 else ""] = "malformed"
    fates["web/empty-1"] = "empty"
    folder.mkdir(parents=True, exist_ok=True)
    for k, lines in enumerate(lines_per_file):
        (folder / f"web-{k:05d}.jsonl").write_text("\n".join(lines) + "\n")
    return fates


def write_project(root: Path, files: int = 1, extra: str = "", extra_data: str = "",
                  decont: str = "{benchmarks: [bench], n: 13}") -> tuple[Path, dict[str, str]]:
    """A self-contained project: catalog, local benchmark, generated corpus, a data-only recipe."""
    fates = write_corpus(root / "datasets_spec" / "web", files=files)
    (root / "datasets_spec" / "corpus.yaml").write_text(
        "web:\n  path: web\n  format: jsonl\n  text_field: text\n  id_field: id\n  domain: web\n")
    (root / "evals" / "data").mkdir(parents=True, exist_ok=True)
    (root / "evals" / "data" / "bench.jsonl").write_text(
        "\n".join(json.dumps(i) for i in benchmark_items()) + "\n")
    (root / "evals" / "bench.yaml").write_text(
        "bench:\n  path: data/bench.jsonl\n  question_field: question\n  answer_field: answer\n"
        "  verifier: math\n  items: 3\n")
    recipe = root / "recipes" / "data.yaml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    recipe.write_text(f"""
name: datatest
model:
  arch: {{vocab_size: 512, hidden_size: 64, num_layers: 1, num_heads: 2, num_kv_heads: 1, intermediate_size: 128}}
tokenizer: {{type: train, vocab_size: 512}}
data:
  sources: {{web: web}}
  filters:
    - {{type: length, min_chars: 100}}
    - {{type: gopher_repetition}}
    - {{type: gopher_quality}}
  dedup: {{exact: {{enabled: false}}, minhash: {{enabled: false}}}}
  decontamination: {decont}
{extra_data}
execution: {{tasks: {files}, workers: 1}}
{extra}
""")
    return recipe, fates
