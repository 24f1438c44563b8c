"""Model figures as a data scientist reads them in the UI: folds, counts, days and 0/1 flags as whole
numbers, measures to 4 decimals (a candidate's fold and selection tables, the evaluation's comparison)."""

from __future__ import annotations

import re

import dagster as dg
import pandas as pd

from fraud_assets.lib.markdown import figures_table
from fraud_assets_tests.models_world import bootstrap_training


def _cells(markdown: str, column: str) -> list[str]:
    header, _rule, *rows = markdown.strip().splitlines()
    names = [c.strip() for c in header.strip("|").split("|")]
    at = names.index(column)
    return [row.strip("|").split("|")[at].strip() for row in rows]


def test_a_figures_table_shows_whole_numbers_as_integers_and_measures_to_four_decimals():
    table = figures_table(
        pd.DataFrame({"family": ["rf", "lr"], "fold": [0.0, 1.0], "auc": [0.9, 0.85], "n_fraud": [58, 121]})
    )
    assert _cells(table, "fold") == ["0", "1"]
    assert _cells(table, "n_fraud") == ["58", "121"]
    assert _cells(table, "auc") == ["0.9000", "0.8500"]
    assert _cells(table, "family") == ["rf", "lr"]


def test_training_metadata_tables_show_folds_counts_and_choices_as_whole_numbers(tmp_path):
    _data_dir, result = bootstrap_training(tmp_path)
    metadata = {
        m.asset_key: m.metadata
        for m in result.get_asset_materialization_events()
        for m in [m.materialization]
    }
    candidate = metadata[dg.AssetKey(["models", "candidate_random_forest"])]
    folds = candidate["fold_metrics"].value
    for column in ("fold", "n_transactions", "n_fraud", "train_rows"):
        assert all(re.fullmatch(r"\d+", cell) for cell in _cells(folds, column)), (column, folds)
    assert all(re.fullmatch(r"0\.\d{4}", cell) for cell in _cells(folds, "average_precision"))
    selection = candidate["model_selection"].value
    for column in ("config", "train_days", "chosen"):
        assert all(re.fullmatch(r"\d+", cell) for cell in _cells(selection, column)), (column, selection)
    comparison = metadata[dg.AssetKey(["models", "evaluation"])]["comparison"].value
    assert all(re.fullmatch(r"\d+", cell) for cell in _cells(comparison, "min_cost_alerts")), comparison
