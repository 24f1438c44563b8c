"""The evidence pack an approver decides on, and that the audit trail points to.

One JSON document per request or decision, written to `<model store>/evidence/<version>/` under its own
SHA-256 (the registry event records path and hash, so the file an auditor opens is provably the one the
decision named), with a markdown rendering for the UI. It holds: the model card, the prequential
comparison with the champion, both models re-scored on the same test window, the gate's reason, the
shadow comparison on live days so far, the data / code / parameter / artifact hashes with the data
snapshot, the feature drift measured when the model was trained, and who launched the training run.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from fraud_assets.defs.models.evaluation import same_window_figures
from fraud_assets.defs.models.snapshots import snapshot_row
from fraud_assets.defs.monitoring.shadow_comparison import shadow_summary
from fraud_assets.lib.model_io import canonical_model_hash
from fraud_assets.lib.registry import ModelVersion, get_version
from fraud_assets.lib.signing import Signer
from fraud_assets.lib.tables import DRIFT_TABLE
from fraud_assets.lib.warehouse import table_exists

EVIDENCE_DIR = "evidence"
PREQUENTIAL = ("average_precision", "card_precision_at_100", "auc")


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _prequential(mv: ModelVersion | None) -> dict[str, float]:
    if mv is None:
        return {}
    keys = [f"{m}_{s}" for m in PREQUENTIAL for s in ("mean", "std")] + [f"fold0_{m}" for m in PREQUENTIAL]
    return {k: float(mv.metrics[k]) for k in keys if k in mv.metrics}


def _drift_at_training(conn) -> dict[str, Any]:
    """The latest drift measurement: the feature drift the model was trained into."""
    if not table_exists(conn, DRIFT_TABLE):
        return {"note": "no drift measured yet"}
    df = conn.execute(
        f"SELECT business_date, feature, psi, status FROM {DRIFT_TABLE} "
        f"WHERE business_date = (SELECT max(business_date) FROM {DRIFT_TABLE}) ORDER BY feature"
    ).df()
    if df.empty:
        return {"note": "no drift measured yet"}
    return {
        "business_date": str(df["business_date"].iloc[0]),
        "psi": {r.feature: (None if pd.isna(r.psi) else float(r.psi)) for r in df.itertuples()},
        "status": {r.feature: r.status for r in df.itertuples()},
    }


def build_evidence(
    conn,
    store_root: Path,
    signer: Signer,
    model_version: str,
    *,
    purpose: str,
    champion: str | None,
    training_launcher: dict[str, str],
    gate_reason: str | None = None,
) -> dict[str, Any]:
    """The evidence pack of `model_version` now (verifies its registry row on the way)."""
    mv = get_version(conn, model_version, signer)
    champ = get_version(conn, champion, signer) if champion else None
    artifact = Path(store_root) / mv.artifact_path
    artifact_ok = _sha256(artifact) == mv.artifact_sha256
    snapshot = snapshot_row(conn, mv.data_hash)
    card = Path(store_root) / "cards" / f"{model_version}.md"
    return {
        "purpose": purpose,
        "model_version": model_version,
        "family": mv.family,
        "generated_at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        "training_run": {"run_id": mv.run_id, **training_launcher},
        "champion": champion,
        "gate_reason": gate_reason,
        "prequential": {"challenger": _prequential(mv), "champion": _prequential(champ)},
        "same_window": same_window_figures(conn, [model_version, champion]) if champion else None,
        "shadow": shadow_summary(conn, model_version),
        "hashes": {
            "data_hash": mv.data_hash,
            "params_hash": mv.params_hash,
            "params": mv.params,
            "seed": mv.seed,
            "code_version": mv.code_version,
            "code_revision": mv.code_revision,
            "environment": mv.environment,
            "artifact_sha256": mv.artifact_sha256,
            "artifact_matches_registry": artifact_ok,
            "canonical_model_hash": canonical_model_hash(artifact.read_bytes()) if artifact_ok else None,
            "registry_signature": mv.signature,
            "registry_key_id": signer.key_id,
        },
        "data_snapshot": (
            {
                k: str(snapshot[k])
                for k in ("parquet_path", "parquet_sha256", "labels_as_of", "labels_count", "n_rows")
            }
            if snapshot
            else None
        ),
        "training_windows": {
            "train": f"{mv.train_start} .. {mv.train_end}",
            "delay_days": mv.delay_days,
            "test": f"{mv.test_start} .. {mv.test_end}",
            "folds": mv.n_folds,
        },
        "feature_drift_at_training": _drift_at_training(conn),
        "model_card": {"path": f"cards/{model_version}.md", "sha256": _sha256(card)},
    }


def render_markdown(pack: dict[str, Any]) -> str:
    pre = pack["prequential"]
    rows = [
        {"metric": k, "challenger": pre["challenger"].get(k), "champion": pre["champion"].get(k)}
        for k in sorted(set(pre["challenger"]) | set(pre["champion"]))
    ]
    shadow = pack["shadow"]
    drift = pack["feature_drift_at_training"]
    worst = (
        sorted(((v, f) for f, v in drift.get("psi", {}).items() if v is not None), reverse=True)[:5]
        if "psi" in drift
        else []
    )
    run = pack["training_run"]
    h = pack["hashes"]
    lines = [
        f"# Evidence: {pack['model_version']} ({pack['family']}), {pack['purpose']}",
        "",
        f"Generated {pack['generated_at']} UTC. Champion now: `{pack['champion']}`.",
        f"Training run `{run.get('run_id')}` launched by **{run.get('launched_by')}** "
        f"({run.get('established_by')}).",
        "",
        f"Gate: {pack['gate_reason'] or 'n/a'}",
        "",
        "## Prequential validation (recorded at training)",
        pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f") if rows else "_none_",
        "",
        "## Both re-scored on the same fold-0 test window (models/evaluation)",
        (
            pd.DataFrame(same)
            .reindex(columns=[pack["model_version"], pack["champion"]])
            .rename(columns={pack["model_version"]: "challenger", pack["champion"]: "champion"})
            .to_markdown(floatfmt=".4f")
            if (same := pack.get("same_window"))
            else "_champion not re-scored on this window (or no champion)_"
        ),
        "",
        "## Shadow comparison on live days",
        (
            # One column of days, dates and figures: floatfmt does not reach floats in a mixed column.
            pd.DataFrame([{k: f"{v:.4f}" if isinstance(v, float) else v for k, v in shadow.items()}])
            .T.rename(columns={0: "value"})
            .to_markdown()
            if shadow.get("shadow_days")
            else "_no shadow-scored day yet_"
        ),
        "",
        "## Hashes",
        f"- data `{h['data_hash']}`; params `{h['params_hash']}` (seed {h['seed']})",
        f"- code `{h['code_version']}` at revision `{h['code_revision']}`",
        f"- artifact SHA-256 `{h['artifact_sha256']}` (matches registry: {h['artifact_matches_registry']}); "
        f"canonical model hash `{h['canonical_model_hash']}`",
        f"- registry signature `{h['registry_signature']}` (key id `{h['registry_key_id']}`)",
        f"- data snapshot: {pack['data_snapshot']}",
        "",
        "## Feature drift at training time",
        (
            f"{drift['business_date']}: " + ", ".join(f"{f} {v:.3f}" for v, f in worst)
            if worst
            else drift.get("note", "none")
        ),
        "",
        f"Model card: `{pack['model_card']['path']}` (SHA-256 `{pack['model_card']['sha256']}`)",
    ]
    return "\n".join(lines)


def write_evidence(store_root: Path, pack: dict[str, Any]) -> tuple[str, str, str]:
    """Write the pack (JSON named by its SHA-256, and markdown); returns (path, SHA-256, markdown)."""
    data = json.dumps(pack, sort_keys=True, indent=1, default=str).encode()
    digest = hashlib.sha256(data).hexdigest()
    folder = Path(store_root) / EVIDENCE_DIR / pack["model_version"]
    folder.mkdir(parents=True, exist_ok=True)
    rel = f"{EVIDENCE_DIR}/{pack['model_version']}/{pack['purpose']}-{digest[:16]}.json"
    tmp = folder / f".{digest}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, Path(store_root) / rel)
    markdown = render_markdown(pack)
    (Path(store_root) / rel).with_suffix(".md").write_text(markdown)
    return rel, digest, markdown
