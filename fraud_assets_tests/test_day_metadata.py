"""A run over several business days gives each day's materialisation that day's own figures.

The UI plots metadata over partitions: after a range run (the bootstrap, a backfill, a lookback rebuild)
each day must show its own row count and figures, not a copy of the range's totals (a flat line at the
range's figure).
"""

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from fraud_assets.lib.day_metadata import DAY_ROW_COUNT, spread_table_over_days
from fraud_assets.lib.partitions import business_date_partitions, dates_filter
from fraud_assets.lib.warehouse import day_previews, table_preview
from fraud_assets_tests import raw_cleaned_support as s

D, D1, D2 = "2018-04-01", "2018-04-02", "2018-04-03"
RANGE = {"dagster/asset_partition_range_start": D, "dagster/asset_partition_range_end": D2}
PAN = "4539148803436467"  # a test card number: masked in every preview


def by_day(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dict[str, object]]:
    """(asset key, day) -> that day's materialisation metadata (plain values) in a run."""
    events = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    return {
        (m.asset_key.to_user_string(), m.partition): {
            k: getattr(v, "value", v) for k, v in m.metadata.items()
        }
        for m in events
    }


@dg.asset(partitions_def=business_date_partitions, backfill_policy=dg.BackfillPolicy.single_run())
def amounts(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS amounts (business_date DATE, amount DOUBLE)")
        conn.execute("INSERT INTO amounts VALUES ('2018-04-01', 1), ('2018-04-01', 3), ('2018-04-02', 10)")
        md = {
            "mean_amount": 99.0,
            "range_note": "shared",
            "dagster/table_name": "amounts",
            "preview": "range",
            "compute_seconds": 1.5,  # the run's, not a day's
            "amount_cap": 500,  # a setting: true of each day
        }
        md = spread_table_over_days(
            context, conn, "amounts", md, {"mean_amount": "avg(amount)"}, every_day=["amount_cap"]
        )
    return dg.MaterializeResult(metadata=md)


def test_each_day_of_a_range_run_gets_its_own_row_count_and_figures(tmp_path):
    db = str(tmp_path / "w.duckdb")
    result = dg.materialize([amounts], resources={"duckdb": DuckDBResource(database=db)}, tags=RANGE)
    md = {day: figures for (_, day), figures in by_day(result).items()}
    assert (md[D][DAY_ROW_COUNT], md[D]["mean_amount"]) == (2, 2.0)
    assert (md[D1][DAY_ROW_COUNT], md[D1]["mean_amount"]) == (1, 10.0)
    # A day without rows: no figure, rather than the range's.
    assert md[D2][DAY_ROW_COUNT] == 0
    assert "mean_amount" not in md[D2]
    assert {m["range_note"] for m in md.values()} == {"shared"}


def test_each_day_of_a_range_run_previews_its_own_rows(tmp_path):
    db = str(tmp_path / "w.duckdb")
    result = dg.materialize([amounts], resources={"duckdb": DuckDBResource(database=db)}, tags=RANGE)
    previews = {day: figures["preview"] for (_, day), figures in by_day(result).items()}
    # the range's preview would show the first day's rows on every day
    assert "range" not in previews.values()
    assert "|        3 |" in previews[D]
    assert "10 |" not in previews[D]
    assert "|       10 |" in previews[D1]
    assert "|        3 |" not in previews[D1]
    assert previews[D2] == "_no rows_"


def test_a_figure_of_the_run_is_on_the_ranges_last_day_only(tmp_path):
    """A copy on every day would plot as a flat line at the run's figure; the last day's materialisation is
    the run's latest, the one the asset's overview and the sensors read."""
    db = str(tmp_path / "w.duckdb")
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [amounts], resources={"duckdb": DuckDBResource(database=db)}, tags=RANGE, instance=instance
    )
    md = {day: figures for (_, day), figures in by_day(result).items()}
    assert "compute_seconds" not in md[D]
    assert "compute_seconds" not in md[D1]
    assert md[D2]["compute_seconds"] == 1.5
    [latest] = instance.fetch_materializations(amounts.key, limit=1).records
    assert latest.partition_key == D2
    assert latest.asset_materialization.metadata["compute_seconds"].value == 1.5
    assert {m["amount_cap"] for m in md.values()} == {500}  # declared true of each day
    logged = [e.user_message for e in instance.all_logs(result.run_id) if "compute_seconds" in e.user_message]
    assert logged == [f"amounts, run over {D} to {D2} (on {D2}'s materialisation): compute_seconds 1.5"]


def test_a_one_day_run_keeps_its_metadata_as_computed(tmp_path):
    db = str(tmp_path / "w.duckdb")
    result = dg.materialize([amounts], resources={"duckdb": DuckDBResource(database=db)}, partition_key=D)
    assert by_day(result)["amounts", D]["mean_amount"] == 99.0
    assert by_day(result)["amounts", D]["compute_seconds"] == 1.5


