"""`data` section: sources, quality filters, dedup, decontamination, mixtures."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Field, field_validator, model_validator

from qwen3_recipe.recipe.schema.common import Float, Fraction, Mode, PositiveTokens, Section, SeqLen
from qwen3_recipe.recipe.schema.languages import LanguageGroup
from qwen3_recipe.recipe.schema.model import ModelRef
from qwen3_recipe.recipe.schema.serving import Serving


def _source_shorthand(value: Any) -> Any:
    return {"dataset": value} if isinstance(value, str) else value


class Source(Section):
    """A data source: an entry of datasets_spec/ (write just its name as a shorthand), or the dataset
    of a synth job of this recipe rendered to documents (synthetic CoT, textbooks, QA for pretraining)."""

    dataset: str | None = None
    """Name of a datasets_spec/ entry."""
    synth: str | None = None
    """Name of a `synth.jobs` entry: its kept samples become documents (job `synth.NAME` runs first)."""
    format: Literal["text", "chat"] | None = None
    """How a synth job's conversation becomes a document: `text` (the question, the reasoning and the
    answer as plain text; the default) or `chat` (Qwen3's chat template, think block and all)."""
    limit: int | None = Field(None, gt=0)
    """Read at most this many documents."""
    on_duplicate_id: Literal["fail", "keep_first", "suffix"] = "fail"
    """A repeated id (two rows, one id: provenance could not tell their fates apart): `fail` the job
    naming both rows; `keep_first` (in file order; later rows dropped, reason `duplicate_id`); or
    `suffix` (later rows renamed `<id>#2`, `#3`, ..., a `modified` decision at the read step).
    Both policies read the source's ids once more first."""

    @model_validator(mode="after")
    def _one_origin(self) -> Source:
        if (self.dataset is None) == (self.synth is None):
            raise ValueError("give one of `dataset` (a datasets_spec/ entry) and `synth` (a synth job)")
        if self.format is not None and self.synth is None:
            raise ValueError("`format` renders a synth job's samples: it needs `synth`")
        return self

    @property
    def render(self) -> str:
        return self.format or "text"


class _Filter(Section):
    name: str | None = None
    """Step name in provenance (default: the type, numbered if repeated)."""
    sources: list[str] | None = None
    """Apply only to these sources (default: all). Keep prose filters off code."""


class GopherQuality(_Filter):
    type: Literal["gopher_quality"]
    min_doc_words: int = 50
    max_doc_words: int = 100_000
    min_avg_word_length: Float = 3
    max_avg_word_length: Float = 10
    max_symbol_word_ratio: Float = 0.1
    max_bullet_lines_ratio: Float = 0.9
    max_ellipsis_lines_ratio: Float = 0.3
    max_non_alpha_words_ratio: Float = 0.8
    min_stop_words: int = 2


class GopherRepetition(_Filter):
    type: Literal["gopher_repetition"]
    dup_line_frac: Float = 0.3
    dup_para_frac: Float = 0.3
    dup_line_char_frac: Float = 0.2
    dup_para_char_frac: Float = 0.2


class C4Quality(_Filter):
    type: Literal["c4_quality"]
    split_paragraph: bool = True
    remove_citations: bool = True
    filter_no_terminal_punct: bool = True
    min_num_sentences: int = 5
    min_words_per_line: int = 3
    max_word_length: int = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True


class C4BadWords(_Filter):
    type: Literal["c4_badwords"]
    wordlist_path: str
    """Local badwords list (datatrove would download it otherwise)."""
    keep_fraction: Fraction = 0.0


class FineWebQuality(_Filter):
    type: Literal["fineweb_quality"]
    line_punct_thr: Float = 0.12
    short_line_thr: Float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: Float = 0.01
    new_line_ratio: Float = 0.3


class LanguageId(_Filter):
    type: Literal["language"]
    backend: Literal["fasttext", "lingua"] = "fasttext"
    """`fasttext`: datatrove's LanguageFilter with a local model; `lingua`: lingua's detector (its
    models ship in the package), for machines without the fastText file."""
    model_path: str | None = None
    """Local fastText language-id model (e.g. lid.176.bin); never downloaded."""
    languages: list[str] = ["en"]
    threshold: Fraction = 0.65
    """The least confidence in the detected language for a document to be kept."""

    @model_validator(mode="after")
    def _model_for_fasttext(self) -> LanguageId:
        if self.backend == "fasttext" and self.model_path is None:
            raise ValueError("fastText language id needs `model_path` (a local lid.176.bin; nothing is "
                             "downloaded), or use backend: lingua")
        return self


class UrlFilter(_Filter):
    type: Literal["url"]
    extra_domains: list[str] = []
    extra_urls: list[str] = []


class LengthFilter(_Filter):
    type: Literal["length"]
    min_chars: int | None = Field(None, ge=0)
    max_chars: int | None = Field(None, ge=0)
    min_words: int | None = Field(None, ge=0)
    max_words: int | None = Field(None, ge=0)


class FastTextClassifier(_Filter):
    type: Literal["fasttext_classifier"]
    model_path: str
    keep_labels: dict[str, Fraction]
    """label -> minimum score to keep."""


class QualityClassifier(_Filter):
    """A scale dimension's classifier trained by a `quality.annotate` job of an earlier run: keep
    documents whose predicted score is at least `threshold` (for this run's labels: type `label`)."""

    type: Literal["quality_classifier"]
    model_path: str
    """A scale dimension's classifier folder (`jobs/quality.annotate/classifiers/<dimension>` of a run)
    or its model.npz."""
    threshold: Float = 3.0


class LabelFilter(_Filter):
    """Keep documents by a label of `data.quality` (run in job `quality.label`, after the labels are
    predicted): for a scale, `min` and/or `max` (inclusive); for a label set, `values`."""

    type: Literal["label"]
    dimension: str
    """A dimension of `data.quality.dimensions`."""
    min: Float | None = None
    max: Float | None = None
    values: list[str] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _bounds(self) -> LabelFilter:
        if self.min is None and self.max is None and self.values is None:
            raise ValueError("give `min` and/or `max` (a scale) or `values` (a label set)")
        if self.values is not None and (self.min is not None or self.max is not None):
            raise ValueError("`values` (a label set) or `min`/`max` (a scale), not both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not be above max")
        return self


class CustomFilter(_Filter):
    type: Literal["custom"]
    step: str
    """Import path of a datatrove PipelineStep or filter: `package.module:ClassName`."""
    params: dict[str, Any] = {}


def step_names(kinds: list[str]) -> list[str]:
    """Provenance step names of filters: the filter's name or type, numbered when a type repeats."""
    names, seen = [], {}
    for kind in kinds:
        seen[kind] = seen.get(kind, 0) + 1
        names.append(kind if kinds.count(kind) == 1 else f"{kind}_{seen[kind]}")
    return names


Filter = Annotated[
    Union[GopherQuality, GopherRepetition, C4Quality, C4BadWords, FineWebQuality, LanguageId,
          UrlFilter, LengthFilter, FastTextClassifier, QualityClassifier, LabelFilter, CustomFilter],
    Field(discriminator="type"),
]


class ExactDedup(Section):
    enabled: bool = True
    sources: list[str] | None = None
    """Dedup only these sources (default: all)."""


class MinhashDedup(Section):
    enabled: bool = True
    sources: list[str] | None = None
    """Dedup only these sources (default: all). Leave out templated synthetic data: MinHash
    normalises numbers, so worked arithmetic collapses into near-duplicates."""
    n_grams: int = Field(5, gt=0)
    num_buckets: int = Field(14, gt=0)
    hashes_per_bucket: int = Field(8, gt=0)


class Dedup(Section):
    """Exact (content hash) and fuzzy (MinHash) dedup across all sources."""

    exact: ExactDedup = Field(default_factory=ExactDedup)
    minhash: MinhashDedup = Field(default_factory=MinhashDedup)


DEFAULT_NGRAM = {"word_ngram": 13, "token_ngram": 8, "datatrove": 13}


def ngram_size(method: str, n: int | None) -> int:
    """The n-gram size in effect: `n`, or the method's default."""
    return n or DEFAULT_NGRAM[method]


class Decontamination(Section):
    """One definition of contamination, applied to pretraining, SFT, RL prompts and synthetic data."""

    benchmarks: list[str] | Literal["all"] = "all"
    """evals/ entries to decontaminate against, or `all`."""
    method: Literal["word_ngram", "token_ngram", "datatrove"] = "word_ngram"
    n: int | None = Field(None, gt=0)
    """n-gram size (default 13 for word n-grams, 8 for token n-grams)."""
    action: Literal["drop", "flag"] = "drop"
    threshold: Fraction = 0.0
    """Largest share of a stage's documents that may stay contaminated before it is refused."""
    allow_contamination: bool = False


class LengthBucket(Section):
    """Share of a stage's documents whose length (tokens) is in [min, max)."""

    min: SeqLen
    max: SeqLen
    share: Fraction


class Mixture(Section):
    """Token shares of sources for a pretraining stage."""

    weights: dict[str, Fraction]
    """source name -> share of the stage's tokens (sum to 1)."""
    max_repetition: Float = Field(4.0, ge=1.0)
    """A source may be seen at most this many times to meet a stage's budget."""
    length_buckets: list[LengthBucket] | None = None
    pack_related: Literal["url", "repo", "source"] | None = None
    """Build long documents by concatenating related short ones (long-context stage)."""


class QualityModel(Section):
    """The classifier trained on each dimension's annotations: hashed word n-grams and a ridge model
    (scikit-learn): a regression for a scale, one-vs-rest classification for a label set."""

    type: Literal["hashing_ridge"] = "hashing_ridge"
    n_features: int = Field(2**18, gt=0)
    """Hashed feature space (word n-grams)."""
    ngrams: int = Field(2, ge=1, le=3)
    """Word n-grams up to this length."""
    tokens: Literal["words", "words_and_symbols"] = "words_and_symbols"
    """What a word is: `words_and_symbols` every run of word characters (one-letter words, numbers, a
    CJK run) and every other non-space character (`=`, `+`, `<`); `words` scikit-learn's default, runs
    of two or more word characters (it drops digits, operators and one-letter words)."""
    alpha: Annotated[float, Field(gt=0)] | Literal["auto"] = "auto"
    """Ridge regularisation; `auto` picks it from 1e-4 to 1e2 by leave-one-out error on the training
    annotations (scikit-learn's RidgeCV), recorded in the classifier's metadata."""
    holdout: Fraction = 0.2
    """Share of the annotated documents held out for the metrics (MAE, accuracy)."""


SCALE = r"^\d+-\d+$"


def _dimension_shorthand(value: Any) -> Any:
    """`edu: 0-5` is a scale, `domain: [math, code]` a label set."""
    if isinstance(value, str):
        return {"scale": value}
    if isinstance(value, list):
        return {"labels": value}
    return value


class LabelDimension(Section):
    """One thing the annotator labels every sampled document with: a numeric `scale` ("0-5") or a
    set of `labels` ([math, code, news]). Shorthand: `edu: 0-5`, `domain: [math, code, news]`."""

    scale: str | None = Field(None, pattern=SCALE)
    """Whole scores from the first number to the second, e.g. `0-5`."""
    labels: list[str] | None = Field(None, min_length=2)
    """The labels, one per document."""
    rubric: str | None = None
    """A jinja2 prompt template with `{{ text }}` (also `source`, `dimension`, `min`, `max`, `labels`);
    or `fineweb_edu` (FineWeb-Edu's additive 0-5 educational-value prompt). The answer is read from
    `\\boxed{...}`, "Score: N" / "Label: x", or a lone in-range number (a scale) or the one label
    named (a label set; a lone number N is the N-th label). Default: a generic prompt for the kind
    (qwen3_recipe/quality/rubric.py)."""
    reference: str | None = Field(None, min_length=1)
    """A metadata field of the documents that holds known values of this dimension (human or planted
    labels): `quality.annotate` reports the annotator's and the classifier's agreement with it, the
    `annotations` and `labels` tables carry it beside each label (`reference`), and the view
    `label_agreement` and the report measure the classifier against it."""

    @field_validator("labels")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len({v.lower() for v in value}) != len(value):
            raise ValueError("labels must be distinct (case-insensitively: answers are read that way)")
        return value

    @field_validator("rubric")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None or value == "fineweb_edu":
            return value
        import jinja2
        from jinja2 import meta
        try:
            names = meta.find_undeclared_variables(jinja2.Environment().parse(value))
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"not a jinja2 template: {exc.message} (line {exc.lineno})") from None
        if "text" not in names:
            raise ValueError("the rubric must show the document: use {{ text }}")
        return value

    @model_validator(mode="after")
    def _kind(self) -> LabelDimension:
        if (self.scale is None) == (self.labels is None):
            raise ValueError("give a `scale` (e.g. 0-5) or `labels` (e.g. [math, code]), not both")
        if self.scale is not None:
            lo, hi = self.bounds
            if lo >= hi:
                raise ValueError(f"scale {self.scale}: the first number must be below the second")
        if self.rubric == "fineweb_edu" and self.scale != "0-5":
            raise ValueError("the fineweb_edu rubric scores on a 0-5 scale")
        return self

    @property
    def bounds(self) -> tuple[int, int]:
        lo, hi = (self.scale or "0-0").split("-")
        return int(lo), int(hi)


