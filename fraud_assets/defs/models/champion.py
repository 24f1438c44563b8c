"""`models/champion` and its gate.

The gate is a blocking asset check on models/evaluation: when the challenger does not beat the champion
(prequential AP by GATE_AP_MARGIN, CP@100 no worse), the check fails with ERROR severity, so
models/champion does not run and the champion stays; the check's description and metadata say why.
With no champion yet, the first challenger that passes absolute sanity becomes champion.

Rollback: the `rollback_champion` job materialises models/champion with `rollback: true`, moving the
alias back to the previous champion (or to `to_version`). Every move is an append to models.alias_events.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from fraud_assets.defs.models.common import CODE_VERSION, OWNERS
from fraud_assets.defs.models.schemas import ALIAS_EVENTS_COLUMNS, ALIAS_EVENTS_DESCRIPTIONS
from fraud_assets.lib.catalog_metadata import column_schema_metadata
from fraud_assets.lib.model_selection import (
    GATE_AP_MARGIN,
    GATE_CP_TOLERANCE,
    SANITY_MIN_AP_LIFT,
    SANITY_MIN_AUC,
    GateDecision,
    gate_decision,
)
from fraud_assets.lib.registry import (
    CHALLENGER,
    CHAMPION,
    current_alias,
    ensure_registry,
    get_version,
    load_version,
    move_alias,
    previous_champion,
)
from fraud_assets.lib.warehouse import table_metadata
from fraud_assets.resources import ModelStore

EVALUATION_KEY = dg.AssetKey(["models", "evaluation"])


def decide(conn) -> GateDecision:
    ensure_registry(conn)
    challenger, champion = current_alias(conn, CHALLENGER), current_alias(conn, CHAMPION)
    return gate_decision(
        challenger,
        get_version(conn, challenger).metrics if challenger else None,
        champion,
        get_version(conn, champion).metrics if champion else None,
    )


@dg.asset_check(
    asset=EVALUATION_KEY,
    name="champion_gate",
    blocking=True,
    pool="duckdb",
    description=(
        "Champion gate: should the new model (the `challenger`, the best candidate of this training run) "
        "replace the model that scores production traffic (the `champion`)? Passes only if the "
        "challenger's prequential average precision (mean over the validation folds) beats the champion's "
        f"by at least {GATE_AP_MARGIN} AND its Card Precision@100 (share of truly compromised cards among "
        "the 100 cards investigators would review per day) is no worse"
        f"{f' (tolerance {GATE_CP_TOLERANCE})' if GATE_CP_TOLERANCE else ''}. With no champion yet, the "
        f"challenger must be clearly better than chance: AUC >= {SANITY_MIN_AUC}, AP >= "
        f"{SANITY_MIN_AP_LIFT} x the fraud rate, CP@100 > 0. Blocking: when it fails, models/champion "
        "does not run and the current champion keeps scoring; the check's description and metadata "
        "(`reason`, both models' AP, CP@100 and AUC) say why. Rollback: the rollback_champion job."
    ),
)
def champion_gate(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as conn:
        d = decide(conn)
        ch = get_version(conn, d.challenger).metrics if d.challenger else {}
        cp = get_version(conn, d.champion).metrics if d.champion else {}
    metadata: dict[str, object] = {
        "reason": d.reason,
        "challenger": str(d.challenger),
        "champion": str(d.champion),
    }
    for prefix, m in (("challenger", ch), ("champion", cp)):
        for name in ("average_precision_mean", "card_precision_at_100_mean", "auc_mean"):
            if name in m:
                metadata[f"{prefix}_{name}"] = float(m[name])
    return dg.AssetCheckResult(
        passed=d.promote,
        severity=dg.AssetCheckSeverity.ERROR,
        description=d.reason,
        metadata=metadata,
    )


class ChampionConfig(dg.Config):
    rollback: bool = Field(
        default=False, description="Move the champion alias back instead of applying the gate."
    )
    to_version: str = Field(
        default="", description="Rollback target; empty: the champion the current one replaced."
    )
    reason: str = Field(default="", description="Why (recorded in models.alias_events).")


@dg.asset(
    key=["models", "champion"],
    group_name="models",
    owners=OWNERS,
    kinds={"python", "duckdb"},
    code_version=CODE_VERSION,
    pool="duckdb",
    deps=[EVALUATION_KEY],
    # Its table is the alias history it appends to.
    metadata=column_schema_metadata(ALIAS_EVENTS_COLUMNS, descriptions=ALIAS_EVENTS_DESCRIPTIONS),
    description=(
        "The model version that scores production traffic, for the scoring layer and the people accountable "
        "for it. Promotes the challenger when the blocking champion_gate check passed (or rolls back with "
        "config `rollback: true`), by appending to models.alias_events; verifies the champion's artifact "
        "loads through the checked loader; shows its model card and metrics."
    ),
)
def champion(
    context: dg.AssetExecutionContext, config: ChampionConfig, duckdb: DuckDBResource, model_store: ModelStore
) -> dg.MaterializeResult:
    run_id = context.run.run_id
    with duckdb.get_connection() as conn:
        ensure_registry(conn)
        if config.rollback:
            target = config.to_version or previous_champion(conn)
            if not target:
                raise dg.Failure("rollback: there is no previous champion to restore")
            get_version(conn, target)
            load_version(conn, model_store.path, target)  # refuse to roll back onto a broken artifact
            move_alias(conn, CHAMPION, target, f"rollback: {config.reason or 'manual rollback'}", run_id)
            action = f"rolled back to {target}"
        else:
            d = decide(conn)
            if d.promote:
                load_version(conn, model_store.path, d.challenger)  # never promote an artifact we cannot load
                move_alias(conn, CHAMPION, d.challenger, d.reason, run_id)
            action = d.reason
        current = current_alias(conn, CHAMPION)
        if current is None:
            raise dg.Failure(f"no champion: {action}")
        mv = get_version(conn, current)
        md = table_metadata(
            conn,
            "models.alias_events",
            where="alias = 'champion'",
            descriptions=ALIAS_EVENTS_DESCRIPTIONS,
            preview_columns=["event_id", "from_version", "to_version", "event_at", "reason"],
        )
    context.log.info(f"champion {current}: {action}")
    card = model_store.path / "cards" / f"{current}.embedded.md"
    md.update(
        {
            "champion": current,
            "family": mv.family,
            "action": action,
            "artifact_sha256": mv.artifact_sha256,
            **{k: float(v) for k, v in mv.metrics.items() if k.endswith(("_mean", "_std"))},
        }
    )
    if card.is_file():
        md["model_card"] = dg.MetadataValue.md(card.read_text())
    return dg.MaterializeResult(metadata=md, data_version=dg.DataVersion(current))


rollback_champion_job = dg.define_asset_job(
    "rollback_champion",
    selection=dg.AssetSelection.assets(["models", "champion"]),
    description=(
        "Move the champion alias back. Config: ops.models__champion.config = {rollback: true, to_version: "
        "'<version or empty for the previous champion>', reason: '<why>'} (docs/models.md)."
    ),
    config={"ops": {"models__champion": {"config": {"rollback": True, "to_version": "", "reason": ""}}}},
)
