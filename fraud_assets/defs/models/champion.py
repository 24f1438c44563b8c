"""`models/champion`, the gate in front of it, and the `model_approval` job that moves it.

The gate is a blocking asset check on models/evaluation: when the challenger does not beat the champion
(AP by GATE_AP_MARGIN, CP@100 no worse; prequentially and re-scored on the same test window), the
check fails with ERROR severity, the training run stops there and the check's description and metadata
say why. A challenger that passes the gate is NOT promoted: models/approval_request puts it up for
approval with an evidence pack, it shadow-scores live days, and a person decides in a run of
`model_approval` (decisions.py: approve, reject, rollback, disable, each a signed event in
models.model_events). In a training run (no decision) the champion moves only at bootstrap, when no
champion was ever appointed.
"""

import os

import dagster as dg
import numpy as np
from dagster_duckdb import DuckDBResource

from fraud_assets.defs.models.common import CODE_VERSION, OWNERS
from fraud_assets.defs.models.decisions import ChampionConfig, apply_decision, bootstrap
from fraud_assets.defs.models.evaluation import same_window_figures
from fraud_assets.defs.models.schemas import MODEL_EVENTS_COLUMNS, MODEL_EVENTS_DESCRIPTIONS
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
    EVENTS_TABLE,
    HEAD_ID_KEY,
    HEAD_SIGNATURE_KEY,
    current_alias,
    ensure_registry,
    get_version,
    head_observation,
    pending_version,
    verify_chain,
    verify_registry,
)
from fraud_assets.lib.warehouse import table_metadata
from fraud_assets.resources import ModelStore

EVALUATION_KEY = dg.AssetKey(["models", "evaluation"])
APPROVAL_REQUEST_KEY = dg.AssetKey(["models", "approval_request"])
# Gate margins for tiny worlds (the end-to-end test): the gate only pre-selects; a person approves.
GATE_AP_MARGIN_ENV = "FRAUD_GATE_AP_MARGIN"
GATE_CP_TOLERANCE_ENV = "FRAUD_GATE_CP_TOLERANCE"


def decide(conn) -> GateDecision:
    return _decide(conn)[0]


def _decide(conn) -> tuple[GateDecision, dict[str, dict[str, float]] | None]:
    """The gate's decision, and the same-window figures by version it compared (None: none)."""
    ensure_registry(conn)
    challenger, champion = current_alias(conn, CHALLENGER), current_alias(conn, CHAMPION)
    same = same_window_figures(conn, [challenger, champion]) if challenger and champion else None
    decision = gate_decision(
        challenger,
        get_version(conn, challenger).metrics if challenger else None,
        champion,
        get_version(conn, champion).metrics if champion else None,
        ap_margin=float(os.environ.get(GATE_AP_MARGIN_ENV, GATE_AP_MARGIN)),
        cp_tolerance=float(os.environ.get(GATE_CP_TOLERANCE_ENV, GATE_CP_TOLERANCE)),
        same_window=(same[challenger], same[champion]) if same else None,
    )
    return decision, same


