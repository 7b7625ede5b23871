"""The provenance schema (versioned). Shards are Parquet files under
`jobs/<job>/provenance/<table>/`; `provenance.duckdb` loads them into tables of the same names.

Tables
- documents:     every input document (id, source, input file, offset or line, bytes, text hash)
- decisions:     one row per document per step it reached: kept / dropped / modified, reason,
                 filter values (JSON)
- step_counts:   per step and task: documents in, kept, dropped, modified (exact even when
                 kept rows are thinned by `outputs.provenance.kept_sample_rate`)
- clusters:      dedup clusters (document, cluster id, whether it was the one kept)
- contamination: benchmark overlap evidence (document, benchmark, item, n-gram, position, action)
- mixture:       documents fed to a pretraining stage (stage, source, the weight key it was drawn
                 under - its source or a label slice -, tokens, repetitions, packed document)
- mixture_targets: per stage and weight key (in `source`: a source or a label slice such as
                 `web[edu>=3]`), declared vs realized token share and any shortfall
- prompts:       prompts a synth job read (source, gold answer), kept or dropped (e.g. contaminated)
- samples:       every generated sample: prompt, mode, budget cut, verification, kept / dropped
                 (reason); the lineage of each row of a synthetic dataset
- annotations:   documents an LLM labelled, per dimension of data.quality: annotator, prompt
                 digest, raw output, parsed score (a scale) or label (a label set; null: unparsed,
                 with how), train / holdout split, the dimension classifier's prediction and version
- labels:        every labelled document's predicted value per dimension (score or label), the
                 classifier version that predicted it (job quality.label; never thinned) and, where
                 the dimension names a `reference` field, the document's known value
- rollouts:      every sample a post-training stage drew from its policy or teacher: step, prompt,
                 mode, tokens, reward and verdict, GRPO advantage, DPO role (chosen / rejected),
                 teacher KL (distillation), and which policy version sampled it
- eval_samples:  every eval generation: stage evaluated, benchmark, item, mode, thinking budget,
                 sample index, verdict, tokens, thinking tokens, whether the budget cut it
- train_steps:   per post-training step (or held-out evaluation) a metric and its value: reward_mean,
                 accuracy, response_tokens, kl, entropy, loss, dpo_margin, heldout_kl, ...

Version 2 added prompts and samples; version 3 annotations (and the views classifiers, quality_scores);
version 4 rollouts, train_steps and eval_samples (and the views rewards, distill_kl, eval_accuracy);
version 5 what audits an eval score: eval_samples' rendered prompt, extracted answer, the
benchmark's metric with the sample's score on it, and the verdict's details (JSON); version 6
label dimensions: annotations' dimension, label and predicted_label, the labels table (and the view
label_distribution), mixture's weight_key; version 7 the reference labels (annotations' and labels'
`reference`, from a dimension's `reference` field, and the view label_agreement).
"""

from __future__ import annotations

SCHEMA_VERSION = 7

