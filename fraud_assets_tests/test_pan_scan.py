"""`scan_deployment` finds a card number wherever a deployment could have stored it, and names the place
without printing the number."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from fraud_assets.lib.pan import luhn_check_digit
from fraud_assets.lib.pan_scan import collect_pans, holds_any, scan_deployment
from fraud_assets_tests.raw_cleaned_support import hidden_shapes

PAN = "4539148803436467"
OTHER = "5200000000000007"


@pytest.fixture
def deployment(tmp_path) -> tuple[Path, Path]:
    data, home = tmp_path / "data", tmp_path / "home"
    (data / "exports" / "raw" / "t").mkdir(parents=True)
    home.mkdir()
    return data, home


def found(findings, fragment: str) -> list[str]:
    return [str(f) for f in findings if fragment in f.location]


def test_a_pan_in_a_numeric_warehouse_column_is_found(deployment):
    data, home = deployment
    with duckdb.connect(str(data / "warehouse.duckdb")) as conn:
        conn.execute(f"CREATE TABLE t AS SELECT {PAN}::BIGINT AS customer_id, 'ok' AS note")
    findings = scan_deployment(data, home, pans={PAN})
    assert found(findings, "main.t.customer_id")
    assert not found(findings, "note")


def test_a_pan_in_a_parquet_export_is_found(deployment):
    data, home = deployment
    pd.DataFrame({"pan": [float(PAN)]}).to_parquet(data / "exports" / "raw" / "t" / "data.parquet")
    assert found(scan_deployment(data, home, pans={PAN}), "data.parquet.pan")


def test_pans_in_the_alerts_outbox_compute_logs_and_archives_are_found(deployment):
    data, home = deployment
    (data / "alerts").mkdir()
    (data / "alerts" / "alerts.jsonl").write_text(json.dumps({"message": f"{PAN[:8]} {PAN[8:]}"}) + "\n")
    (home / "logs").mkdir()
    (home / "logs" / "step.err").write_text("x" * 10_000 + f"\n...{PAN} 12/26...\n")
    with zipfile.ZipFile(data / "model.skops", "w") as zf:
        zf.writestr("schema.json", json.dumps({"feature": PAN}))
    (home / "old.log.gz").write_bytes(gzip.compress(PAN.encode()))
    findings = scan_deployment(data, home, pans={PAN})
    for place in ("alerts.jsonl", "step.err", "model.skops!schema.json", "old.log.gz"):
        assert found(findings, place), place


@pytest.mark.parametrize("shape", list(hidden_shapes(PAN)))
def test_a_pan_hidden_by_marks_fillers_or_json_escapes_is_found(deployment, shape):
    data, home = deployment
    (data / "alerts").mkdir()
    (data / "alerts" / "alerts.jsonl").write_text(f'{{"message": "{hidden_shapes(PAN)[shape]}"}}\n')
    for pans in ({PAN}, None):
        assert found(scan_deployment(data, home, pans=pans), "alerts.jsonl"), (shape, pans)


def test_run_tags_cursors_and_event_logs_of_the_instance_are_found_on_disk_and_through_its_api(deployment):
    data, home = deployment
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        instance.add_run(
            dg.DagsterRun(job_name="j", run_id="r1", tags={"fraud_assets/files": f"acq_a_{PAN}.csv"})
        )
        by_api = scan_deployment(data, None, instance=instance, pans={PAN})
    finally:
        instance.dispose()
    assert found(by_api, "run r1 tags")
    assert [f for f in scan_deployment(data, home, pans={PAN}) if f.source == "sqlite"]


def test_the_landing_zone_is_left_out_unless_asked_for(deployment):
    data, home = deployment
    (data / "landing").mkdir()
    (data / "landing" / "f.csv").write_text(f"1,{PAN}\n")
    assert not scan_deployment(data, home, pans={PAN})
    assert scan_deployment(data, home, pans={PAN}, include=("landing",))


def test_findings_never_print_the_card_number(deployment):
    data, home = deployment
    (data / "notes.txt").write_text(f"card {PAN}\n")
    [finding] = scan_deployment(data, home, pans={PAN})
    assert PAN not in str(finding)


@pytest.mark.parametrize("given", [None, {OTHER}], ids=["any-pan", "given-pans"])
def test_a_sample_never_prints_part_of_a_neighbouring_card_cut_by_its_window(deployment, given):
    """The sample's 40 characters past a hit ended inside the next card: its first 12 digits (BIN and
    middle six), too few for mask_pans, were printed in clear; with pan_last4 that is the whole card."""
    data, home = deployment
    for text in (
        f"ref {OTHER} status=declined reason=dnh {PAN} end",
        f"{PAN} status=declined reason=dnh {OTHER}",
    ):
        (data / "incident.log").write_text(text + "\n")
        [finding] = found(scan_deployment(data, home, pans=given), "incident.log")
        assert PAN[6:12] not in finding, finding
        assert OTHER[6:12] not in finding, finding
        assert "******" in finding  # the hit itself still shows its BIN and last 4


def test_without_given_pans_any_luhn_valid_number_is_found_but_our_digests_are_not(deployment):
    data, home = deployment
    with duckdb.connect(str(data / "warehouse.duckdb")) as conn:
        conn.execute(f"CREATE TABLE t AS SELECT '{OTHER}' AS note, '{PAN}' || repeat('0', 48) AS card_token")
    findings = scan_deployment(data, home)
    assert found(findings, "t.note")
    assert not found(findings, "card_token")


def test_collect_pans_reads_the_card_numbers_a_landing_zone_delivered(tmp_path):
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(f"1,{PAN},x\n".encode()))
    pd.DataFrame({"customer_id": [int(OTHER)]}).to_parquet(tmp_path / "c.parquet")
    assert {PAN, OTHER} <= collect_pans(tmp_path.iterdir())


def test_collect_pans_keeps_the_valid_runs_inside_a_card_so_a_cut_copy_still_matches(tmp_path):
    """`pans_in` reports a card once; the needles of a precise scan keep its shorter Luhn-valid runs."""
    prefix = "4539148803436" + luhn_check_digit("4539148803436")
    card = prefix + "0" + luhn_check_digit(prefix + "0")
    (tmp_path / "a.csv").write_text(f"1,{card},x\n")
    needles = collect_pans([tmp_path / "a.csv"])
    assert {card, prefix} <= needles
    assert holds_any(f"ref {prefix}", needles)


def test_a_truncated_gzip_landing_file_is_read_as_far_as_it_goes_and_stops_nothing(deployment, tmp_path):
    """The simulator's truncated authorisation file (rejected `truncated_gzip` by the register) stays in
    the landing zone: its readable part still delivered card numbers, and the scan goes on past it."""
    landing = tmp_path / "landing"
    landing.mkdir()
    whole = gzip.compress(f"1,{PAN},x\n".encode() + b"2,filler,x\n" * 20_000, mtime=0)
    (landing / "a_truncated.csv.gz").write_bytes(whole[: len(whole) // 2])
    (landing / "b.csv.gz").write_bytes(gzip.compress(f"1,{OTHER},x\n".encode()) * 2)  # two members
    assert {PAN, OTHER} <= collect_pans(sorted(landing.iterdir()))
    data, home = deployment
    (home / "old.log.gz").write_bytes(gzip.compress(f"{PAN}\n".encode() + b"x" * 100_000)[:60])
    (home / "z.log").write_text(f"{PAN}\n")
    assert found(scan_deployment(data, home, pans={PAN}), "z.log")