@dg.asset_check(
    asset=EVALUATION_KEY,
    name="champion_gate",
    blocking=True,
    pool="duckdb",
    description=(
        "Champion gate: may the new model (the `challenger`, the best candidate of this training run) be "
        "put up for approval to replace the model that scores production traffic (the `champion`)? Passes "
        "only if the challenger's prequential average precision (mean over the validation folds) beats "
        f"the champion's by at least {GATE_AP_MARGIN} AND its Card Precision@100 (share of truly "
        "compromised cards among the 100 cards investigators would review per day) is no worse"
        f"{f' (tolerance {GATE_CP_TOLERANCE})' if GATE_CP_TOLERANCE else ''}, and the same holds with both "
        "models re-scored on the same fold-0 test window (models/evaluation re-scores the champion there "
        "unless it was trained on rows of it). With no champion yet, the "
        f"challenger must be clearly better than chance: AUC >= {SANITY_MIN_AUC}, AP >= "
        f"{SANITY_MIN_AP_LIFT} x the fraud rate, CP@100 > 0. Blocking: when it fails, nothing is put up "
        "for approval and the current champion keeps scoring; the check's description and metadata "
        "(`reason`, both models' AP, CP@100 and AUC) say why. Passing never promotes: a person approves."
    ),
)
def champion_gate(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as conn:
        d, same = _decide(conn)
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
    for prefix, version in (("challenger", d.challenger), ("champion", d.champion)):
        for name in ("average_precision", "card_precision_at_100", "auc"):
            if same and np.isfinite(same[version].get(name, np.nan)):
                metadata[f"{prefix}_same_window_{name}"] = float(same[version][name])
    return dg.AssetCheckResult(
        passed=d.promote,
        severity=dg.AssetCheckSeverity.ERROR,
        description=d.reason,
        metadata=metadata,
    )


@dg.asset(
    key=["models", "champion"],
    group_name="models",
    owners=OWNERS,
    kinds={"python", "duckdb"},
    code_version=CODE_VERSION,
    pool="duckdb",
    deps=[APPROVAL_REQUEST_KEY],
    output_required=False,  # a training run with a champion in place leaves it alone: no materialisation
    # Its table is the governance ledger it appends to.
    metadata=column_schema_metadata(MODEL_EVENTS_COLUMNS, descriptions=MODEL_EVENTS_DESCRIPTIONS),
    description=(
        "The model version that scores production traffic, for the scoring layer and the people accountable "
        "for it. Moves only by a decision: a run of the model_approval job (approve, reject, rollback, "
        "disable; four eyes: the approver may not be who launched the training), or, once, the bootstrap "
        "auto-approval when no champion was ever appointed. Every decision is a signed, chained event in "
        "models.model_events with who, when, why and the evidence pack's SHA-256; the champion's artifact "
        "is verified through the signed registry before it moves."
    ),
)
def champion(
    context: dg.AssetExecutionContext, config: ChampionConfig, duckdb: DuckDBResource, model_store: ModelStore
):
    with duckdb.get_connection() as conn:
        ensure_registry(conn)
        verify_chain(conn, model_store.signer(), model_store.anchor())
        if config.decision:
            event, evidence_md = apply_decision(context, config, conn, model_store)
        else:
            done = bootstrap(context, conn, model_store)
            if done is None:
                pending, current = pending_version(conn), current_alias(conn, CHAMPION)
                # No champion here means the last one was disabled with nothing to fall back to.
                holder = f"champion {current} stays" if current else "no champion (the last one was disabled)"
                context.log.info(
                    f"{holder}: "
                    f"{pending + ' awaits approval (model_approval job)' if pending else 'nothing to decide'}"
                )
                return
            event, evidence_md = done
        # Anchored now, before anything below can fail the step (docs/governance.md, the head).
        context.log_event(head_observation(context.asset_key, event))
        head = verify_registry(conn, model_store.signer())
        current = current_alias(conn, CHAMPION)
        md = table_metadata(
            conn,
            EVENTS_TABLE,
            descriptions=MODEL_EVENTS_DESCRIPTIONS,
            preview_columns=["event_id", "event", "model_version", "actor", "reason"],
        )
        mv = get_version(conn, current) if current else None
    action = f"{event['event']} {event['model_version']} by {event['actor']}: {event['reason']}"
    context.log.info(f"champion {current}: {action}")
    md.update(
        {
            "champion": current or "none",
            "action": action,
            "decision": event["event"],
            "decided_version": event["model_version"],
            "approver": event["actor"],
            "training_launched_by": event["launched_by"] or "",
            "evidence_path": event["evidence_path"] or "",
            "evidence_sha256": event["evidence_sha256"] or "",
            "event_id": int(event["event_id"]),
            "event_signature": event["signature"],
            HEAD_ID_KEY: int(head["head_event_id"]),
            HEAD_SIGNATURE_KEY: head["head_signature"],
            "registry_key_id": head["key_id"],
        }
    )
    if mv is not None:
        md["family"] = mv.family
        md["artifact_sha256"] = mv.artifact_sha256
        md.update(headline_metrics(mv.metrics))
        card = model_store.path / "cards" / f"{current}.embedded.md"
        if card.is_file():
            md["model_card"] = dg.MetadataValue.md(card.read_text())
    if evidence_md:
        md["evidence"] = dg.MetadataValue.md(evidence_md)
    yield dg.MaterializeResult(metadata=md, data_version=dg.DataVersion(current or "none"))


def headline_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The model's prequential means and spreads, plotted per promotion; not the hyperparameter search's
    per-configuration figures (`search<n>_...`, in the model card), which describe the candidates."""
    headline = {k: v for k, v in metrics.items() if not k.startswith("search")}
    return {k: float(v) for k, v in headline.items() if k.endswith(("_mean", "_std"))}


model_approval_job = dg.define_asset_job(
    "model_approval",
    selection=dg.AssetSelection.assets(["models", "champion"]),
    description=(
        "A decision on the champion, by a named person: approve or reject the challenger pending approval, "
        "roll back to a former champion, or disable a model (emergency switch). Config: "
        "ops.models__champion.config = {decision, model_version, approver, reason} (docs/governance.md). "
        "Refused when the approver launched the training run of the version to approve."
    ),
    config={
        "ops": {
            "models__champion": {
                "config": {"decision": "approve", "model_version": "", "approver": "", "reason": ""}
            }
        }
    },
    # Ahead of queued daily work: an emergency disable should not wait behind a backfill.
    tags={"dagster/priority": "10"},
)
