"""Shared by the scoring assets: reading a day's features and the champion model."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd

from fraud_assets.defs.models.common import FEATURES_TABLE, OWNERS  # noqa: F401 (re-exported)
from fraud_assets.lib.model_selection import compute_threads, model_cores
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


def read_features_day(conn, business_date: str, columns: list[str]) -> pd.DataFrame:
    """A day's transaction_id and card_token with the model's feature `columns` (only what scoring reads)."""
    select = ", ".join(dict.fromkeys(["transaction_id", "card_token", *columns]))
    return conn.execute(
        f"SELECT {select} FROM {FEATURES_TABLE} WHERE business_date = CAST(? AS DATE)", [business_date]
    ).df()


# Rows below which one thread scores alone (a thread's start costs more than it saves).
PARALLEL_PREDICT_ROWS = 20_000


def predict(model, features: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Fraud probability of each row: row chunks scored in threads, one per model core (tree traversal
    runs outside the GIL; any model family, and the same scores as one call)."""
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise dg.Failure(f"feature table lacks columns the champion was trained on: {missing}")
    X = features[columns].astype(float)
    chunks = min(model_cores(), max(1, len(X) // PARALLEL_PREDICT_ROWS))
    with compute_threads():
        if chunks == 1:
            return model.predict_proba(X)[:, 1]
        from joblib import Parallel, delayed  # scikit-learn's own dependency, imported on use like it

        bounds = np.linspace(0, len(X), chunks + 1).astype(int)
        parts = Parallel(n_jobs=chunks, prefer="threads")(
            delayed(model.predict_proba)(X.iloc[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        )
    return np.concatenate([p[:, 1] for p in parts])
