"""Per-document provenance: Parquet shards written by each task, one DuckDB database per run."""
