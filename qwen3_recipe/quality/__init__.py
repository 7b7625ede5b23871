"""LLM labels on every document (the Qwen3 report's instance-level annotation, FineWeb-Edu style).

`quality.annotate`: a generation engine labels a deterministic sample of each source's curated
documents along each dimension of `data.quality` (a scale or a label set, each with a jinja2 rubric,
rubric.py), a classifier per dimension is trained on those labels (classifier.py) and saved with a
content version; every annotation lands in provenance (`annotations`). `quality.label` (label.py):
a datatrove step applies the classifiers to every document, writing the labels into its metadata
and provenance (`labels`), and the recipe's `label` filters act on them. A scale's classifier from
an earlier run is also a `data.filters` type (`quality_classifier`, filter.py). Importing this
package imports no engine."""
