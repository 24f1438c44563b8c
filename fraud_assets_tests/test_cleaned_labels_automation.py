"""cleaned/labels judges chargebacks against cleaned/transactions: automation rebuilds the labels after
any day's transactions update, and a day that is missing or failing never holds them back."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from fraud_assets_tests.automation_stubs import materialize_stub, stub_definitions

DAYS = ["2018-04-01", "2018-04-02", "2018-04-03"]


@pytest.fixture
def defs(tmp_path: Path) -> dg.Definitions:
    return stub_definitions(tmp_path / "landing")


@pytest.fixture
def instance() -> dg.DagsterInstance:
    inst = dg.DagsterInstance.ephemeral()
    return inst


def labels_requested(result) -> bool:
    return bool(result.get_requested_partitions(dg.AssetKey(["cleaned", "labels"])))


def test_labels_are_rebuilt_after_a_day_of_transactions_while_other_days_are_still_missing(defs, instance):
    materialize_stub(instance, "raw/chargebacks", "cleaned/labels")
    materialize_stub(instance, "cleaned/transactions", partitions=(DAYS[0],))
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    materialize_stub(instance, "cleaned/transactions", partitions=(DAYS[1],))  # a late authorisation file
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
    assert not labels_requested(second)  # one tick after its inputs changed (policy.fill_and_follow)
    assert labels_requested(third)


def test_labels_are_built_before_every_day_is_cleaned(defs, instance):
    materialize_stub(instance, "raw/chargebacks")
    materialize_stub(instance, "cleaned/transactions", partitions=(DAYS[0],))
    assert labels_requested(dg.evaluate_automation_conditions(defs=defs, instance=instance))
