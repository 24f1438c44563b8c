"""`models/evaluation`: the candidates side by side, re-scored from their saved artifacts.

Each family's newest registered version is loaded through the signed registry and the checked loader
(so a tampered row or artifact fails here, before the gate), scored on the fold-0 test window, and
described by a model card and an expected-cost curve. The best candidate by prequential AP becomes the
`challenger`. The champion is re-scored on the same window, so the gate compares the two on the same
transactions, not only on prequential figures of folds from different periods.
"""

import re
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from fraud_assets.defs.models.candidates import FAMILIES, candidate_key
from fraud_assets.defs.models.common import (
    CODE_VERSION,
    EVALUATION_TABLE,
    EXPECTED_COST_TABLE,
    OWNERS,
    TRAINING_SET_TABLE,
)
from fraud_assets.defs.models.model_card import publish_cards_dir, write_card
from fraud_assets.defs.models.schemas import EVALUATION_COLUMNS, EVALUATION_DESCRIPTIONS
from fraud_assets.defs.models.snapshots import current_digest
from fraud_assets.lib.catalog_metadata import column_schema_metadata
from fraud_assets.lib.markdown import figures_table
from fraud_assets.lib.metrics import METRIC_NAMES, classification_metrics, expected_cost_curve
from fraud_assets.lib.model_selection import compute_threads
from fraud_assets.lib.registry import (
    CHALLENGER,
    CHAMPION,
    ModelVersion,
    current_alias,
    ensure_registry,
    get_version,
    head_metadata,
    head_observation,
    move_alias,
    verify_chain,
)
from fraud_assets.lib.warehouse import replace_partition, table_exists, table_metadata
from fraud_assets.resources import ModelStore

_FOLD_KEY = re.compile(r"^fold(\d+)_(.+)$")
RELOADED = "reloaded_artifact"


class EvaluationConfig(dg.Config):
    review_cost: float = Field(default=5.0, description="Cost of one alert review (EUR) for the cost curve.")
    cards_dir: str = Field(
        default="",
        description="Where model cards are published besides the model store (e.g. docs/models of the "
        "repository); empty: $FRAUD_MODEL_CARDS_DIR, or nowhere else when that is unset.",
    )


def latest_candidates(conn) -> list[ModelVersion]:
    """The newest registered version of each family trained on the current training set: one trained
    on an earlier set (its family failed in the last run, a run materialised the evaluation alone) is
    no candidate, and re-scored on this set's fold-0 test window it could be scored on its own
    training rows."""
    ensure_registry(conn)
    rows = conn.execute(
        "SELECT arg_max(model_version, created_at) FROM models.model_versions WHERE family IN "
        "(SELECT unnest(?::VARCHAR[])) AND data_hash = ? GROUP BY family ORDER BY family",
        [list(FAMILIES), current_digest(conn)],
    ).fetchall()
    return [get_version(conn, r[0]) for r in rows]


def same_window_refusal(mv: ModelVersion, test: pd.DataFrame) -> str | None:
    """Why the champion `mv` cannot be scored on this fold-0 test window (None: it can): its features
    are no longer in the training set, or it was trained on rows of the window (a model trained later
    than the current training set, e.g. the set was rebuilt for an earlier period)."""
    missing = [c for c in mv.feature_columns if c not in test.columns]
    if missing:
        return f"its features {missing[:3]} are not in the current training set"
    start = pd.Timestamp(test["business_date"].min()).date() if len(test) else None
    if start is None:
        return "the fold-0 test window is empty"
    if mv.train_end is None or mv.train_end >= start:
        return f"it was trained through {mv.train_end}, not before the test window ({start})"
    return None


