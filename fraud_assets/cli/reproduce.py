"""`make reproduce MODEL=<version>`: rebuild a registered model and say whether it comes out the same.

    python -m fraud_assets.cli.reproduce <model_version> [--data-dir DIR] [--json report.json]

1. Verifies the registry (signature chain, the version's signed row) and the version's data snapshot
   (signed row, Parquet file SHA-256): the record the model is reproduced from is the one trained on.
2. Rebuilds the training set from the warehouse (read-only) with the recorded, resolved fold windows and
   the labels known at training time: a label reported after the recorded `labels_as_of` is excluded by
   construction. Its data hash is compared with the recorded one; when they differ, the rows, labels and
   feature columns that changed since are counted (features rebuilt after a late chargeback file, a label
   that arrived late with an earlier report time, a feature column added since).
3. Refits with the recorded family, parameters, feature columns and seed on the recorded data (the
   rebuild when it matches, else the archived snapshot) through the same training code as the candidates.
4. Compares: the per-fold metrics; the artifact SHA-256 (never equal across refits: skops names arrays
   by memory address and zips write times) and therefore the canonical model hash (parameters and
   structure, lib/model_io.py), and the fold-0 predictions of the original and the refit models.
Exit status 0 when the canonical hash and every metric match, 1 when they do not, 2 when a record does
not verify. Reads the warehouse with a short read-only attach; it never writes to it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from fraud_assets.defs.models.common import (
    CODE_VERSION,
    FEATURES_TABLE,
    LABELS_TABLE,
    TRAINING_SET_META,
    TRAINING_SET_TABLE,
)
from fraud_assets.defs.models.snapshots import (
    SNAPSHOTS_TABLE,
    SnapshotError,
    TrainingSet,
    labels_fingerprint,
    training_set_hash,
    verified_snapshot,
)
from fraud_assets.lib import settings
from fraud_assets.lib.model_io import (
    ModelArtifactError,
    canonical_model_hash,
    load_model_bytes,
    model_bytes,
    read_artifact,
)
from fraud_assets.lib.registry import (
    EVENTS_TABLE,
    VERSIONS_TABLE,
    Anchor,
    ModelVersion,
    RegistryIntegrityError,
    get_version,
    recorded_anchor,
    verify_registry,
)
from fraud_assets.lib.signing import Signer
from fraud_assets.lib.training_provenance import SOURCE_DIGEST, code_revision, same_code, training_environment

KEY_ENV = "FRAUD_REGISTRY_KEY"
METRIC_TOLERANCE = 1e-12  # same code, data and seed give the same floats; anything above is a difference
COMPARED_METRICS = ("auc", "average_precision", "card_precision_at_100", "n_transactions", "n_fraud")
_FOLD_METRIC = re.compile(rf"fold\d+_(?:{'|'.join(COMPARED_METRICS)})")


def open_scratch(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory database that sees the warehouse read-only through views under the usual names, so
    the platform's own code (registry, training set SQL) runs unchanged and writes only to memory."""
    conn = duckdb.connect()
    conn.execute(f"ATTACH '{warehouse}' AS wh (READ_ONLY)")
    present = {
        f"{s}.{t}"
        for s, t in conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = 'wh'"
        ).fetchall()
    }
    for table in (VERSIONS_TABLE, EVENTS_TABLE, SNAPSHOTS_TABLE, FEATURES_TABLE):
        if table in present:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {table.split('.')[0]}")
            conn.execute(f"CREATE VIEW {table} AS SELECT * FROM wh.{table}")
    return conn


