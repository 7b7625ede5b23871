"""LLM-based quality filtering (FineWeb-Edu style, the Qwen3 report's data QA).

`quality.annotate`: a generation engine scores a deterministic sample of each source's curated
documents against a rubric (a jinja2 prompt, rubric.py), a classifier is trained on those scores
(classifier.py) and saved with a content version; every annotation lands in provenance
(`annotations`). `quality.filter`: a datatrove filter (filter.py) applies the classifier to every
document with the recipe's threshold, its predicted score in each decision's details. The same
filter is a `data.filters` type (`quality_classifier`) for a classifier trained in an earlier run.
Importing this package imports no engine."""
