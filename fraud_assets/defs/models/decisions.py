"""Decisions on the champion: what a run of the `model_approval` job may do, and the bootstrap.

- approve: the version must be the one pending approval, and the approver must not be the identity that
  launched its training run (four eyes); the champion alias moves to it;
- reject: it stops waiting (and shadow scoring), nothing moves;
- rollback: the champion alias moves back to a former champion (the latest one by default), by someone
  other than the identity that launched its training (putting a withdrawn model back is a promotion);
- disable: the emergency switch; the version is never loaded again, and if it was the champion the
  alias falls back to the latest former champion that still loads and that the person disabling did not
  train (the fallback is a rollback: four eyes).
Each decision appends one signed, chained event to models.model_events with who, when, why and the
SHA-256 of the evidence pack it was taken on. A refused decision fails the run (and is alerted).
"""

import dagster as dg
from pydantic import Field

from fraud_assets.defs.models.evidence import build_evidence, write_evidence
from fraud_assets.lib.identity import USER_TAG, same_identity
from fraud_assets.lib.registry import (
    APPROVED,
    BOOTSTRAP_APPROVED,
    CHAMPION,
    DISABLED,
    REJECTED,
    ROLLED_BACK,
    alias_history,
    append_event,
    current_alias,
    former_champions,
    get_version,
    pending_request,
    pending_version,
    version_status,
)
from fraud_assets.resources import ModelStore

DECISIONS = ("approve", "reject", "rollback", "disable")
BOOTSTRAP_ACTOR = "platform:bootstrap"


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


def _four_eyes(conn, approver: str, version: str, request: dict | None, what: str) -> None:
    """Refuse when `approver` launched the training of `version` (its approval request names who)."""
    if same_identity(approver, (request or {}).get("launched_by")):
        raise _refuse(
            f"four eyes: {approver!r} launched the training run of {version} "
            f"(run {get_version(conn, version).run_id}); another person must {what}"
        )


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
    if approve:
        _four_eyes(conn, approver, version, request, "approve it")
        store.load(conn, version)  # never promote what cannot be loaded
    # The gate's reason the request was made on, so the decision's pack is complete on its own.
    path, digest, md = _evidence(conn, store, version, decision, _launcher_of(request), request["reason"])
    event = append_event(
        conn, ctx["signer"], APPROVED if approve else REJECTED, model_version=version,
        alias=CHAMPION if approve else None, to_version=version, actor=approver,
        launched_by=request["launched_by"], reason=ctx["reason"], evidence_path=path,
        evidence_sha256=digest, run_id=ctx["run_id"],
    )  # fmt: skip
    return event, md


def _rollback(ctx: dict, version: str) -> tuple[dict, str]:
    """Back to a former champion (the latest by default): it was approved once; never a new version, and
    never by its own trainer."""
    conn, store = ctx["conn"], ctx["store"]
    former = former_champions(conn)
    target = version or (former[0] if former else "")
    if not target or target not in former:
        raise _refuse(
            f"rollback target {target or '(none)'} is not a former champion that may score again; "
            f"former champions: {former or 'none'}"
        )
    request = pending_request(conn, target)
    _four_eyes(conn, ctx["approver"], target, request, "put it back")
    store.load(conn, target)  # refuse to roll back onto a broken artifact
    path, digest, md = _evidence(conn, store, target, "rollback", _launcher_of(request), None)
    event = append_event(
        conn, ctx["signer"], ROLLED_BACK, model_version=target, alias=CHAMPION, to_version=target,
        actor=ctx["approver"], launched_by=(request or {}).get("launched_by"), reason=ctx["reason"],
        evidence_path=path, evidence_sha256=digest, run_id=ctx["run_id"],
    )  # fmt: skip
    return event, md


def _loadable_fallback(ctx: dict, disabled: str) -> str | None:
    """The most recent former champion that still loads (verified row, artifact hash, trust list): a
    fallback that cannot score would only move the failure to the next scoring run. Never one whose
    training the person disabling launched: the fallback puts a withdrawn model back, as a rollback does
    (four eyes). None when none qualifies: scoring then stops with a clear error until a person approves
    a challenger or rolls back."""
    for v in former_champions(ctx["conn"]):
        if v == disabled:
            continue
        if same_identity(ctx["approver"], (pending_request(ctx["conn"], v) or {}).get("launched_by")):
            ctx["log"].warning(
                f"former champion {v} cannot take over: {ctx['approver']} launched its training (four eyes: "
                "another person may roll back to it)"
            )
            continue
        try:
            ctx["store"].load(ctx["conn"], v)
        except Exception as exc:  # noqa: BLE001 - any reason it cannot load rules it out, and is said
            ctx["log"].warning(f"former champion {v} cannot take over ({type(exc).__name__}: {exc})")
            continue
        return v
    return None


def _disable(ctx: dict, version: str) -> tuple[dict, str]:
    """The emergency switch: never loaded again; a disabled champion hands over to the latest former one."""
    conn = ctx["conn"]
    if not version:
        raise _refuse("disable needs the `model_version` to disable")
    get_version(conn, version, ctx["signer"])
    if version_status(conn, version) == "disabled":
        raise _refuse(f"{version} is already disabled")
    moves = version == current_alias(conn, CHAMPION)
    fallback = _loadable_fallback(ctx, version) if moves else None
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
        "log": context.log,
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
    model_store.load(conn, version)
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
