"""The model registry: two append-only DuckDB tables, every row signed with a key kept outside them.

- `models.model_versions`: one row per trained model version (never updated): family, params and their
  hash, feature columns, windows, data hash, code version and revision, seed, metrics, artifact path and
  SHA-256, and an HMAC `signature` over all of it.
- `models.model_events`: the governance ledger, one row per decision: a challenger chosen, a version
  put up for approval, approved (or auto-approved at bootstrap), rejected, superseded, rolled back,
  disabled. Each event signs its own content AND the previous event's signature (a chain), so an edited
  event, a deleted one in the middle, or an old approval copied to the end all break verification.
  The holder of an alias (`champion`, `challenger`) is the `to_version` of its latest event.

Signatures use `FRAUD_REGISTRY_KEY` (lib/signing.py), which the warehouse never holds: someone who can
write DuckDB can still not register a model, move the champion or replay an approval. `load_version` is
the way a model is loaded: it verifies the chain and the version's row, refuses a disabled version, then
loads the artifact through the checked loader (SHA-256 + the trust list pinned in code).

This module only INSERTs and SELECTs; nothing in the platform updates or deletes registry rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from fraud_assets.lib.model_io import load_model
from fraud_assets.lib.signing import Signer
from fraud_assets.lib.training_provenance import code_revision, training_environment
from fraud_assets.lib.warehouse import transaction

CHAMPION = "champion"
CHALLENGER = "challenger"
ALIASES = (CHAMPION, CHALLENGER)

VERSIONS_TABLE = "models.model_versions"
EVENTS_TABLE = "models.model_events"
GENESIS = "genesis"  # the `prev_signature` of the first event

# Events of the ledger, and the status each gives the version it names.
CHALLENGER_CHOSEN = "challenger_chosen"
PENDING_APPROVAL = "pending_approval"
APPROVED = "approved"
BOOTSTRAP_APPROVED = "bootstrap_approved"
REJECTED = "rejected"
SUPERSEDED = "superseded"
ROLLED_BACK = "rolled_back"
DISABLED = "disabled"
STATUS_OF_EVENT = {
    PENDING_APPROVAL: "pending_approval",
    APPROVED: "approved",
    BOOTSTRAP_APPROVED: "approved",
    ROLLED_BACK: "approved",
    REJECTED: "rejected",
    SUPERSEDED: "superseded",
    DISABLED: "disabled",
}
EVENTS = (CHALLENGER_CHOSEN, *STATUS_OF_EVENT)

_VERSIONS_DDL = f"""
CREATE TABLE IF NOT EXISTS {VERSIONS_TABLE} (
    model_version VARCHAR PRIMARY KEY,
    family VARCHAR NOT NULL,
    params_json VARCHAR NOT NULL,
    params_hash VARCHAR NOT NULL,
    feature_columns_json VARCHAR NOT NULL,
    train_start DATE,
    train_end DATE,
    delay_days INTEGER,
    test_start DATE,
    test_end DATE,
    n_folds INTEGER,
    data_hash VARCHAR NOT NULL,
    code_version VARCHAR NOT NULL,
    code_revision VARCHAR NOT NULL,
    environment_json VARCHAR NOT NULL,
    seed INTEGER NOT NULL,
    metrics_json VARCHAR NOT NULL,
    artifact_path VARCHAR NOT NULL,
    artifact_sha256 VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    run_id VARCHAR,
    key_id VARCHAR NOT NULL,
    signature VARCHAR NOT NULL
)
"""
VERSION_SIGNED_COLUMNS = (
    "model_version",
    "family",
    "params_json",
    "params_hash",
    "feature_columns_json",
    "train_start",
    "train_end",
    "delay_days",
    "test_start",
    "test_end",
    "n_folds",
    "data_hash",
    "code_version",
    "code_revision",
    "environment_json",
    "seed",
    "metrics_json",
    "artifact_path",
    "artifact_sha256",
    "created_at",
    "run_id",
    "key_id",
)

_EVENTS_DDL = f"""
CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} (
    event_id BIGINT PRIMARY KEY,
    event VARCHAR NOT NULL,
    model_version VARCHAR,
    alias VARCHAR,
    from_version VARCHAR,
    to_version VARCHAR,
    actor VARCHAR NOT NULL,
    launched_by VARCHAR,
    reason VARCHAR NOT NULL,
    evidence_path VARCHAR,
    evidence_sha256 VARCHAR,
    event_at TIMESTAMP NOT NULL,
    run_id VARCHAR,
    key_id VARCHAR NOT NULL,
    prev_signature VARCHAR NOT NULL,
    signature VARCHAR NOT NULL
)
"""
EVENT_SIGNED_COLUMNS = (
    "event_id",
    "event",
    "model_version",
    "alias",
    "from_version",
    "to_version",
    "actor",
    "launched_by",
    "reason",
    "evidence_path",
    "evidence_sha256",
    "event_at",
    "run_id",
    "key_id",
    "prev_signature",
)


# The assets that append to the ledger. Each records the head it left (HEAD_METADATA) in its
# materialisation, in Dagster's event log, which the warehouse's writers cannot edit: the anchor that
# shows events deleted from the end of the ledger, which the chain alone cannot.
LEDGER_WRITERS = (("models", "evaluation"), ("models", "approval_request"), ("models", "champion"))
HEAD_ID_KEY = "registry_head_event_id"
HEAD_SIGNATURE_KEY = "registry_head_signature"


@dataclass(frozen=True)
class Anchor:
    """The ledger's head as Dagster last recorded it: an event id and that event's signature (None in a
    record from before signatures were recorded: then the id alone is checked)."""

    event_id: int
    signature: str | None


class RegistryIntegrityError(RuntimeError):
    """A registry row or event does not verify: refuse, alert, investigate (docs/governance.md)."""


class DisabledModelError(RuntimeError):
    """The version was disabled with the emergency switch; it is never loaded again."""


def stable_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class ModelVersion:
    model_version: str
    family: str
    params: dict[str, Any]
    feature_columns: list[str]
    train_start: date | None
    train_end: date | None
    delay_days: int | None
    test_start: date | None
    test_end: date | None
    n_folds: int | None
    data_hash: str
    code_version: str
    metrics: dict[str, float]
    artifact_path: str
    artifact_sha256: str
    created_at: datetime = field(default_factory=_now)
    run_id: str | None = None
    seed: int = 0
    code_revision: str = field(default_factory=code_revision)
    environment: dict[str, str] = field(default_factory=training_environment)
    signature: str | None = None

    @property
    def params_hash(self) -> str:
        return stable_hash({"family": self.family, "params": self.params, "features": self.feature_columns})


def ensure_registry(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the registry tables if missing (and only then: a read-only auditor connection works)."""
    present = {
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'models' "
            "AND table_catalog = current_database()"
        ).fetchall()
    }
    if {"model_versions", "model_events"} <= present:
        return
    conn.execute("CREATE SCHEMA IF NOT EXISTS models")
    conn.execute(_VERSIONS_DDL)
    conn.execute(_EVENTS_DDL)


