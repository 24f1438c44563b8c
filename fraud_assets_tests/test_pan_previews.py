"""Previews and alerts mask producer values and leave ours readable (issue 13, finding 4)."""

from __future__ import annotations

import duckdb
import pytest

from fraud_assets.lib.alerting import Alert
from fraud_assets.lib.provenance import is_producer_column
from fraud_assets.lib.warehouse import table_metadata

PAN = "4539148803436467"
MASKED = "453914******6467"
# A run id starting with digits makes `135241551134-1234` a Luhn-valid 16-digit group.
MODEL_VERSION = "rf-20261202T135241551134-1234abcd"


@pytest.fixture
def conn(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as c:
        c.execute("CREATE SCHEMA models")
        c.execute("CREATE SCHEMA raw")
        yield c


def preview(conn, table: str) -> str:
    return table_metadata(conn, table)["preview"].value


def test_a_model_version_is_shown_as_it_is_in_the_champions_preview(conn):
    conn.execute(
        "CREATE TABLE models.champion AS SELECT ? AS model_version, ? AS artifact_sha256",
        [MODEL_VERSION, PAN + "0" * 48],
    )
    text = preview(conn, "models.champion")
    assert MODEL_VERSION in text
    assert PAN + "0" * 48 in text


def test_producer_text_in_a_raw_preview_is_masked(conn):
    conn.execute(
        "CREATE TABLE raw.fx_rates AS SELECT ? AS rate_date, ? AS source_file", [f"{PAN} 12/26", PAN]
    )
    text = preview(conn, "raw.fx_rates")
    assert PAN not in text
    assert MASKED in text


def test_a_pan_in_a_numeric_producer_column_is_masked_and_measurements_are_not(conn):
    conn.execute(
        f"CREATE TABLE raw.cardholders AS SELECT {PAN}::BIGINT AS customer_id, 45.39148803436467 AS x"
    )
    text = preview(conn, "raw.cardholders")
    assert PAN not in text
    assert MASKED in text
    assert "45.39" in text


def test_a_producer_value_carried_into_a_later_layer_is_still_masked(conn):
    conn.execute("CREATE SCHEMA scoring")
    conn.execute(
        f"CREATE TABLE scoring.fraud_alerts AS SELECT {PAN}::BIGINT AS transaction_id, ? AS model_version",
        [MODEL_VERSION],
    )
    text = preview(conn, "scoring.fraud_alerts")
    assert PAN not in text
    assert MODEL_VERSION in text


def test_an_undeclared_column_counts_as_producer_input():
    assert is_producer_column("raw.authorizations", "some_new_column")
    assert is_producer_column(None, "model_version")
    assert not is_producer_column("raw.authorizations", "file_sha256")
    assert not is_producer_column("models.champion", "model_version")


def test_an_alert_masks_card_numbers_in_its_subject_message_and_numbers_but_keeps_measurements():
    alert = Alert(
        severity="ERROR",
        kind="check_failure",
        subject=f"file acq_a_2018-04-01_{PAN}.csv.gz",
        message=f"row quoted: {PAN} 12/26",
        details={"customer_id": int(PAN), "psi": float("0." + PAN), "note": "4539.1488.0343.6467"},
    )
    assert PAN not in alert.subject
    assert PAN not in alert.message.replace(" ", "")
    assert alert.details["customer_id"] == MASKED
    assert alert.details["note"] == MASKED
    assert alert.details["psi"] == float("0." + PAN)
