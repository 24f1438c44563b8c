"""`models/champion`, its gate, and the four-eyes approval that is the only way to move it.

The gate is a blocking asset check on models/evaluation: when the challenger does not beat the champion
(prequential AP by GATE_AP_MARGIN, CP@100 no worse), the check fails with ERROR severity, the training
run stops there and the check's description and metadata say why. A challenger that passes the gate is
NOT promoted: models/approval_request puts it up for approval with an evidence pack, it shadow-scores
live days, and a person decides.

A decision is a run of the `model_approval` job (models/champion with config `approver`, `decision`,
`reason`, `model_version`):
- approve: the version must be the one pending approval, and the approver must not be the identity that
  launched its training run (four eyes); the champion alias moves to it;
- reject: it stops waiting (and shadow scoring), nothing moves;
- rollback: the champion alias moves back to a former champion (the latest one by default);
- disable: the emergency switch; the version is never loaded again, and if it was the champion the
  alias falls back to the latest former champion.
Each decision appends one signed, chained event to models.model_events with who, when, why and the
SHA-256 of the evidence pack. In a training run (no decision) the asset acts only when no champion was
ever appointed: the first model that passed the bootstrap gate is auto-approved, recorded as such.
"""

import os

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from fraud_assets.defs.models.common import CODE_VERSION, OWNERS
from fraud_assets.defs.models.evidence import build_evidence, write_evidence
from fraud_assets.defs.models.schemas import MODEL_EVENTS_COLUMNS, MODEL_EVENTS_DESCRIPTIONS
from fraud_assets.lib.catalog_metadata import column_schema_metadata
from fraud_assets.lib.identity import USER_TAG, same_identity
from fraud_assets.lib.model_selection import (
    GATE_AP_MARGIN,
    GATE_CP_TOLERANCE,
    SANITY_MIN_AP_LIFT,
    SANITY_MIN_AUC,
    GateDecision,
    gate_decision,
)
from fraud_assets.lib.registry import (
    APPROVED,
    BOOTSTRAP_APPROVED,
    CHALLENGER,
    CHAMPION,
    DISABLED,
    EVENTS_TABLE,
    REJECTED,
    ROLLED_BACK,
    alias_history,
    append_event,
    current_alias,
    ensure_registry,
    former_champions,
    get_version,
    load_version,
    pending_request,
    pending_version,
    verify_registry,
    version_status,
)
from fraud_assets.lib.warehouse import table_metadata
from fraud_assets.resources import ModelStore

EVALUATION_KEY = dg.AssetKey(["models", "evaluation"])
APPROVAL_REQUEST_KEY = dg.AssetKey(["models", "approval_request"])
# Gate margins for tiny worlds (the end-to-end test): the gate only pre-selects now, a person approves.
GATE_AP_MARGIN_ENV = "FRAUD_GATE_AP_MARGIN"
GATE_CP_TOLERANCE_ENV = "FRAUD_GATE_CP_TOLERANCE"
DECISIONS = ("approve", "reject", "rollback", "disable")
BOOTSTRAP_ACTOR = "platform:bootstrap"


def decide(conn) -> GateDecision:
    ensure_registry(conn)
    challenger, champion = current_alias(conn, CHALLENGER), current_alias(conn, CHAMPION)
    return gate_decision(
        challenger,
        get_version(conn, challenger).metrics if challenger else None,
        champion,
        get_version(conn, champion).metrics if champion else None,
        ap_margin=float(os.environ.get(GATE_AP_MARGIN_ENV, GATE_AP_MARGIN)),
        cp_tolerance=float(os.environ.get(GATE_CP_TOLERANCE_ENV, GATE_CP_TOLERANCE)),
    )


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
        f"{f' (tolerance {GATE_CP_TOLERANCE})' if GATE_CP_TOLERANCE else ''}. With no champion yet, the "
        f"challenger must be clearly better than chance: AUC >= {SANITY_MIN_AUC}, AP >= "
        f"{SANITY_MIN_AP_LIFT} x the fraud rate, CP@100 > 0. Blocking: when it fails, nothing is put up "
        "for approval and the current champion keeps scoring; the check's description and metadata "
        "(`reason`, both models' AP, CP@100 and AUC) say why. Passing never promotes: a person approves."
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
    decision: str = Field(
        default="",
        description="approve | reject | rollback | disable. Empty (training runs): only the bootstrap "
        "auto-approval of the very first champion.",
    )
    model_version: str = Field(
        default="",
        description="The version decided on: the one pending approval (approve/reject), the version to "
        "disable, or the rollback target (empty: the latest former champion).",
    )
    approver: str = Field(
        default="", description="Who decides (recorded; must not have launched the training)."
    )
    reason: str = Field(default="", description="Why (recorded in models.model_events).")


