"""Only fraud chargebacks are labels. A scheme chargeback feed also carries non-fraud disputes
(processing errors, authorisation issues, consumer disputes): those are counted, never labelled and never
quarantined; a chargeback with a missing or unrecognised reason code is quarantined; the reconciliation
stays exact: raw rows = labels + quarantined + duplicates + non-fraud disputes."""

from __future__ import annotations

import shutil

import duckdb
import pandas as pd
import pytest

from fraud_assets.defs.cleaned import assets as cl
from fraud_assets.defs.cleaned.checks import reconcile_reference
from fraud_assets.lib import reason_codes
from fraud_assets.resources import build_resources
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY

CB_DAY = "2018-04-05"


def cb(cid: str, tid: int, code: str, reported: str = f"{CB_DAY}T09:00:00Z") -> dict:
    return {
        "chargeback_id": cid,
        "transaction_id": str(tid),
        "pan": s.PANS[1],
        "tx_datetime": f"{s.DAY}T12:00:{tid:02d}Z",
        "reported_at": reported,
        "reason_code": code,
        "amount": "10.00",
        "currency": "EUR",
    }


# (row, outcome), data rows numbered from 1 in file order.
ROWS = [
    (cb("f3", 3, "10.4"), "label"),  # Visa fraud, card absent
    (cb("f3-2", 3, "10.4", reported=f"{CB_DAY}T18:00:00Z"), "duplicate"),  # a later fraud report
    (cb("n4", 4, "13.1"), "non_fraud"),  # Visa: merchandise / services not received
    (cb("n5", 5, "4853", reported="2018-04-03T10:00:00Z"), "non_fraud"),  # Mastercard cardholder dispute
    (cb("f5", 5, " 10.3 "), "label"),  # ... then a fraud report: the label, at its own time
    (cb("u6", 6, "99.9"), "unknown_reason_code"),
    (cb("m6", 6, " "), "missing_reason_code"),
    (cb("f7", 7, "ua02"), "label"),  # Discover card not present, in lower case
    (cb("f8", 8, "10.4", reported="2018-04-02T08:00:00Z"), "label"),  # a fraud report ...
    (cb("n8", 8, "12.6.1", reported="2018-04-04T08:00:00Z"), "non_fraud"),  # ... then duplicate processing
]
TRANSACTIONS = [3, 4, 5, 6, 7, 8]


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("reasons") / "data"
    s.write_reference(data_dir)
    s.write_acq_a(data_dir, [s.a_row(i) for i in TRANSACTIONS])
    s.write_chargebacks(data_dir, [r for r, _ in ROWS], CB_DAY)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRAUD_PAN_KEY", TEST_PAN_KEY)
        results = s.run_pipeline(data_dir, raise_on_error=False)
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        t = {x: conn.execute(f"SELECT * FROM {x}").df() for x in ("cleaned.labels", cl.REF_QUAR)}
    md = next(m for r in results for m in r.asset_materializations_for_node("cleaned__labels")).metadata
    evs = {ev.check_name: ev for r in results for ev in r.get_asset_check_evaluations()}
    return {"data_dir": data_dir, "tables": t, "metadata": md, "checks": evs}


def _count(outcome: str) -> int:
    return sum(o == outcome for _, o in ROWS)


def test_labels_hold_exactly_the_fraud_coded_chargebacks_at_their_earliest_fraud_report(landed):
    labels = landed["tables"]["cleaned.labels"].set_index("transaction_id")
    assert sorted(labels.index) == [3, 5, 7, 8]
    assert labels["chargeback_id"].to_dict() == {3: "f3", 5: "f5", 7: "f7", 8: "f8"}
    # transaction 5: disputed for another reason first, fraud known only from its fraud report
    assert labels.loc[5, "reported_at"] == pd.Timestamp(f"{CB_DAY} 09:00:00")
    assert labels.loc[8, "reported_at"] == pd.Timestamp("2018-04-02 08:00:00")
    assert labels["reason_code"].to_dict() == {3: "10.4", 5: "10.3", 7: "UA02", 8: "10.4"}