def same_window_figures(conn, versions: list[str]) -> dict[str, dict[str, float]] | None:
    """The re-scored fold-0 figures of `versions` from ONE models/evaluation (same test window, same
    transactions), by version; None unless every version has them from the same evaluation."""
    if not table_exists(conn, EVALUATION_TABLE) or not versions:
        return None
    rows = conn.execute(
        f"SELECT model_version, metric, value, evaluated_at FROM {EVALUATION_TABLE} "
        "WHERE scope = ? AND model_version IN (SELECT unnest(?::VARCHAR[]))",
        [RELOADED, versions],
    ).fetchall()
    if len({at for *_, at in rows}) != 1 or {v for v, *_ in rows} != set(versions):
        return None
    figures: dict[str, dict[str, float]] = {v: {} for v in versions}
    for version, metric, value, _ in rows:
        figures[version][metric] = float(value)
    return figures


def evaluation_rows(mv: ModelVersion, reloaded: dict[str, float], at: datetime) -> pd.DataFrame:
    """Long format: one row per (version, scope, fold, metric)."""
    rows = []
    for key, value in mv.metrics.items():
        if m := _FOLD_KEY.match(key):
            rows.append(("fold", int(m.group(1)), m.group(2), value))
        elif key.endswith("_mean") or key.endswith("_std"):
            name, scope = key.rsplit("_", 1)
            rows.append((scope, None, name, value))
    rows += [(RELOADED, 0, k, v) for k, v in reloaded.items()]
    df = pd.DataFrame(rows, columns=["scope", "fold", "metric", "value"])
    return df.assign(model_version=mv.model_version, family=mv.family, evaluated_at=at)[
        ["model_version", "family", "scope", "fold", "metric", "value", "evaluated_at"]
    ]


