"""Deterministic mixture planner: which documents a pretraining stage uses, and how many times.

This gives the recipe's `data.mixtures.<name>` (schema: `recipe/schema/data.py`, `Mixture` and
`LengthBucket`) exact semantics. Pure Python + numpy, no I/O; about linear in the number of documents.

Semantics
---------
Eligible documents
    A document takes part only if its `source` is a key of `weights` and `tokens > 0`. Documents of
    other sources are ignored (they are not in this stage's mixture). `doc_id`s must be unique.

Units
    Selection works on *units*: a document, or (with `pack_related`) a packed document. Every member
    of a packed document gets the packed document's repetition count.

Packing (`pack_related`)
    Related short documents are concatenated into packed documents of at most `pack_target_tokens`.
    The group key is `(source, doc.group)` for "url" and "repo" (the caller puts the URL or repository
    key in `Doc.group`; documents whose group is None are never packed) and `source` for "source". A
    pack never spans two sources. Within a group documents keep their input order and are packed
    next-fit: a document is appended while the pack stays <= target, otherwise the pack is closed and
    a new one starts; a document of >= target tokens stays alone. A "pack" of one document is just
    that document (`packed_into` None). Packed ids are `"{stage}/pack/{n}"`, n counting all packs of
    the stage in order (so ids do not depend on the budget or the seed); `MixturePlan.packs` maps each
    used packed id to its member doc ids in concatenation order. Default target: when
    `length_buckets` are given, the largest bucket `max` minus 1 (so a full pack still falls in the
    top bucket, buckets being [min, max)); otherwise `pack_target_tokens` is required.

Token shares
    Source s has the target T_s = weights[s] * budget_tokens tokens (counting repetitions). Shares
    are of tokens; documents are never split.

Repetition and the cap (`max_repetition` = R, a float >= 1)
    For a set of units with A tokens and a target E <= R*A, the needed ratio is r = E / A. Every unit
    is used k = floor(r) times, and a seeded random subset, with about (r - k) * A tokens, once more:
    the units are put in a seeded random order, the shortest prefix with >= E - k*A tokens is taken,
    its last unit swapped for the shortest one among the rest that still reaches E (the total must
    stay <= R*A; where it cannot reach E within that, the closest fill below it). So a source gets
    at least its target and less than one unit more (a stage's budget is what the trainer consumes:
    it must not run out), r < 1 is a seeded random down-sample (never a prefix of the input), and
    repetition counts differ by at most one.
    The cap means: every unit is used at most ceil(R) times AND the tokens used from a source (and
    from each of its length buckets) are at most R times the tokens it holds. For an integer R
    (e.g. 4.0) that is simply "no document more than R times". For R = 2.5 a source may use all its
    documents twice and half of its tokens a third time.

Short sources
    When R * A_s < T_s the source gives everything it can: all its units at the cap (every unit
    floor(R) times, plus a best-effort subset once more up to R*A_s tokens if R is fractional).
    `shortfalls[s]` = round(T_s - used_s) tokens. Other sources are NOT inflated to compensate: they
    still get their own T, so `plan.tokens` is below the budget by about the shortfall. Sources that
    are not data-limited are never listed in `shortfalls` (their small fill error is not a shortfall).
    `realized[s]` is the share of the tokens actually planned (used_s / plan.tokens; it sums to 1),
    so with a short source the other sources' realized shares are larger than declared, though their
    token counts are exactly their declared share of the budget.

Length buckets (`length_buckets` = [(min, max, share)], lengths in tokens, [min, max))
    Bucket shares are shares of *documents* (units, counted with their repetitions) and must sum to 1
    (as the recipe checks); buckets may not overlap; units outside every bucket are not used. They
    are applied within each source: with mu_b the mean unit length of bucket b in the source, the
    source's N documents are split n_b = share_b * N, which fixes a token target per bucket
    share_b * N * mu_b, with N chosen so the targets sum to T_s; each bucket is then filled as above
    (a random subset has mean length ~ mu_b, so the document counts come out ~ share_b * N).
    Token shares take precedence: a bucket that cannot meet its target even at the cap gives all it
    can, and the tokens it lacks are spread over the source's other buckets in proportion to their
    shares (water-filling). `bucket_shortfalls[label]` sums, over the sources where that bucket hit
    the cap, round(share_b * N_s - n_b) documents (uses) missing to reach its share. `bucket_shares`
    are the realised document shares over the whole stage. Labels are "min-max" (token counts).

Determinism
    The same documents (in the same order), arguments and seed give the same plan; a different seed
    gives different subsets. The random stream of each (stage, source, bucket) is derived from
    (seed, stage, source, bucket index) with a stable hash, so it is independent of other sources.
    Assignments come in input order of units (members of a pack consecutively, in pack order).

Training order (`order_for_training`)
    Unit u used r_u times has its repetition j (0-based) placed at time (j + U) / r_u with U a seeded
    uniform draw per repetition, and all uses are sorted by time. So repetition j of a unit lies in
    the j-th of r_u equal slices of the stage (an epoch-like pass), repetitions come in order and are
    about 1/r_u of the stage apart, each pass is freshly shuffled, and every source is spread evenly
    over the stage (no pass consisting of up-sampled sources only). Packed documents appear once
    under their packed id (see `MixturePlan.packs`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, fields
from typing import Iterable

import numpy as np

PACK_MODES = ("url", "repo", "source")
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Doc:
    doc_id: str
    source: str
    tokens: int
    group: str | None = None
    """URL / repository key for `pack_related` "url" / "repo"."""


@dataclass(frozen=True, slots=True)
class Assignment:
    doc_id: str
    source: str
    tokens: int
    repetitions: int
    """How many times the document is used in the stage (>= 1); unused documents get no Assignment."""
    packed_into: str | None = None
    """Id of the packed long document this one is part of, when packing."""


@dataclass
class MixturePlan:
    stage: str
    assignments: list[Assignment]
    declared: dict[str, float]
    """Declared weights (token shares)."""
    realized: dict[str, float]
    """Share of `tokens` per source (tokens x repetitions); sums to 1 unless nothing is planned."""
    tokens: int
    """Total planned tokens (x repetitions)."""
    shortfalls: dict[str, int]
    """Data-limited source -> tokens missing to reach its share even at max repetition (0 omitted)."""
    bucket_shares: dict[str, float] | None
    """Realised document shares (with repetitions) per length bucket "min-max"; None without buckets."""
    bucket_shortfalls: dict[str, int] = field(default_factory=dict)
    """Bucket "min-max" -> documents (uses) missing to reach its share, where it lacked data."""
    packs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Used packed id -> member doc ids, in concatenation order."""