class Refused(dg.Failure):
    """A decision the governance rules do not allow; the failed run is alerted."""


def _refuse(message: str) -> Refused:
    return Refused(description=f"refused: {message}")


def _check_approver(context: dg.AssetExecutionContext, config: ChampionConfig) -> str:
    approver = config.approver.strip()
    if config.decision not in DECISIONS:
        raise _refuse(f"decision must be one of {DECISIONS}, not {config.decision!r}")
    if not approver or not config.reason.strip():
        raise _refuse("a decision needs an `approver` and a `reason`")
    authenticated = (context.run.tags.get(USER_TAG) or "").strip()
    if authenticated and not same_identity(authenticated, approver):
        raise _refuse(
            f"approver {approver!r} is not the authenticated user who launched this run ({authenticated!r})"
        )
    return approver


def _evidence(conn, model_store: ModelStore, version: str, purpose: str, launcher: dict, gate: str | None):
    pack = build_evidence(
        conn,
        model_store.path,
        model_store.signer(),
        version,
        purpose=purpose,
        champion=current_alias(conn, CHAMPION),
        training_launcher=launcher,
        gate_reason=gate,
    )
    return write_evidence(model_store.path, pack)


def _launcher_of(request: dict | None) -> dict[str, str]:
    return {"launched_by": (request or {}).get("launched_by") or "unknown", "established_by": "registry"}


def _decide_on_pending(ctx: dict, version: str, decision: str) -> tuple[dict, str]:
    """approve / reject: only the version pending approval; approval needs a second person."""
    conn, store, approver = ctx["conn"], ctx["store"], ctx["approver"]
    pending = pending_version(conn)
    if not version or version != pending:
        status = version_status(conn, version) if version else "not given"
        raise _refuse(
            f"{version or '(no model_version)'} is not pending approval (status: {status}); "
            f"pending now: {pending or 'nothing'}"
        )
    request = pending_request(conn, version)
    approve = decision == "approve"
    if approve and same_identity(approver, request["launched_by"]):
        raise _refuse(
            f"four eyes: {approver!r} launched the training run of {version} "
            f"(run {get_version(conn, version).run_id}); another person must approve it"
        )
    if approve:
        load_version(conn, store.path, version, ctx["signer"])  # never promote what cannot be loaded
    path, digest, md = _evidence(conn, store, version, decision, _launcher_of(request), None)
    event = append_event(
        conn, ctx["signer"], APPROVED if approve else REJECTED, model_version=version,
        alias=CHAMPION if approve else None, to_version=version, actor=approver,
        launched_by=request["launched_by"], reason=ctx["reason"], evidence_path=path,
        evidence_sha256=digest, run_id=ctx["run_id"],
    )  # fmt: skip
    return event, md


def _rollback(ctx: dict, version: str) -> tuple[dict, str]:
    """Back to a former champion (the latest by default): it was approved once; never a new version."""
    conn, store = ctx["conn"], ctx["store"]
    former = former_champions(conn)
    target = version or (former[0] if former else "")
    if not target or target not in former:
        raise _refuse(
            f"rollback target {target or '(none)'} is not a former champion that may score again; "
            f"former champions: {former or 'none'}"
        )
    load_version(conn, store.path, target, ctx["signer"])  # refuse to roll back onto a broken artifact
    path, digest, md = _evidence(conn, store, target, "rollback", _launcher_of(None), None)
    event = append_event(
        conn, ctx["signer"], ROLLED_BACK, model_version=target, alias=CHAMPION, to_version=target,
        actor=ctx["approver"], reason=ctx["reason"], evidence_path=path, evidence_sha256=digest,
        run_id=ctx["run_id"],
    )  # fmt: skip
    return event, md


