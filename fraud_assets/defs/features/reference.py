"""The pandas peer of the feature layer: the 15 handbook baseline features as a data scientist writes them.

The yardstick the feature layer is tested and benchmarked against, never part of the pipeline. It is the
handbook's own code (chapter 3: per customer, `rolling("<n>d")` over a time index) vectorised in the
plainest way: integer card keys (the 64-character tokens factorised), one sort per entity,
`set_index(time).groupby(entity)[column].rolling("<n>D")`, no per-group Python. `tuned=True` is the
leaner variant a pandas expert may write (the time column kept as a column, `rolling(on=...)`, which
spares pandas a time-index level in every result); the benchmark reports both.

It gives the feature layer's values on every row; two points need care for that:
- pandas' time-based window of row i ends at row i, so a later transaction of the same card at the very
  same instant is left out, while the definition "(t - n, t], current included" includes it. Only the
  rows with such a later tie (a handful) take the values of the last row of their instant.
- the terminal windows (t - d - n, t - d] are differences of windows ending at t, which ties do not
  affect. A fraud counts when its label was reported within the delay (reported_at <= tx_datetime + d):
  with the handbook label option (every fraud known within 7 days) that is the feature layer's rule
  "reported at or before t".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WINDOWS = (1, 7, 30)
DELAY = 7


def _rolling(df: pd.DataFrame, by: str, column: str, days: int, tuned: bool) -> tuple[np.ndarray, np.ndarray]:
    """Count and sum of `column` over each row's (t - days, t] within its `by` group; rows sorted by
    (by, tx_datetime)."""
    if tuned:
        roll = df.groupby(by, sort=False)[["tx_datetime", column]].rolling(f"{days}D", on="tx_datetime")
        return roll.count()[column].to_numpy(), roll.sum()[column].to_numpy()
    roll = df.set_index("tx_datetime").groupby(by, sort=False)[column].rolling(f"{days}D")
    return roll.count().to_numpy(), roll.sum().to_numpy()


def baseline_features(
    transactions: pd.DataFrame,
    labels: pd.DataFrame,
    delay: int = DELAY,
    windows: tuple[int, ...] = WINDOWS,
    tuned: bool = False,
) -> pd.DataFrame:
    """Baseline features per transaction.

    transactions: transaction_id, tx_datetime, tx_datetime_local, card_token, terminal_id, tx_amount
    labels: transaction_id, reported_at (cleaned.labels: one row per fraud, its earliest report)
    Returns one row per transaction, indexed by transaction_id, sorted by it.
    """
    df = transactions[["transaction_id", "tx_datetime", "terminal_id", "tx_amount"]].copy()
    df["card"] = pd.factorize(transactions["card_token"])[0]
    df["is_weekend"] = (transactions["tx_datetime_local"].dt.weekday >= 5).astype("int32")
    df["is_night"] = (transactions["tx_datetime_local"].dt.hour <= 6).astype("int32")
    reported = df["transaction_id"].map(labels.set_index("transaction_id")["reported_at"])
    df["tx_fraud"] = (reported <= df["tx_datetime"] + pd.Timedelta(days=delay)).astype("int64")

    # Card windows (t - n, t].
    df = df.sort_values(["card", "tx_datetime"], ignore_index=True)
    card_cols = []
    for n in windows:
        count, total = _rolling(df, "card", "tx_amount", n, tuned)
        df[f"card_nb_tx_{n}d"] = count
        df[f"card_avg_amount_{n}d"] = total / count
        card_cols += [f"card_nb_tx_{n}d", f"card_avg_amount_{n}d"]
    later_tie = df.duplicated(["card", "tx_datetime"], keep="last")
    if later_tie.any():
        df[card_cols] = df[card_cols].mask(later_tie).bfill()

    # Terminal windows (t - d - n, t - d] = window (t - d - n, t] minus window (t - d, t].
    df = df.sort_values(["terminal_id", "tx_datetime"], ignore_index=True)
    nb_recent, fraud_recent = _rolling(df, "terminal_id", "tx_fraud", delay, tuned)
    for n in windows:
        nb_tx, nb_fraud = _rolling(df, "terminal_id", "tx_fraud", delay + n, tuned)
        nb_tx, nb_fraud = nb_tx - nb_recent, nb_fraud - fraud_recent
        df[f"terminal_nb_tx_{n}d"] = nb_tx
        df[f"terminal_risk_{n}d"] = nb_fraud / np.maximum(nb_tx, 1)

    out = df.set_index("transaction_id").sort_index()
    columns = [
        "tx_amount",
        "is_weekend",
        "is_night",
        *[f"card_{k}_{n}d" for n in windows for k in ("nb_tx", "avg_amount")],
        *[f"terminal_{k}_{n}d" for n in windows for k in ("nb_tx", "risk")],
    ]
    counts = [c for c in columns if "_nb_tx_" in c]
    return out[columns].astype(dict.fromkeys(counts, "int64"))
