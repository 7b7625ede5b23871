"""The mixture planner: token shares, budget, repetition cap, shortfalls, determinism, length buckets,
packing and training order (semantics in qwen3_recipe/data/mixture.py)."""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwen3_recipe.data.mixture import Doc, order_for_training, plan_mixture

LONG, SHORT = (16384, 32768, 0.75), (4096, 16384, 0.25)


def make_docs(source: str, n: int, lo: int, hi: int, seed: int = 0, group=None) -> list[Doc]:
    toks = np.random.default_rng(seed).integers(lo, hi, n).tolist()
    return [Doc(f"{source}-{i}", source, t, group(i) if group else None) for i, t in enumerate(toks)]


def docs_with_tokens(source: str, tokens: float, lo: int, hi: int, seed: int) -> list[Doc]:
    """Documents of lengths in [lo, hi) holding at least `tokens` tokens in all."""
    toks = np.random.default_rng(seed).integers(lo, hi, int(tokens / lo) + 1)  # enough even if all short
    n = int(np.searchsorted(np.cumsum(toks), tokens)) + 1
    return [Doc(f"{source}-{i}", source, t) for i, t in enumerate(toks[:n].tolist())]


def used_by_source(plan) -> dict[str, int]:
    out: Counter = Counter()
    for a in plan.assignments:
        out[a.source] += a.tokens * a.repetitions
    return dict(out)


def reps_of(plan) -> dict[str, int]:
    return {a.doc_id: a.repetitions for a in plan.assignments}


def check_cap(plan, docs, max_repetition):
    held = Counter()
    for d in docs:
        held[d.source] += d.tokens
    for a in plan.assignments:
        assert 1 <= a.repetitions <= math.ceil(max_repetition)
    for source, used in used_by_source(plan).items():
        assert used <= max_repetition * held[source] + 1e-6


# -- token shares and budget -------------------------------------------------------------------------

@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.lists(st.integers(1, 20), min_size=1, max_size=4),
       budget=st.integers(500_000, 4_000_000),
       max_repetition=st.sampled_from([1.0, 1.5, 2.0, 2.5, 4.0]),
       plenty=st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4),
       seed=st.integers(0, 2**32))
def test_shares_and_budget_property(raw, budget, max_repetition, plenty, seed):
    weights = {f"s{i}": w / sum(raw) for i, w in enumerate(raw)}
    docs = []
    for i, (name, w) in enumerate(weights.items()):
        # enough data (tokens x max_repetition >= share x budget): from ~max_repetition x to 0.25x
        ratio = 1.02 / max_repetition + plenty[i] * (4.0 - 1.02 / max_repetition)
        docs += docs_with_tokens(name, w * budget * ratio, 10, 1001, seed + i)
    plan = plan_mixture("stage", docs, weights, budget, max_repetition=max_repetition, seed=seed)
    assert plan.shortfalls == {}
    assert abs(plan.tokens - budget) <= 0.01 * budget
    assert plan.tokens == sum(a.tokens * a.repetitions for a in plan.assignments)
    used = used_by_source(plan)
    for name, w in weights.items():
        assert abs(plan.realized[name] - w) <= 0.01
        # at least its share (the trainer must not run out), over by less than one document (< 1001 tokens)
        assert 0 <= used.get(name, 0) - w * budget + 1e-6 and used.get(name, 0) - w * budget < 1000
    assert plan.tokens >= budget
    check_cap(plan, docs, max_repetition)


def test_up_sampling_repeats_all_floor_times_and_a_random_subset_once_more():
    docs = make_docs("web", 5000, 100, 1000, seed=1)
    held = sum(d.tokens for d in docs)
    plan = plan_mixture("s", docs, {"web": 1.0}, int(2.3 * held), max_repetition=4.0, seed=3)
    reps = reps_of(plan)
    assert len(reps) == len(docs) and set(reps.values()) == {2, 3}
    thrice = [i for i, d in enumerate(docs) if reps[d.doc_id] == 3]
    assert abs(sum(docs[i].tokens for i in thrice) / held - 0.3) < 0.01
    assert thrice != list(range(len(thrice)))
    assert abs(np.mean(thrice) / len(docs) - 0.5) < 0.05