def _disable(ctx: dict, version: str) -> tuple[dict, str]:
    """The emergency switch: never loaded again; a disabled champion hands over to the latest former one."""
    conn = ctx["conn"]
    if not version:
        raise _refuse("disable needs the `model_version` to disable")
    get_version(conn, version, ctx["signer"])
    if version_status(conn, version) == "disabled":
        raise _refuse(f"{version} is already disabled")
    moves = version == current_alias(conn, CHAMPION)
    fallback = next((v for v in former_champions(conn) if v != version), None)
    event = append_event(
        conn, ctx["signer"], DISABLED, model_version=version, alias=CHAMPION if moves else None,
        to_version=fallback if moves else None, actor=ctx["approver"], reason=ctx["reason"],
        run_id=ctx["run_id"],
    )  # fmt: skip
    return event, ""


def apply_decision(context, config: ChampionConfig, conn, model_store: ModelStore) -> tuple[dict, str]:
    """Apply one decision; returns (the event appended, markdown of its evidence or '')."""
    ctx = {
        "conn": conn,
        "store": model_store,
        "signer": model_store.signer(),
        "approver": _check_approver(context, config),
        "reason": config.reason.strip(),
        "run_id": context.run.run_id,
    }
    version = config.model_version.strip()
    if config.decision in ("approve", "reject"):
        return _decide_on_pending(ctx, version, config.decision)
    if config.decision == "rollback":
        return _rollback(ctx, version)
    return _disable(ctx, version)


def bootstrap(context, conn, model_store: ModelStore) -> tuple[dict, str] | None:
    """The first champion: the version pending approval, auto-approved only if no champion was ever
    appointed (after an emergency disable of the last champion, a person approves the next one)."""
    if alias_history(conn, CHAMPION):
        return None
    version = pending_version(conn)
    if version is None:
        raise dg.Failure("no champion yet and no challenger pending approval: the gate did not pass")
    signer = model_store.signer()
    load_version(conn, model_store.path, version, signer)
    request = pending_request(conn, version)
    path, digest, md = _evidence(
        conn, model_store, version, "bootstrap", _launcher_of(request), request["reason"]
    )
    event = append_event(
        conn, signer, BOOTSTRAP_APPROVED, model_version=version, alias=CHAMPION, to_version=version,
        actor=BOOTSTRAP_ACTOR, launched_by=request["launched_by"],
        reason=f"bootstrap: no champion existed, first model auto-approved ({request['reason']})",
        evidence_path=path, evidence_sha256=digest, run_id=context.run.run_id,
    )  # fmt: skip
    return event, md


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
        if config.decision:
            event, evidence_md = apply_decision(context, config, conn, model_store)
        else:
            done = bootstrap(context, conn, model_store)
            if done is None:
                pending = pending_version(conn)
                context.log.info(
                    f"champion {current_alias(conn, CHAMPION)} stays: "
                    f"{pending + ' awaits approval (model_approval job)' if pending else 'nothing to decide'}"
                )
                return
            event, evidence_md = done
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
            "registry_head_event_id": int(head["head_event_id"]),
            "registry_key_id": head["key_id"],
        }
    )
    if mv is not None:
        md["family"] = mv.family
        md["artifact_sha256"] = mv.artifact_sha256
        md.update({k: float(v) for k, v in mv.metrics.items() if k.endswith(("_mean", "_std"))})
        card = model_store.path / "cards" / f"{current}.embedded.md"
        if card.is_file():
            md["model_card"] = dg.MetadataValue.md(card.read_text())
    if evidence_md:
        md["evidence"] = dg.MetadataValue.md(evidence_md)
    yield dg.MaterializeResult(metadata=md, data_version=dg.DataVersion(current or "none"))


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
