"""Benchmark decontamination (qwen3_recipe.data.decont): the one definition of contamination used
by every stage. Real datatrove, real `tokenizers`; all data is generated here."""

from __future__ import annotations

import functools
import gzip
import json
import pickle
import random
from pathlib import Path

import pytest

from qwen3_recipe.catalog.specs import EvalSpec
from qwen3_recipe.data.decont import DecontaminationFilter, Hit, NGramIndex, benchmark_items, normalize_words

SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]


def make_vocab(rng: random.Random, size: int = 4000) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3))))
    return sorted(words)


def prose(rng: random.Random, words: list[str]) -> str:
    """Sentences with capitals, commas and full stops."""
    out, since = [], 0
    for w in words:
        if since == 0:
            w = w.capitalize()
        since += 1
        if since > 5 and rng.random() < 0.15:
            w, since = w + rng.choice([".", "!", "?"]), 0
        elif rng.random() < 0.06:
            w += ","
        out.append(w)
    return " ".join(out)


def write_benchmark(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def vocab() -> list[str]:
    return make_vocab(random.Random(7))


@pytest.fixture(scope="module")
def bench_rows(vocab) -> list[dict]:
    """A local benchmark: 40 items of 20-40 question words and a 1-6 word answer."""
    rng = random.Random(11)
    return [{"id": f"q{i}", "question": prose(rng, rng.choices(vocab, k=rng.randint(20, 40))),
             "answer": " ".join(rng.choices(vocab, k=rng.randint(1, 6)))} for i in range(40)]


@pytest.fixture(scope="module")
def bench_index(tmp_path_factory, bench_rows) -> tuple[NGramIndex, Path]:
    folder = tmp_path_factory.mktemp("bench")
    path = write_benchmark(folder / "mybench.jsonl", bench_rows)
    spec = EvalSpec(path="mybench.jsonl")
    items = [("mybench", item_id, text) for item_id, text in benchmark_items("mybench", spec, path)]
    index = NGramIndex.build(items, n=13)
    index.save(folder / "mybench.index")
    return index, folder / "mybench.index"


def plant(rng: random.Random, vocab: list[str], item_text: str, span: int = 13, at: int = 50,
          words: int = 200) -> tuple[str, int, list[str]]:
    """A prose document with `span` consecutive normalised words of `item_text` inserted at word
    `at`; returns (text, start position of the planted words, the planted words)."""
    item_words = normalize_words(item_text)
    start = rng.randint(0, len(item_words) - span)
    planted = item_words[start:start + span]
    body = rng.choices(vocab, k=words)
    text = prose(rng, body[:at]) + " " + " ".join(planted) + " " + prose(rng, body[at:])
    return text, normalize_words(text).index(planted[0], at - 1), planted


# --- normalisation -------------------------------------------------------------------------------

def test_normalize_words_lowercases_and_strips_unicode_punctuation():
    assert normalize_words("Hello, World! «Quoted» — dash…  (x+y)=z") == [
        "hello", "world", "quoted", "dash", "x", "y", "z"]
    assert normalize_words("well-known\u3000tab\there\xa0nbsp\nline") == [
        "well", "known", "tab", "here", "nbsp", "line"]
    assert normalize_words("Ça VA, señor? 東京。") == ["ça", "va", "señor", "東京"]
    assert normalize_words("  ...  ") == []


# --- the index -----------------------------------------------------------------------------------

def test_planted_13gram_is_found_with_benchmark_item_and_position(bench_index, bench_rows, vocab):
    index, _ = bench_index
    rng = random.Random(1)
    for row in bench_rows[:10]:
        text, pos, planted = plant(rng, vocab, row["question"] + "\n" + row["answer"])
        hits = index.find(text)
        assert [(h.benchmark, h.item_id, h.position) for h in hits] == [("mybench", row["id"], pos)]
        assert hits[0].ngram == " ".join(planted)
        assert isinstance(hits[0], Hit)


def test_case_and_punctuation_variants_still_match(bench_index, bench_rows, vocab):
    index, _ = bench_index
    words = normalize_words(bench_rows[3]["question"])[:15]
    variants = [
        " ".join(w.upper() for w in words),
        ", ".join(words),
        " — ".join(w.capitalize() + "!" for w in words),
        "«" + "»\t(".join(words) + ")",
        "\u3000".join(words),
    ]
    for variant in variants:
        doc = prose(random.Random(2), vocab[:30]) + " " + variant + ". " + prose(random.Random(3), vocab[30:60])
        hits = index.find(doc)
        assert [h.item_id for h in hits] == ["q3"], variant
        assert hits[0].position == 30


def test_clean_documents_are_never_flagged(bench_index, vocab, bench_rows):
    index, _ = bench_index
    rng = random.Random(5)
    bench_words = sorted({w for r in bench_rows for w in normalize_words(r["question"] + " " + r["answer"])})
    for i in range(300):
        source = bench_words if i % 2 else vocab  # half the docs use only benchmark words, shuffled
        assert index.find(prose(rng, rng.choices(source, k=rng.randint(50, 400)))) == []
    # twelve consecutive words of an item are not enough for a 13-gram
    words = normalize_words(bench_rows[0]["question"])
    assert index.find(" ".join(words[:12])) == []
    # short items (3-6 words, matched whole) do not fire on clean prose either
    short = NGramIndex.build([("s", str(i), " ".join(rng.choices(vocab, k=rng.randint(3, 6)))) for i in range(200)])
    assert short.skipped == 0 and len(short) == 200
    for _ in range(300):
        assert short.find(prose(rng, rng.choices(vocab, k=rng.randint(50, 400)))) == []


def test_word_boundaries_order_and_repeats_matter():
    words = [f"w{i}" for i in range(13)]
    index = NGramIndex.build([("b", "1", " ".join(words))])
    assert index.find("x " + " ".join(words) + " y")[0].position == 1
    assert index.find(" ".join(words[:5]) + "".join(words[5:7]) + " " + " ".join(words[7:])) == []  # joined
    assert index.find(" ".join(words[:5] + ["w", "5"] + words[6:])) == []  # split
    assert index.find(" ".join(words[1::-1] + words[2:])) == []  # swapped
    assert index.find(" ".join(words[:12] + words[11:])) == []  # repeated word


def test_an_ngram_shared_by_two_benchmarks_reports_both(vocab):
    rng = random.Random(9)
    shared = rng.choices(vocab, k=13)
    items = [
        ("bench_a", "a1", " ".join(rng.choices(vocab, k=5) + shared + rng.choices(vocab, k=5))),
        ("bench_b", "b7", " ".join(shared + rng.choices(vocab, k=9))),
        ("bench_b", "b8", " ".join(rng.choices(vocab, k=20))),
    ]
    index = NGramIndex.build(items)
    assert index.benchmarks == {"bench_a", "bench_b"}
    doc = " ".join(rng.choices(vocab, k=7) + shared + rng.choices(vocab, k=7))
    hits = index.find(doc)
    assert sorted((h.benchmark, h.item_id) for h in hits) == [("bench_a", "a1"), ("bench_b", "b7")]
    assert {h.position for h in hits} == {7} and {h.ngram for h in hits} == {" ".join(shared)}
    # each (benchmark, item) once, at its first position, hits sorted by position
    tail = items[0][2].split()[:14]  # a1's first n-grams: appear before a later copy of `shared`
    doc2 = " ".join(tail) + " filler " + " ".join(shared)
    hits2 = index.find(doc2)
    assert [(h.item_id, h.position) for h in hits2] == [("a1", 0), ("b7", 15)]
    assert hits2 == sorted(hits2, key=lambda h: h.position)


def test_short_items_are_matched_as_a_whole(vocab):
    items = [("tiny", "t1", "What is 55 × 40?\n2200"), ("tiny", "t2", "Name the capital of Gondor."),
             ("tiny", "t3", "4"), ("tiny", "t4", "yes no")]
    index = NGramIndex.build(items, n=13)
    assert index.skipped == 2  # below min_len=3: would match nearly every document
    hits = index.find("Quiz time! What is 55×40? 2200, said the student.")
    assert [(h.item_id, h.position, h.ngram) for h in hits] == [("t1", 2, "what is 55 40 2200")]
    assert index.find("The student said: name the capital of gondor!")[0].item_id == "t2"
    assert index.find("What is 55 × 40? Maybe 2300.") == []  # part of a short item is not a match
    assert index.find("What is 55 x 40? 2200") == []  # "x" is a word, "×" is a symbol (removed)
    assert index.find("4 yes no 2200") == []
    both = NGramIndex.build(items + [("long", "l1", " ".join(vocab[:30]))], n=13)
    doc = " ".join(vocab[:13]) + " what is 55 40 2200"
    assert [(h.benchmark, h.position) for h in both.find(doc)] == [("long", 0), ("tiny", 13)]


def train_bpe(sentences: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(sentences, trainer)
    return tok


def test_token_method_with_a_locally_trained_bpe(tmp_path, vocab, bench_rows):
    rng = random.Random(13)
    tok = train_bpe([prose(rng, rng.choices(vocab[:800], k=12)) for _ in range(400)]
                    + [r["question"] for r in bench_rows])
    items = [("mybench", r["id"], r["question"] + "\n" + r["answer"]) for r in bench_rows]
    index = NGramIndex.build(items, n=8, method="token", tokenizer=tok)
    assert index.method == "token" and index.n == 8 and len(index) > 0
    words = normalize_words(bench_rows[5]["question"])[4:10]  # six words: > 8 tokens
    doc = prose(rng, vocab[:40]) + " " + " ".join(w.upper() for w in words) + ". " + prose(rng, vocab[40:80])
    hits = index.find(doc)
    assert [h.item_id for h in hits] == ["q5"]
    ids = tok.encode(" " + " ".join(normalize_words(doc)), add_special_tokens=False).ids
    h = hits[0]
    assert h.ngram == " ".join(map(str, ids[h.position:h.position + 8]))
    for _ in range(100):
        assert index.find(prose(rng, rng.choices(vocab, k=150))) == []
    # the tokenizer travels inside the index file
    index.save(tmp_path / "tok.index")
    loaded = NGramIndex.load(tmp_path / "tok.index")
    assert loaded.method == "token" and loaded.find(doc) == hits
    # an encode() returning a plain list of ids works too
    class ListTokenizer:
        def encode(self, text):
            return tok.encode(text).ids
    assert NGramIndex.build(items, n=8, method="token", tokenizer=ListTokenizer()).find(doc) == hits


def test_save_load_round_trip(bench_index, bench_rows, vocab, tmp_path):
    index, path = bench_index
    loaded = NGramIndex.load(path)
    assert (len(loaded), loaded.n, loaded.method, loaded.benchmarks) == (len(index), 13, "word", {"mybench"})
    rng = random.Random(17)
    for row in bench_rows[:5]:
        text, _, _ = plant(rng, vocab, row["question"])
        assert loaded.find(text) == index.find(text) != []
    empty = NGramIndex.build([])
    empty.save(tmp_path / "empty.index")
    assert len(NGramIndex.load(tmp_path / "empty.index")) == 0 and NGramIndex.load(tmp_path / "empty.index").find("a b") == []
    (tmp_path / "junk.index").write_bytes(b"not an index")
    with pytest.raises(Exception):
        NGramIndex.load(tmp_path / "junk.index")


# --- benchmark items -----------------------------------------------------------------------------

def test_benchmark_items_jsonl_and_parquet(tmp_path):
    rows = [{"problem": "Add two and two.", "solution": 4, "id": "x"}, {"problem": "Name a colour.", "solution": None}]
    spec = EvalSpec(path="b.jsonl", question_field="problem", answer_field="solution")
    path = write_benchmark(tmp_path / "b.jsonl", rows)
    assert list(benchmark_items("b", spec, path)) == [("x", "Add two and two.\n4"), ("1", "Name a colour.")]
    assert list(benchmark_items("b", spec, path, fields="question"))[0] == ("x", "Add two and two.")
    assert list(benchmark_items("b", spec, path, fields="answer"))[0] == ("x", "4")
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "b.parquet")
    assert list(benchmark_items("b", spec, tmp_path / "b.parquet")) == list(benchmark_items("b", spec, path))
    with pytest.raises(ValueError, match="question"):
        list(benchmark_items("b", EvalSpec(path="b.jsonl"), path))
    no_answer = EvalSpec(path="b.jsonl", question_field="problem", answer_field=None)
    assert list(benchmark_items("b", no_answer, path))[0] == ("x", "Add two and two.")


# --- the datatrove step --------------------------------------------------------------------------

def record_hits(path: str, doc, hits) -> None:
    with open(path, "a") as f:
        f.write(json.dumps({"id": doc.id, "hits": [[h.benchmark, h.item_id, h.position] for h in hits]}) + "\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, bench_rows, vocab) -> tuple[Path, set[str], dict[str, str]]:
    """Two JSONL input files, 60 documents, 6 of them contaminated."""
    folder = tmp_path_factory.mktemp("corpus")
    rng = random.Random(23)
    planted: dict[str, str] = {}
    docs = []
    for i in range(60):
        if i % 10 == 3:
            row = bench_rows[i // 10]
            text, _, _ = plant(rng, vocab, row["question"] + "\n" + row["answer"], span=15)
            planted[f"d{i}"] = row["id"]
        else:
            text = prose(rng, rng.choices(vocab, k=rng.randint(80, 300)))
        docs.append({"id": f"d{i}", "text": text})
    for part in range(2):
        (folder / f"part{part}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs[part::2]))
    return folder, set(planted), planted


def run_pipeline(corpus_dir: Path, work: Path, step: DecontaminationFilter, workers: int) -> list[dict]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    LocalPipelineExecutor(pipeline=[JsonlReader(str(corpus_dir)), step, JsonlWriter(str(work / "out"))],
                          tasks=2, workers=workers, logging_dir=str(work / "logs")).run()
    out = []
    for file in sorted((work / "out").glob("*.jsonl.gz")):
        with gzip.open(file, "rt") as f:
            out.extend(json.loads(line) for line in f)
    return out


def test_filter_in_a_datatrove_pipeline_drops_exactly_the_planted_docs(bench_index, corpus, tmp_path):
    _, index_path = bench_index
    corpus_dir, planted, _ = corpus
    out = run_pipeline(corpus_dir, tmp_path, DecontaminationFilter(str(index_path), action="drop"), workers=2)
    assert len(out) == 60 - len(planted) == 54
    assert not planted & {d["id"] for d in out}
    assert all("contamination" not in d.get("metadata", {}) for d in out)


def test_filter_flag_mode_keeps_and_annotates_and_calls_on_hits(bench_index, corpus, tmp_path):
    _, index_path = bench_index
    corpus_dir, planted, item_of = corpus
    log = tmp_path / "hits.jsonl"
    step = DecontaminationFilter(str(index_path), action="flag", on_hits=functools.partial(record_hits, str(log)))
    out = run_pipeline(corpus_dir, tmp_path, step, workers=1)
    assert len(out) == 60
    flagged = {d["id"]: d["metadata"]["contamination"] for d in out if "contamination" in d.get("metadata", {})}
    assert set(flagged) == planted
    for doc_id, hits in flagged.items():
        assert [(h["benchmark"], h["item_id"]) for h in hits] == [("mybench", item_of[doc_id])]
        assert len(hits[0]["ngram"].split()) == 13 and isinstance(hits[0]["position"], int)
    recorded = {r["id"]: r["hits"] for r in map(json.loads, log.read_text().splitlines())}
    assert recorded == {k: [[h["benchmark"], h["item_id"], h["position"]] for h in v] for k, v in flagged.items()}


def test_filter_direct_calls_stats_and_pickling(bench_index, bench_rows, vocab):
    from datatrove.data import Document
    index, index_path = bench_index
    seen: list[tuple[str, list[Hit]]] = []
    step = DecontaminationFilter(str(index_path), on_hits=lambda doc, hits: seen.append((doc.id, hits)))
    state = pickle.dumps(DecontaminationFilter(str(index_path)))
    rng = random.Random(29)
    docs = [Document(text=plant(rng, vocab, bench_rows[i]["question"])[0] if i < 4 else
                     prose(rng, rng.choices(vocab, k=100)), id=str(i)) for i in range(10)]
    kept = [d.id for d in step.run(iter(docs))]
    assert kept == [str(i) for i in range(4, 10)]
    assert [doc_id for doc_id, _ in seen] == ["0", "1", "2", "3"]
    assert all(hits == index.find(docs[int(doc_id)].text) for doc_id, hits in seen)
    assert step.stats["contaminated"].total == 4 and step.stats["dropped_contaminated"].total == 4
    assert step.stats["contaminated_mybench"].total == 4
    # pickles small, without the loaded index; loads it again lazily after unpickling
    after = pickle.dumps(DecontaminationFilter(str(index_path)))
    used = DecontaminationFilter(str(index_path))
    used.filter(docs[0])
    assert len(pickle.dumps(used)) < 2 * len(state) and len(after) == len(state)
    assert pickle.loads(pickle.dumps(used)).filter(docs[0]) == (False, "contaminated")
    with pytest.raises(ValueError):
        DecontaminationFilter(str(index_path), action="delete")


def test_large_index_prefilter_gives_the_same_answers(monkeypatch, bench_rows, vocab):
    from qwen3_recipe.data import decont
    items = [("mybench", r["id"], r["question"] + "\n" + r["answer"]) for r in bench_rows]
    items += [("tiny", "t1", "What is 55 × 40?\n2200")]
    plain = NGramIndex.build(items)
    monkeypatch.setattr(decont, "_PREFILTER_MIN_KEYS", 1)
    filtered = NGramIndex.build(items)
    assert plain._bitmap is None and filtered._bitmap is not None
    rng = random.Random(31)
    docs = [plant(rng, vocab, bench_rows[i]["question"])[0] + " what is 55×40 2200" for i in range(10)]
    docs += [prose(rng, rng.choices(vocab, k=200)) for _ in range(50)]
    assert [filtered.find(d) for d in docs] == [plain.find(d) for d in docs]
    assert sum(map(bool, (filtered.find(d) for d in docs))) == 10
