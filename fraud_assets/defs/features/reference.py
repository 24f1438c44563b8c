"""The pandas reference for the 15 handbook baseline features.

Written the way a capable data scientist writes it (Fraud Detection Handbook, chapter 3): sort once,
vectorised `groupby(...).rolling("<n>D", on=timestamp)`, no per-group Python `apply`. It is the yardstick
the SQL feature layer is tested and benchmarked against, never part of the pipeline.

Two points where the handbook code needs care to match the definitions exactly:
- pandas' time-based rolling window for row i ends at row i, so a later transaction of the same card
  at the very same timestamp is left out; the definition "(t - n, t], current included" includes it.
  A groupby on (card, timestamp) propagates the last row's value of each such tie group.
- the terminal windows are differences of windows ending at t (as in the handbook), which are immune
  to that tie effect. A fraud counts when its label was reported within the delay
  (reported_at <= tx_datetime + delay): with the handbook label option (every fraud known within 7 days)
  that is the same as "reported at or before t", the SQL layer's rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WINDOWS = (1, 7, 30)
DELAY = 7


def baseline_features(
    transactions: pd.DataFrame, labels: pd.DataFrame, delay: int = DELAY, windows: tuple[int, ...] = WINDOWS
) -> pd.DataFrame:
    """Baseline features per transaction.

    transactions: transaction_id, tx_datetime, tx_datetime_local, card_token, terminal_id, tx_amount
    labels: transaction_id, reported_at (cleaned.labels)
    Returns one row per transaction, indexed by transaction_id.
    """
    df = transactions[
        ["transaction_id", "tx_datetime", "tx_datetime_local", "card_token", "terminal_id", "tx_amount"]
    ].copy()
    df["is_weekend"] = (df["tx_datetime_local"].dt.weekday >= 5).astype("int32")
    df["is_night"] = (df["tx_datetime_local"].dt.hour <= 6).astype("int32")
    first_report = labels.groupby("transaction_id")["reported_at"].min()
    reported = df["transaction_id"].map(first_report)
    df["tx_fraud"] = (reported <= df["tx_datetime"] + pd.Timedelta(days=delay)).astype("int64")

    # Card windows (t - n, t].
    df = df.sort_values(["card_token", "tx_datetime"], kind="stable", ignore_index=True)
    by_card = df.groupby("card_token", sort=False)
    card_cols = []
    for n in windows:
        roll = by_card.rolling(f"{n}D", on="tx_datetime")["tx_amount"]
        count = roll.count().to_numpy()
        total = roll.sum().to_numpy()
        df[f"card_nb_tx_{n}d"] = count
        df[f"card_avg_amount_{n}d"] = total / count
        card_cols += [f"card_nb_tx_{n}d", f"card_avg_amount_{n}d"]
    # Ties: every transaction at the same instant gets the window of the last of them.
    df[card_cols] = df.groupby(["card_token", "tx_datetime"], sort=False)[card_cols].transform("last")

    # Terminal windows (t - d - n, t - d] = window (t - d - n, t] minus window (t - d, t].
    df = df.sort_values(["terminal_id", "tx_datetime"], kind="stable", ignore_index=True)
    by_terminal = df.groupby("terminal_id", sort=False)
    delayed = by_terminal.rolling(f"{delay}D", on="tx_datetime")["tx_fraud"]
    nb_delay, fraud_delay = delayed.count().to_numpy(), delayed.sum().to_numpy()
    for n in windows:
        roll = by_terminal.rolling(f"{delay + n}D", on="tx_datetime")["tx_fraud"]
        nb_tx = roll.count().to_numpy() - nb_delay
        nb_fraud = roll.sum().to_numpy() - fraud_delay
        df[f"terminal_nb_tx_{n}d"] = nb_tx
        with np.errstate(invalid="ignore", divide="ignore"):
            df[f"terminal_risk_{n}d"] = np.where(nb_tx > 0, nb_fraud / np.where(nb_tx > 0, nb_tx, 1), 0.0)

    out = df.set_index("transaction_id").sort_index()
    for col in out.columns:
        if "_nb_tx_" in col:
            out[col] = out[col].round().astype("int64")
    return out[
        [
            "tx_amount",
            "is_weekend",
            "is_night",
            *[f"card_{k}_{n}d" for n in windows for k in ("nb_tx", "avg_amount")],
            *[f"terminal_{k}_{n}d" for n in windows for k in ("nb_tx", "risk")],
        ]
    ]