@dg.asset(
    key=["models", "evaluation"],
    group_name="models",
    owners=OWNERS,
    kinds={"python", "scikit-learn", "duckdb"},
    code_version=CODE_VERSION,
    pool="duckdb",
    deps=[candidate_key(f) for f in FAMILIES],
    metadata=column_schema_metadata(EVALUATION_COLUMNS, descriptions=EVALUATION_DESCRIPTIONS),
    description=(
        "Side-by-side evaluation of the newest candidate of each model family, for the champion gate and "
        "for model reviewers. Loads each artifact through the signed registry and the checked loader "
        "(signature chain, SHA-256, pinned trust list), "
        "re-scores the fold-0 test window, writes per-fold and prequential metrics to models.evaluation "
        "(long format) and the expected-cost curve to models.expected_cost, renders a model card per "
        "version, and points the `challenger` alias at the best candidate by prequential AP. The "
        "champion is re-scored on the same window (`reloaded_artifact` rows of the same `evaluated_at`) "
        "for the gate's like-for-like comparison, unless it was trained on rows of that window or its "
        "features are gone (`champion_same_window` in the metadata says which)."
    ),
)
def evaluation(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    duckdb: DuckDBResource,
    model_store: ModelStore,
) -> dg.MaterializeResult:
    now = datetime.now(UTC).replace(tzinfo=None)
    publish = Path(config.cards_dir) if config.cards_dir else publish_cards_dir()
    cards_dirs = [model_store.path / "cards", *([publish] if publish else [])]
    with duckdb.get_connection() as conn:
        candidates = latest_candidates(conn)
        if not candidates:
            raise dg.Failure(
                "no candidate trained on the current models/training_set in models.model_versions: "
                "materialise the candidates first"
            )
        # In the snapshot's order: the table's own row order is the engine's, and the cost curve's sums
        # should not move in the last bits from one run to the next.
        test = conn.execute(
            f"SELECT * FROM {TRAINING_SET_TABLE} WHERE fold = 0 AND split = 'test' ORDER BY transaction_id"
        ).df()
        signer = model_store.signer()
        loaded = {mv.model_version: model_store.load(conn, mv.model_version)[0] for mv in candidates}
        champion, same_window = current_alias(conn, CHAMPION), "no champion yet"
        if champion and champion not in loaded:
            champion_mv = get_version(conn, champion, signer)
            refusal = same_window_refusal(champion_mv, test)
            if refusal is None:
                loaded[champion] = model_store.load(conn, champion)[0]
                same_window = f"{champion} re-scored on the same fold-0 test window"
            else:
                same_window = f"{champion} not re-scored: {refusal}"
        elif champion:
            same_window = f"{champion} is among the candidates"

    def rescore(mv: ModelVersion) -> tuple[np.ndarray, dict[str, float]]:
        with compute_threads():
            scores = loaded[mv.model_version].predict_proba(test[mv.feature_columns])[:, 1]
        return scores, classification_metrics(
            test[["business_date", "card_token", "label"]].assign(score=scores)
        )

    evals, costs, cards, summary = [], [], {}, []
    for mv in candidates:
        scores, reloaded = rescore(mv)
        labels = test["label"].to_numpy().astype(int)
        cost = expected_cost_curve(
            scores, labels, test["tx_amount"].to_numpy(), review_cost=config.review_cost
        )
        costs.append(
            cost.assign(model_version=mv.model_version, family=mv.family, review_unit_cost=config.review_cost)
        )
        evals.append(evaluation_rows(mv, reloaded, now))
        cards[mv.family] = write_card(mv, labels, scores, cost, cards_dirs)
        summary.append(
            {
                "family": mv.family,
                "model_version": mv.model_version,
                **{f"{n}_mean": mv.metrics.get(f"{n}_mean") for n in METRIC_NAMES},
                **{f"{n}_std": mv.metrics.get(f"{n}_std") for n in METRIC_NAMES},
                **{f"fold0_{n}": reloaded[n] for n in METRIC_NAMES},
                "min_expected_cost": float(cost["total_cost"].min()),
                # The operating point the cost model recommends (threshold inf = alert on nothing).
                "min_cost_threshold": float(cost.loc[cost["total_cost"].idxmin(), "threshold"]),
                "min_cost_alerts": float(cost.loc[cost["total_cost"].idxmin(), "alerts"]),
            }
        )
    summary_df = pd.DataFrame(summary).sort_values("average_precision_mean", ascending=False)
    best = summary_df.iloc[0]["model_version"]
    versions = [mv.model_version for mv in candidates]
    evaluated = list(versions)
    champion_figures: dict[str, float] = {}
    if champion in loaded and champion not in versions:
        _, champion_figures = rescore(champion_mv)
        # Its rows now describe this window: fold/mean/std come back from the registry unchanged.
        evals.append(evaluation_rows(champion_mv, champion_figures, now))
        evaluated.append(champion)
    with duckdb.get_connection() as conn:
        replace_partition(
            conn, EVALUATION_TABLE, pd.concat(evals, ignore_index=True), "model_version", evaluated
        )
        replace_partition(
            conn, EXPECTED_COST_TABLE, pd.concat(costs, ignore_index=True), "model_version", versions
        )
        if current_alias(conn, CHALLENGER) != best:
            chosen = move_alias(
                conn,
                CHALLENGER,
                best,
                "best newest candidate by prequential AP",
                context.run.run_id,
                signer=signer,
            )
            context.log_event(head_observation(context.asset_key, chosen))
        md = table_metadata(
            conn,
            EVALUATION_TABLE,
            where="model_version IN (SELECT unnest(?::VARCHAR[]))",
            params=[evaluated],
            descriptions=EVALUATION_DESCRIPTIONS,
        )
        md.update(head_metadata(verify_chain(conn, signer)))
    md["challenger"] = best
    md["champion_same_window"] = same_window
    md["comparison"] = dg.MetadataValue.md(figures_table(summary_df))
    for row in summary:
        for k, v in row.items():
            if k not in ("family", "model_version") and v is not None and np.isfinite(v):
                md[f"{row['family']}/{k}"] = float(v)
    for name, value in champion_figures.items():
        if np.isfinite(value):
            md[f"champion/fold0_{name}"] = float(value)
    for family, card in cards.items():
        md[f"model_card_{family}"] = dg.MetadataValue.md(card)
    return dg.MaterializeResult(metadata=md)
