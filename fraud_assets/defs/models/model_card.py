"""Model cards: one markdown page per model version, with its PR curve, score distribution and
expected-cost curve as PNG.

The card goes into asset metadata (PNG embedded as a data URI so the Dagster UI shows it without file
access), into the model store beside the artifact (`$FRAUD_DATA_DIR/models/cards/`), and, when asked
(`$FRAUD_MODEL_CARDS_DIR` or the evaluation's `cards_dir`), into a publishing directory such as the
repository's `docs/models/` (the benchmark publishes its handbook cards there). A platform running from a
checkout therefore never writes into the working tree by itself.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from fraud_assets.lib.metrics import CARD_PRECISION_DEFINITION, pr_curve
from fraud_assets.lib.registry import ModelVersion

CARDS_DIR_ENV = "FRAUD_MODEL_CARDS_DIR"


def publish_cards_dir() -> Path | None:
    """`$FRAUD_MODEL_CARDS_DIR` when set: where cards are published besides the model store."""
    value = os.environ.get(CARDS_DIR_ENV, "").strip()
    return Path(value) if value else None


def _pyplot():
    """matplotlib's pyplot on the headless Agg backend (assets run in worker processes without a display),
    imported on first use: see 'Start-up cost' in docs/architecture.md."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def pr_curve_png(labels: np.ndarray, scores: np.ndarray, title: str) -> bytes:
    precision, recall = pr_curve(labels, scores)
    fig, ax = _pyplot().subplots(figsize=(4.5, 3.5))
    ax.plot(recall, precision, lw=1.5)
    ax.axhline(float(np.mean(labels)), color="grey", ls="--", lw=1, label="random")
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper right")
    return _png(fig)


def score_distribution_png(labels: np.ndarray, scores: np.ndarray, title: str) -> bytes:
    fig, ax = _pyplot().subplots(figsize=(4.5, 3.5))
    bins = np.linspace(0, 1, 41)
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, density=True, label="genuine")
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, density=True, label="fraud")
    ax.set(xlabel="score", ylabel="density (log)", title=title, yscale="log")
    ax.legend()
    return _png(fig)


def expected_cost_png(cost: pd.DataFrame, title: str) -> bytes:
    """Total expected cost (missed fraud amount + reviews) against the number of alerts; the minimum
    is the operating point this cost model recommends."""
    fig, ax = _pyplot().subplots(figsize=(4.5, 3.5))
    c = cost.sort_values("alerts")
    x = c["alerts"].clip(lower=1)  # log axis: 'alert on nothing' drawn at 1
    ax.plot(x, c["total_cost"], lw=1.5, label="total")
    ax.plot(x, c["missed_amount"], lw=1, ls="--", label="missed fraud")
    ax.plot(x, c["review_cost"], lw=1, ls=":", label="reviews")
    if len(c):
        best = c.loc[c["total_cost"].idxmin()]
        ax.scatter([max(best["alerts"], 1)], [best["total_cost"]], color="black", zorder=3, label="minimum")
    ax.set(xlabel="alerts (transactions at or above threshold)", ylabel="EUR", title=title, xscale="log")
    ax.legend(fontsize="small")
    return _png(fig)


def _metrics_table(mv: ModelVersion) -> str:
    m = mv.metrics
    rows = []
    for name, label in (
        ("auc", "AUC ROC"),
        ("average_precision", "Average precision"),
        ("card_precision_at_100", "Card Precision@100"),
    ):
        rows.append(
            {
                "metric": label,
                "prequential mean": m.get(f"{name}_mean"),
                "prequential std": m.get(f"{name}_std"),
                "most recent split (fold 0)": m.get(f"fold0_{name}"),
            }
        )
    return pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f")


def _selection_section(mv: ModelVersion) -> str:
    """The configurations the prequential selection tried (registry metrics `search<i>_<column>`) and why
    the chosen one won."""
    rows: dict[int, dict[str, float]] = {}
    for key, value in mv.metrics.items():
        head, _, column = key.partition("_")
        if head.startswith("search") and head[6:].isdigit():
            rows.setdefault(int(head[6:]), {"config": int(head[6:])})[column] = value
    if not rows:
        return "Trained with the parameters given (no selection)."
    table = pd.DataFrame([rows[i] for i in sorted(rows)])
    chosen = table[table["chosen"] == 1].iloc[0]
    return (
        f"{len(table)} configurations validated prequentially on the same folds; the chosen one (config "
        f"{int(chosen['config'])}: {int(chosen['train_days'])}-day training window"
        f"{', balanced class weights' if chosen['balanced'] else ''}) has the best mean AP on folds 1.. "
        f"({chosen['selection_average_precision']:.4f}; within 0.001, the best CP@100, then the cheapest). "
        "Fold 0 is held out of the choice: its figures above estimate the chosen configuration.\n\n"
        + table.to_markdown(index=False, floatfmt=".4f")
    )