# column name -> DuckDB type; pyarrow types are derived from these.
TABLES: dict[str, dict[str, str]] = {
    "documents": {"job": "VARCHAR", "source": "VARCHAR", "doc_id": "VARCHAR", "file": "VARCHAR",
                  "offset": "BIGINT", "bytes": "BIGINT", "text_hash": "VARCHAR", "rank": "INTEGER"},
    "decisions": {"job": "VARCHAR", "step_index": "INTEGER", "step": "VARCHAR", "source": "VARCHAR",
                  "doc_id": "VARCHAR", "decision": "VARCHAR", "reason": "VARCHAR", "details": "VARCHAR",
                  "rank": "INTEGER"},
    "step_counts": {"job": "VARCHAR", "step_index": "INTEGER", "step": "VARCHAR", "source": "VARCHAR",
                    "documents_in": "BIGINT",
                    "kept": "BIGINT", "dropped": "BIGINT", "modified": "BIGINT", "rank": "INTEGER"},
    "clusters": {"job": "VARCHAR", "method": "VARCHAR", "source": "VARCHAR", "doc_id": "VARCHAR",
                 "cluster_id": "VARCHAR", "kept": "BOOLEAN", "rank": "INTEGER"},
    "contamination": {"job": "VARCHAR", "source": "VARCHAR", "doc_id": "VARCHAR", "benchmark": "VARCHAR",
                      "item_id": "VARCHAR", "ngram": "VARCHAR", "position": "INTEGER", "action": "VARCHAR",
                      "rank": "INTEGER"},
    "mixture": {"job": "VARCHAR", "stage": "VARCHAR", "source": "VARCHAR", "weight_key": "VARCHAR", "doc_id": "VARCHAR",
                "tokens": "BIGINT", "repetitions": "INTEGER", "packed_into": "VARCHAR"},
    "prompts": {"job": "VARCHAR", "source": "VARCHAR", "prompt_id": "VARCHAR", "prompt": "VARCHAR",
                "gold": "VARCHAR", "decision": "VARCHAR", "reason": "VARCHAR", "details": "VARCHAR"},
    "samples": {"job": "VARCHAR", "source": "VARCHAR", "prompt_id": "VARCHAR", "sample_id": "VARCHAR",
                "teacher": "VARCHAR", "mode": "VARCHAR", "thinking_budget": "BIGINT", "budget_cut": "BOOLEAN",
                "cut_at": "BIGINT", "thinking_tokens": "BIGINT", "tokens": "BIGINT", "finish_reason": "VARCHAR",
                "answer": "VARCHAR", "verified": "BOOLEAN", "verdict": "VARCHAR", "majority_vote": "BOOLEAN",
                "decision": "VARCHAR", "reason": "VARCHAR", "text": "VARCHAR"},
    "annotations": {"job": "VARCHAR", "source": "VARCHAR", "doc_id": "VARCHAR", "dimension": "VARCHAR",
                    "annotator": "VARCHAR", "prompt_digest": "VARCHAR", "output": "VARCHAR", "score": "DOUBLE",
                    "label": "VARCHAR", "parsed": "VARCHAR", "finish_reason": "VARCHAR", "tokens": "BIGINT",
                    "split": "VARCHAR", "predicted": "DOUBLE", "predicted_label": "VARCHAR",
                    "classifier_version": "VARCHAR", "reference": "VARCHAR"},
    "labels": {"job": "VARCHAR", "source": "VARCHAR", "doc_id": "VARCHAR", "dimension": "VARCHAR", "score": "DOUBLE",
               "label": "VARCHAR", "classifier_version": "VARCHAR", "rank": "INTEGER", "reference": "VARCHAR"},
    "rollouts": {"job": "VARCHAR", "stage": "VARCHAR", "step": "INTEGER", "source": "VARCHAR",
                 "prompt_id": "VARCHAR", "sample_id": "VARCHAR", "mode": "VARCHAR", "tokens": "BIGINT",
                 "reward": "DOUBLE", "verdict": "VARCHAR", "advantage": "DOUBLE", "role": "VARCHAR",
                 "teacher_kl": "DOUBLE", "policy_version": "INTEGER", "text": "VARCHAR"},
    "eval_samples": {"job": "VARCHAR", "stage": "VARCHAR", "benchmark": "VARCHAR", "item_id": "VARCHAR",
                     "mode": "VARCHAR", "thinking_budget": "BIGINT", "sample": "INTEGER", "correct": "BOOLEAN",
                     "verdict": "VARCHAR", "tokens": "BIGINT", "thinking_tokens": "BIGINT", "budget_cut": "BOOLEAN",
                     "text": "VARCHAR", "prompt": "VARCHAR", "extracted": "VARCHAR", "metric": "VARCHAR",
                     "score": "DOUBLE", "details": "VARCHAR"},
    "train_steps": {"job": "VARCHAR", "stage": "VARCHAR", "kind": "VARCHAR", "step": "INTEGER",
                    "metric": "VARCHAR", "value": "DOUBLE"},
    "mixture_targets": {"job": "VARCHAR", "stage": "VARCHAR", "source": "VARCHAR", "declared_share": "DOUBLE",
                        "realized_share": "DOUBLE", "budget_tokens": "BIGINT", "shortfall_tokens": "BIGINT"},
}

