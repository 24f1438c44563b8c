"""`models/approval_request`: a challenger that passed the gate waits for a person, with its evidence.

Runs in the training run after the blocking champion_gate passed. It records who launched the run that
trained the challenger (the identity the four-eyes rule compares the approver with: read from Dagster's
record of that run, whichever run asks), writes the evidence pack, and appends
a signed `pending_approval` event; a version still waiting from an earlier run is `superseded`. From then
on the challenger shadow-scores every new day (scoring/shadow_scores) until someone decides.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource

from fraud_assets.defs.models.champion import EVALUATION_KEY, decide
from fraud_assets.defs.models.common import CODE_VERSION, OWNERS, TRAINED_BY_HOW_KEY, TRAINED_BY_KEY
from fraud_assets.defs.models.evidence import build_evidence, write_evidence
from fraud_assets.defs.models.schemas import MODEL_EVENTS_COLUMNS, MODEL_EVENTS_DESCRIPTIONS
from fraud_assets.lib.catalog_metadata import column_schema_metadata
from fraud_assets.lib.registry import (
    CHAMPION,
    EVENTS_TABLE,
    PENDING_APPROVAL,
    SUPERSEDED,
    ModelVersion,
    alias_history,
    append_event,
    current_alias,
    get_version,
    head_metadata,
    head_observation,
    pending_request,
    pending_version,
    verify_chain,
    version_status,
)
from fraud_assets.lib.warehouse import table_metadata
from fraud_assets.resources import ModelStore

GATE_ACTOR = "platform:champion_gate"
# A version in one of these states was decided on; a new training run does not ask again.
DECIDED = ("approved", "rejected", "disabled")


def training_launcher(instance: dg.DagsterInstance, mv: ModelVersion) -> tuple[str, str]:
    """Who launched the run that trained `mv`, as its candidate step recorded it in that run (in that
    run's process): the run asking for approval may be another (a re-execution, a materialisation of
    the request alone), launched by someone else, with another FRAUD_OPERATOR. A version whose training
    Dagster has no such record of is not put up for approval."""
    if mv.run_id:
        for entry in instance.all_logs(mv.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            md = entry.asset_materialization.metadata if entry.asset_materialization else {}
            if TRAINED_BY_KEY in md and md.get("model_version") == dg.TextMetadataValue(mv.model_version):
                return str(md[TRAINED_BY_KEY].value), str(md[TRAINED_BY_HOW_KEY].value)
    raise dg.Failure(
        description=f"cannot tell who trained {mv.model_version}: its training run {mv.run_id or '(none)'} "
        "recorded no trainer in this Dagster instance's event log; retrain it to put a challenger up for "
        "approval"
    )


@dg.asset(
    key=["models", "approval_request"],
    group_name="models",
    owners=OWNERS,
    kinds={"python", "duckdb"},
    code_version=CODE_VERSION,
    pool="duckdb",
    deps=[EVALUATION_KEY],
    metadata=column_schema_metadata(MODEL_EVENTS_COLUMNS, descriptions=MODEL_EVENTS_DESCRIPTIONS),
    description=(
        "The challenger awaiting approval, for the approver and the auditor: runs after the blocking "
        "champion_gate passed, records the identity that launched the training run, writes the evidence "
        "pack (model card, prequential comparison, data/code/parameter hashes, feature drift at training; "
        "the shadow comparison is added at decision time) and appends a signed `pending_approval` event "
        "to models.model_events. Nothing is promoted here: a person decides (model_approval job)."
    ),
)
def approval_request(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, model_store: ModelStore
) -> dg.MaterializeResult:
    signer = model_store.signer()
    with duckdb.get_connection() as conn:
        verify_chain(conn, signer, model_store.anchor())
        gate = decide(conn)
        if not gate.promote:
            raise dg.Failure(description=f"the champion gate does not pass: {gate.reason}")
        version, status = gate.challenger, version_status(conn, gate.challenger)
        markdown, launched_by, established_by = "", "", ""
        if status == "pending_approval":
            launched_by, established_by = pending_request(conn, version)["launched_by"] or "", "registry"
            action = f"{version} already awaits approval"
        elif status in DECIDED:
            action = f"{version} was already {status}: not asked again"
        else:
            trained = get_version(conn, version, signer)
            launched_by, established_by = training_launcher(context.instance, trained)
            waiting = pending_version(conn)
            if waiting is not None:
                superseded = append_event(
                    conn, signer, SUPERSEDED, model_version=waiting, actor=GATE_ACTOR,
                    reason=f"superseded by {version} (training run {context.run.run_id})",
                    run_id=context.run.run_id,
                )  # fmt: skip
                context.log_event(head_observation(context.asset_key, superseded))
            pack = build_evidence(
                conn,
                model_store.path,
                signer,
                version,
                purpose="request",
                champion=current_alias(conn, CHAMPION),
                training_launcher={"launched_by": launched_by, "established_by": established_by},
                gate_reason=gate.reason,
            )
            path, digest, markdown = write_evidence(model_store.path, pack)
            requested = append_event(
                conn, signer, PENDING_APPROVAL, model_version=version, actor=GATE_ACTOR,
                launched_by=launched_by, reason=gate.reason, evidence_path=path, evidence_sha256=digest,
                run_id=context.run.run_id,
            )  # fmt: skip
            context.log_event(head_observation(context.asset_key, requested))
            action = f"{version} awaits approval (training launched by {launched_by}, {established_by})"
            if not alias_history(conn, CHAMPION):
                # Said here, or the page keeps reading "awaits approval" after the bootstrap approved it.
                action += "; no champion was ever appointed, so models/champion approves it (bootstrap)"
        md = table_metadata(
            conn,
            EVENTS_TABLE,
            where="event = ?",
            params=[PENDING_APPROVAL],
            descriptions=MODEL_EVENTS_DESCRIPTIONS,
            preview_columns=["event_id", "event", "model_version", "launched_by", "reason"],
        )
        pending = pending_version(conn)
        md.update(head_metadata(verify_chain(conn, signer)))
    context.log.info(action)
    md.update(
        {
            "pending_version": pending or "none",
            "action": action,
            "training_launched_by": launched_by,
            "identity_established_by": established_by,
            "gate_reason": gate.reason,
        }
    )
    if markdown:
        md["evidence"] = dg.MetadataValue.md(markdown)
    return dg.MaterializeResult(metadata=md)
