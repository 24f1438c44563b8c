"""A materialisation describes its columns as the definition does: the UI shows the latest
materialisation's column schema, so a run must not blank the descriptions or the contract constraints
the catalog promises."""

from __future__ import annotations

import re

import dagster as dg

from fraud_assets.cli import catalog
from fraud_assets.definitions import defs
from fraud_assets_tests import raw_cleaned_support as s


def test_every_column_a_raw_or_cleaned_materialisation_reports_has_a_description(data_dir):
    s.write_reference(data_dir)
    s.write_acq_a(data_dir, [s.a_row(1), s.a_row(2, amount="-1")])
    results = s.run_pipeline(data_dir)
    schemas: dict[str, dg.TableSchema] = {}
    for result in results:
        for event in result.get_asset_materialization_events():
            materialization = event.step_materialization_data.materialization
            value = materialization.metadata.get(catalog.COLUMN_SCHEMA_KEY)
            if isinstance(value, dg.TableSchemaMetadataValue):
                schemas[catalog.key_str(materialization.asset_key)] = value.schema
    assert {"raw/authorizations", "raw/file_register", "cleaned/transactions", "cleaned/labels"} <= set(
        schemas
    )
    undescribed = {
        key: [c.name for c in schema.columns if not (c.description or "").strip()]
        for key, schema in schemas.items()
    }
    assert {k: v for k, v in undescribed.items() if v} == {}
    graph = defs.resolve_asset_graph()
    for key in ("raw/authorizations", "raw/file_register", "cleaned/transactions", "cleaned/labels"):
        declared = catalog.column_schema_of(graph.get(dg.AssetKey.from_user_string(key)))
        constraints = {c.name: c.constraints for c in declared.columns}
        assert {c.name: c.constraints for c in schemas[key].columns} == constraints, key


def test_every_feature_column_description_reads_on_its_own():
    # The UI's column table can be filtered and the catalog quoted one column at a time: a description
    # pointing at the row above ("share of those ...") then says nothing.
    graph = defs.resolve_asset_graph()
    schema = catalog.column_schema_of(graph.get(dg.AssetKey(["features", "transaction_features"])))
    leaning = {
        c.name: c.description
        for c in schema.columns
        if re.search(r"\b(those|these|the above|as above)\b", c.description or "", re.IGNORECASE)
    }
    assert leaning == {}