def _version_record(mv: ModelVersion, key_id: str) -> dict[str, Any]:
    """The row as stored (JSON columns as their text), in VERSION_SIGNED_COLUMNS order."""
    return {
        "model_version": mv.model_version,
        "family": mv.family,
        "params_json": json.dumps(mv.params, sort_keys=True, default=str),
        "params_hash": mv.params_hash,
        "feature_columns_json": json.dumps(mv.feature_columns),
        "train_start": mv.train_start,
        "train_end": mv.train_end,
        "delay_days": mv.delay_days,
        "test_start": mv.test_start,
        "test_end": mv.test_end,
        "n_folds": mv.n_folds,
        "data_hash": mv.data_hash,
        "code_version": mv.code_version,
        "code_revision": mv.code_revision,
        "environment_json": json.dumps(mv.environment, sort_keys=True),
        "seed": int(mv.seed),
        "metrics_json": json.dumps(mv.metrics, sort_keys=True),
        "artifact_path": mv.artifact_path,
        "artifact_sha256": mv.artifact_sha256,
        "created_at": mv.created_at,
        "run_id": mv.run_id,
        "key_id": key_id,
    }


def register_version(conn: duckdb.DuckDBPyConnection, mv: ModelVersion, signer: Signer) -> ModelVersion:
    """Append a signed row for `mv`; returns it with its signature."""
    ensure_registry(conn)
    record = _version_record(mv, signer.key_id)
    signature = signer.sign("model_version", record)
    columns = ", ".join([*record, "signature"])
    marks = ", ".join("?" for _ in range(len(record) + 1))
    conn.execute(f"INSERT INTO {VERSIONS_TABLE} ({columns}) VALUES ({marks})", [*record.values(), signature])
    return ModelVersion(**{**_fields(mv), "signature": signature})


