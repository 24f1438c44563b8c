"""Each table with a pandera contract shows that contract beside its columns (the UI's column table:
"non-nullable", "unique", each check), read from the same model the contract check runs, so what a data
scientist reads is what the check enforces."""

from __future__ import annotations

import dagster as dg
import pandera.pandas as pa
import pytest
from pandera.typing import Series

from fraud_assets.cli import catalog
from fraud_assets.definitions import defs
from fraud_assets.defs.cleaned import schemas as cleaned_schemas
from fraud_assets.defs.raw import schemas as raw_schemas
from fraud_assets.defs.scoring.schemas import ScoresModel
from fraud_assets.lib.catalog_metadata import table_schema

GRAPH = defs.resolve_asset_graph()
# Every contract of an asset's own table (cleaned.reference_quarantine is written by two assets, no asset of
# its own).
CONTRACTS = {
    table.replace(".", "/"): model
    for table, model in {**raw_schemas.CONTRACTS, **cleaned_schemas.CONTRACTS}.items()
    if table != "cleaned.reference_quarantine"
} | {"scoring/transaction_scores": ScoresModel}


def _schema(key: str) -> dg.TableSchema:
    return catalog.column_schema_of(GRAPH.get(dg.AssetKey.from_user_string(key)))


@pytest.mark.parametrize("key", sorted(CONTRACTS))
def test_a_contracted_table_shows_its_contract_beside_its_columns(key):
    fields = CONTRACTS[key].to_schema().columns
    columns = {c.name: c.constraints for c in _schema(key).columns}
    assert set(fields) <= set(columns), f"{key}: contract columns missing from the column schema"
    assert {n for n in fields if not columns[n].nullable} == {n for n, f in fields.items() if not f.nullable}
    assert {n for n in fields if columns[n].unique} == {n for n, f in fields.items() if f.unique}
    assert {n for n in fields if columns[n].other} == {n for n, f in fields.items() if f.checks}


def test_the_cleaned_transactions_contract_reads_as_written():
    columns = {c.name: c.constraints for c in _schema("cleaned/transactions").columns}
    assert columns["transaction_id"] == dg.TableColumnConstraints(nullable=False, unique=True, other=[">= 0"])
    assert columns["channel"].other == ["isin(['card_present', 'ecommerce'])"]
    assert columns["three_ds"].nullable
    assert "tx_amount = amount_original / fx_rate" in _schema("cleaned/transactions").constraints.other


def test_a_long_list_of_allowed_values_shows_its_first_few():
    class Zones(pa.DataFrameModel):
        zone: Series[str] = pa.Field(isin=[f"Zone/{i:02d}" for i in range(40)])

    (zone,) = table_schema([("zone", "VARCHAR")], contract=Zones).columns
    assert zone.constraints.other == ["isin(['Zone/00', 'Zone/01', 'Zone/02', ...])"]


def test_a_table_without_a_contract_claims_no_constraint():
    (column,) = table_schema([("score", "DOUBLE")], {"score": "model score"}).columns
    assert column.constraints == dg.TableColumnConstraints()
    assert column.description == "model score"


@pytest.mark.parametrize("key", sorted(CONTRACTS))
def test_a_contracted_table_checks_its_contract_under_the_short_name_contract(key):
    # The asset key already says which table; the check name need not repeat the model's class name.
    asset_key = dg.AssetKey.from_user_string(key)
    names = {k.name for k in GRAPH.asset_check_keys if k.asset_key == asset_key}
    assert "contract" in names
    assert not [n for n in names if n.endswith("_contract") and n != "reference_quarantine_contract"]
