"""`table_checks`: the checks that read one table run as one step, each still recorded on its own."""

import dagster as dg
import pandas as pd
import pandera.pandas as pa
from dagster_duckdb import DuckDBResource
from pandera.typing import Series

from fraud_assets.lib.contracts import EVALUATED_OVER
from fraud_assets.lib.partitions import business_date_partitions
from fraud_assets.lib.table_checks import DayResults, TableCheck, TableScope, contract, pan_scan, table_checks
from fraud_assets.lib.warehouse import replace_partition
from fraud_assets_tests import raw_cleaned_support as s

DAYS = ["2018-04-01", "2018-04-02", "2018-04-03"]
RANGE = {"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]}


class ThingsModel(pa.DataFrameModel):
    """Things with a positive amount."""

    business_date: Series[pd.Timestamp]
    note: Series[str] = pa.Field(nullable=True)
    amount: Series[float] = pa.Field(gt=0)


def things_asset(rows_by_day: dict[str, list[tuple[str | None, float]]]) -> dg.AssetsDefinition:
    @dg.asset(
        key=["test", "things"],
        partitions_def=business_date_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def things(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> None:
        days = list(context.partition_keys)
        rows = [(note, amount, pd.Timestamp(d)) for d in days for note, amount in rows_by_day[d]]
        df = pd.DataFrame(rows, columns=["note", "amount", "business_date"])
        with duckdb.get_connection() as conn:
            cur = conn.cursor()
            cur.register("src", df)
            sql = "SELECT CAST(business_date AS DATE) AS business_date, note, amount FROM src"
            replace_partition(cur, "test.things", sql, "business_date", days)
            cur.close()

    return things


def row_count(scope: TableScope) -> dg.AssetCheckResult:
    where, params = scope.filter()
    n = scope.conn.execute(f"SELECT count(*) FROM {scope.table} WHERE {where}", params).fetchone()[0]
    return dg.AssetCheckResult(passed=n > 0, metadata={"rows": n})


def run(tmp_path, rows_by_day, **materialize_kwargs):
    asset = things_asset(rows_by_day)
    checks = table_checks(
        asset,
        "test.things",
        [contract(ThingsModel), pan_scan(), TableCheck("has_rows", "{table} is not empty.", row_count)],
    )
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [asset, checks],
        resources={"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb"))},
        instance=instance,
        raise_on_error=False,
        **materialize_kwargs,
    )
    return checks, result


def by_name(result) -> dict[str, list[dg.AssetCheckEvaluation]]:
    found: dict[str, list] = {}
    for ev in result.get_asset_check_evaluations():
        found.setdefault(ev.check_name, []).append(ev)
    return found


def test_a_tables_checks_are_one_step_with_each_check_declared_on_its_own(tmp_path):
    checks, _ = run(tmp_path, {DAYS[0]: [("ok", 1.0)]}, partition_key=DAYS[0])
    assert checks.node_def.name == "test__things_checks"
    assert {spec.name for spec in checks.check_specs} == {"contract", "no_clear_pan", "has_rows"}
    assert all(spec.blocking for spec in checks.check_specs)
    assert "test.things" in next(s for s in checks.check_specs if s.name == "has_rows").description


def test_every_check_of_the_step_is_recorded_under_its_own_name(tmp_path):
    _, result = run(tmp_path, {DAYS[0]: [("ok", 1.0), (None, 2.0)]}, partition_key=DAYS[0])
    evs = by_name(result)
    assert result.success
    assert set(evs) == {"contract", "no_clear_pan", "has_rows"}
    assert evs["contract"][0].metadata["rows_validated"].value == 2
    assert evs["has_rows"][0].metadata["rows"].value == 2
    assert all(e[0].passed and e[0].partition == DAYS[0] for e in evs.values())


def test_one_failing_check_does_not_hide_the_others(tmp_path):
    rows = {DAYS[0]: [(f"card {s.PANS[1]}", -1.0), ("fine", 3.0)]}
    _, result = run(tmp_path, rows, partition_key=DAYS[0])
    evs = by_name(result)
    assert not result.success  # blocking checks failed: the step fails after recording them all
    assert not evs["contract"][0].passed
    assert evs["contract"][0].metadata["failure_count"].value == 1
    assert not evs["no_clear_pan"][0].passed
    assert evs["has_rows"][0].passed
    assert s.PANS[1] not in repr(evs["contract"][0].metadata)


def test_a_range_run_checks_the_range_in_one_step_and_records_each_day(tmp_path):
    rows = {d: [("ok", 1.0), ("ok", 2.0)] for d in DAYS}
    _, result = run(tmp_path, rows, tags=RANGE)
    evs = by_name(result)
    assert result.success
    for name in ("contract", "no_clear_pan", "has_rows"):
        per_day = sorted(e.partition for e in evs[name] if e.partition)
        assert per_day == DAYS
        assert all(e.metadata[EVALUATED_OVER].value.startswith(DAYS[0]) for e in evs[name] if e.partition)
    # Each day validated on its own rows; the range's evaluation over all of them.
    assert {e.partition: e.metadata["rows_validated"].value for e in evs["contract"]} == {
        **dict.fromkeys(DAYS, 2),
        None: 6,
    }