def render_card(
    mv: ModelVersion, labels: np.ndarray, scores: np.ndarray, cost: pd.DataFrame, image_ref: dict[str, str]
) -> str:
    """The card's markdown; `image_ref` maps 'pr', 'dist' and 'cost' to an image URL (data URI or file
    name)."""
    best = cost.loc[cost["total_cost"].idxmin()] if len(cost) else None
    cost_line = (
        f"Minimum expected cost on the fold-0 test window: {best['total_cost']:,.0f} EUR at threshold "
        f"{best['threshold']:.3f} ({int(best['alerts'])} alerts, {int(best['missed_fraud'])} missed frauds)."
        if best is not None
        else ""
    )
    params = ", ".join(f"`{k}={v}`" for k, v in sorted(mv.params.items()))
    return f"""# Model card: {mv.model_version}

**Family:** {mv.family} · **Created:** {mv.created_at:%Y-%m-%d %H:%M} UTC · **Code:** {mv.code_version}

## Intended use
Rank the card transactions of a business day by fraud risk so investigators review the most suspicious
cards first (the daily top-k alert queue, `scoring.fraud_alerts`). Scores are probabilities from a model
trained on labelled history; they are a prioritisation aid, not an automatic decline decision.

## Training
- Training window (fold 0): {mv.train_start} .. {mv.train_end}; label delay {mv.delay_days} days;
  test window {mv.test_start} .. {mv.test_end}; {mv.n_folds} prequential folds.
- Labels: frauds reported by the training cut-off (point in time).
- Features ({len(mv.feature_columns)}): {", ".join(f"`{c}`" for c in mv.feature_columns)}
- Parameters: {params}
- Data hash `{mv.data_hash[:16]}…`, params hash `{mv.params_hash[:16]}…`,
  artifact SHA-256 `{mv.artifact_sha256}`.

## Model selection
{_selection_section(mv)}

## Metrics
{_metrics_table(mv)}

{CARD_PRECISION_DEFINITION}

{cost_line}

![Precision-recall curve]({image_ref["pr"]}) ![Score distribution]({image_ref["dist"]})
![Expected cost]({image_ref["cost"]})

## Limitations
- Evaluated on simulated or historical data with the labels known at evaluation time; frauds reported
  later than the evaluation are counted as genuine.
- Cards already known to be compromised are removed from test days: figures describe new-fraud detection.
- The gate compares prequential figures recorded at training time (folds of different periods are not
  strictly comparable) and both models re-scored on the same fold-0 test window (one week: noisy).
- Fraud patterns drift: monitor `monitoring.model_performance` and retrain when it degrades.
"""


def write_card(
    mv: ModelVersion, labels: np.ndarray, scores: np.ndarray, cost: pd.DataFrame, dirs: list[Path]
) -> str:
    """Write the card (with PNG files) into each of `dirs`; return the markdown with embedded images."""
    title = f"{mv.family} fold 0"
    pngs = {
        "pr": pr_curve_png(labels, scores, f"PR curve, {title}"),
        "dist": score_distribution_png(labels, scores, f"Scores, {title}"),
        "cost": expected_cost_png(cost, f"Expected cost, {title}"),
    }
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        names = {k: f"{mv.model_version}_{k}.png" for k in pngs}
        for k, data in pngs.items():
            (d / names[k]).write_bytes(data)
        (d / f"{mv.model_version}.md").write_text(render_card(mv, labels, scores, cost, names))
    uris = {k: "data:image/png;base64," + base64.b64encode(v).decode() for k, v in pngs.items()}
    embedded = render_card(mv, labels, scores, cost, uris)
    if dirs:  # self-contained copy for the champion asset's metadata
        (dirs[0] / f"{mv.model_version}.embedded.md").write_text(embedded)
    return embedded
