"""Recipe -> jobs -> DAG -> plan -> run directory (dbt/sqlmesh shape)."""