def _hash64(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def _rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) % 2**64, *map(_hash64, names)]))


def _check(weights: dict[str, float], budget_tokens: int, max_repetition: float,
           length_buckets: list[tuple[int, int, float]] | None, pack_related: str | None,
           pack_target_tokens: int | None) -> int | None:
    if not weights:
        raise ValueError("weights must name at least one source")
    for name, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float, np.floating, np.integer)) \
                or not (math.isfinite(w) and w >= 0):
            raise ValueError(f"weight of {name!r} must be a finite number >= 0, got {w!r}")
    if abs(sum(weights.values()) - 1.0) > 1e-6:
        raise ValueError(f"weights must sum to 1 (they sum to {sum(weights.values()):.6g})")
    if budget_tokens < 0:
        raise ValueError(f"budget_tokens must be >= 0, got {budget_tokens}")
    if not (math.isfinite(max_repetition) and max_repetition >= 1.0):
        raise ValueError(f"max_repetition must be a finite number >= 1, got {max_repetition}")
    if length_buckets is not None:
        if not length_buckets:
            raise ValueError("length_buckets, when given, must not be empty")
        for lo, hi, share in length_buckets:
            if not 0 <= lo < hi:
                raise ValueError(f"length bucket [{lo}, {hi}): min must be >= 0 and below max")
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"length bucket [{lo}, {hi}): share must be in [0, 1], got {share}")
        if abs(sum(b[2] for b in length_buckets) - 1.0) > 1e-6:
            raise ValueError("length bucket shares must sum to 1")
        spans = sorted((lo, hi) for lo, hi, _ in length_buckets)
        for (_, hi1), (lo2, hi2) in zip(spans, spans[1:]):
            if lo2 < hi1:
                raise ValueError(f"length buckets overlap at [{lo2}, {min(hi1, hi2)})")
    if pack_related is None:
        if pack_target_tokens is not None:
            raise ValueError("pack_target_tokens is only meaningful with pack_related")
        return None
    if pack_related not in PACK_MODES:
        raise ValueError(f"pack_related must be one of {PACK_MODES}, got {pack_related!r}")
    if pack_target_tokens is None:
        if not length_buckets:
            raise ValueError("pack_related needs pack_target_tokens (or length_buckets to derive it)")
        pack_target_tokens = max(hi for _, hi, _ in length_buckets) - 1
    if pack_target_tokens <= 0:
        raise ValueError(f"pack_target_tokens must be > 0, got {pack_target_tokens}")
    return int(pack_target_tokens)