DECISIONS = ("kept", "dropped", "modified")

# Views answering the common questions in one line of SQL.
VIEWS = {
    "drops": """select job, step, source, reason, count(*) as documents
                from decisions where decision = 'dropped' group by all order by job, step, source""",
    "funnel": """select job, source, step_index, step, sum(documents_in) as documents_in,
                        sum(kept + modified) as kept, sum(dropped) as dropped, sum(modified) as modified
                 from step_counts group by all order by job, source, step_index""",
    "acceptance": """select job, source, mode, count(*) as samples, count(*) filter (where decision = 'kept') as kept,
                            round(avg(verified::int), 4) as verified_rate,
                            round(count(*) filter (where decision = 'kept') / count(*), 4) as acceptance_rate
                     from samples group by all order by job, source, mode""",
    "classifiers": """select job, dimension, classifier_version, annotator, prompt_digest, count(*) as annotated,
                             count(coalesce(score::varchar, label)) as scored,
                             count(*) filter (where split = 'train') as train_size,
                             count(*) filter (where split = 'holdout') as holdout_size,
                             round(avg(abs(predicted - score)) filter (where split = 'holdout'), 4) as holdout_mae,
                             round(avg((coalesce(round(predicted)::varchar, predicted_label)
                                        = coalesce(score::varchar, label))::int)
                                   filter (where split = 'holdout'), 4) as holdout_accuracy
                      from annotations group by all order by job, dimension""",
    "label_distribution": """select job, source, dimension, coalesce(label, floor(score)::bigint::varchar) as value,
                                    count(*) as documents
                             from labels group by all order by job, source, dimension, value""",
    # a scale's prediction agrees when it rounds to the reference; majority_share: the most common
    # reference value's share, what always answering it would score
    "label_agreement": """with refs as (select job, source, dimension, reference, count(*) as n from labels
                                       where reference is not null group by all),
                               agree as (select job, source, dimension, count(*) as documents,
                                                avg((coalesce(label, round(score)::bigint::varchar) = reference)::int)
                                                    as agreement
                                         from labels where reference is not null group by all)
                          select a.job, a.source, a.dimension, a.documents, round(a.agreement, 4) as agreement,
                                 round(max(r.n) / a.documents, 4) as majority_share
                          from agree a join refs r using (job, source, dimension)
                          group by a.job, a.source, a.dimension, a.documents, a.agreement
                          order by a.job, a.source, a.dimension""",
    "quality_scores": """select job, source, floor(json_extract(details, '$.quality_score')::double) as score_bucket,
                                count(*) as documents, count(*) filter (where decision = 'dropped') as dropped
                         from decisions where step like 'quality_classifier%' and details is not null
                         group by all order by job, source, score_bucket""",
    "rewards": """select stage, step, source, count(*) as samples, round(avg(reward), 4) as mean_reward,
                        round(avg((verdict = 'correct')::int), 4) as accuracy
                 from rollouts where reward is not null group by all order by stage, step, source""",
    "distill_kl": """select stage, kind, step, metric, value from train_steps
                    where metric like '%kl%' order by stage, step, metric""",
    "eval_accuracy": """select stage, benchmark, mode, thinking_budget, any_value(metric) as metric,
                              count(distinct item_id) as items, count(*) as samples,
                              round(avg(case when metric is null then correct::int else score end), 4)
                                  as value,
                              round(avg(correct::int), 4) as accuracy, round(avg(tokens), 1) as mean_tokens
                       from eval_samples group by all order by benchmark, stage, mode, thinking_budget nulls last""",
    "contaminated_documents": """select c.benchmark, c.item_id, c.source, c.doc_id, c.ngram, c.action
                                 from contamination c order by benchmark, item_id""",
}
