"""Chargeback and FX rows are never dropped silently: each is kept, quarantined in
cleaned.reference_quarantine with a reason and a masked value, or counted as a duplicate, and a
blocking check reconciles the three against the raw table. A label names a cleaned transaction of the
same card; an FX rate is a sane number, given once per day and currency by a delivery."""

from __future__ import annotations

import re
import shutil

import dagster as dg
import pandas as pd
import pytest

from fraud_assets.defs.cleaned import assets as cl
from fraud_assets.defs.cleaned import reference, schemas
from fraud_assets.defs.cleaned.checks import reconcile_reference
from fraud_assets.defs.raw import snapshots
from fraud_assets.lib.pan import mask_pans
from fraud_assets.lib.reason_codes import classify_sql
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
    (cb("cb11", "77"), "unknown_transaction"),  # no such transaction was cleaned (yet)
    ({**cb("cb12", "3"), "pan": s.PANS[2]}, "card_mismatch"),  # transaction 3 is another card's
    ({**cb("cb13", "9"), "amount": "NaN"}, "invalid_amount"),
    ({**cb("cb14", "9"), "amount": "-10.00"}, "negative_amount"),
    (cb("cb15", "10", reported=f"{CB_DAY}T23:59:60Z"), "kept"),  # a leap second: read as 23:59:59
]
# The authorisations the chargebacks name (all on card PANS[1]); 11 is reported late in one test.
LABELLED_TRANSACTIONS = [3, 9, 10, 11]
FX_HEADER = ["rate_date", "base_currency", "quote_currency", "rate"]


def fx(date: str, ccy: str, rate: str, base: str = "EUR") -> dict:
    return {"rate_date": date, "base_currency": base, "quote_currency": ccy, "rate": rate}


# A second FX file, landed a day after write_reference's one (whose 3 rates are all kept).
FX_ROWS = [
    (fx(s.DAY, "USD", "1.30"), "kept"),  # correction of the first file's USD rate: it replaces it
    (fx(s.DAY, "CHF", "n/a"), "invalid_rate"),
    (fx(s.DAY, "SEK", "-11.2"), "non_positive_rate"),
    (fx("2018-02-30", "NOK", "11.0"), "invalid_rate_date"),
    (fx("9999-12-31", "NOK", "11.0"), "invalid_rate_date"),  # a date but no rate day: failed the contract
    (fx("0001-01-01", "NOK", "11.0"), "invalid_rate_date"),
    (fx(s.DAY, "DKK", "7.4", base="USD"), "unknown_base_currency"),
    (fx(s.DAY, "E1", "1.0"), "invalid_currency"),
    (fx(s.DAY, "PLN", "inf"), "invalid_rate"),  # DuckDB would cast 'inf' to a double: refused first
    ("2018-04-01,EUR", "malformed_line"),
    (fx(s.DAY, "NOK", "0"), "non_positive_rate"),
    (fx(s.DAY, "HUF", "9" * 400), "rate_out_of_range"),  # overflows to infinity
    (fx(s.DAY, "CZK", "0." + "0" * 300 + "1"), "rate_out_of_range"),  # 1e-301
    (fx(s.DAY, "RON", "0.0005"), "rate_out_of_range"),  # a unit worth 2,000 EUR: a unit mix-up
    (fx(s.DAY, "ISK", "NaN"), "invalid_rate"),
    (fx(s.DAY, "CAD", "1.50"), "conflicting_rate"),  # one file, one day, two rates: neither is trusted
    (fx(s.DAY, "CAD", "1.55"), "conflicting_rate"),
    (fx(s.DAY, "GBP", "0.81"), "conflicting_rate"),  # ... and the first file's GBP rate still applies
    (fx(s.DAY, "GBP", "0.82"), "conflicting_rate"),
    (fx(s.DAY, "AUD", "1.60"), "kept"),
    (fx(s.DAY, "AUD", "1.60"), "duplicate"),  # the same rate twice is a repeat, not a conflict
    (fx(s.DAY, "KRW", "1,450"), "invalid_rate"),  # a thousands separator: 1.45 would be off by 1,000
    (fx(s.DAY, "NZD", "1,7512"), "kept"),  # a decimal comma
]


def land(data_dir) -> None:
    s.write_reference(data_dir)
    s.write_acq_a(data_dir, [s.a_row(i) for i in LABELLED_TRANSACTIONS])
    s.write_chargebacks(data_dir, [r for r, _ in CHARGEBACK_ROWS], CB_DAY)
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


