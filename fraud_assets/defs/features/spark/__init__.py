"""The Spark engine of features.transaction_features: sql.py (the definitions in Spark SQL), job.py (the
Spark application, run through Dagster Pipes), launcher.py (what the asset calls)."""