def labels_as_of(conn: duckdb.DuckDBPyConnection, as_of) -> None:
    """cleaned.labels as known at training time: reports up to the recorded latest report."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS cleaned")
    cutoff = f"TIMESTAMP '{as_of}'" if as_of is not None else "NULL"
    conn.execute(
        f"CREATE OR REPLACE VIEW {LABELS_TABLE} AS "
        f"SELECT * FROM wh.{LABELS_TABLE} WHERE reported_at <= {cutoff}"
    )


def diff_training_sets(conn: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """How the rebuilt training set (models.training_set) differs from the snapshot (snap.training_set)."""
    key = "fold, split, transaction_id"
    rebuilt = {r[0] for r in conn.execute(f"DESCRIBE {TRAINING_SET_TABLE}").fetchall()}
    archived = {r[0] for r in conn.execute("DESCRIBE snap.training_set").fetchall()}
    only = lambda a, b: conn.execute(  # noqa: E731 - two symmetric one-liners
        f"SELECT count(*) FROM (SELECT {key} FROM {a} EXCEPT SELECT {key} FROM {b})"
    ).fetchall()[0][0]
    out: dict[str, Any] = {
        "rows_only_in_snapshot": only("snap.training_set", TRAINING_SET_TABLE),
        "rows_only_in_rebuild": only(TRAINING_SET_TABLE, "snap.training_set"),
        "columns_only_in_snapshot": sorted(archived - rebuilt),
        "columns_only_in_rebuild": sorted(rebuilt - archived),
    }
    keys = set(TRAINING_SET_META) - {"label"}
    common = sorted((rebuilt & archived) - keys)
    differs = ", ".join(f'count(*) FILTER (WHERE r."{c}" IS DISTINCT FROM s."{c}") AS "{c}"' for c in common)
    row = conn.execute(
        f"SELECT {differs} FROM {TRAINING_SET_TABLE} r "
        "JOIN snap.training_set s USING (fold, split, transaction_id)"
    ).df()
    changed = {c: int(row[c].iloc[0]) for c in common if int(row[c].iloc[0])}
    out["label_differences"] = changed.pop("label", 0)
    out["feature_value_differences"] = changed
    return out


def explain_data(diff: dict[str, Any], labels_now: tuple, labels_then: dict) -> list[str]:
    why = []
    if labels_now[0] != labels_then["labels_count"] or labels_now[2] != labels_then["labels_sha256"]:
        why.append(
            f"the labels reported by {labels_then['labels_as_of']} are not the ones training saw "
            f"({labels_now[0]} now vs {labels_then['labels_count']} then): a chargeback file arrived after "
            "training with reports dated before it, or labels were corrected"
        )
    if diff["feature_value_differences"]:
        cols = ", ".join(f"{c} ({n} rows)" for c, n in list(diff["feature_value_differences"].items())[:8])
        why.append(
            f"feature values changed since training (features rebuilt, e.g. by the lookback sensor): {cols}"
        )
    if diff["columns_only_in_rebuild"] or diff["columns_only_in_snapshot"]:
        why.append(
            f"the feature table's columns changed: added {diff['columns_only_in_rebuild']}, "
            f"gone {diff['columns_only_in_snapshot']}"
        )
    if diff["rows_only_in_rebuild"] or diff["rows_only_in_snapshot"]:
        why.append(
            f"{diff['rows_only_in_snapshot']} training rows are gone and "
            f"{diff['rows_only_in_rebuild']} are new "
            "(transactions re-cleaned or features deleted/added for those days)"
        )
    if diff["label_differences"]:
        why.append(f"{diff['label_differences']} rows carry another label")
    return why or ["the content differs in a way the comparison above does not name"]


def compare_metrics(recorded: dict[str, float], refit: list[dict[str, float]]) -> dict[str, Any]:
    """The refit's fold metrics against the recorded ones: a fold recorded but not refitted, or a metric
    NaN on one side only, is a mismatch (an infinite difference), never skipped."""
    refitted = {f"fold{int(m['fold'])}_{name}": float(m[name]) for m in refit for name in COMPARED_METRICS}
    diffs = {}
    for key in {k for k in recorded if _FOLD_METRIC.fullmatch(k)} | set(refitted):
        a, b = float(recorded.get(key, np.nan)), refitted.get(key, np.nan)
        if key not in recorded or key not in refitted or np.isnan(a) != np.isnan(b):
            diffs[key] = float("inf")
        else:
            diffs[key] = 0.0 if np.isnan(a) else abs(a - b)
    worst = max(diffs.values(), default=float("nan"))
    return {
        "max_abs_difference": worst,
        "compared": len(diffs),
        "match": bool(diffs) and worst <= METRIC_TOLERANCE,
    }


def reproduce(
    model_version: str, data_dir: Path, signer: Signer, anchor: Anchor | None = None
) -> dict[str, Any]:
    from fraud_assets.defs.models.candidates import SKLEARN_VERSION, train_family
    from fraud_assets.defs.models.training_set import TrainingSetConfig, build_training_set
    from fraud_assets.lib.model_selection import compute_threads

    store = data_dir / "models"
    conn = open_scratch(data_dir / settings.WAREHOUSE_FILE)
    report: dict[str, Any] = {"model_version": model_version}
    # Against the head Dagster recorded, as scoring does: a ledger cut back at its end verifies on its own.
    registry_summary = {**verify_registry(conn, signer, anchor), "anchored": anchor is not None}
    mv: ModelVersion = get_version(conn, model_version, signer)
    snapshot = verified_snapshot(conn, store, signer, mv.data_hash)
    report["registry"] = {**registry_summary, "row_signature": mv.signature}
    report["code"] = {
        "recorded": {"code_version": mv.code_version, "revision": mv.code_revision, **mv.environment},
        "running": {
            "code_version": f"{CODE_VERSION}+sklearn{SKLEARN_VERSION}",
            "revision": code_revision(),
            **training_environment(),
        },
    }
    report["code"]["same"] = same_code(report["code"]["recorded"], report["code"]["running"])

    # 2. Rebuild from the warehouse as of training time.
    config = json.loads(snapshot["training_config_json"])
    labels_as_of(conn, snapshot["labels_as_of"])
    build_training_set(conn, TrainingSetConfig(**config))
    rebuilt_hash = training_set_hash(conn)
    conn.execute("CREATE SCHEMA snap")
    conn.execute(f"CREATE TABLE snap.training_set AS SELECT * FROM read_parquet('{snapshot['file']}')")
    snapshot_hash = training_set_hash(conn, "snap.training_set")
    data: dict[str, Any] = {
        "recorded_data_hash": mv.data_hash,
        "snapshot_data_hash": snapshot_hash,
        "rebuilt_data_hash": rebuilt_hash,
        "labels_as_of": str(snapshot["labels_as_of"]),
        "windows": config,
        "rebuilt_matches": rebuilt_hash == mv.data_hash,
    }
    if snapshot_hash != mv.data_hash:
        raise SnapshotError("the archived snapshot's content does not hash to the model's data hash")
    if not data["rebuilt_matches"]:
        data["differences"] = diff_training_sets(conn)
        data["why"] = explain_data(data["differences"], labels_fingerprint(conn, LABELS_TABLE), snapshot)
    report["data"] = data
    report["refit_on"] = "rebuilt training set" if data["rebuilt_matches"] else "archived snapshot"

    # 3. Refit through the candidates' own training code, on the Parquet they read.
    with tempfile.TemporaryDirectory(prefix="fraud-reproduce-") as tmp:
        if data["rebuilt_matches"]:
            ts = TrainingSet.of_table(conn, Path(tmp) / "training_set.parquet")
        else:  # the rows that were hashed, not the file again
            ts = TrainingSet.of_table(conn, Path(tmp) / "training_set.parquet", "snap.training_set")
        with ts:
            model, features, fold_metrics, _ = train_family(
                mv.family, mv.params, ts, mv.feature_columns, seed=mv.seed
            )
            test = ts.part(0, "test", features)
    # One read: the bytes whose hash is compared are the model that is loaded and compared.
    original_bytes = read_artifact(store, mv.artifact_path)
    original = load_model_bytes(original_bytes, mv.artifact_path, mv.artifact_sha256)
    refit_bytes = model_bytes(model)
    with compute_threads():
        diff = np.abs(
            original.predict_proba(test[features])[:, 1] - model.predict_proba(test[features])[:, 1]
        )
    report["model"] = {
        "features_match": features == mv.feature_columns,
        "artifact_sha256_recorded": mv.artifact_sha256,
        "artifact_sha256_refit": hashlib.sha256(refit_bytes).hexdigest(),
        "artifact_sha256_match": hashlib.sha256(refit_bytes).hexdigest() == mv.artifact_sha256,
        "canonical_hash_recorded_artifact": canonical_model_hash(original_bytes),
        "canonical_hash_refit": canonical_model_hash(refit_bytes),
        "fold0_test_rows": len(test),
        "fold0_max_abs_prediction_difference": float(diff.max()) if len(diff) else 0.0,
    }
    report["model"]["canonical_hash_match"] = (
        report["model"]["canonical_hash_recorded_artifact"] == report["model"]["canonical_hash_refit"]
    )
    report["metrics"] = compare_metrics(mv.metrics, fold_metrics)
    report["reproduced"] = report["model"]["canonical_hash_match"] and report["metrics"]["match"]
    conn.close()
    return report


def _code_line(code: dict[str, str]) -> str:
    digest = code.get(SOURCE_DIGEST)
    return f"{code['code_version']} @ {code['revision']}" + (f", source {digest[:12]}" if digest else "")


def render(report: dict[str, Any]) -> str:
    d, m, r = report["data"], report["model"], report["metrics"]
    lines = [
        f"Reproducing {report['model_version']}",
        f"  registry: {report['registry']['versions']} versions and {report['registry']['events']} events "
        f"verify with key {report['registry']['key_id']}"
        + (
            ", up to the head Dagster recorded"
            if report["registry"]["anchored"]
            else " (no ledger head recorded in DAGSTER_HOME: a ledger cut back at its end would pass)"
        ),
        f"  code: {'same as at training' if report['code']['same'] else 'DIFFERENT from training'}"
        f" (recorded {_code_line(report['code']['recorded'])}, "
        f"running {_code_line(report['code']['running'])})",
        f"  data: rebuilt from the warehouse as of {d['labels_as_of']}: "
        + (
            "matches the recorded data hash"
            if d["rebuilt_matches"]
            else "DIFFERS from the recorded data hash"
        ),
    ]
    lines += [f"    why: {w}" for w in d.get("why", [])]
    lines += [
        f"  refit on the {report['refit_on']} with seed and parameters as recorded",
        f"  artifact SHA-256: {'match' if m['artifact_sha256_match'] else 'differs'} (expected: skops names "
        "arrays by memory address and zips store write times, so files of identical fits differ)",
        f"  canonical model hash: {'MATCH' if m['canonical_hash_match'] else 'DIFFERS'} "
        f"({m['canonical_hash_refit'][:16]}… vs {m['canonical_hash_recorded_artifact'][:16]}…)",
        f"  fold-0 predictions: max |difference| {m['fold0_max_abs_prediction_difference']:.3g} over "
        f"{m['fold0_test_rows']} rows",
        f"  metrics: {'MATCH' if r['match'] else 'DIFFER'} ({r['compared']} per-fold values, "
        "max |difference| "
        f"{r['max_abs_difference']:.3g})",
        f"REPRODUCED: {'yes' if report['reproduced'] else 'no'}",
    ]
    if not report["code"]["same"] and not report["reproduced"]:
        lines.append("  (the code or library versions differ from training: check out the recorded revision)")
    return "\n".join(lines)


def instance_anchor() -> Anchor | None:
    """The ledger head recorded in the Dagster instance of `$DAGSTER_HOME` (None without one)."""
    if not os.environ.get("DAGSTER_HOME"):
        return None
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        return recorded_anchor(instance)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_version")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $FRAUD_DATA_DIR")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    data_dir = (args.data_dir or settings.data_dir()).resolve()
    if not (data_dir / settings.WAREHOUSE_FILE).is_file():
        print(
            f"refused: no {settings.WAREHOUSE_FILE} in {data_dir} (FRAUD_DATA_DIR or --data-dir): "
            "no model was registered there",
            file=sys.stderr,
        )
        return 2
    key = os.environ.get(KEY_ENV, "")
    try:
        report = reproduce(args.model_version, data_dir, Signer(key), instance_anchor())
    except (RegistryIntegrityError, SnapshotError, ModelArtifactError, KeyError, ValueError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, sort_keys=True, default=str))
    return 0 if report["reproduced"] else 1


if __name__ == "__main__":
    sys.exit(main())
