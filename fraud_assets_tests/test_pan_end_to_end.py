"""Card numbers in the shapes the old masking pattern missed (issue 13, finding 2) leave no trace in a
deployment after raw and cleaned ran over them: not in DuckDB, the exports, DAGSTER_HOME or the
instance's runs, event logs and cursors."""

from __future__ import annotations

import dagster as dg

from fraud_assets.lib.pan_scan import scan_deployment
from fraud_assets_tests import raw_cleaned_support as s


def dotted(pan: str) -> str:
    return ".".join(pan[i : i + 4] for i in range(0, len(pan), 4))


def test_no_card_number_of_the_input_is_left_anywhere(tmp_path, data_dir):
    home = tmp_path / "home"
    home.mkdir()
    s.write_reference(data_dir)
    s.write_acq_a(
        data_dir,
        [
            s.a_row(1),
            s.a_row(2, three_ds=dotted(s.PANS[2])),  # a producer's column mix-up, keyed in with dots
            f"3,{s.PANS[3]} 12/26,broken",  # a malformed line: PAN followed by its expiry
            s.a_row(4, terminal_id=f"{s.PANS[1]}\t1"),  # quarantined with its offending value
            s.a_row(5, amount="".join(chr(0x0660 + int(c)) for c in s.PANS[2])),  # Arabic-Indic digits
            s.a_row(6, three_ds=s.hidden_shapes(s.PANS[3])["html-escaped-twice"]),  # an HTML export
            s.a_row(7, currency=s.hidden_shapes(s.PANS[1])["url-nbsp-twice"]),  # a form body encoded twice
        ],
    )
    # A JSON encoder run twice, in a line cut short (kept as its text) and in a field.
    twice = s.hidden_shapes(s.PANS[2])["json-escaped-twice"]
    s.write_acq_b(
        data_dir, [s.b_row(10), '{"txn_ref": "11", "card_number": "' + twice, s.b_row(12, tds=twice)]
    )
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        results = s.run_pipeline(data_dir, instance=instance, raise_on_error=False)
        assert all(r.success for r in results)
        assert all(
            e.passed
            for r in results
            for e in r.get_asset_check_evaluations()
            if e.check_name.endswith("no_clear_pan")
        )
        findings = scan_deployment(data_dir, home, instance=instance, pans=set(s.PANS.values()))
    finally:
        instance.dispose()
    assert [str(f) for f in findings] == []
    assert scan_deployment(data_dir, pans=set(s.PANS.values()), include=("landing",))  # the scan sees them
