"""The columns a definition declares are the warehouse's: DuckDB types, every column a table carries.

The UI shows an asset's declared columns until its first run, and docs/catalog.md always: a data scientist
reads them to write SQL, so a pandas dtype (`str`, `datetime64[ns]` for a DATE) or a missing column
misleads."""

import re

import dagster as dg
import duckdb

from fraud_assets.cli import catalog
from fraud_assets.definitions import defs
from fraud_assets.defs.models.common import feature_columns
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.models_world import schema_mismatches

# A DuckDB type name as DESCRIBE spells it: VARCHAR, BIGINT, DOUBLE, DATE, TIMESTAMP, DECIMAL(18,3), ...
DUCKDB_TYPE = re.compile(r"^[A-Z][A-Z0-9_ ]*(\(\d+(, ?\d+)?\))?(\[\])?$")
GRAPH = defs.get_repository_def().asset_graph


def declared(key: str) -> dg.TableSchema:
    return catalog.column_schema_of(GRAPH.get(dg.AssetKey.from_user_string(key)))


def test_every_declared_column_has_a_duckdb_type():
    not_sql = {
        catalog.key_str(key): [f"{c.name}: {c.type}" for c in schema.columns if not DUCKDB_TYPE.match(c.type)]
        for key in GRAPH.materializable_asset_keys
        if (schema := catalog.column_schema_of(GRAPH.get(key))) is not None
    }
    assert {k: v for k, v in not_sql.items() if v} == {}


def test_the_training_set_declares_and_describes_every_feature_column_it_carries():
    """models/training_set carries every numeric non-key feature column (read from the table at run time):
    each is declared, with a description, on its definition."""
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA features")
    columns = ", ".join(f'"{c.name}" {c.type}' for c in declared("features/transaction_features").columns)
    conn.execute(f"CREATE TABLE features.transaction_features ({columns})")
    carried = feature_columns(conn)
    training = {c.name: c for c in declared("models/training_set").columns}
    assert [c for c in carried if c not in training] == []
    assert [c for c in carried if training[c].type != "DOUBLE" or not training[c].description] == []


def test_the_cleaned_reference_tables_are_declared_as_they_are_written(data_dir):
    s.write_reference(data_dir)
    s.write_acq_a(data_dir, [s.a_row(1)])
    for result in s.run_pipeline(data_dir):
        assert result.success
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as conn:
        problems = [
            p
            for name in ("terminals", "cards", "fx_rates", "labels")
            for p in schema_mismatches(conn, defs.get_assets_def(["cleaned", name]), f"cleaned.{name}")
        ]
    assert problems == []
