"""The PAN key (issue 13, finding 5): the generated local key lives outside the data directory, every
token table records its key's fingerprint, and a second key is refused until a deliberate rotation."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from fraud_assets.cli import pan_key as cli
from fraud_assets.lib.local_pan_key import LocalKeyError, ensure_local_key
from fraud_assets.lib.pan import Tokenizer
from fraud_assets.lib.token_keys import (
    TokenKeyMismatch,
    ensure_token_key,
    recorded_fingerprints,
    rotate,
    token_tables,
)
from fraud_assets.resources import build_resources
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY

REPO = Path(__file__).resolve().parents[1]
OTHER_KEY = "another-key-0123456789abcdef-not-a-secret"


@pytest.fixture
def config_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.delenv("FRAUD_PAN_KEY_DIR", raising=False)
    return home


def test_the_generated_key_lives_outside_the_data_dir_readable_by_its_owner_only(data_dir, config_home):
    path = ensure_local_key(data_dir)
    assert config_home in path.parents
    assert data_dir not in path.parents
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(path.read_text().strip()) == 64
    assert not any(p.is_file() for p in data_dir.rglob("*"))


def test_each_data_dir_has_its_own_key_and_keeps_it(tmp_path, config_home):
    a, b = tmp_path / "a", tmp_path / "b"
    first = ensure_local_key(a).read_text()
    assert ensure_local_key(a).read_text() == first
    assert ensure_local_key(b).read_text() != first


def test_a_key_left_in_the_data_dir_is_moved_out_with_a_warning(data_dir, config_home):
    (data_dir / ".pan_key").write_text("legacy-key-0123456789abcdef\n")
    warnings: list[str] = []
    path = ensure_local_key(data_dir, warn=warnings.append)
    assert path.read_text().strip() == "legacy-key-0123456789abcdef"
    assert not (data_dir / ".pan_key").exists()
    assert warnings


def test_two_different_local_keys_for_one_data_dir_are_refused(data_dir, config_home):
    ensure_local_key(data_dir)
    (data_dir / ".pan_key").write_text("legacy-key-0123456789abcdef\n")
    with pytest.raises(LocalKeyError, match="two different PAN keys"):
        ensure_local_key(data_dir)
    assert (data_dir / ".pan_key").exists()


def test_with_env_needs_no_setup_and_leaves_no_key_in_the_data_dir(tmp_path, config_home):
    data = tmp_path / "fresh-data"
    env = {k: v for k, v in os.environ.items() if k != "FRAUD_PAN_KEY"}
    env.update(
        FRAUD_DATA_DIR=str(data), DAGSTER_HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(config_home)
    )
    out = subprocess.run(
        [str(REPO / "scripts" / "with-env"), "sh", "-c", 'printf %s "$FRAUD_PAN_KEY"'],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert len(out) == 64
    assert out not in "".join(p.read_text() for p in data.rglob("*") if p.is_file())
    assert out == ensure_local_key(data).read_text().strip()


@pytest.mark.parametrize("inside", ["keys", "."], ids=["below", "itself"])
def test_with_env_refuses_a_registry_key_dir_inside_the_data_dir(tmp_path, config_home, inside):
    """Like the PAN key's: a registry key in the data directory lets whoever copies or edits it sign a
    swapped model."""
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("FRAUD_PAN_KEY", "FRAUD_REGISTRY_KEY")}
    env.update(
        FRAUD_DATA_DIR=str(data),
        DAGSTER_HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(config_home),
        FRAUD_REGISTRY_KEY_DIR=str(data / inside),
    )
    done = subprocess.run(
        [str(REPO / "scripts" / "with-env"), "true"], env=env, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "must not be inside" in done.stderr
    assert not list(data.rglob("*.key"))


def test_the_fingerprint_identifies_a_key_without_revealing_it():
    a, b = Tokenizer(TEST_PAN_KEY), Tokenizer(OTHER_KEY)
    assert a.fingerprint == Tokenizer(TEST_PAN_KEY).fingerprint
    assert a.fingerprint != b.fingerprint
    assert TEST_PAN_KEY not in a.fingerprint
    assert a.fingerprint not in {a.token(s.PANS[1]), a.token("")}


@pytest.fixture
def conn(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as c:
        c.execute("CREATE SCHEMA raw")
        c.execute("CREATE TABLE raw.chargebacks AS SELECT 'tok' AS card_token")
        yield c


def test_a_write_records_its_key_and_the_same_key_writes_again(conn):
    tok = Tokenizer(TEST_PAN_KEY)
    ensure_token_key(conn, tok, "raw.chargebacks")
    ensure_token_key(conn, tok, "raw.authorizations")
    assert recorded_fingerprints(conn) == {
        "raw.chargebacks": tok.fingerprint,
        "raw.authorizations": tok.fingerprint,
    }


def test_a_write_with_another_key_is_refused_with_the_runbook(conn):
    ensure_token_key(conn, Tokenizer(TEST_PAN_KEY), "raw.chargebacks")
    with pytest.raises(TokenKeyMismatch) as refused:
        ensure_token_key(conn, Tokenizer(OTHER_KEY), "raw.authorizations")
    assert "Rotate the PAN key" in refused.value.description
    assert "raw.chargebacks" in refused.value.description


def test_a_rotation_drops_every_token_table_and_accepts_only_the_new_key(conn, tmp_path):
    ensure_token_key(conn, Tokenizer(TEST_PAN_KEY), "raw.chargebacks")
    conn.execute("CREATE SCHEMA cleaned")
    conn.execute("CREATE TABLE cleaned.transactions AS SELECT 'tok' AS card_token, 1 AS amount")
    conn.execute("CREATE TABLE cleaned.quarantine AS SELECT 'x' AS reason")
    exports = tmp_path / "exports"
    (exports / "cleaned" / "transactions").mkdir(parents=True)
    dropped = rotate(conn, Tokenizer(OTHER_KEY), exports)
    assert dropped == ["cleaned.transactions", "raw.chargebacks"]
    assert token_tables(conn) == []
    assert not (exports / "cleaned" / "transactions").exists()
    assert conn.execute("SELECT count(*) FROM cleaned.quarantine").fetchone()[0] == 1
    with pytest.raises(TokenKeyMismatch):
        ensure_token_key(conn, Tokenizer(TEST_PAN_KEY), "raw.chargebacks")
    ensure_token_key(conn, Tokenizer(OTHER_KEY), "raw.chargebacks")


def _materialize_cardholders(data_dir: Path, key: str) -> dg.ExecuteInJobResult:
    defs = s.defs_for(data_dir)
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=dg.AssetSelection.assets(["raw", "file_register"], ["raw", "cardholders"]),
        resources=build_resources(data_dir, key),
        raise_on_error=False,
    )


def test_raw_refuses_to_add_tokens_of_a_second_key_to_the_warehouse(data_dir):
    s.write_reference(data_dir)
    assert _materialize_cardholders(data_dir, TEST_PAN_KEY).success
    refused = _materialize_cardholders(data_dir, OTHER_KEY)
    assert not refused.success
    [failure] = [e for e in refused.all_events if e.is_step_failure]
    assert "Rotate the PAN key" in str(failure.event_specific_data.error)
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        tokens = conn.execute("SELECT DISTINCT card_token FROM raw.cardholders").fetchall()
    assert {t for (t,) in tokens} == {Tokenizer(TEST_PAN_KEY).token(p) for p in s.PANS.values()}


def test_the_cli_status_compares_the_key_with_the_warehouse(data_dir, monkeypatch, capsys):
    s.write_reference(data_dir)
    assert _materialize_cardholders(data_dir, TEST_PAN_KEY).success
    assert cli.main(["status"]) == 0
    monkeypatch.setenv("FRAUD_PAN_KEY", OTHER_KEY)
    assert cli.main(["status"]) == 2
    assert "ANOTHER KEY" in capsys.readouterr().out
