"""Every asset carries its data classification (`pci`, `pii` tags), derived from the columns it holds, so
nobody has to remember to tag a new table and the UI can filter on them."""

from __future__ import annotations

import dagster as dg
import pytest

from fraud_assets.cli import catalog
from fraud_assets.definitions import defs
from fraud_assets.lib.classification import classification

GRAPH = catalog.asset_graph(defs)
ASSET_KEYS = sorted(catalog.key_str(k) for k in GRAPH.get_all_asset_keys())
CARD_BEARING = [
    "raw/authorizations",
    "raw/chargebacks",
    "raw/cardholders",
    "cleaned/transactions",
    "cleaned/labels",
    "cleaned/cards",
]


def tags_of(asset: str) -> dict[str, str]:
    return dict(GRAPH.get(dg.AssetKey.from_user_string(asset)).tags or {})


@pytest.mark.parametrize("asset", CARD_BEARING)
def test_raw_and_cleaned_tables_holding_cards_are_tagged_pci_tokenised_and_pii(asset):
    tags = tags_of(asset)
    assert tags["pci"] == "tokenised"
    assert tags["pii"] in {"pseudonymous", "home_location"}


@pytest.mark.parametrize("asset", ASSET_KEYS)
def test_every_asset_carries_a_pci_and_a_pii_classification(asset):
    tags = tags_of(asset)
    assert tags.get("pci") in {"tokenised", "masked", "none"}
    assert tags.get("pii") in {"home_location", "pseudonymous", "none"}


def test_cardholder_home_location_is_classified_as_such():
    assert tags_of("raw/cardholders")["pii"] == tags_of("cleaned/cards")["pii"] == "home_location"


def test_a_table_with_only_masked_producer_text_is_pci_masked():
    assert tags_of("cleaned/quarantine")["pci"] == "masked"
    assert classification(["business_date", "offending_value"]) == {"pci": "masked", "pii": "none"}


def test_a_table_without_card_or_person_columns_is_classified_none():
    assert classification(["model_version", "auc", "business_date"]) == {"pci": "none", "pii": "none"}
    assert tags_of("models/evaluation")["pci"] == tags_of("models/evaluation")["pii"] == "none"


def test_a_card_token_makes_a_table_pci_tokenised_and_pii_pseudonymous():
    assert classification(["transaction_id", "card_token", "score"]) == {
        "pci": "tokenised",
        "pii": "pseudonymous",
    }