def test_a_range_run_of_raw_and_cleaned_records_each_days_own_counts(data_dir):
    s.write_reference(data_dir)
    s.write_acq_a(data_dir, [s.a_row(1), s.a_row(2), s.a_row(3)], name=f"acq_a_{D}.csv.gz", landed=D1)
    s.write_acq_b(data_dir, [s.b_row(11)], name=f"acq_b_{D}.jsonl.gz", landed=D1)
    day1 = [s.a_row(4, tx_datetime=f"{D1}T12:00:00Z"), s.a_row(5, tx_datetime=f"{D1}T12:01:00Z", amount="-5")]
    s.write_acq_a(data_dir, day1, name=f"acq_a_{D1}.csv.gz", landed=D2)
    _, ranged, _ = s.run_pipeline(data_dir, [D, D1])
    assert ranged.success

    md = by_day(ranged)
    raw = {day: md["raw/authorizations", day] for day in (D, D1)}
    assert (raw[D]["rows_acq_a"], raw[D]["rows_acq_b"], raw[D][DAY_ROW_COUNT]) == (3, 1, 4)
    assert (raw[D1]["rows_acq_a"], raw[D1]["rows_acq_b"], raw[D1][DAY_ROW_COUNT]) == (2, 0, 2)
    tx = {day: md["cleaned/transactions", day] for day in (D, D1)}
    assert (tx[D]["raw_rows"], tx[D]["cleaned_rows"], tx[D]["quarantined_rows"]) == (4, 4, 0)
    assert (tx[D1]["raw_rows"], tx[D1]["cleaned_rows"], tx[D1]["quarantined_rows"]) == (2, 1, 1)
    assert md["cleaned/transactions", D1][DAY_ROW_COUNT] == 1
    assert md["cleaned/quarantine", D]["quarantined_rows"] == 0
    assert md["cleaned/quarantine", D1]["quarantined_rows"] == 1
    assert md["cleaned/quarantine", D1]["quarantined_negative_amount"] == 1
    assert "quarantined_negative_amount" not in md["cleaned/quarantine", D]
    assert md["cleaned/reconciliation", D][DAY_ROW_COUNT] == 1
    # The run's figures (the table's rows, the range's, days written) only on the range's last day.
    run_figures = {"dagster/row_count", "range_row_count", "partitions_written"}
    for asset in ("raw/authorizations", "cleaned/transactions"):
        assert not run_figures & set(md[asset, D]), asset
        assert run_figures <= set(md[asset, D1]), asset
    assert md["raw/authorizations", D1]["range_row_count"] == 6


def test_the_previews_of_a_range_read_at_once_are_each_days_own_preview_as_read_alone(tmp_path):
    """One query previews every day of a range; each day's text is the one a query of that day alone shows:
    its first rows in the table's order (days interleaved, rows deleted and added), its NULLs (a column with
    a NULL on another day only keeps its type on this one), dates, times, masked card numbers."""
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        conn.execute("CREATE SCHEMA raw")
        conn.execute(
            "CREATE TABLE raw.t (id BIGINT, business_date DATE, n INTEGER, ok BOOLEAN, x DOUBLE, "
            "s VARCHAR, seen TIMESTAMP)"
        )
        conn.execute(
            f"""INSERT INTO raw.t SELECT i, DATE '{D}' + CAST(i % 3 AS INTEGER),
            CASE WHEN i = 4 THEN NULL ELSE i * 10 END, CASE WHEN i = 5 THEN NULL ELSE i % 2 = 0 END,
            CASE WHEN i = 7 THEN NULL ELSE i / 4 END, CASE WHEN i = 2 THEN '{PAN}' ELSE 'v|' || i END,
            TIMESTAMP '{D} 10:00:00.25' + to_seconds(i) FROM range(30) r(i)"""
        )
        conn.execute("DELETE FROM raw.t WHERE id IN (0, 3)")
        conn.execute(f"INSERT INTO raw.t VALUES (100, DATE '{D}', 1, true, 0.5, 'late', NULL)")
        days = [D, D1, D2, "2018-04-09"]
        at_once = day_previews(conn, "raw.t", days)
        alone = {day: table_preview(conn, "raw.t", dates_filter([day])) for day in days}
        assert {d: p.value for d, p in at_once.items()} == {d: p.value for d, p in alone.items()}
        assert at_once["2018-04-09"].value == "_no rows_"
        assert "|  100 |" not in at_once[D].value  # added last: not among the day's first rows
        assert PAN not in at_once[D2].value
        assert "\\<NA\\>" in at_once[D1].value  # the NULL of i = 4, on the second day
        assert "|   n |" in at_once[D].value  # still a number column, right-aligned, on the first day
        columns = ["id", "business_date"]
        assert {d: p.value for d, p in day_previews(conn, "raw.t", days, columns).items()} == {
            day: table_preview(conn, "raw.t", dates_filter([day]), columns=columns).value for day in days
        }
