"""Shared by the scoring assets: reading a day's features and the champion model."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import dagster as dg
import numpy as np
import pandas as pd

from fraud_assets.defs.models.common import FEATURES_TABLE, OWNERS  # noqa: F401 (re-exported)
from fraud_assets.lib.model_selection import compute_threads, model_cores
from fraud_assets.lib.partitions import dates_filter, day_batches
from fraud_assets.lib.registry import CHAMPION, ModelVersion, alias_history, current_alias, verify_chain
from fraud_assets.lib.tables import SCORES_TABLE  # noqa: F401 (re-exported)

ALERTS_TABLE = "scoring.fraud_alerts"
SCORING_CODE_VERSION = "scoring-v1"
SCORE_PREVIEW_COLUMNS = ("transaction_id", "business_date", "score", "model_version")


def champion_model(conn, model_store) -> tuple[object, ModelVersion]:
    """The champion, loaded through the signed registry (a row or event that does not verify fails the
    run, and the run-failure alert names it)."""
    # The ledger is verified before it is read: events deleted from its end (the approval of the current
    # champion, say) would otherwise read as "no champion" instead of being refused.
    verify_chain(conn, model_store.signer(), model_store.anchor())
    version = current_alias(conn, CHAMPION)
    if version is None and alias_history(conn, CHAMPION):
        raise dg.Failure(
            "no champion: the last one was disabled with no former champion to fall back to; approve a "
            "challenger (model_approval job, docs/governance.md)"
        )
    if version is None:
        raise dg.Failure("no champion model yet: run training_job (models/champion) before scoring")
    return model_store.load(conn, version)


# Rows scored per predict call: several handbook days at once (a call's fixed cost is paid per call, and a
# ~10k-row day is too small to split across cores), bounded so memory does not grow with the range.
SCORE_BATCH_ROWS = 250_000
EPOCH = date(1970, 1, 1)


def scored_days(conn, model, columns: list[str], days: list[str]) -> Iterator[pd.DataFrame]:
    """transaction_id, card_token, business_date (a date) and score of every transaction of `days`, in
    batches of whole days of about SCORE_BATCH_ROWS rows: one read (only the model's columns) and one
    predict per batch."""
    # Dates as typed literals (dates_filter), never a text cast of the column: zone maps then skip the
    # other days, and a batch reads its days rather than the whole feature table.
    counts = dict(
        conn.execute(
            f"SELECT CAST(business_date AS VARCHAR), count(*) FROM {FEATURES_TABLE} "
            f"WHERE {dates_filter(days)} GROUP BY 1"
        ).fetchall()
    )
    # The day as an integer: DuckDB hands a DATE column to pandas at ~0.4 s per 250k rows.
    select = ", ".join(
        ["datediff('day', DATE '1970-01-01', business_date) AS _day"]
        + [c for c in dict.fromkeys(["transaction_id", "card_token", *columns]) if c != "business_date"]
    )
    for batch in day_batches(days, counts, SCORE_BATCH_ROWS):
        feats = conn.execute(
            f"SELECT {select} FROM {FEATURES_TABLE} WHERE {dates_filter(batch)} ORDER BY business_date"
        ).df()
        if feats.empty:
            continue
        yield pd.DataFrame(
            {
                "transaction_id": feats["transaction_id"],
                "card_token": feats["card_token"],
                # A date, not pandas' datetime64: the partition column must stay DATE in DuckDB.
                "business_date": feats["_day"].map(
                    {d: EPOCH + timedelta(days=int(d)) for d in feats["_day"].unique()}
                ),
                "score": predict(model, feats, columns),
            }
        )


# Rows per chunk below which one thread scores alone (starting a thread costs more than it saves; a
# handbook day of ~10k rows is scored in two).
PARALLEL_PREDICT_ROWS = 4_000


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
