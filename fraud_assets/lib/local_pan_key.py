"""The generated PAN key of a local (demo) install, kept outside the data it protects.

The warehouse holds `card_token` beside `pan_bin` and `pan_last4`: whoever also holds the key recovers
every card by trying the 6 middle digits (seconds per card). So the key never lives in
`$FRAUD_DATA_DIR`: it lives in the user's configuration directory, one file per data directory,

    ${FRAUD_PAN_KEY_DIR:-${XDG_CONFIG_HOME:-~/.config}/fraud_assets/pan_keys}/<id>.key   (0600, dir 0700)

with `<id>` derived from the data directory's absolute path and `<id>.data_dir` naming that directory
for people. Production never uses this: it sets `FRAUD_PAN_KEY` from its secret store.

A key left in `$FRAUD_DATA_DIR/.pan_key` by an older install is moved here (with a warning), so its
tokens stay valid; when both exist and differ, nothing is guessed: `LocalKeyError` says what to do.
Standard library only: `scripts/with-env` runs this before every command.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

LEGACY_KEY_FILE = ".pan_key"
KEY_DIR_ENV = "FRAUD_PAN_KEY_DIR"


class LocalKeyError(RuntimeError):
    """The local key cannot be set up without a person deciding something."""


def key_dir() -> Path:
    override = os.environ.get(KEY_DIR_ENV)
    if override:
        return Path(override).expanduser().resolve()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return (Path(config).expanduser() / "fraud_assets" / "pan_keys").resolve()


def key_path(data_dir: Path) -> Path:
    data_id = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:16]
    return key_dir() / f"{data_id}.key"


def _write_new(target: Path, content: str) -> None:
    """Create `target` (0600) with `content`, atomically; keeps an existing file (another process won)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(content + "\n")
        try:
            os.link(tmp, target)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: Path) -> str:
    return path.read_text().strip()


def ensure_local_key(data_dir: Path, warn: Callable[[str], None] = print) -> Path:
    """The local key file for `data_dir`, generated (or moved from the data dir) when missing."""
    data_dir = Path(data_dir).resolve()
    target = key_path(data_dir)
    if target.parent == data_dir or data_dir in target.parents:
        raise LocalKeyError(f"the PAN key directory {target.parent} must not be inside {data_dir}")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    target.parent.chmod(0o700)
    legacy = data_dir / LEGACY_KEY_FILE
    if legacy.is_file() and _read(legacy):
        if target.is_file() and _read(target):
            if _read(target) != _read(legacy):
                raise LocalKeyError(
                    f"two different PAN keys for {data_dir}: {legacy} (inside the data directory) and "
                    f"{target}. Keep the one the warehouse's tokens were made with (`python -m "
                    "fraud_assets.cli.pan_key status` with FRAUD_PAN_KEY set to each compares its "
                    f"fingerprint with the warehouse's), put it in {target} and delete {legacy}."
                )
        else:
            _write_new(target, _read(legacy))
        legacy.unlink()
        warn(f"moved the PAN key out of the data directory: {legacy} -> {target}")
    if not (target.is_file() and _read(target)):
        target.unlink(missing_ok=True)
        _write_new(target, secrets.token_hex(32))
    target.chmod(0o600)
    target.with_suffix(".data_dir").write_text(f"{data_dir}\n")
    return target
