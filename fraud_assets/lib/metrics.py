"""Fraud-detection metrics, computed the way the Fraud Detection Handbook (Le Borgne et al.) defines them.

- AUC ROC and average precision over all test transactions (sklearn).
- Card Precision@k: per test day, each card's maximum score and maximum label; the k highest-scoring
  cards are what investigators can review; precision = compromised cards among them / k. Cards detected
  on an earlier day are removed from later days (an investigator does not re-review a blocked card).
  The figure is the mean over days.
- Expected cost: a missed fraud costs its amount, an alert costs one review.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

METRIC_NAMES = ("auc", "average_precision", "card_precision_at_100")


def card_precision_at_k(
    df: pd.DataFrame,
    k: int = 100,
    *,
    day_col: str = "business_date",
    card_col: str = "card_token",
    score_col: str = "score",
    label_col: str = "label",
    remove_detected: bool = True,
) -> tuple[float, list[float]]:
    """Mean Card Precision@k over days and the per-day values (days in increasing order)."""
    detected: set = set()
    per_day: list[float] = []
    for _, day in sorted(df.groupby(day_col), key=lambda kv: kv[0]):
        if remove_detected and detected:
            day = day[~day[card_col].isin(detected)]
        cards = day.groupby(card_col, sort=False).agg(score=(score_col, "max"), label=(label_col, "max"))
        # Stable sort so ties keep a deterministic order (card order of first appearance).
        top = cards.sort_values("score", ascending=False, kind="mergesort").head(k)
        hits = top.index[top["label"] == 1]
        per_day.append(len(hits) / k)
        if remove_detected:
            detected.update(hits)
    return (float(np.mean(per_day)) if per_day else float("nan")), per_day


def classification_metrics(
    df: pd.DataFrame, k: int = 100, *, score_col: str = "score", label_col: str = "label"
) -> dict[str, float]:
    """AUC, AP and CP@k for a scored test set (columns business_date, card_token, score, label)."""
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
    from sklearn.metrics import (
        precision_recall_curve,
    )  # imported on use: see 'Start-up cost' in docs/architecture.md

    precision, recall, _ = precision_recall_curve(np.asarray(labels, int), np.asarray(scores, float))
    return precision, recall
