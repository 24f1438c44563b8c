"""Column lineage (`dagster/column_lineage`) says which upstream columns a derived column is computed from:
declared once per derived table, carried by the definition and by every materialisation."""

from __future__ import annotations

import dagster as dg
import pytest

from fraud_assets.cli import catalog
from fraud_assets.definitions import defs

GRAPH = catalog.asset_graph(defs)
DERIVED = ["features/transaction_features", "models/training_set", "scoring/transaction_scores"]
# Columns stamped by the run (a clock), computed from no upstream column.
STAMPED = {"scoring/transaction_scores": {"scored_at"}}


def lineage_of(asset: str) -> dict[str, set[tuple[str, str]]]:
    node = GRAPH.get(dg.AssetKey.from_user_string(asset))
    return {column: set(deps) for column, deps in catalog.column_lineage_of(node).items()}


def columns_of(key: dg.AssetKey) -> set[str]:
    return {c.name for c in catalog.column_schema_of(GRAPH.get(key)).columns}


@pytest.mark.parametrize("asset", DERIVED)
def test_every_column_of_a_derived_table_has_its_lineage_but_run_stamps(asset):
    columns = columns_of(dg.AssetKey.from_user_string(asset))
    assert set(lineage_of(asset)) == columns - STAMPED.get(asset, set())


@pytest.mark.parametrize("asset", DERIVED)
def test_lineage_names_only_columns_of_the_assets_upstream(asset):
    node = GRAPH.get(dg.AssetKey.from_user_string(asset))
    parents = {catalog.key_str(k) for k in node.parent_keys}
    unknown = {
        (upstream, column)
        for deps in lineage_of(asset).values()
        for upstream, column in deps
        if upstream not in parents or column not in columns_of(dg.AssetKey.from_user_string(upstream))
    }
    assert unknown == set()


def test_terminal_risk_comes_from_the_terminals_transactions_and_when_their_labels_were_reported():
    assert lineage_of("features/transaction_features")["terminal_risk_7d"] == {
        ("cleaned/transactions", "terminal_id"),
        ("cleaned/transactions", "tx_datetime"),
        ("cleaned/labels", "transaction_id"),
        ("cleaned/labels", "reported_at"),
    }


def test_night_and_weekend_flags_come_from_the_terminals_local_time():
    lineage = lineage_of("features/transaction_features")
    assert lineage["is_night"] == lineage["is_weekend"] == {("cleaned/transactions", "tx_datetime_local")}


def test_distance_from_home_comes_from_the_cardholder_and_terminal_locations():
    assert lineage_of("features/transaction_features")["dist_home_terminal"] == {
        ("cleaned/cards", "home_x"),
        ("cleaned/cards", "home_y"),
        ("cleaned/terminals", "x"),
        ("cleaned/terminals", "y"),
    }


def test_training_label_comes_from_the_labels_and_features_pass_through():
    lineage = lineage_of("models/training_set")
    assert lineage["label"] == {("cleaned/labels", "transaction_id"), ("cleaned/labels", "reported_at")}
    assert lineage["card_nb_tx_7d"] == {("features/transaction_features", "card_nb_tx_7d")}


def test_a_score_comes_from_the_features_and_its_version_from_the_champion():
    lineage = lineage_of("scoring/transaction_scores")
    assert ("features/transaction_features", "terminal_risk_30d") in lineage["score"]
    assert lineage["model_version"] == {("models/champion", "model_version")}
