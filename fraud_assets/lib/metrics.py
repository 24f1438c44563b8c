"""Fraud-detection metrics, computed the way the Fraud Detection Handbook (Le Borgne et al.) defines them.

- AUC ROC and average precision over all test transactions (sklearn).
- Card Precision@k (`card_precision_at_k`, the one definition the gate, evaluation, model card and
  monitoring use): per day, cards already known compromised are removed (a blocked card is not
  reviewed again): those with a fraud reported by the day's start (`known_since`, when the caller's rows
  still hold them) and those detected in the top k of an earlier evaluated day. The rest are ranked by
  their maximum score, ties broken by card token; precision = cards with a fraud (maximum label) among
  the top k / k, even when fewer than k cards remain. The figure is the mean over days.
- Expected cost: a missed fraud costs its amount, an alert costs one review.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraud_assets.lib.model_io import model_libraries_ready

METRIC_NAMES = ("auc", "average_precision", "card_precision_at_100")
CARD_PRECISION_DEFINITION = (
    "Card Precision@100 is the Fraud Detection Handbook's: per day, cards already known compromised are "
    "removed (a fraud reported by the day's start, or detected in the top 100 of an earlier day), the "
    "rest ranked by their highest score (ties by card token); the share of the top 100 with a fraud, "
    "averaged over days. Monitoring reports the same figure for the scored days."
)


def known_compromised_by(known_since: pd.Series | None, day) -> pd.Index:
    """The cards known compromised by the start of `day`: `known_since` (card -> time of its first fraud
    report) at or before the day's midnight. The one rule the gate, evaluation and monitoring apply."""
    if known_since is None or not len(known_since):
        return pd.Index([])
    return known_since.index[known_since <= pd.Timestamp(day)]


class CardPrecision:
    """Card Precision@k of one evaluation, fed its days in increasing order (`day`): it remembers the cards
    detected so far, so a caller can stream days it cannot hold at once (a network's scores)."""

    def __init__(
        self,
        k: int = 100,
        *,
        card_col: str = "card_token",
        score_col: str = "score",
        label_col: str = "label",
        known_since: pd.Series | None = None,
    ):
        self.k, self.card_col, self.score_col, self.label_col = k, card_col, score_col, label_col
        self.known_since = known_since
        self.detected: set = set()

    def day(self, day_key, day: pd.DataFrame) -> float:
        """CP@k of `day`'s rows (transactions of the day `day_key`)."""
        removed = set(self.detected) | set(known_compromised_by(self.known_since, day_key))
        if removed:
            day = day[~day[self.card_col].isin(removed)]
        cards = (
            day.groupby(self.card_col, sort=False)
            .agg(score=(self.score_col, "max"), label=(self.label_col, "max"))
            .rename_axis("card")
            .reset_index()
        )
        # Ties by card token: the same figure whatever order the rows arrive in.
        top = cards.sort_values(["score", "card"], ascending=[False, True], kind="mergesort").head(self.k)
        hits = top.loc[top["label"] == 1, "card"]
        self.detected.update(hits)
        return len(hits) / self.k


def card_precision_by_day(
    df: pd.DataFrame,
    k: int = 100,
    *,
    day_col: str = "business_date",
    card_col: str = "card_token",
    score_col: str = "score",
    label_col: str = "label",
    known_since: pd.Series | None = None,
) -> pd.Series:
    """Card Precision@k of each day of `df` (index: the days in increasing order).

    `known_since` maps a card token to the time its first fraud was reported; such a card is removed from
    every day starting at or after that time. The days are evaluated in order, so a card detected on one
    day is removed from the later ones: pass every day of one evaluation together."""
    cp = CardPrecision(
        k, card_col=card_col, score_col=score_col, label_col=label_col, known_since=known_since
    )
    per_day = {key: cp.day(key, day) for key, day in sorted(df.groupby(day_col), key=lambda kv: kv[0])}
    return pd.Series(per_day, dtype=float)


def card_precision_at_k(
    df: pd.DataFrame,
    k: int = 100,
    *,
    score_col: str = "score",
    label_col: str = "label",
    known_since: pd.Series | None = None,
) -> tuple[float, list[float]]:
    """Mean Card Precision@k over the days of `df` and the per-day values (days in increasing order);
    columns business_date and card_token, arguments as `card_precision_by_day`."""
    per_day = card_precision_by_day(df, k, score_col=score_col, label_col=label_col, known_since=known_since)
    return (float(per_day.mean()) if len(per_day) else float("nan")), per_day.tolist()


def classification_metrics(
    df: pd.DataFrame, k: int = 100, *, score_col: str = "score", label_col: str = "label"
) -> dict[str, float]:
    """AUC, AP and CP@k for a scored test set (columns business_date, card_token, score, label)."""
    model_libraries_ready()
    from sklearn.metrics import (
        average_precision_score,
        roc_auc_score,
    )  # imported on use: see 'Start-up cost' in docs/architecture.md

    y = df[label_col].to_numpy().astype(int)
    s = df[score_col].to_numpy().astype(float)
    both = 0 < y.sum() < len(y)
    cp, _ = card_precision_at_k(df, k, score_col=score_col, label_col=label_col)
    return {
        "auc": float(roc_auc_score(y, s)) if both else float("nan"),
        "average_precision": float(average_precision_score(y, s)) if both else float("nan"),
        f"card_precision_at_{k}": cp,
        "n_transactions": float(len(y)),
        "n_fraud": float(y.sum()),
        "fraud_rate": float(y.mean()) if len(y) else float("nan"),
    }


@dataclass(frozen=True)
class CostPoint:
    threshold: float
    alerts: int
    missed_fraud: int
    missed_amount: float
    review_cost: float
    total_cost: float


def expected_cost_curve(
    scores: np.ndarray,
    labels: np.ndarray,
    amounts: np.ndarray,
    *,
    review_cost: float = 5.0,
    thresholds: np.ndarray | None = None,
) -> pd.DataFrame:
    """Cost of alerting on every transaction scored >= threshold, for a grid of thresholds.

    Missed fraud (label 1, score below threshold) costs its amount; every alert costs `review_cost`.
    The threshold minimising `total_cost` is the operating point this cost model recommends."""
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=int)
    amounts = np.asarray(amounts, dtype=float)
    if thresholds is None:
        thresholds = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, 101)))
        thresholds = np.append(thresholds, np.inf)  # alert on nothing
    order = np.argsort(scores)
    s_sorted = scores[order]
    fraud_amount_sorted = np.cumsum(np.where(labels[order] == 1, amounts[order], 0.0))
    fraud_count_sorted = np.cumsum(labels[order] == 1)
    rows = []
    for t in thresholds:
        below = int(np.searchsorted(s_sorted, t, side="left"))  # scores < t are not alerted
        missed_amount = float(fraud_amount_sorted[below - 1]) if below else 0.0
        missed = int(fraud_count_sorted[below - 1]) if below else 0
        alerts = len(scores) - below
        rows.append(
            CostPoint(
                threshold=float(t),
                alerts=alerts,
                missed_fraud=missed,
                missed_amount=missed_amount,
                review_cost=alerts * review_cost,
                total_cost=missed_amount + alerts * review_cost,
            ).__dict__
        )
    return pd.DataFrame(rows)


def pr_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    model_libraries_ready()
    from sklearn.metrics import (
        precision_recall_curve,
    )  # imported on use: see 'Start-up cost' in docs/architecture.md

    precision, recall, _ = precision_recall_curve(np.asarray(labels, int), np.asarray(scores, float))
    return precision, recall
