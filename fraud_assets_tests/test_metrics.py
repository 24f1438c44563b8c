"""Fraud metrics as the Fraud Detection Handbook defines them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from fraud_assets.lib.metrics import card_precision_at_k, classification_metrics, expected_cost_curve


def _day(day: str, rows: list[tuple[str, float, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["card_token", "score", "label"]).assign(business_date=day)


def test_card_precision_uses_each_cards_max_score_and_max_label():
    # Card a: one fraud among two transactions, max score 0.9 -> it is the top card and compromised.
    df = _day("d1", [("a", 0.9, 0), ("a", 0.1, 1), ("b", 0.5, 0), ("c", 0.4, 1)])
    mean, per_day = card_precision_at_k(df, k=1)
    assert per_day == [1.0]
    assert mean == 1.0


def test_card_precision_divides_by_k_even_when_fewer_cards():
    df = _day("d1", [("a", 0.9, 1), ("b", 0.5, 1)])
    assert card_precision_at_k(df, k=100)[0] == pytest.approx(2 / 100)


def test_cards_detected_on_an_earlier_day_are_removed_from_later_days():
    d1 = _day("2018-08-08", [("a", 0.9, 1), ("b", 0.1, 0)])
    d2 = _day("2018-08-09", [("a", 0.95, 1), ("b", 0.2, 0)])
    _, per_day = card_precision_at_k(pd.concat([d1, d2]), k=1)
    assert per_day == [1.0, 0.0]  # day 2: a was already detected, so b is the top card


def test_a_card_with_a_fraud_reported_before_the_day_is_removed_from_it():
    day = _day("2018-08-09", [("a", 0.9, 1), ("b", 0.5, 0)])
    reported_the_day_before = pd.Series({"a": pd.Timestamp("2018-08-08 15:00")})
    reported_that_day = pd.Series({"a": pd.Timestamp("2018-08-09 15:00")})
    # Known before the day: a is blocked, b is the top card. Reported during the day: a is still ranked.
    assert card_precision_at_k(day, k=1, known_since=reported_the_day_before)[1] == [0.0]
    assert card_precision_at_k(day, k=1, known_since=reported_that_day)[1] == [1.0]


def test_tied_cards_rank_by_card_token_whatever_the_row_order():
    day = _day("2018-08-08", [("b", 0.7, 0), ("a", 0.7, 1), ("c", 0.7, 0)])
    assert card_precision_at_k(day, k=1)[1] == [1.0]  # a, first by token, takes the one place
    assert card_precision_at_k(day.iloc[::-1], k=1)[1] == [1.0]


def test_auc_and_ap_are_transaction_level_sklearn_figures():
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "business_date": rng.choice(["d1", "d2"], 500),
            "card_token": rng.choice(list("abcdefghij"), 500),
            "label": rng.random(500) < 0.1,
            "score": rng.random(500),
        }
    ).astype({"label": int})
    m = classification_metrics(df)
    assert m["auc"] == pytest.approx(roc_auc_score(df["label"], df["score"]))
    assert m["average_precision"] == pytest.approx(average_precision_score(df["label"], df["score"]))


def test_expected_cost_counts_missed_fraud_amounts_and_review_costs():
    scores = np.array([0.9, 0.8, 0.2, 0.1])
    labels = np.array([1, 0, 1, 0])
    amounts = np.array([100.0, 50.0, 30.0, 10.0])
    curve = expected_cost_curve(
        scores, labels, amounts, review_cost=5.0, thresholds=np.array([0.5, np.inf, 0.0])
    )
    at_half, none, everything = curve.to_dict("records")
    assert (at_half["alerts"], at_half["missed_amount"], at_half["total_cost"]) == (2, 30.0, 40.0)
    assert (none["alerts"], none["total_cost"]) == (0, 130.0)
    assert (everything["alerts"], everything["total_cost"]) == (4, 20.0)