class Results:
    """The runs of a pipeline, read as one."""

    def __init__(self, results: list[dg.ExecuteInJobResult]):
        self.results = results

    def metadata(self, node: str) -> dict:
        return next(m for r in self.results for m in r.asset_materializations_for_node(node)).metadata

    def evaluations(self) -> list:
        return [ev for r in self.results for ev in r.get_asset_check_evaluations()]


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    """One pipeline run shared by the read-only tests (each run costs seconds)."""
    data_dir = tmp_path_factory.mktemp("reference") / "data"
    land(data_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRAUD_PAN_KEY", TEST_PAN_KEY)
        results = Results(s.run_pipeline(data_dir, raise_on_error=False))
    return data_dir, results, tables(data_dir)


@pytest.fixture
def own_copy(landed, tmp_path):
    """A private copy of the landed world for tests that damage or rebuild it."""
    data_dir = tmp_path / "copy"
    shutil.copytree(landed[0], data_dir)
    return data_dir


def _expected_quarantine(rows) -> dict[int, str]:
    return {i: o for i, (_, o) in enumerate(rows, start=1) if o not in ("kept", "duplicate")}


FX_QUARANTINED = len(_expected_quarantine(FX_ROWS))


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
    assert sorted(labels.index) == [3, 9, 10]
    assert labels.loc[3, "chargeback_id"] == "cb1"
    assert labels.loc[3, "reported_at"] == pd.Timestamp("2018-04-05 09:00:00")
    md = result.metadata("cleaned__labels")
    assert md["source_rows"].value == len(CHARGEBACK_ROWS)
    assert md["duplicates_removed"].value == 2
    assert md["quarantined_rows"].value == 11
    assert md["quarantined_invalid_transaction_id"].value == 2


def test_a_leap_second_report_stays_on_its_day(landed):
    _, _, t = landed
    labels = t["cleaned.labels"].set_index("transaction_id")
    assert labels.loc[10, "reported_at"] == pd.Timestamp(f"{CB_DAY} 23:59:59")


def test_a_chargeback_for_a_transaction_cleaned_later_becomes_a_label_at_the_next_rebuild(own_copy):
    # Transaction 77 arrives in a late authorisation file: its waiting chargeback is judged again.
    s.write_acq_a(own_copy, [s.a_row(77)], name=f"acq_a_{s.DAY}_late.csv.gz", landed="2018-04-06")
    s.run_pipeline(own_copy)
    t = tables(own_copy)
    assert 77 in set(t["cleaned.labels"]["transaction_id"])
    assert "unknown_transaction" not in set(t[cl.REF_QUAR]["reason"])


def test_a_report_is_judged_against_the_time_and_card_of_the_transaction_it_names(own_copy):
    """The chargeback's own tx_datetime is optional and the producer's word: a report made before the
    cleaned transaction happened is no label, whatever time (or none) the chargeback claims, and a label
    carries its transaction's time and card."""
    day, late = "2018-04-06", "2018-04-06T18:00:00Z"
    s.write_acq_a(
        own_copy,
        [s.a_row(i, tx_datetime=late) for i in (21, 22, 23)],
        name=f"acq_a_{day}.csv.gz",
        landed="2018-04-07",
    )
    early = f"{day}T10:00:00Z"
    s.write(
        own_copy,
        f"chargebacks/{day}/chargebacks_{day}_002.csv",
        s.csv_text(
            [
                cb("cb21", "21", reported=early, tx=""),  # no time given: reported 8 h before the payment
                cb("cb22", "22", reported=early, tx=f"{day}T09:00:00Z"),  # a wrong time given
                {**cb("cb23", "23", reported=f"{day}T20:00:00Z", tx=""), "pan": ""},  # no card given
            ],
            s.CB_HEADER,
        ),
    )
    s.run_pipeline(own_copy, keys=(day,))
    t = tables(own_copy)
    q = t[cl.REF_QUAR].set_index("transaction_id")
    assert q.loc[21, "reason"] == q.loc[22, "reason"] == "reported_before_transaction"
    labels = t["cleaned.labels"].set_index("transaction_id")
    assert not {21, 22} & set(labels.index)
    assert labels.loc[23, "tx_datetime"] == pd.Timestamp(late.rstrip("Z"))
    assert labels.loc[23, "card_token"] == labels.loc[3, "card_token"]  # the transaction's card (PANS[1])


def test_a_chargeback_card_number_is_matched_by_the_bin_and_last4_it_shows_and_one_showing_none_is_no_label(
    own_copy,
):
    """A card number that is sent must show the transaction is that card's. Masked by the producer (first 6
    and last 4, as PCI DSS lets it be shown) or mistyped in the middle, it is matched by BIN and last 4;
    one whose last 4 are another card's is `card_mismatch`; one that shows neither is `invalid_pan`, and
    the transaction id alone makes no label (an absent one is the transaction's card)."""
    day = "2018-04-06"
    masked = f"{PAN[:6]}******{PAN[-4:]}"
    mistyped = PAN[:-1] + str((int(PAN[-1]) + 1) % 10)  # Luhn fails, and the last 4 are not the card's
    s.write(
        own_copy,
        f"chargebacks/{day}/chargebacks_{day}.csv",
        s.csv_text(
            [
                {**cb("cb31", "11", reported=f"{day}T08:00:00Z"), "pan": mistyped},
                {**cb("cb32", "11", reported=f"{day}T09:00:00Z"), "pan": "XXXX-XXXX-XXXX-XXXX"},
                {**cb("cb33", "11", reported=f"{day}T10:00:00Z"), "pan": f"{PAN[:6]}XXXXXX{s.PANS[2][-4:]}"},
                {**cb("cb34", "11", reported=f"{day}T11:00:00Z"), "pan": masked},
            ],
            s.CB_HEADER,
        ),
    )
    assert materialise(own_copy).success
    t = tables(own_copy)
    q = (
        t[cl.REF_QUAR]
        .set_index(["source_file", "row_number"])
        .loc[f"chargebacks/{day}/chargebacks_{day}.csv"]
    )
    assert q["reason"].tolist() == ["card_mismatch", "invalid_pan", "card_mismatch"]
    assert q["offending_column"].tolist() == ["pan", "pan", "pan"]
    assert q["offending_value"].tolist()[0] == f"{PAN[:6]}******{mistyped[-4:]}"
    assert mistyped not in q.astype(str).to_string()
    # The producer-masked one shows the card's BIN and last 4: transaction 11 is labelled by it.
    labels = t["cleaned.labels"].set_index("transaction_id")
    assert labels.loc[11, "reported_at"] == pd.Timestamp(f"{day} 11:00:00")


def test_labels_say_which_labels_each_rebuild_changed(landed, own_copy):
    """The span the feature lookback sensor rebuilds from: first load, a late chargeback file, nothing new."""
    _, result, _ = landed
    md = result.metadata("cleaned__labels")
    # cb1, cb9 (no transaction time given: its transaction's is taken) and cb15, all of transactions of
    # 04-01, reported 04-05.
    assert (md[cl.CHANGED_LABELS].value, md[cl.CHANGED_FIRST_REPORT].value) == (3, CB_DAY)
    assert md[cl.CHANGED_LAST_TRANSACTION].value == s.DAY

    late = "2018-04-07"
    s.write(
        own_copy,
        f"chargebacks/{late}/chargebacks_{late}.csv",
        s.csv_text([cb("cb10", "11", reported=f"{late}T08:00:00Z", tx="2018-04-02T10:00:00Z")], s.CB_HEADER),
    )
    md = materialise(own_copy).asset_materializations_for_node("cleaned__labels")[0].metadata
    assert (md[cl.CHANGED_LABELS].value, md[cl.CHANGED_FIRST_REPORT].value) == (1, late)
    # transaction 11 happened on 04-01, whatever day the chargeback says
    assert md[cl.CHANGED_LAST_TRANSACTION].value == s.DAY

    md = materialise(own_copy).asset_materializations_for_node("cleaned__labels")[0].metadata
    assert (md[cl.CHANGED_LABELS].value, md[cl.CHANGED_FIRST_REPORT].value) == (0, "")


def test_a_later_fx_file_corrects_a_rate_and_the_replaced_rate_counts_as_a_duplicate(landed):
    _, result, t = landed
    rates = t["cleaned.fx_rates"].set_index("quote_currency")["rate"]
    assert rates.to_dict() == {"AUD": 1.6, "GBP": 0.8, "JPY": 130.0, "NZD": 1.7512, "USD": 1.30}
    md = result.metadata("cleaned__fx_rates")
    assert (md["source_rows"].value, md["rows_written"].value) == (3 + len(FX_ROWS), 5)
    assert (md["quarantined_rows"].value, md["duplicates_removed"].value) == (FX_QUARANTINED, 2)


def test_the_reconciliation_checks_pass_with_every_count_in_metadata(landed):
    _, result, _ = landed
    evs = {ev.check_name: ev for ev in result.evaluations()}
    for name, (raw_rows, kept, quarantined, dups) in {
        "chargebacks_rows_reconcile": (len(CHARGEBACK_ROWS), 3, 11, 2),
        "fx_rates_rows_reconcile": (3 + len(FX_ROWS), 5, FX_QUARANTINED, 2),
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
    failed = [ev.check_name for ev in result.evaluations() if not ev.passed]
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
    sql = reference.FX_JUDGED + reference.CHARGEBACK_JUDGED.replace(classify_sql("reason_code"), "")
    # snapshot rows: raw's reasons (invalid_reason), and cleaned's own (an invalid card number, conflicts)
    sql += reference.MERCHANTS_JUDGED + reference.CARDHOLDERS_JUDGED
    sql += "".join(map(snapshots.row_reason_sql, snapshots.ROW_RULES))
    assert set(re.findall(r"THEN '([a-z_]+)'", sql)) == set(cl.REFERENCE_REASONS)