def test_a_non_fraud_dispute_is_neither_a_label_nor_quarantined(landed):
    q = landed["tables"][cl.REF_QUAR]
    assert 4 not in set(landed["tables"]["cleaned.labels"]["transaction_id"])
    assert not {4, 5, 8} & set(q["transaction_id"])


def test_a_missing_or_unknown_reason_code_is_quarantined_with_its_reason(landed):
    q = landed["tables"][cl.REF_QUAR]
    q = q[q["source"] == "chargebacks"]
    got = dict(zip(q["row_number"].astype(int), q["reason"], strict=True))
    assert got == {6: "unknown_reason_code", 7: "missing_reason_code"}
    assert set(q["offending_column"]) == {"reason_code"}
    assert q.set_index("row_number").loc[6, "offending_value"] == "99.9"


def test_counts_reconcile_exactly_in_the_labels_metadata(landed):
    md = {k: v.value for k, v in landed["metadata"].items()}
    assert md["source_rows"] == len(ROWS)
    assert md["rows_written"] == _count("label") == 4
    assert md["non_fraud_disputes"] == _count("non_fraud") == 3
    assert md["quarantined_rows"] == 2
    assert md["quarantined_unknown_reason_code"] == md["quarantined_missing_reason_code"] == 1
    assert md["duplicates_removed"] == _count("duplicate") == 1
    assert md["source_rows"] == (
        md["rows_written"] + md["quarantined_rows"] + md["duplicates_removed"] + md["non_fraud_disputes"]
    )


def test_the_reconciliation_check_counts_non_fraud_disputes_and_passes(landed):
    ev = landed["checks"]["chargebacks_rows_reconcile"]
    md = {k: v.value for k, v in ev.metadata.items()}
    assert ev.passed, md
    assert (md["raw_rows"], md["kept_rows"], md["quarantined_rows"]) == (len(ROWS), 4, 2)
    assert (md["duplicates_removed"], md["non_fraud_disputes"], md["unaccounted_rows"]) == (1, 3, 0)
    assert [n for n, e in landed["checks"].items() if not e.passed] == []


def test_a_non_fraud_dispute_turned_into_a_label_fails_the_reconciliation(landed, tmp_path):
    data_dir = tmp_path / "copy"
    shutil.copytree(landed["data_dir"], data_dir)
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        conn.execute(
            "INSERT INTO cleaned.labels SELECT 4, card_token, tx_datetime, reported_at, 'n4', '13.1' "
            "FROM cleaned.labels WHERE transaction_id = 3"
        )
        c = reconcile_reference(conn, "chargebacks")
    assert c["kept_rows_without_source"] == 1
    assert c["raw_rows"] != c["kept_rows"] + c["quarantined_rows"] + c["duplicates_removed"] + 3


def test_fraud_and_non_fraud_codes_are_disjoint_and_cover_the_schemes():
    fraud, non_fraud = reason_codes.FRAUD_CODES, reason_codes.NON_FRAUD_CODES
    assert not fraud & non_fraud
    schemes = {"visa", "mastercard", "amex", "discover"}
    assert set(reason_codes.FRAUD_REASON_CODES) == set(reason_codes.NON_FRAUD_REASON_CODES) == schemes
    assert {"10.1", "10.5", "4837", "4863", "F29", "FR2", "UA01", "UA06"} <= fraud
    assert {"11.3", "12.6.1", "13.1", "4808", "4853", "4855", "C08", "P08", "DP"} <= non_fraud
    assert not {"FR4", "FR6", "M01", "R13", "83"} & (fraud | non_fraud)  # any dispute kind / legacy


@pytest.mark.parametrize(
    "code",
    ["10.4", " 10.4 ", "f29", "Ua02", "13.1", " c08", "4853", "99.9", "", None, "10", "FR4", "fraud"],
)
def test_the_sql_classifies_a_code_as_python_does(code):
    sql = f"SELECT {reason_codes.classify_sql('c')} FROM (SELECT CAST(? AS VARCHAR) AS c)"
    assert duckdb.connect().execute(sql, [code]).fetchone()[0] == reason_codes.classify(code)