def test_down_sampling_is_a_seeded_random_subset_not_a_prefix():
    docs = make_docs("web", 10_000, 100, 1000, seed=2)
    held = sum(d.tokens for d in docs)
    picks = []
    for seed in (0, 1):
        plan = plan_mixture("s", docs, {"web": 1.0}, held // 10, seed=seed)
        chosen = sorted(int(a.doc_id.split("-")[1]) for a in plan.assignments)
        assert all(a.repetitions == 1 for a in plan.assignments)
        assert chosen != list(range(len(chosen)))
        assert chosen[0] < 1000 and chosen[-1] > 9000
        assert abs(np.mean(chosen) / len(docs) - 0.5) < 0.05
        picks.append(set(chosen))
    assert len(picks[0] & picks[1]) / len(picks[0]) < 0.3   # ~10% overlap expected for independent draws


def test_fractional_max_repetition_caps_tokens_and_per_doc_count():
    short = make_docs("math", 2000, 100, 1000, seed=4)
    plenty = make_docs("web", 4000, 100, 1000, seed=5)
    held_short = sum(d.tokens for d in short)
    held_plenty = sum(d.tokens for d in plenty)
    budget = int(held_short * 3.0 / 0.5)   # math wants 3x its data (> 2.5x), web about 1.5x
    plan = plan_mixture("s", short + plenty, {"math": 0.5, "web": 0.5}, budget, max_repetition=2.5, seed=0)
    check_cap(plan, short + plenty, 2.5)
    used = used_by_source(plan)
    assert 2.5 * held_short - 1000 < used["math"] <= 2.5 * held_short
    assert {a.repetitions for a in plan.assignments if a.source == "math"} == {2, 3}
    assert plan.shortfalls == {"math": round(0.5 * budget - used["math"])}
    assert abs(used["web"] - 0.5 * budget) < 1000 and 2.5 * held_plenty >= 0.5 * budget


def test_short_source_gives_everything_and_is_not_compensated():
    math_docs = make_docs("math", 1000, 100, 1000, seed=6)
    web_docs = make_docs("web", 20_000, 100, 1000, seed=7)
    held = sum(d.tokens for d in math_docs)
    budget = held * 10   # math wants 0.5 * 10 = 5x its data; max 4x
    plan = plan_mixture("s", math_docs + web_docs, {"math": 0.5, "web": 0.3, "code": 0.2}, budget, seed=0)
    used = used_by_source(plan)
    assert all(a.repetitions == 4 for a in plan.assignments if a.source == "math")
    assert len([a for a in plan.assignments if a.source == "math"]) == len(math_docs)
    assert used["math"] == 4 * held
    assert plan.shortfalls == {"math": 5 * held - 4 * held, "code": 2 * held}   # code has no documents
    assert abs(used["web"] - 0.3 * budget) < 1000   # not inflated to cover the missing tokens
    assert plan.tokens == used["math"] + used["web"]
    assert plan.realized["code"] == 0.0
    assert plan.realized["web"] == pytest.approx(used["web"] / plan.tokens)
    check_cap(plan, math_docs + web_docs, 4.0)


def test_deterministic_and_seed_sensitive():
    docs = make_docs("web", 3000, 50, 800, seed=8) + make_docs("code", 3000, 50, 800, seed=9)
    args = dict(weights={"web": 0.7, "code": 0.3}, budget_tokens=600_000)
    a = plan_mixture("s", docs, **args, seed=11)
    b = plan_mixture("s", iter(list(docs)), **args, seed=11)
    c = plan_mixture("s", docs, **args, seed=12)
    assert a == b
    assert {x.doc_id for x in a.assignments} != {x.doc_id for x in c.assignments}
    assert order_for_training(a, 5) == order_for_training(b, 5) != order_for_training(a, 6)


def test_ignores_other_sources_and_validates_arguments():
    docs = make_docs("web", 100, 10, 100) + [Doc("x", "elsewhere", 50), Doc("z", "web", 0)]
    plan = plan_mixture("s", docs, {"web": 1.0}, 1000)
    assert {a.source for a in plan.assignments} == {"web"} and "z" not in reps_of(plan)
    with pytest.raises(ValueError, match="sum to 1"):
        plan_mixture("s", docs, {"web": 0.9}, 1000)
    with pytest.raises(ValueError, match="max_repetition"):
        plan_mixture("s", docs, {"web": 1.0}, 1000, max_repetition=0.5)
    with pytest.raises(ValueError, match="overlap"):
        plan_mixture("s", docs, {"web": 1.0}, 1000, length_buckets=[(0, 50, 0.5), (40, 90, 0.5)])
    with pytest.raises(ValueError, match="pack_target_tokens"):
        plan_mixture("s", docs, {"web": 1.0}, 1000, pack_related="repo")
    with pytest.raises(ValueError, match="unique"):
        plan_mixture("s", docs + [Doc("x", "web", 5)], {"web": 1.0}, 1000)


# -- length buckets ----------------------------------------------------------------------------------

def test_length_buckets_realised_when_data_allows():
    docs = make_docs("web", 3000, 1000, 32768, seed=10) + make_docs("code", 3000, 2000, 40000, seed=11)
    budget = 40_000_000
    plan = plan_mixture("s", docs, {"web": 0.5, "code": 0.5}, budget, seed=1, length_buckets=[LONG, SHORT])
    assert plan.bucket_shares["16384-32768"] == pytest.approx(0.75, abs=0.03)
    assert plan.bucket_shares["4096-16384"] == pytest.approx(0.25, abs=0.03)
    assert plan.bucket_shortfalls == {} and plan.shortfalls == {}
    for name in ("web", "code"):   # per source too, and the token shares still hold
        mine = [a for a in plan.assignments if a.source == name]
        long_uses = sum(a.repetitions for a in mine if a.tokens >= 16384)
        assert long_uses / sum(a.repetitions for a in mine) == pytest.approx(0.75, abs=0.03)
        assert abs(plan.realized[name] - 0.5) <= 0.01
    assert all(4096 <= a.tokens < 32768 for a in plan.assignments)   # outside every bucket: unused
    assert abs(plan.tokens - budget) <= 0.01 * budget


def test_length_bucket_shortfall_is_reported_and_tokens_still_met():
    docs = make_docs("web", 20, 16384, 32768, seed=12) + \
        [Doc(f"short-{i}", "web", d.tokens) for i, d in enumerate(make_docs("x", 4000, 4096, 16384, seed=13))]
    budget = 20_000_000
    plan = plan_mixture("s", docs, {"web": 1.0}, budget, max_repetition=1.0, seed=0,
                        length_buckets=[LONG, SHORT])
    assert all(a.repetitions == 1 for a in plan.assignments)
    assert sum(1 for a in plan.assignments if a.tokens >= 16384) == 20   # every long doc, at the cap
    uses = len(plan.assignments)
    assert plan.bucket_shortfalls == {"16384-32768": round(0.75 * uses - 20)}
    assert plan.bucket_shares["16384-32768"] < 0.75
    assert plan.shortfalls == {} and abs(plan.tokens - budget) < 16384   # filled with short docs


# -- packing -----------------------------------------------------------------------------------------

def repo_docs(n_repos=150, seed=14) -> list[Doc]:
    rng = np.random.default_rng(seed)
    docs = []
    for r in range(n_repos):
        for f in range(int(rng.integers(5, 60))):
            docs.append(Doc(f"repo{r}/f{f}", "code", int(rng.integers(200, 4000)), f"repo{r}"))
    rng.shuffle(docs)   # members of a repo arrive interleaved with others
    return docs


def test_packing_groups_only_related_docs_up_to_the_target():
    code = repo_docs()
    web = make_docs("web", 3000, 200, 4000, seed=15)   # no group key: never packed under "repo"
    target = 32768
    held = sum(d.tokens for d in code)
    plan = plan_mixture("s", code + web, {"code": 0.5, "web": 0.5}, 2 * held, seed=0,
                        pack_related="repo", pack_target_tokens=target)
    by_id = {d.doc_id: d for d in code + web}
    assert all(a.packed_into is None for a in plan.assignments if a.source == "web")
    members = defaultdict(list)
    for a in plan.assignments:
        if a.packed_into:
            members[a.packed_into].append(a)
    assert set(members) == set(plan.packs) and len(plan.packs) > 100
    last_of_group = {}
    for pid, ms in members.items():
        assert tuple(a.doc_id for a in ms) == plan.packs[pid]
        assert len({by_id[a.doc_id].group for a in ms}) == 1 and {a.source for a in ms} == {"code"}
        assert len({a.repetitions for a in ms}) == 1
        assert sum(a.tokens for a in ms) <= target
        last_of_group[by_id[ms[0].doc_id].group] = pid
    lengths = {pid: sum(a.tokens for a in ms) for pid, ms in members.items()}
    # next-fit: a pack was closed only because the next file did not fit (files are < 4000 tokens)
    full = [n for pid, n in lengths.items() if pid not in set(last_of_group.values())]
    assert full and min(full) > target - 4000
    assert np.mean(list(lengths.values())) > 0.7 * target
    assert abs(plan.realized["code"] - 0.5) <= 0.01


def test_pack_by_source_never_crosses_sources_and_derives_the_target_from_buckets():
    docs = repo_docs(60, seed=16) + make_docs("web", 4000, 300, 3000, seed=17)
    plan = plan_mixture("s", docs, {"code": 0.5, "web": 0.5}, 30_000_000, seed=2,
                        pack_related="source", length_buckets=[LONG, SHORT])
    source_of = {d.doc_id: d.source for d in docs}
    groups = {d.doc_id: d.group for d in docs}
    spans_groups = False
    for pid, ids in plan.packs.items():
        assert len({source_of[i] for i in ids}) == 1   # never across sources
        spans_groups |= len({groups[i] for i in ids}) > 1
        assert sum(a.tokens for a in plan.assignments if a.packed_into == pid) <= 32767   # max - 1
    assert spans_groups
    # packing a whole source leaves ~one mid-length pack per source: the short bucket lacks documents
    assert plan.bucket_shortfalls["4096-16384"] > 0 and plan.bucket_shares["4096-16384"] < 0.05
    assert abs(plan.realized["web"] - 0.5) <= 0.01


def test_packing_feeds_length_buckets():
    plan = plan_mixture("s", repo_docs(300, seed=22), {"code": 1.0}, 5_000_000, seed=3,
                        pack_related="repo", length_buckets=[LONG, SHORT])
    assert plan.bucket_shortfalls == {} and plan.shortfalls == {}
    assert plan.bucket_shares["16384-32768"] == pytest.approx(0.75, abs=0.03)
    assert abs(plan.tokens - 5_000_000) <= 0.01 * 5_000_000


# -- training order ----------------------------------------------------------------------------------

def test_order_for_training_spreads_repetitions_and_sources():
    math_docs = make_docs("math", 2000, 100, 1000, seed=18)
    web_docs = make_docs("web", 20_000, 100, 1000, seed=19)
    held = sum(d.tokens for d in math_docs)
    plan = plan_mixture("s", math_docs + web_docs, {"math": 0.5, "web": 0.5}, int(2 * 2.5 * held), seed=0)
    order = order_for_training(plan, seed=3)
    reps = reps_of(plan)
    assert len(order) == sum(reps.values())
    positions = defaultdict(list)
    for pos, (doc_id, j) in enumerate(order):
        assert j == len(positions[doc_id])   # repetitions come in order 0, 1, ...
        positions[doc_id].append(pos)
    assert {d: len(p) for d, p in positions.items()} == reps
    n = len(order)
    gaps = []
    for doc_id, pos in positions.items():
        r = reps[doc_id]
        for j, p in enumerate(pos):   # repetition j lies in the j-th of r slices of the stage
            assert j / r - 0.03 <= p / n <= (j + 1) / r + 0.03
        gaps += [(b - a) * r / n for a, b in zip(pos, pos[1:])]
    assert max(reps.values()) == 3 and np.mean(gaps) > 0.8
    is_math = np.array([d.startswith("math") for d, _ in order])
    assert abs(is_math[: n // 2].mean() - is_math[n // 2:].mean()) < 0.03   # no math-only pass at the end


def test_order_for_training_uses_packed_ids():
    plan = plan_mixture("s", repo_docs(20, seed=20), {"code": 1.0}, 3_000_000, seed=0,
                        pack_related="repo", pack_target_tokens=16384)
    order = order_for_training(plan, seed=0)
    units = {a.packed_into or a.doc_id: a.repetitions for a in plan.assignments}
    assert Counter(u for u, _ in order) == Counter(units)
    assert set(plan.packs) <= set(units)


def fast_docs(ids, sources, tokens) -> list[Doc]:
    """Same objects as Doc(...), set through the slot descriptors (a frozen dataclass's __init__
    would take most of this test's time for a million documents)."""
    set_id, set_src, set_tok, set_group = (Doc.__dict__[f].__set__ for f in Doc.__slots__)
    new = object.__new__
    out = []
    for i, s, t in zip(ids, sources, tokens):
        d = new(Doc)
        set_id(d, i), set_src(d, s), set_tok(d, t), set_group(d, None)
        out.append(d)
    return out


def test_fast_docs_builds_real_docs():
    assert fast_docs(["a"], ["web"], [3]) == [Doc("a", "web", 3)]


# -- scale -------------------------------------------------------------------------------------------

def test_one_million_documents_plan_in_seconds():
    n = 1_000_000
    rng = np.random.default_rng(21)
    toks = rng.integers(50, 2000, n).tolist()
    names = np.array(["web", "code", "math"])[rng.choice(3, n, p=[0.6, 0.3, 0.1])].tolist()
    docs = fast_docs([f"d{i}" for i in range(n)], names, toks)
    budget = int(sum(toks) * 0.4)
    weights = {"web": 0.5, "code": 0.3, "math": 0.2}
    start = time.perf_counter()
    plan = plan_mixture("s", docs, weights, budget, seed=1)
    elapsed = time.perf_counter() - start
    assert elapsed < 10.0, f"planning 1M documents took {elapsed:.1f}s"   # ~2 s on an idle CPU
    assert all(abs(plan.realized[s] - w) <= 0.001 for s, w in weights.items())
    assert abs(plan.tokens - budget) <= 0.001 * budget
