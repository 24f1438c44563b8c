"""Chargeback and FX rows are never dropped silently: each is kept, quarantined in
cleaned.reference_quarantine with a reason and a masked value, or counted as a duplicate, and a
blocking check reconciles the three against the raw table."""

from __future__ import annotations

import shutil

import dagster as dg
import pandas as pd
import pytest

from fraud_assets.defs.cleaned import assets as cl
from fraud_assets.defs.cleaned import schemas
from fraud_assets.defs.cleaned.checks import reconcile_reference
from fraud_assets.lib.pan import mask_pans
from fraud_assets.resources import build_resources
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY

CB_DAY = "2018-04-05"
FX_CORRECTION_LANDED = "2018-04-03"
PAN = s.PANS[1]


def cb(cid: str, tid: str, reported: str = "2018-04-05T09:00:00Z", tx: str = "2018-04-01T12:00:00Z") -> dict:
    return {
        "chargeback_id": cid,
        "transaction_id": tid,
        "pan": PAN,
        "tx_datetime": tx,
        "reported_at": reported,
        "reason_code": "10.4",
        "amount": "10.00",
        "currency": "EUR",
    }


# (row, expected outcome): data rows are numbered from 1 in file order.
CHARGEBACK_ROWS = [
    (cb("cb1", "3"), "kept"),
    (cb("cb1-2", "3", reported="2018-04-05T18:00:00Z"), "duplicate"),  # later report of the same tx
    (cb("cb1", "3"), "duplicate"),  # exact retransmission
    (cb("cb2", "abc"), "invalid_transaction_id"),  # no transaction it could name
    (cb("cb3", PAN), "invalid_transaction_id"),  # a PAN in the id column: quarantined, and masked
    (cb("cb4", "4", reported="05/04/2018 09:00"), "invalid_reported_at"),
    (cb("cb5", "5", tx="yesterday"), "invalid_tx_datetime"),
    (cb("cb6", "6", reported="2031-01-01T00:00:00Z"), "future_timestamp"),
    (cb("cb7", "7", reported="2018-03-01T00:00:00Z"), "reported_before_transaction"),
    (f"cb8,8,{PAN},only-four-fields", "malformed_line"),
    (cb("cb9", "9", tx=""), "kept"),  # the transaction time is optional in labels
]
FX_HEADER = ["rate_date", "base_currency", "quote_currency", "rate"]


def fx(date: str, ccy: str, rate: str, base: str = "EUR") -> dict:
    return {"rate_date": date, "base_currency": base, "quote_currency": ccy, "rate": rate}


# A second FX file, landed a day after write_reference's one (whose 3 rates are all kept).
FX_ROWS = [
    (fx(s.DAY, "USD", "1.30"), "kept"),  # correction of the first file's USD rate: it replaces it
    (fx(s.DAY, "CHF", "n/a"), "invalid_rate"),
    (fx(s.DAY, "SEK", "-11.2"), "non_positive_rate"),
    (fx("2018-02-30", "NOK", "11.0"), "invalid_rate_date"),
    (fx(s.DAY, "DKK", "7.4", base="USD"), "unknown_base_currency"),
    (fx(s.DAY, "E1", "1.0"), "invalid_currency"),
    (fx(s.DAY, "PLN", "inf"), "invalid_rate"),  # DuckDB would cast 'inf' to a double: refused first
    ("2018-04-01,EUR", "malformed_line"),
]


def land(data_dir) -> None:
    s.write_reference(data_dir)
    s.write(
        data_dir,
        f"chargebacks/{CB_DAY}/chargebacks_{CB_DAY}.csv",
        s.csv_text([r for r, _ in CHARGEBACK_ROWS], s.CB_HEADER),
    )
    s.write(
        data_dir,
        f"fx_rates/{FX_CORRECTION_LANDED}/fx_rates_{s.DAY}_002.csv",
        s.csv_text([r for r, _ in FX_ROWS], FX_HEADER),
    )


