"""Pure metric functions for monitoring (no Dagster, no DuckDB), so they are tested on their own."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraud_assets.defs.monitoring.thresholds import PSI_ACT, PSI_BINS, PSI_WARN
from fraud_assets.lib.model_io import model_libraries_ready

EPS = 1e-4  # floor for empty bins so ln(c/r) stays finite


def psi(reference: pd.Series, current: pd.Series, bins: int = PSI_BINS) -> float:
    """Population stability index of `current` against `reference`: sum (c - r) * ln(c / r) over bins.

    Bins are reference deciles (so each holds ~10 % of the reference); a feature with few distinct values
    (flags, counts of 0-3) is binned by value instead, because its deciles collapse."""
    ref = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype=float)
    cur = pd.to_numeric(current, errors="coerce").dropna().to_numpy(dtype=float)
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    values = np.unique(ref)
    if len(values) <= bins:
        # Categories: each reference value, plus one bin for values the reference never saw.
        ref_idx = np.searchsorted(values, ref)
        cur_pos = np.searchsorted(values, cur)
        known = (cur_pos < len(values)) & (values[np.minimum(cur_pos, len(values) - 1)] == cur)
        cur_idx = np.where(known, cur_pos, len(values))
        n_bins = len(values) + 1
    else:
        edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
        ref_idx = np.searchsorted(edges, ref, side="right")
        cur_idx = np.searchsorted(edges, cur, side="right")
        n_bins = len(edges) + 1
    r = np.bincount(ref_idx, minlength=n_bins) / len(ref)
    c = np.bincount(cur_idx, minlength=n_bins) / len(cur)
    r, c = np.maximum(r, EPS), np.maximum(c, EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_status(value: float) -> str:
    if value != value:  # NaN: nothing to compare
        return "no_data"
    if value >= PSI_ACT:
        return "act"
    if value >= PSI_WARN:
        return "warn"
    return "ok"


def average_precision(y_true: pd.Series, score: pd.Series) -> float:
    """AP, or NaN for a day without both classes (AP is undefined there, not zero)."""
    y = np.asarray(y_true, dtype=int)
    if len(y) == 0 or y.min() == y.max():
        return float("nan")
    model_libraries_ready()
    from sklearn.metrics import (
        average_precision_score,
    )  # imported on use: see 'Start-up cost' in docs/architecture.md

    return float(average_precision_score(y, np.asarray(score, dtype=float)))


def alert_precision(day: pd.DataFrame, score_col: str, budget: int, label_col: str = "label") -> float:
    """Share of the day's top-`budget` cards (by each card's highest score) that had a fraud: what the
    investigators' queue of that day found, with no card removed (Card Precision removes the known ones)."""
    cards = day.groupby("card_token").agg(score=(score_col, "max"), label=(label_col, "max"))
    top = cards.sort_values("score", ascending=False, kind="mergesort").head(budget)
    return float(top["label"].mean()) if len(top) else float("nan")
