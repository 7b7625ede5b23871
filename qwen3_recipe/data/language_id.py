"""Language id by lingua as a datatrove filter: the `lingua` backend of `{type: language}` filters
(and of `data.languages` groups), for machines without fastText's lid.176.bin. Same contract as
datatrove's LanguageFilter: the language and its confidence go into the document's metadata, and a
document is kept when its language is one of the kept and the confidence reaches the threshold."""

from __future__ import annotations

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

PREFIX_CHARS = 2000  # lingua's cost grows with the text; the start of a page says its language


class LinguaLanguageFilter(BaseFilter):
    name = "🌍 Language ID (lingua)"

    def __init__(self, languages: list[str], threshold: float = 0.65, exclusion_writer=None) -> None:
        super().__init__(exclusion_writer)
        from qwen3_recipe.posttrain.language import known
        missing = sorted(set(languages) - set(known(languages)))
        if missing:  # lingua would read every such document as another language, and drop it
            raise ValueError(f"lingua has no model for {', '.join(missing)}: use backend fasttext")
        self.languages, self.threshold = list(languages), threshold

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        from qwen3_recipe.posttrain.language import detector_for, prose
        found = detector_for(self.languages)  # the one general RL's language rule uses, for common codes
        text = prose(doc.text[:PREFIX_CHARS])
        confidences = found.compute_language_confidence_values(text) if any(c.isalpha() for c in text) else []
        best = confidences[0] if confidences else None
        lang = best.language.iso_code_639_1.name.lower() if best else None
        doc.metadata["language"], doc.metadata["language_score"] = lang, round(best.value, 4) if best else 0.0
        if lang not in self.languages:
            return False, f"language_{lang or 'unknown'}"
        if best.value < self.threshold:
            return False, "language_score_below_threshold"
        return True