def _fields(mv: ModelVersion) -> dict[str, Any]:
    return {f: getattr(mv, f) for f in mv.__dataclass_fields__}


def _row_to_version(row: dict[str, Any]) -> ModelVersion:
    return ModelVersion(
        model_version=row["model_version"],
        family=row["family"],
        params=json.loads(row["params_json"]),
        feature_columns=json.loads(row["feature_columns_json"]),
        train_start=row["train_start"],
        train_end=row["train_end"],
        delay_days=row["delay_days"],
        test_start=row["test_start"],
        test_end=row["test_end"],
        n_folds=row["n_folds"],
        data_hash=row["data_hash"],
        code_version=row["code_version"],
        metrics=json.loads(row["metrics_json"]),
        artifact_path=row["artifact_path"],
        artifact_sha256=row["artifact_sha256"],
        created_at=row["created_at"],
        run_id=row["run_id"],
        seed=row["seed"],
        code_revision=row["code_revision"],
        environment=json.loads(row["environment_json"]),
        signature=row["signature"],
    )


def _rows(conn: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _verify_version_row(row: dict[str, Any], signer: Signer) -> None:
    record = {c: row[c] for c in VERSION_SIGNED_COLUMNS}
    if not signer.verify("model_version", record, row["signature"]):
        raise RegistryIntegrityError(_mismatch(f"{VERSIONS_TABLE} row {row['model_version']!r}", row, signer))


def _mismatch(what: str, row: dict[str, Any], signer: Signer) -> str:
    if row.get("key_id") and row["key_id"] != signer.key_id:
        cause = (
            f"it was signed with key {row['key_id']}, not the configured key {signer.key_id} "
            "(FRAUD_REGISTRY_KEY differs from the one this registry was written with)"
        )
    else:
        cause = "its content or signature was changed after it was written, or it was never signed"
    return f"registry integrity: {what} does not verify: {cause}; refusing to use it (docs/governance.md)"


def get_version(
    conn: duckdb.DuckDBPyConnection, model_version: str, signer: Signer | None = None
) -> ModelVersion:
    """A registered version; verified against its signature when a signer is given."""
    ensure_registry(conn)
    rows = _rows(conn, f"SELECT * FROM {VERSIONS_TABLE} WHERE model_version = ?", [model_version])
    if not rows:
        raise KeyError(f"model version {model_version!r} is not in {VERSIONS_TABLE}")
    if signer is not None:
        _verify_version_row(rows[0], signer)
    return _row_to_version(rows[0])


def versions_of_run(conn: duckdb.DuckDBPyConnection, run_id: str) -> list[ModelVersion]:
    ensure_registry(conn)
    rows = _rows(conn, f"SELECT * FROM {VERSIONS_TABLE} WHERE run_id = ? ORDER BY created_at", [run_id])
    return [_row_to_version(r) for r in rows]


def latest_versions(conn: duckdb.DuckDBPyConnection, limit: int = 50) -> list[ModelVersion]:
    ensure_registry(conn)
    rows = _rows(conn, f"SELECT * FROM {VERSIONS_TABLE} ORDER BY created_at DESC LIMIT ?", [limit])
    return [_row_to_version(r) for r in rows]


# ---- the ledger ---------------------------------------------------------------------------------------


def events(conn: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    ensure_registry(conn)
    return _rows(conn, f"SELECT * FROM {EVENTS_TABLE} ORDER BY event_id")


def verify_chain(
    conn: duckdb.DuckDBPyConnection, signer: Signer, anchor: Anchor | None = None
) -> list[dict[str, Any]]:
    """Every event, verified: ids 1..n without gaps, each event's signature valid and chained to its
    predecessor's, and the `anchor` (the head Dagster recorded last) still in the chain. Returns the
    events; raises RegistryIntegrityError at the first that fails."""
    chain = events(conn)
    previous = GENESIS
    for position, ev in enumerate(chain, start=1):
        what = f"{EVENTS_TABLE} event {ev['event_id']} ({ev['event']} {ev['model_version']})"
        if ev["event_id"] != position:
            raise RegistryIntegrityError(
                f"registry integrity: {what} is at position {position} of the chain: an event was "
                "removed or inserted; refusing to use the registry (docs/governance.md)"
            )
        if ev["prev_signature"] != previous:
            raise RegistryIntegrityError(
                f"registry integrity: {what} is not chained to event {position - 1} (its prev_signature "
                "names another event: a copied or replayed event); refusing to use the registry "
                "(docs/governance.md)"
            )
        record = {c: ev[c] for c in EVENT_SIGNED_COLUMNS}
        if not signer.verify("model_event", record, ev["signature"]):
            raise RegistryIntegrityError(_mismatch(what, ev, signer))
        previous = ev["signature"]
    if anchor is not None:
        _check_anchor(chain, anchor)
    return chain


def _check_anchor(chain: list[dict[str, Any]], anchor: Anchor) -> None:
    if anchor.event_id <= 0:
        return
    held = chain[anchor.event_id - 1]["signature"] if anchor.event_id <= len(chain) else None
    if held is None or (anchor.signature is not None and held != anchor.signature):
        found = "is missing" if held is None else "now holds another event"
        raise RegistryIntegrityError(
            f"registry integrity: Dagster's event log recorded event {anchor.event_id} of {EVENTS_TABLE} "
            f"(signature {(anchor.signature or '?')[:16]}...), which {found}: events were removed from the "
            "end of the ledger, or the warehouse was replaced by another or an older copy; refusing to use "
            "the registry (docs/governance.md)"
        )


def head_metadata(chain: list[dict[str, Any]]) -> dict[str, Any]:
    """What a ledger writer records in its materialisation: the head it leaves (see LEDGER_WRITERS)."""
    return {
        HEAD_ID_KEY: int(chain[-1]["event_id"]) if chain else 0,
        HEAD_SIGNATURE_KEY: chain[-1]["signature"] if chain else GENESIS,
    }


def head_observation(asset_key: Any, event: dict[str, Any]) -> Any:
    """An AssetObservation naming the head a ledger writer just appended (`event`), to log at once: a step
    that fails after its append (and so never materialises) still leaves the head in Dagster's event log,
    so the event cannot be deleted unseen (an emergency disable whose run failed later is still one)."""
    import dagster as dg

    return dg.AssetObservation(asset_key=asset_key, metadata=head_metadata([event]))


def recorded_anchor(instance: Any) -> Anchor | None:
    """The highest head the ledger writers recorded in `instance` (a DagsterInstance): for each writer its
    newest materialisation, and its newest observation (head_observation), that names a head and came
    from a run (a runless "Report materialization" from the UI or the API is nobody's write and is passed
    over, so it cannot hide the head). None when no writer ever recorded one."""
    import dagster as dg

    anchors = []
    for key in LEDGER_WRITERS:
        for fetch in (instance.fetch_materializations, instance.fetch_observations):
            cursor, found = None, None
            while found is None:
                page = fetch(dg.AssetKey(list(key)), limit=100, cursor=cursor)
                found = next((a for rec in page.records if (a := _anchor_of(rec)) is not None), None)
                if not page.has_more:
                    break
                cursor = page.cursor
            if found is not None:
                anchors.append(found)
    return max(anchors, key=lambda a: a.event_id, default=None)


def _anchor_of(record: Any) -> Anchor | None:
    md = record.asset_event.metadata if record.asset_event else {}
    if not record.run_id or HEAD_ID_KEY not in md:
        return None
    signature = md.get(HEAD_SIGNATURE_KEY)
    return Anchor(int(md[HEAD_ID_KEY].value), str(signature.value) if signature is not None else None)


def verify_registry(
    conn: duckdb.DuckDBPyConnection, signer: Signer, anchor: Anchor | None = None
) -> dict[str, Any]:
    """The whole registry: the event chain (against `anchor` when given) and every version row. Returns
    counts and the chain head."""
    chain = verify_chain(conn, signer, anchor)
    rows = _rows(conn, f"SELECT * FROM {VERSIONS_TABLE} ORDER BY created_at")
    for row in rows:
        _verify_version_row(row, signer)
    registered = {r["model_version"] for r in rows}
    for ev in chain:
        for v in (ev["model_version"], ev["to_version"]):
            if v is not None and v not in registered:
                raise RegistryIntegrityError(
                    f"registry integrity: event {ev['event_id']} names {v!r}, which has no registered row"
                )
    head = chain[-1] if chain else None
    return {
        "versions": len(rows),
        "events": len(chain),
        "head_event_id": head["event_id"] if head else 0,
        "head_signature": head["signature"] if head else GENESIS,
        "key_id": signer.key_id,
    }


def append_event(
    conn: duckdb.DuckDBPyConnection,
    signer: Signer,
    event: str,
    *,
    model_version: str | None,
    actor: str,
    reason: str,
    alias: str | None = None,
    to_version: str | None = None,
    launched_by: str | None = None,
    evidence_path: str | None = None,
    evidence_sha256: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Append one signed, chained event (after verifying the chain it extends); returns it.

    With `alias`, the event moves that alias to `to_version` (None: nobody holds it any more)."""
    if event not in EVENTS:
        raise ValueError(f"unknown registry event {event!r}; expected one of {EVENTS}")
    if alias is not None and alias not in ALIASES:
        raise ValueError(f"unknown alias {alias!r}; expected one of {ALIASES}")
    if not actor or not reason:
        raise ValueError("a registry event needs an actor and a reason")
    ensure_registry(conn)
    for v in {model_version, to_version} - {None}:
        get_version(conn, v, signer)  # refuses a version that was never registered, or a tampered one
    with transaction(conn):
        chain = verify_chain(conn, signer)
        record = {
            "event_id": len(chain) + 1,
            "event": event,
            "model_version": model_version,
            "alias": alias,
            "from_version": current_alias(conn, alias) if alias else None,
            "to_version": to_version if alias else None,
            "actor": actor,
            "launched_by": launched_by,
            "reason": reason,
            "evidence_path": evidence_path,
            "evidence_sha256": evidence_sha256,
            "event_at": _now(),
            "run_id": run_id,
            "key_id": signer.key_id,
            "prev_signature": chain[-1]["signature"] if chain else GENESIS,
        }
        row = {**record, "signature": signer.sign("model_event", record)}
        columns = ", ".join(row)
        conn.execute(
            f"INSERT INTO {EVENTS_TABLE} ({columns}) VALUES ({', '.join('?' for _ in row)})",
            list(row.values()),
        )
    return row


def current_alias(conn: duckdb.DuckDBPyConnection, alias: str) -> str | None:
    ensure_registry(conn)
    row = conn.execute(
        f"SELECT to_version FROM {EVENTS_TABLE} WHERE alias = ? ORDER BY event_id DESC LIMIT 1", [alias]
    ).fetchall()
    return row[0][0] if row else None


def alias_history(conn: duckdb.DuckDBPyConnection, alias: str) -> list[dict[str, Any]]:
    ensure_registry(conn)
    return _rows(conn, f"SELECT * FROM {EVENTS_TABLE} WHERE alias = ? ORDER BY event_id", [alias])


def move_alias(
    conn: duckdb.DuckDBPyConnection,
    alias: str,
    to_version: str,
    reason: str,
    run_id: str | None = None,
    *,
    signer: Signer,
    event: str | None = None,
    actor: str = "platform",
) -> dict[str, Any]:
    """Point `alias` at `to_version` by appending a signed event; returns the event."""
    if event is None:
        event = CHALLENGER_CHOSEN if alias == CHALLENGER else APPROVED
    return append_event(
        conn,
        signer,
        event,
        model_version=to_version,
        alias=alias,
        to_version=to_version,
        actor=actor,
        reason=reason,
        run_id=run_id,
    )


def version_status(conn: duckdb.DuckDBPyConnection, model_version: str) -> str:
    """registered | pending_approval | approved | rejected | superseded | disabled (its latest status
    event; `approved` stays after the champion moves on: it was approved once)."""
    ensure_registry(conn)
    kinds = list(STATUS_OF_EVENT)
    row = conn.execute(
        f"SELECT event FROM {EVENTS_TABLE} WHERE model_version = ? "
        "AND event IN (SELECT unnest(?::VARCHAR[])) "
        "ORDER BY event_id DESC LIMIT 1",
        [model_version, kinds],
    ).fetchall()
    return STATUS_OF_EVENT[row[0][0]] if row else "registered"


def pending_version(conn: duckdb.DuckDBPyConnection) -> str | None:
    """The version waiting for approval (at most one: a newer request supersedes the older)."""
    ensure_registry(conn)
    row = conn.execute(
        f"SELECT model_version FROM {EVENTS_TABLE} WHERE event = ? ORDER BY event_id DESC LIMIT 1",
        [PENDING_APPROVAL],
    ).fetchall()
    if not row or version_status(conn, row[0][0]) != "pending_approval":
        return None
    return row[0][0]


def pending_request(conn: duckdb.DuckDBPyConnection, model_version: str) -> dict[str, Any] | None:
    """The latest `pending_approval` event of a version (who launched its training, which evidence)."""
    ensure_registry(conn)
    rows = _rows(
        conn,
        f"SELECT * FROM {EVENTS_TABLE} WHERE event = ? AND model_version = ? ORDER BY event_id DESC LIMIT 1",
        [PENDING_APPROVAL, model_version],
    )
    return rows[0] if rows else None


def former_champions(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Versions that held the champion alias before, most recent first, without the current one and
    without disabled ones: the candidates for a rollback."""
    current = current_alias(conn, CHAMPION)
    seen: list[str] = []
    for ev in reversed(alias_history(conn, CHAMPION)):
        for v in (ev["to_version"], ev["from_version"]):
            if v and v != current and v not in seen and version_status(conn, v) != "disabled":
                seen.append(v)
    return seen


def previous_champion(conn: duckdb.DuckDBPyConnection) -> str | None:
    """The most recent former champion that may score again (not disabled)."""
    former = former_champions(conn)
    return former[0] if former else None


def load_version(
    conn: duckdb.DuckDBPyConnection,
    store_root: Path,
    model_version: str,
    signer: Signer,
    anchor: Anchor | None = None,
) -> tuple[Any, ModelVersion]:
    """The model of a registered version, after verifying the ledger (against `anchor` when given) and
    the version's signed row; refuses a disabled version; the artifact goes through the checked loader
    (SHA-256 + trust list)."""
    verify_chain(conn, signer, anchor)
    mv = get_version(conn, model_version, signer)
    if version_status(conn, model_version) == "disabled":
        raise DisabledModelError(
            f"model version {model_version} was disabled (emergency switch, {EVENTS_TABLE}): never loaded"
        )
    return load_model(store_root, mv.artifact_path, mv.artifact_sha256), mv


def version_as_dict(mv: ModelVersion) -> dict[str, Any]:
    d = asdict(mv)
    d["params_hash"] = mv.params_hash
    return d
