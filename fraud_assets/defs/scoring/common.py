"""Shared by the scoring assets: reading a day's features and the champion model."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd

from fraud_assets.defs.models.common import FEATURES_TABLE, OWNERS  # noqa: F401 (re-exported)
from fraud_assets.lib.model_selection import compute_threads
from fraud_assets.lib.registry import CHAMPION, ModelVersion, alias_history, current_alias, load_version

SCORES_TABLE = "scoring.transaction_scores"
ALERTS_TABLE = "scoring.fraud_alerts"
SCORING_CODE_VERSION = "scoring-v1"


def champion_model(conn, model_store) -> tuple[object, ModelVersion]:
    """The champion, loaded through the signed registry (a row or event that does not verify fails the
    run, and the run-failure alert names it)."""
    version = current_alias(conn, CHAMPION)
    if version is None and alias_history(conn, CHAMPION):
        raise dg.Failure(
            "no champion: the last one was disabled with no former champion to fall back to; approve a "
            "challenger (model_approval job, docs/governance.md)"
        )
    if version is None:
        raise dg.Failure("no champion model yet: run training_job (models/champion) before scoring")
    return load_version(conn, model_store.path, version, model_store.signer())


def read_features_day(conn, business_date: str) -> pd.DataFrame:
    return conn.execute(
        f"SELECT * FROM {FEATURES_TABLE} WHERE business_date = CAST(? AS DATE)", [business_date]
    ).df()


def predict(model, features: pd.DataFrame, columns: list[str]) -> np.ndarray:
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise dg.Failure(f"feature table lacks columns the champion was trained on: {missing}")
    with compute_threads():
        return model.predict_proba(features[columns].astype(float))[:, 1]
