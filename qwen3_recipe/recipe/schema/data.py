"""`data` section: sources, quality filters, dedup, decontamination, mixtures."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Field, field_validator, model_validator

from qwen3_recipe.recipe.schema.common import Float, Fraction, Mode, PositiveTokens, Section, SeqLen
from qwen3_recipe.recipe.schema.model import ModelRef
from qwen3_recipe.recipe.schema.serving import Serving


def _source_shorthand(value: Any) -> Any:
    return {"dataset": value} if isinstance(value, str) else value


class Source(Section):
    """A data source: an entry of datasets_spec/ (write just its name as a shorthand)."""

    dataset: str
    """Name of a datasets_spec/ entry."""
    limit: int | None = Field(None, gt=0)
    """Read at most this many documents."""
    on_duplicate_id: Literal["fail", "keep_first", "suffix"] = "fail"
    """A repeated id (two rows, one id: provenance could not tell their fates apart): `fail` the job
    naming both rows; `keep_first` (in file order; later rows dropped, reason `duplicate_id`); or
    `suffix` (later rows renamed `<id>#2`, `#3`, ..., a `modified` decision at the read step).
    Both policies read the source's ids once more first."""


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
    model_path: str
    """Local fastText language-id model (e.g. lid.176.bin); never downloaded."""
    languages: list[str] = ["en"]
    threshold: Fraction = 0.65


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
    """A quality classifier trained by a `quality.annotate` job (this or an earlier run): keep documents
    whose predicted score is at least `threshold`."""

    type: Literal["quality_classifier"]
    model_path: str
    """The classifier folder (`jobs/quality.annotate/classifier` of a run) or its model.joblib."""
    threshold: Float = 3.0


class CustomFilter(_Filter):
    type: Literal["custom"]
    step: str
    """Import path of a datatrove PipelineStep or filter: `package.module:ClassName`."""
    params: dict[str, Any] = {}


Filter = Annotated[
    Union[GopherQuality, GopherRepetition, C4Quality, C4BadWords, FineWebQuality, LanguageId,
          UrlFilter, LengthFilter, FastTextClassifier, QualityClassifier, CustomFilter],
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
    """The classifier trained on the annotations: hashed word n-grams + ridge regression (scikit-learn)."""

    type: Literal["hashing_ridge"] = "hashing_ridge"
    n_features: int = Field(2**18, gt=0)
    """Hashed feature space (word n-grams)."""
    ngrams: int = Field(2, ge=1, le=3)
    """Word n-grams up to this length."""
    alpha: Float = Field(1.0, gt=0)
    """Ridge regularisation."""
    holdout: Fraction = 0.2
    """Share of the annotated documents held out for the metrics (MAE, accuracy)."""


class Quality(Section):
    """LLM-based quality filtering (FineWeb-Edu style): the annotator scores a sample of each source's
    curated documents against `rubric`, a classifier is trained on those scores, and a datatrove filter
    applies it to every document of `sources` (job `quality.filter`, after dedup; the mixtures read
    its output). Scores, the annotator and the classifier version land in provenance (`annotations`)."""

    annotator: ModelRef
    """The scoring model: `path` (a local HF directory, or a hub id) or `stage` of this recipe."""
    engine: Literal["vllm", "vllm_server", "transformers"] = "vllm"
    server_url: str | None = None
    rubric: str | None = None
    """A jinja2 prompt template with `{{ text }}` (also `source`, `max_score`); the answer's score is
    read from `\\boxed{N}`, "Score: N" or a lone digit. Default: FineWeb-Edu's additive 0-5
    educational-value prompt (qwen3_recipe/quality/rubric.py)."""
    max_score: int = Field(5, gt=0)
    """Scores run from 0 to this; a score outside is recorded as unparseable."""
    mode: Mode = "no_think"
    temperature: Float = Field(0.0, ge=0)
    """0: greedy."""
    max_tokens: PositiveTokens = 512
    max_chars: int = Field(4000, gt=0)
    """Characters of a document shown to the annotator (and to the classifier)."""
    sample: int = Field(1000, gt=0)
    """Documents annotated per source (a deterministic sample by `seed`)."""
    sources: list[str] | None = None
    """Sources to annotate and filter (default: all); the others pass through."""
    threshold: Float = 3.0
    """Keep documents whose predicted score is at least this."""
    seed: int | None = None
    """Sampling and generation seed (default: the recipe's)."""
    serving: Serving | None = None
    """How the annotator is served: its keys override `execution.serving`'s."""
    classifier: QualityModel = Field(default_factory=QualityModel)

    @field_validator("rubric")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None:
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

    @model_validator(mode="after")
    def _quality_sources(self) -> Data:
        unknown = [s for s in (self.quality.sources or []) if s not in self.sources] if self.quality else []
        if unknown:
            raise ValueError(f"quality.sources: unknown source(s) {', '.join(map(repr, unknown))} "
                             f"(sources: {', '.join(self.sources) or 'none'})")
        return self