def materialise(data_dir) -> dg.ExecuteInJobResult:
    defs = s.defs_for(data_dir)
    keys = [dg.AssetKey.from_user_string(k) for k in [*s.RAW_REFS, *s.CLEANED_REFS]]
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=dg.AssetSelection.assets(*keys),
        resources=build_resources(data_dir, TEST_PAN_KEY),
        raise_on_error=False,
    )


def tables(data_dir) -> dict[str, pd.DataFrame]:
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        return {
            t: conn.execute(f"SELECT * FROM {t}").df()
            for t in ("cleaned.labels", "cleaned.fx_rates", cl.REF_QUAR)
        }


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    """One materialisation shared by the read-only tests (each run costs seconds)."""
    data_dir = tmp_path_factory.mktemp("reference") / "data"
    land(data_dir)
    result = materialise(data_dir)
    return data_dir, result, tables(data_dir)


@pytest.fixture
def own_copy(landed, tmp_path):
    """A private copy of the landed world for tests that damage or rebuild it."""
    data_dir = tmp_path / "copy"
    shutil.copytree(landed[0], data_dir)
    return data_dir


def _expected_quarantine(rows) -> dict[int, str]:
    return {i: o for i, (_, o) in enumerate(rows, start=1) if o not in ("kept", "duplicate")}


def _quarantined(quarantine: pd.DataFrame, source: str) -> dict[int, str]:
    q = quarantine[quarantine["source"] == source]
    return dict(zip(q["row_number"].astype(int), q["reason"], strict=True))


def test_every_bad_chargeback_row_is_quarantined_by_position_with_its_reason(landed):
    _, _, t = landed
    assert _quarantined(t[cl.REF_QUAR], "chargebacks") == _expected_quarantine(CHARGEBACK_ROWS)


def test_every_bad_fx_row_is_quarantined_by_position_with_its_reason(landed):
    _, _, t = landed
    assert _quarantined(t[cl.REF_QUAR], "fx_rates") == _expected_quarantine(FX_ROWS)


def test_labels_keep_the_earliest_report_and_count_later_ones_as_duplicates(landed):
    _, result, t = landed
    labels = t["cleaned.labels"].set_index("transaction_id")
    assert sorted(labels.index) == [3, 9]
    assert labels.loc[3, "chargeback_id"] == "cb1"
    assert labels.loc[3, "reported_at"] == pd.Timestamp("2018-04-05 09:00:00")
    md = result.asset_materializations_for_node("cleaned__labels")[0].metadata
    assert md["source_rows"].value == len(CHARGEBACK_ROWS)
    assert md["duplicates_removed"].value == 2
    assert md["quarantined_rows"].value == 7
    assert md["quarantined_invalid_transaction_id"].value == 2


def test_labels_say_which_labels_each_rebuild_changed(landed, own_copy):
    """The span the feature lookback sensor rebuilds from: first load, a late chargeback file, nothing new."""
    _, result, _ = landed
    md = result.asset_materializations_for_node("cleaned__labels")[0].metadata
    # cb1 (transaction of 04-01) and cb9 (no transaction time: counts at its report date), reported 04-05.
    assert (md[cl.CHANGED_LABELS].value, md[cl.CHANGED_FIRST_REPORT].value) == (2, CB_DAY)
    assert md[cl.CHANGED_LAST_TRANSACTION].value == CB_DAY

    late = "2018-04-07"
    s.write(
        own_copy,
        f"chargebacks/{late}/chargebacks_{late}.csv",
        s.csv_text([cb("cb10", "10", reported=f"{late}T08:00:00Z", tx="2018-04-02T10:00:00Z")], s.CB_HEADER),
    )
    md = materialise(own_copy).asset_materializations_for_node("cleaned__labels")[0].metadata
    assert (md[cl.CHANGED_LABELS].value, md[cl.CHANGED_FIRST_REPORT].value) == (1, late)
    assert md[cl.CHANGED_LAST_TRANSACTION].value == "2018-04-02"

    md = materialise(own_copy).asset_materializations_for_node("cleaned__labels")[0].metadata
    assert (md[cl.CHANGED_LABELS].value, md[cl.CHANGED_FIRST_REPORT].value) == (0, "")


