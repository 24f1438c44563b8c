"""docs/catalog.md is generated from the Definitions (`make docs`) and never goes stale."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from fraud_assets.cli import catalog
from fraud_assets.lib.pan import contains_pan
from fraud_assets.lib.partitions import business_date_partitions

TEAM = ["team:fraud-data-science"]


def sample_defs() -> dg.Definitions:
    @dg.asset(
        key_prefix="raw",
        group_name="raw",
        description="Authorisations as received.\n\nFor investigators.",
        owners=TEAM,
        kinds={"duckdb", "sql"},
        code_version="3",
        partitions_def=business_date_partitions,
        automation_condition=dg.AutomationCondition.eager(),
        metadata={
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn("transaction_id", "BIGINT", description="unique | per feed"),
                    dg.TableColumn("card_token", "VARCHAR", description="HMAC of the PAN"),
                ]
            )
        },
    )
    def authorizations(): ...

    @dg.asset(
        key_prefix="cleaned",
        group_name="cleaned",
        deps=[authorizations],
        description="Typed transactions.",
        owners=TEAM,
        kinds={"python"},
        code_version="1",
        freshness_policy=dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=26)),
    )
    def transactions(): ...

    @dg.asset_check(asset=authorizations, description="Every row has a card token.", blocking=True)
    def tokens_present():
        return dg.AssetCheckResult(passed=True)

    return dg.Definitions(assets=[transactions, authorizations], asset_checks=[tokens_present])


def test_committed_catalog_is_current():
    stale = catalog.stale_files(catalog.load_defs())
    assert catalog.CATALOG_PATH not in stale, (
        "docs/catalog.md is stale: run `make docs` and commit it.\n" + stale.get(catalog.CATALOG_PATH, "")
    )


def test_catalog_documents_each_assets_description_group_owners_kinds_partitioning_and_deps():
    text = catalog.render_catalog(sample_defs())
    section = text[text.index("### `raw/authorizations`") : text.index("### `cleaned/transactions`")]
    assert "Authorisations as received.\n\nFor investigators." in section
    assert "| Group | `raw` |" in section
    assert "| Owners | `team:fraud-data-science` |" in section
    assert "| Kinds | `duckdb`, `sql` |" in section
    assert "| Code version | `3` |" in section
    assert "| Partitioning | daily business_date (UTC) |" in section
    assert "| Automation | `eager` |" in section
    assert "| Depends on | [`raw/authorizations`](#rawauthorizations) |" in text
    assert "| Used by | [`cleaned/transactions`](#cleanedtransactions) |" in section
    assert "| Freshness | fail when older than 26 hours |" in text


def test_catalog_lists_column_schema_and_checks_with_descriptions():
    text = catalog.render_catalog(sample_defs())
    assert "| `transaction_id` | BIGINT | unique \\| per feed |" in text
    assert "| `tokens_present` | yes | Every row has a card token. |" in text


def test_catalog_orders_groups_by_the_flow_of_data():
    text = catalog.render_catalog(sample_defs())
    assert text.index("## raw") < text.index("## cleaned")


def test_catalog_does_not_depend_on_the_environment(monkeypatch, tmp_path):
    first = catalog.render_catalog(sample_defs())
    monkeypatch.setenv("FRAUD_DATA_DIR", str(tmp_path / "elsewhere"))
    assert catalog.render_catalog(sample_defs()) == first


def test_check_mode_fails_when_the_committed_catalog_is_stale(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(catalog, "load_defs", sample_defs)
    monkeypatch.setattr(catalog, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(catalog, "CATALOG_PATH", tmp_path / "docs" / "catalog.md")
    monkeypatch.setattr(catalog, "SNAPSHOT_PATH", tmp_path / "snapshots" / "asset_graph.json")
    assert catalog.main(["--write"]) == 0
    assert catalog.main(["--check"]) == 0
    catalog.CATALOG_PATH.write_text(catalog.CATALOG_PATH.read_text().replace("Typed transactions.", "Old."))
    assert catalog.main(["--check"]) == 1
    assert "+Typed transactions." in capsys.readouterr().err


def test_check_mode_fails_when_the_asset_graph_snapshot_is_stale(monkeypatch, tmp_path):
    monkeypatch.setattr(catalog, "load_defs", sample_defs)
    monkeypatch.setattr(catalog, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(catalog, "CATALOG_PATH", tmp_path / "docs" / "catalog.md")
    monkeypatch.setattr(catalog, "SNAPSHOT_PATH", tmp_path / "snapshots" / "asset_graph.json")
    catalog.main(["--write"])
    catalog.SNAPSHOT_PATH.write_text("{}\n")
    assert catalog.main(["--check"]) == 1


def test_write_requires_a_mode():
    with pytest.raises(SystemExit):
        catalog.main([])


def test_committed_catalog_contains_no_card_number():
    assert not contains_pan(catalog.CATALOG_PATH.read_text())
