"""The PAN tokenisation key: where the local one lives, which key made the warehouse's tokens, rotation.

    python -m fraud_assets.cli.pan_key local-key-path  # the local key file (made if missing)
    python -m fraud_assets.cli.pan_key status          # FRAUD_PAN_KEY's fingerprint vs the warehouse's
    python -m fraud_assets.cli.pan_key rotate [--yes]  # start a re-tokenisation with FRAUD_PAN_KEY

Run them through `scripts/with-env` so they see the platform's FRAUD_DATA_DIR and key
(docs/runbooks.md, "Rotate the PAN key").
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _data_dir() -> Path:
    from fraud_assets.lib import settings

    return settings.data_dir()


def _tokenizer():
    from fraud_assets.lib.pan import Tokenizer

    return Tokenizer(os.environ.get("FRAUD_PAN_KEY", ""))


def local_key_path() -> int:
    from fraud_assets.lib.local_pan_key import LocalKeyError, ensure_local_key

    try:
        path = ensure_local_key(_data_dir(), warn=lambda m: print(f"fraud_assets: {m}", file=sys.stderr))
    except LocalKeyError as exc:
        print(f"fraud_assets: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


def status() -> int:
    import duckdb

    from fraud_assets.lib import settings
    from fraud_assets.lib.token_keys import recorded_fingerprints

    fingerprint = _tokenizer().fingerprint
    print(f"FRAUD_PAN_KEY fingerprint: {fingerprint}")
    path = settings.warehouse_path()
    if not path.exists():
        print(f"no warehouse at {path}")
        return 0
    with duckdb.connect(str(path), read_only=True) as conn:
        recorded = recorded_fingerprints(conn)
    for table, fp in sorted(recorded.items()):
        print(f"  {table}: {fp} {'(this key)' if fp == fingerprint else '(ANOTHER KEY)'}")
    if not recorded:
        print("  no tokens recorded yet")
    return 0 if all(fp == fingerprint for fp in recorded.values()) else 2


def rotate(confirmed: bool) -> int:
    import duckdb

    from fraud_assets.lib import settings
    from fraud_assets.lib.token_keys import recorded_fingerprints, rotate, token_tables

    tokenizer = _tokenizer()
    path = settings.warehouse_path()
    if not path.exists():
        print(f"no warehouse at {path}: nothing to rotate")
        return 0
    with duckdb.connect(str(path), read_only=not confirmed) as conn:
        if not confirmed:
            recorded = recorded_fingerprints(conn) or "none"
            print(f"new key fingerprint {tokenizer.fingerprint}; recorded: {recorded}")
            print("would drop these tables (and their Parquet exports), to be rebuilt from the landing zone:")
            for table in token_tables(conn):
                print(f"  {table}")
            print("run again with --yes to do it, then `make pipeline` (docs/runbooks.md)")
            return 0
        try:
            dropped = rotate(conn, tokenizer, settings.exports_dir())
        except ValueError as exc:
            print(f"nothing to rotate: {exc}", file=sys.stderr)
            return 1
    print(f"dropped {len(dropped)} table(s) holding old tokens: {', '.join(dropped) or 'none'}")
    print("now rebuild them with the new key: make pipeline")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fraud_assets.cli.pan_key", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("local-key-path", help="print the local key file for $FRAUD_DATA_DIR, made if missing")
    sub.add_parser("status", help="FRAUD_PAN_KEY's fingerprint against the ones recorded in the warehouse")
    rot = sub.add_parser("rotate", help="drop every table holding tokens, to rebuild them with FRAUD_PAN_KEY")
    rot.add_argument("--yes", action="store_true", help="do it (without: only list what would be dropped)")
    args = parser.parse_args(argv)
    if args.command == "local-key-path":
        return local_key_path()
    if args.command == "status":
        return status()
    return rotate(args.yes)


if __name__ == "__main__":
    sys.exit(main())