def test_a_later_fx_file_corrects_a_rate_and_the_replaced_rate_counts_as_a_duplicate(landed):
    _, result, t = landed
    rates = t["cleaned.fx_rates"].set_index("quote_currency")["rate"]
    assert rates.to_dict() == {"GBP": 0.8, "JPY": 130.0, "USD": 1.30}
    md = result.asset_materializations_for_node("cleaned__fx_rates")[0].metadata
    assert (md["source_rows"].value, md["rows_written"].value) == (3 + len(FX_ROWS), 3)
    assert (md["quarantined_rows"].value, md["duplicates_removed"].value) == (7, 1)


def test_the_reconciliation_checks_pass_with_every_count_in_metadata(landed):
    _, result, _ = landed
    evs = {ev.check_name: ev for ev in result.get_asset_check_evaluations()}
    for name, (raw_rows, kept, quarantined, dups) in {
        "chargebacks_rows_reconcile": (len(CHARGEBACK_ROWS), 2, 7, 2),
        "fx_rates_rows_reconcile": (3 + len(FX_ROWS), 3, 7, 1),
    }.items():
        ev = evs[name]
        md = {k: v.value for k, v in ev.metadata.items()}
        assert ev.passed, md
        assert (md["raw_rows"], md["kept_rows"], md["quarantined_rows"], md["duplicates_removed"]) == (
            raw_rows,
            kept,
            quarantined,
            dups,
        )
    failed = [ev.check_name for ev in result.get_asset_check_evaluations() if not ev.passed]
    assert failed == []


def test_a_label_lost_after_the_write_fails_the_reconciliation(own_copy):
    data_dir = own_copy
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        conn.execute("DELETE FROM cleaned.labels WHERE transaction_id = 9")
        c = reconcile_reference(conn, "chargebacks")
    assert c["dropped_rows"] == 1
    assert c["raw_rows"] != c["kept_rows"] + c["quarantined_rows"] + c["duplicates_removed"]


def test_a_quarantine_row_with_no_raw_row_behind_it_is_detected(own_copy):
    data_dir = own_copy
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        conn.execute(
            "INSERT INTO cleaned.reference_quarantine SELECT business_date, 'fx_rates', feed, source_file, "
            "99, NULL, 'invalid_rate', 'rate', rate, ingested_at FROM raw.fx_rates LIMIT 1"
        )
        c = reconcile_reference(conn, "fx_rates")
    assert c["quarantined_rows_in_raw"] != c["quarantined_rows"]


def test_no_clear_pan_in_the_reference_quarantine(landed):
    _, _, t = landed
    q = t[cl.REF_QUAR]
    text = q.astype(str).to_string()
    assert PAN not in text
    row5 = q[(q["source"] == "chargebacks") & (q["row_number"] == 5)].iloc[0]
    assert row5["offending_value"] == mask_pans(PAN)


def test_rematerialising_replaces_each_source_slice_without_touching_the_other(landed, own_copy):
    data_dir, before = own_copy, landed[2]
    result = materialise(data_dir)
    assert result.success
    after = tables(data_dir)
    key = ["source", "source_file", "row_number"]
    pd.testing.assert_frame_equal(
        before[cl.REF_QUAR].sort_values(key).reset_index(drop=True),
        after[cl.REF_QUAR].sort_values(key).reset_index(drop=True),
    )


def test_the_schema_lists_exactly_the_reasons_the_sql_can_give():
    assert set(schemas.REFERENCE_REASONS) == set(cl.REFERENCE_REASONS)