def _pack(stage: str, docs: list[Doc], eligible: np.ndarray, src: np.ndarray, tok: np.ndarray,
          mode: str, target: int, taken_ids: set[str]):
    """Units by next-fit packing within groups: (member doc indices, unit offsets, pack id per unit)."""
    groups: dict[tuple, list[int]] = {}
    src_l, tok_l = src.tolist(), tok.tolist()
    for i in np.flatnonzero(eligible).tolist():
        if mode == "source":
            key: tuple = (src_l[i],)
        else:
            group = docs[i].group
            key = (src_l[i], group) if group is not None else (src_l[i], None, i)
        groups.setdefault(key, []).append(i)
    flat: list[int] = []
    offsets = [0]
    pack_ids: list[str | None] = []
    n_packs = 0

    def emit(members: list[int]) -> None:
        nonlocal n_packs
        flat.extend(members)
        offsets.append(len(flat))
        if len(members) > 1:
            pid = f"{stage}/pack/{n_packs}"
            if pid in taken_ids:
                raise ValueError(f"packed id {pid!r} collides with a document id")
            pack_ids.append(pid)
            n_packs += 1
        else:
            pack_ids.append(None)

    for members in groups.values():
        cur: list[int] = []
        cur_tok = 0
        for i in members:
            t = tok_l[i]
            if t >= target:
                emit([i])
                continue
            if cur and cur_tok + t > target:
                emit(cur)
                cur, cur_tok = [], 0
            cur.append(i)
            cur_tok += t
        if cur:
            emit(cur)
    return np.asarray(flat, dtype=np.int64), np.asarray(offsets, dtype=np.int64), pack_ids


def _water_fill(target: float, shares: np.ndarray, avail: np.ndarray, counts: np.ndarray,
                cap: float) -> tuple[np.ndarray, np.ndarray]:
    """Token target per bucket so that document counts follow `shares` and tokens sum to `target`;
    buckets that cannot meet theirs at the cap give cap*avail and the rest is spread over the others.
    Returns (targets, capped)."""
    mu = np.divide(avail, counts, out=np.zeros(len(avail)), where=counts > 0)
    capped = (shares > 0) & (counts == 0)
    active = (shares > 0) & ~capped
    out = np.zeros(len(shares))
    while active.any():
        left = target - float((cap * avail[capped]).sum())
        if left <= 0:
            break
        n_docs = left / float((shares[active] * mu[active]).sum())
        want = np.where(active, shares * n_docs * mu, 0.0)
        over = active & (want > cap * avail)
        if not over.any():
            out[active] = want[active]
            break
        capped |= over
        active &= ~over
    out[capped] = cap * avail[capped]
    return out, capped


def _fill(t: np.ndarray, target: float, ceiling: float, rng: np.random.Generator) -> np.ndarray:
    """Repetitions per unit: k = floor(target/A) for all, plus a seeded subset once more (the
    shortest prefix of a random order that reaches the target, its last unit swapped for the best
    fit that still does); total tokens <= ceiling. Below the target only where the cap leaves no
    room: then the closest fill under it."""
    n = len(t)
    reps = np.zeros(n, dtype=np.int64)
    avail = int(t.sum())
    if n == 0 or avail == 0 or target <= 0:
        return reps
    ratio = target / avail
    k = int(math.floor(ratio + _EPS))
    reps[:] = k
    rem = target - k * avail
    room = ceiling - k * avail
    if rem <= _EPS:
        return reps
    perm = rng.permutation(n)
    cs = np.cumsum(t[perm])
    p = min(int(np.searchsorted(cs, rem - _EPS, side="left")), n - 1)  # perm[:p + 1] reaches rem
    before = int(cs[p - 1]) if p else 0
    rest = t[perm[p:]]
    reaches = (rest >= rem - before - _EPS) & (rest <= room - before + _EPS)
    if reaches.any():
        chosen = np.append(perm[:p], perm[p + int(np.argmin(np.where(reaches, rest, np.inf)))])
    else:
        gap = rem - before
        err = np.where(rest <= room - before + _EPS, np.abs(gap - rest), np.inf)
        j = int(np.argmin(err))
        chosen = np.append(perm[:p], perm[p + j]) if err[j] < gap else perm[:p]
    reps[chosen] += 1
    return reps