Dimension = Annotated[LabelDimension, BeforeValidator(_dimension_shorthand,
                                                      json_schema_input_type=Union[str, list[str], LabelDimension])]


class Quality(Section):
    """LLM labels on every document (the Qwen3 report's instance-level annotation, FineWeb-Edu style):
    the annotator labels a sample of each source's curated documents along each of `dimensions`
    (job `quality.annotate`), a classifier per dimension is trained on those labels, and a datatrove
    step applies them to every document of `sources` (job `quality.label`, after dedup): the labels go
    into each document's metadata and into provenance (`labels`), and `data.filters` entries of type
    `label` act on them there. The annotations land in provenance too (`annotations`)."""

    annotator: ModelRef
    """The labelling model: `path` (a local HF directory, or a hub id) or `stage` of this recipe."""
    engine: Literal["vllm", "vllm_server", "transformers"] = "vllm"
    server_url: str | None = None
    dimensions: dict[str, Dimension] = Field(
        default_factory=lambda: {"edu": LabelDimension(scale="0-5", rubric="fineweb_edu")}, min_length=1)
    """Dimension name -> its scale or label set and rubric. Default: `edu`, FineWeb-Edu's 0-5 prompt."""
    mode: Mode = "no_think"
    temperature: Float = Field(0.0, ge=0)
    """0: greedy."""
    max_tokens: PositiveTokens = 512
    max_chars: int = Field(4000, gt=0)
    """Characters of a document shown to the annotator (and to the classifiers)."""
    sample: int = Field(1000, gt=0)
    """Documents annotated per source (a deterministic sample by `seed`)."""
    sources: list[str] | None = None
    """Sources to annotate and label (default: all); the others pass through unlabelled."""
    seed: int | None = None
    """Sampling and generation seed (default: the recipe's)."""
    serving: Serving | None = None
    """How the annotator is served: its keys override `execution.serving`'s."""
    classifier: QualityModel = Field(default_factory=QualityModel)

    @field_validator("dimensions")
    @classmethod
    def _names(cls, value: dict[str, LabelDimension]) -> dict[str, LabelDimension]:
        import re
        bad = [n for n in value if not re.fullmatch(r"[a-z][a-z0-9_]*", n)]
        if bad:
            raise ValueError(f"dimension names are lower-case identifiers (they name folders and mixture "
                             f"slices): {', '.join(map(repr, bad))}")
        return value

    @model_validator(mode="after")
    def _annotator(self) -> Quality:
        if not (self.annotator.path or self.annotator.stage):
            raise ValueError("annotator: give `path` (model weights) or `stage` (a stage of this recipe)")
        if self.engine == "vllm_server" and not self.server_url:
            raise ValueError("engine vllm_server needs server_url")
        return self


class Data(Section):
    sources: dict[str, Annotated[Source, BeforeValidator(_source_shorthand, json_schema_input_type=Union[str, Source])]] = {}
    filters: list[Filter] = []
    dedup: Dedup = Field(default_factory=Dedup)
    decontamination: Decontamination = Field(default_factory=Decontamination)
    mixtures: dict[str, Mixture] = {}
    quality: Quality | None = None
    """LLM-annotated quality classifier applied to the curated corpus (off unless given)."""
    languages: dict[str, LanguageGroup] = {}
    """Language groups (recipe/languages.py): each becomes one source per language, a language-id
    filter per source, and its share of every mixture weight that names the group."""

    @model_validator(mode="after")
    def _quality_sources(self) -> Data:
        unknown = [s for s in (self.quality.sources or []) if s not in self.sources] if self.quality else []
        if unknown:
            raise ValueError(f"quality.sources: unknown source(s) {', '.join(map(repr, unknown))} "
                             f"(sources: {', '.join(self.sources) or 'none'})")
        return self
