"""`models/evaluation`: the candidates side by side, re-scored from their saved artifacts.

Each family's newest registered version is loaded through the signed registry and the checked loader
(so a tampered row or artifact fails here, before the gate), scored on the fold-0 test window, and
described by a model card
and an expected-cost curve. The best candidate by prequential AP becomes the `challenger`.
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
from fraud_assets.lib.metrics import METRIC_NAMES, classification_metrics, expected_cost_curve
from fraud_assets.lib.model_selection import compute_threads
from fraud_assets.lib.registry import (
    CHALLENGER,
    ModelVersion,
    current_alias,
    ensure_registry,
    get_version,
    head_metadata,
    move_alias,
    verify_chain,
)
from fraud_assets.lib.warehouse import replace_partition, table_metadata
from fraud_assets.resources import ModelStore

_FOLD_KEY = re.compile(r"^fold(\d+)_(.+)$")


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


def evaluation_rows(mv: ModelVersion, reloaded: dict[str, float], at: datetime) -> pd.DataFrame:
    """Long format: one row per (version, scope, fold, metric)."""
    rows = []
    for key, value in mv.metrics.items():
        if m := _FOLD_KEY.match(key):
            rows.append(("fold", int(m.group(1)), m.group(2), value))
        elif key.endswith("_mean") or key.endswith("_std"):
            name, scope = key.rsplit("_", 1)
            rows.append((scope, None, name, value))
    rows += [("reloaded_artifact", 0, k, v) for k, v in reloaded.items()]
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
        "version, and points the `challenger` alias at the best candidate by prequential AP."
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

    evals, costs, cards, summary = [], [], {}, []
    for mv in candidates:
        with compute_threads():
            scores = loaded[mv.model_version].predict_proba(test[mv.feature_columns])[:, 1]
        labels = test["label"].to_numpy().astype(int)
        reloaded = classification_metrics(test[["business_date", "card_token", "label"]].assign(score=scores))
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
    with duckdb.get_connection() as conn:
        replace_partition(
            conn, EVALUATION_TABLE, pd.concat(evals, ignore_index=True), "model_version", versions
        )
        replace_partition(
            conn, EXPECTED_COST_TABLE, pd.concat(costs, ignore_index=True), "model_version", versions
        )
        if current_alias(conn, CHALLENGER) != best:
            move_alias(
                conn,
                CHALLENGER,
                best,
                "best newest candidate by prequential AP",
                context.run.run_id,
                signer=signer,
            )
        md = table_metadata(
            conn,
            EVALUATION_TABLE,
            where="model_version IN (SELECT unnest(?::VARCHAR[]))",
            params=[versions],
            descriptions=EVALUATION_DESCRIPTIONS,
        )
        md.update(head_metadata(verify_chain(conn, signer)))
    md["challenger"] = best
    md["comparison"] = dg.MetadataValue.md(summary_df.to_markdown(index=False, floatfmt=".4f"))
    for row in summary:
        for k, v in row.items():
            if k not in ("family", "model_version") and v is not None and np.isfinite(v):
                md[f"{row['family']}/{k}"] = float(v)
    for family, card in cards.items():
        md[f"model_card_{family}"] = dg.MetadataValue.md(card)
    return dg.MaterializeResult(metadata=md)