_SLOTS = tuple(Assignment.__dict__[f.name] for f in fields(Assignment))


def _assignments(docs: list[Doc], index: list[int], reps: list[int],
                 packed: list[str | None] | None) -> list[Assignment]:
    """Assignment objects, built through the slot descriptors: a frozen dataclass's __init__ costs
    ~3x more, which matters for a million documents. Same objects as `Assignment(...)`."""
    new = object.__new__
    set_id, set_src, set_tok, set_rep, set_pack = (d.__set__ for d in _SLOTS)
    out: list[Assignment] = []
    append = out.append
    for i, r, pid in zip(index, reps, packed if packed is not None else [None] * len(index)):
        d = docs[i]
        a = new(Assignment)
        set_id(a, d.doc_id)
        set_src(a, d.source)
        set_tok(a, d.tokens)
        set_rep(a, r)
        set_pack(a, pid)
        append(a)
    return out


def plan_mixture(stage: str, docs: Iterable[Doc], weights: dict[str, float], budget_tokens: int,
                 max_repetition: float = 4.0, seed: int = 0,
                 length_buckets: list[tuple[int, int, float]] | None = None,
                 pack_related: str | None = None, pack_target_tokens: int | None = None) -> MixturePlan:
    """Plan which documents a stage uses and how often (semantics: see the module docstring)."""
    target_pack = _check(weights, budget_tokens, max_repetition, length_buckets, pack_related,
                         pack_target_tokens)
    docs = docs if isinstance(docs, list) else list(docs)
    n = len(docs)
    id_set = {d.doc_id for d in docs}
    if len(id_set) != n:
        raise ValueError("doc_id values must be unique")
    sources = list(weights)
    code = {s: i for i, s in enumerate(sources)}
    src = np.fromiter((code.get(d.source, -1) for d in docs), dtype=np.int64, count=n)
    tok = np.fromiter((d.tokens for d in docs), dtype=np.int64, count=n)
    if n and tok.min() < 0:
        raise ValueError("document token counts must be >= 0")
    eligible = (src >= 0) & (tok > 0)

    # Units: single documents, or packed documents.
    if target_pack is None:
        flat = np.flatnonzero(eligible)
        offsets = np.arange(len(flat) + 1, dtype=np.int64)
        pack_ids: list[str | None] | None = None
        unit_tok, unit_src = tok[flat], src[flat]
    else:
        flat, offsets, pack_ids = _pack(stage, docs, eligible, src, tok, pack_related, target_pack, id_set)
        unit_tok = np.add.reduceat(tok[flat], offsets[:-1]) if len(flat) else np.zeros(0, np.int64)
        unit_src = src[flat[offsets[:-1]]] if len(flat) else np.zeros(0, np.int64)
    n_units = len(unit_tok)

    # Length buckets (a single catch-all bucket without them).
    if length_buckets:
        shares = np.array([float(b[2]) for b in length_buckets])
        labels = [f"{int(lo)}-{int(hi)}" for lo, hi, _ in length_buckets]
        unit_bucket = np.full(n_units, -1, dtype=np.int64)
        for b, (lo, hi, _) in enumerate(length_buckets):
            unit_bucket[(unit_tok >= lo) & (unit_tok < hi)] = b
    else:
        shares, labels = np.array([1.0]), ["all"]
        unit_bucket = np.zeros(n_units, dtype=np.int64)
    n_b = len(shares)

    # Group units by (source, bucket); a stable sort keeps input order within each group.
    in_bucket = np.flatnonzero(unit_bucket >= 0)
    key = unit_src[in_bucket] * n_b + unit_bucket[in_bucket]
    by_key = np.argsort(key, kind="stable")
    order = in_bucket[by_key]
    bounds = np.searchsorted(key[by_key], np.arange(len(sources) * n_b + 1))

    reps = np.zeros(n_units, dtype=np.int64)
    used: dict[str, int] = {}
    shortfalls: dict[str, int] = {}
    bucket_short: dict[str, int] = {}
    cap = float(max_repetition)
    for s, name in enumerate(sources):
        want = float(weights[name]) * budget_tokens
        groups = [order[bounds[s * n_b + b]:bounds[s * n_b + b + 1]] for b in range(n_b)]
        avail = np.array([float(unit_tok[g].sum()) for g in groups])
        counts = np.array([float(len(g)) for g in groups])
        targets, capped = _water_fill(want, shares, avail, counts, cap)
        for b, g in enumerate(groups):
            if targets[b] > 0:
                reps[g] = _fill(unit_tok[g], float(targets[b]), cap * avail[b],
                                _rng(seed, stage, name, str(b)))
        mine = order[bounds[s * n_b]:bounds[(s + 1) * n_b]]
        used[name] = int((unit_tok[mine] * reps[mine]).sum())
        if want > 0 and not ((shares > 0) & ~capped).any():   # data-limited: every bucket at the cap
            missing = int(round(want - used[name]))
            if missing > 0:
                shortfalls[name] = missing
        if length_buckets and used[name] > 0:
            uses = np.array([float(reps[g].sum()) for g in groups])
            for b in np.flatnonzero(capped & (shares > 0)).tolist():
                missing = int(round(shares[b] * uses.sum() - uses[b]))
                if missing > 0:
                    bucket_short[labels[b]] = bucket_short.get(labels[b], 0) + missing

    total = sum(used.values())
    realized = {name: (used[name] / total if total else 0.0) for name in sources}
    bucket_shares = None
    if length_buckets:
        uses_b = np.bincount(unit_bucket[in_bucket], weights=reps[in_bucket], minlength=n_b)
        all_uses = float(uses_b.sum())
        bucket_shares = {labels[b]: (float(uses_b[b]) / all_uses if all_uses else 0.0) for b in range(n_b)}

    # Assignments, in unit order (members of a pack consecutively).
    doc_reps = np.repeat(reps, np.diff(offsets))
    picked = np.flatnonzero(doc_reps > 0)
    unit_of = np.repeat(np.arange(n_units), np.diff(offsets))
    pids = None if pack_ids is None else [pack_ids[u] for u in unit_of[picked].tolist()]
    assignments = _assignments(docs, flat[picked].tolist(), doc_reps[picked].tolist(), pids)
    packs: dict[str, list[str]] = {}
    if pids is not None:
        for a in assignments:
            if a.packed_into is not None:
                packs.setdefault(a.packed_into, []).append(a.doc_id)
    return MixturePlan(stage=stage, assignments=assignments, declared=dict(weights), realized=realized,
                       tokens=int(total), shortfalls=shortfalls, bucket_shares=bucket_shares,
                       bucket_shortfalls=bucket_short, packs={k: tuple(v) for k, v in packs.items()})


def order_for_training(plan: MixturePlan, seed: int) -> list[tuple[str, int]]:
    """(unit id, repetition index) for every use, in a seeded order where repetition j of a unit used r
    times falls in the j-th of r equal slices of the stage. A packed document appears under its
    packed id (its members: `plan.packs`)."""
    units: dict[str, int] = {}
    for a in plan.assignments:
        units[a.packed_into or a.doc_id] = a.repetitions
    if not units:
        return []
    ids = list(units)
    reps = np.fromiter(units.values(), dtype=np.int64, count=len(units))
    unit = np.repeat(np.arange(len(ids)), reps)
    starts = np.cumsum(reps) - reps
    rep_index = np.arange(len(unit)) - np.repeat(starts, reps)
    when = (rep_index + _rng(seed, plan.stage, "order").random(len(unit))) / reps[unit]
    order = np.argsort(when, kind="stable")
    return list(zip([ids[u] for u in unit[order].tolist()], rep_index[order].tolist()))
