"""`table_checks` with `contract(model)`: a pandera model becomes a blocking check that validates what was
materialised."""

import dagster as dg
import pandas as pd
import pandera.pandas as pa
import pytest
from dagster_duckdb import DuckDBResource
from pandera.typing import Series

from fraud_assets.lib.contract_sql import UntranslatableContract
from fraud_assets.lib.contracts import validate_frame
from fraud_assets.lib.pan_leaks import find_pan_leaks
from fraud_assets.lib.partitions import business_date_partitions
from fraud_assets.lib.table_checks import contract, pan_scan, table_checks
from fraud_assets.lib.warehouse import replace_partition
from fraud_assets_tests import raw_cleaned_support as s


class ThingsModel(pa.DataFrameModel):
    """Things with a positive amount."""

    business_date: Series[pd.Timestamp]
    note: Series[str] = pa.Field(nullable=True)
    amount: Series[float] = pa.Field(gt=0)


def things_asset(rows_by_day: dict[str, list[tuple[str | None, float]]]):
    @dg.asset(key=["test", "things"], partitions_def=business_date_partitions)
    def things(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> None:
        day = context.partition_key
        df = pd.DataFrame(rows_by_day[day], columns=["note", "amount"]).assign(
            business_date=pd.Timestamp(day)
        )
        with duckdb.get_connection() as conn:
            cur = conn.cursor()
            cur.register("src", df)
            replace_partition(
                cur,
                "test.things",
                "SELECT CAST(business_date AS DATE) AS business_date, note, amount FROM src",
                "business_date",
                [day],
            )
            cur.close()

    return things


def run(tmp_path, rows_by_day, day, extra_checks=()):
    asset = things_asset(rows_by_day)
    check = table_checks(asset, "test.things", [contract(ThingsModel)])
    instance = dg.DagsterInstance.ephemeral()
    results = {}
    for d in rows_by_day if day is None else [day]:
        results[d] = dg.materialize(
            [asset, check, *[c(asset) for c in extra_checks]],
            resources={"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb"))},
            instance=instance,
            partition_key=d,
            raise_on_error=False,
        )
    return check, results


def evaluation(result, name=None):
    evs = [e for e in result.get_asset_check_evaluations() if name is None or e.check_name == name]
    assert len(evs) == 1
    return evs[0]


def test_the_factory_makes_a_blocking_partitioned_check_with_a_description(tmp_path):
    check = table_checks(things_asset({}), "test.things", [contract(ThingsModel)])
    spec = next(iter(check.check_specs))
    assert spec.blocking
    assert "test.things" in spec.description
    assert "ThingsModel" in spec.description
    assert check.partitions_def == business_date_partitions


def test_a_partition_that_meets_the_contract_passes(tmp_path):
    _, results = run(tmp_path, {"2018-04-01": [("ok", 1.0), (None, 2.5)]}, "2018-04-01")
    ev = evaluation(results["2018-04-01"])
    assert ev.passed
    assert ev.metadata["rows_validated"].value == 2


def test_failures_are_counted_by_check_and_sampled_with_pans_masked(tmp_path):
    rows = {"2018-04-01": [(f"card {s.PANS[1]}", -1.0), ("ok", 0.0), ("fine", 3.0)]}
    _, results = run(tmp_path, rows, "2018-04-01")
    ev = evaluation(results["2018-04-01"])
    assert not ev.passed
    assert ev.severity == dg.AssetCheckSeverity.ERROR
    assert ev.metadata["failure_count"].value == 2
    assert "greater_than(0)" in ev.metadata["failures_by_check"].value
    assert s.PANS[1] not in repr(ev.metadata)


def test_only_the_materialised_partition_is_validated(tmp_path):
    rows = {"2018-04-01": [("bad", -5.0)], "2018-04-02": [("good", 5.0)]}
    _, results = run(tmp_path, rows, None)
    assert not evaluation(results["2018-04-01"]).passed
    ev = evaluation(results["2018-04-02"])
    assert ev.passed
    assert ev.metadata["rows_validated"].value == 1


def test_validate_frame_reports_every_failure_lazily():
    df = pd.DataFrame(
        {"business_date": [pd.Timestamp("2018-04-01")] * 2, "note": [1, None], "amount": [-1.0, None]}
    )
    passed, md = validate_frame(ThingsModel, df)
    assert not passed
    assert md["failed_checks"].value >= 2


def test_pan_leak_check_finds_a_pan_hidden_in_any_text_column(tmp_path):
    spaced = " ".join(s.PANS[2][i : i + 4] for i in range(0, 16, 4))
    rows = {"2018-04-01": [("clean note, id 123456", 1.0), (f"call {spaced}", 2.0)]}
    _, results = run(
        tmp_path,
        rows,
        "2018-04-01",
        extra_checks=[lambda a: table_checks(a, "test.things", [pan_scan()], name="things_pan_scan")],
    )
    ev = evaluation(results["2018-04-01"], "no_clear_pan")
    assert not ev.passed
    assert ev.metadata["leaking_rows"].value == 1
    assert ev.metadata["leaking_columns"].value == "note"


def test_hex_digests_and_non_luhn_digit_runs_are_not_leaks(tmp_path):
    import duckdb

    conn = duckdb.connect(str(tmp_path / "x.duckdb"))
    token = "4539148803436467" + "0" * 48  # a digest that happens to start with a PAN shape
    no_window_passes_luhn = "4539148803436520"
    conn.execute("CREATE TABLE t AS SELECT ? AS card_token, ? AS note", [token, no_window_passes_luhn])
    assert find_pan_leaks(conn, "t") == {}


def test_a_contract_the_engine_cannot_run_fails_when_the_check_is_declared():
    class Untwinned(ThingsModel):
        @pa.dataframe_check
        def amount_is_round(cls, df: pd.DataFrame) -> pd.Series:
            return df["amount"] % 1 == 0

    with pytest.raises(UntranslatableContract, match="amount_is_round"):
        table_checks(things_asset({}), "test.things", [contract(Untwinned)])


def test_a_backfill_range_is_validated_in_one_pass_with_uniqueness_across_its_days(tmp_path):
    class UniqueNotes(ThingsModel):
        note: Series[str] = pa.Field(unique=True)

    rows = {"2018-04-01": [("same", 1.0)], "2018-04-02": [("same", 2.0)]}
    asset = things_asset(rows)
    check = table_checks(asset, "test.things", [contract(UniqueNotes)])
    instance = dg.DagsterInstance.ephemeral()
    resources = {"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb"))}
    for day in rows:
        dg.materialize([asset], resources=resources, instance=instance, partition_key=day)
    result = dg.materialize(
        [asset, check],
        resources=resources,
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2018-04-01",
            "dagster/asset_partition_range_end": "2018-04-02",
        },
        selection=dg.AssetSelection.checks(check),
        raise_on_error=False,
    )
    ev = next(e for e in result.get_asset_check_evaluations() if not e.partition)
    assert ev.metadata["rows_validated"].value == 2
    assert "field_uniqueness" in ev.metadata["failures_by_check"].value


def test_a_contract_check_describes_its_table_with_the_whole_first_paragraph_of_the_model():
    from fraud_assets.defs.cleaned.schemas import ReferenceQuarantineModel
    from fraud_assets.lib.contracts import contract_description

    # the model's docstring wraps its first sentence over two lines
    text = contract_description(ReferenceQuarantineModel, "cleaned.reference_quarantine")
    assert "and the (masked) value. Evaluated in DuckDB" in text