def test_a_missing_table_fails_every_check_that_reads_it(tmp_path):
    asset = things_asset({DAYS[0]: [("ok", 1.0)]})
    checks = table_checks(asset, "test.absent", [contract(ThingsModel), pan_scan()])
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [asset, checks],
        resources={"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb"))},
        instance=instance,
        partition_key=DAYS[0],
        raise_on_error=False,
    )
    evs = by_name(result)
    assert not evs["contract"][0].passed
    assert not evs["no_clear_pan"][0].passed
    assert "does not exist" in evs["no_clear_pan"][0].metadata["error"].value


def test_a_check_that_reads_another_table_declares_it_as_a_dependency():
    reads_raw = TableCheck(
        "reconciles", "{table} vs raw.things.", row_count, additional_deps=[["raw", "things"]]
    )
    checks = table_checks(things_asset({}), "test.things", [contract(ThingsModel), reads_raw])
    spec = next(s for s in checks.check_specs if s.name == "reconciles")
    assert [d.asset_key for d in spec.additional_deps] == [dg.AssetKey(["raw", "things"])]
    assert checks.partitions_def == business_date_partitions


def rows_each_day(scope: TableScope) -> DayResults:
    counts = dict(
        scope.conn.execute(
            f"SELECT CAST(business_date AS VARCHAR), count(*) FROM {scope.table} GROUP BY 1"
        ).fetchall()
    )
    per_day = {
        d: dg.AssetCheckResult(passed=counts.get(d, 0) > 1, metadata={"rows": counts.get(d, 0)}) for d in DAYS
    }
    overall = dg.AssetCheckResult(
        passed=all(r.passed for r in per_day.values()), metadata={"rows": sum(counts.values())}
    )
    return DayResults(overall, per_day)


def test_a_check_judging_each_day_records_each_days_own_verdict_in_a_range_run(tmp_path):
    asset = things_asset({DAYS[0]: [("ok", 1.0)] * 2, DAYS[1]: [("ok", 1.0)], DAYS[2]: [("ok", 1.0)] * 3})
    checks = table_checks(
        asset, "test.things", [TableCheck("two_rows_a_day", "{table}: two rows a day.", rows_each_day)]
    )
    result = dg.materialize(
        [asset, checks],
        resources={"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb"))},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        tags=RANGE,
    )
    assert not result.success  # blocking: the second day failed
    evs = {e.partition: e for e in by_name(result)["two_rows_a_day"]}
    assert {d: (evs[d].passed, evs[d].metadata["rows"].value) for d in DAYS} == {
        DAYS[0]: (True, 2),
        DAYS[1]: (False, 1),
        DAYS[2]: (True, 3),
    }
    assert (evs[None].passed, evs[None].metadata["rows"].value) == (False, 6)


def test_in_a_range_run_a_card_number_fails_the_pan_scan_of_its_own_day_only(tmp_path):
    rows = {d: [("ok", 1.0), ("ok", 2.0)] for d in DAYS}
    rows[DAYS[1]] = [(f"card {s.PANS[1]}", 1.0), (f"again {s.PANS[1]}", 2.0)]
    _, result = run(tmp_path, rows, tags=RANGE)
    assert not result.success  # blocking: the second day leaked
    evs = {e.partition: e for e in by_name(result)["no_clear_pan"]}
    assert {d: (evs[d].passed, evs[d].metadata["leaking_rows"].value) for d in DAYS} == {
        DAYS[0]: (True, 0),
        DAYS[1]: (False, 2),
        DAYS[2]: (True, 0),
    }
    whole = evs[None]
    assert (whole.passed, whole.metadata["leaking_rows"].value) == (False, 2)
    assert whole.metadata["failing_days"].value == DAYS[1]
    assert s.PANS[1] not in repr([e.metadata for e in evs.values()])


def test_in_a_range_run_a_row_breaking_the_contract_fails_its_own_days_contract_only(tmp_path):
    rows = {d: [("ok", 1.0), ("ok", 2.0)] for d in DAYS}
    rows[DAYS[2]] = [("ok", -1.0), ("ok", 2.0), ("ok", -3.0)]
    _, result = run(tmp_path, rows, tags=RANGE)
    assert not result.success  # blocking: the third day broke the contract
    evs = {e.partition: e for e in by_name(result)["contract"]}
    assert {d: evs[d].passed for d in DAYS} == {DAYS[0]: True, DAYS[1]: True, DAYS[2]: False}
    assert evs[DAYS[2]].metadata["failure_count"].value == 2
    assert evs[DAYS[2]].metadata["rows_validated"].value == 3
    assert "failure_count" not in evs[DAYS[0]].metadata
    whole = evs[None]
    assert (whole.passed, whole.metadata["failure_count"].value) == (False, 2)
    assert whole.metadata["failing_days"].value == DAYS[2]
