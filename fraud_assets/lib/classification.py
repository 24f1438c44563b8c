"""Data classification tags on every asset, derived from the columns it holds, so a new table is
classified the day it lands and the UI filters on them (`pci=tokenised`, `pii=pseudonymous`).

- `pci`: `tokenised` - cards appear as `card_token` (keyed HMAC of the PAN), `pan_bin`, `pan_last4`, never
  the clear PAN (which exists only in memory inside raw ingestion); `masked` - producer text that could
  have held a card number, stored with every card number masked; `none` - no card data.
- `pii`: `home_location` - the cardholder's home coordinates and country (with a pseudonymous id);
  `pseudonymous` - rows link to one cardholder through `card_token` or `customer_id`, with no name,
  address or contact; `none`.

Applied once to the code location (fraud_assets/definitions.py); docs/architecture.md says the same.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from fraud_assets.lib.catalog_metadata import COLUMN_SCHEMA_KEY

PCI_TAG = "pci"
PII_TAG = "pii"
TOKENISED_CARD_COLUMNS = frozenset({"card_token", "pan_bin", "pan_last4"})
MASKED_TEXT_COLUMNS = frozenset({"pan_masked", "raw_line_masked", "offending_value", "source_file"})
HOME_LOCATION_COLUMNS = frozenset({"home_x", "home_y", "home_country"})
PERSON_ID_COLUMNS = frozenset({"card_token", "customer_id"})


def classification(columns: Iterable[str]) -> dict[str, str]:
    """The `pci` and `pii` tags of a table with these columns."""
    names = set(columns)
    if names & TOKENISED_CARD_COLUMNS:
        pci = "tokenised"
    elif names & MASKED_TEXT_COLUMNS:
        pci = "masked"
    else:
        pci = "none"
    if names & HOME_LOCATION_COLUMNS:
        pii = "home_location"
    elif names & PERSON_ID_COLUMNS:
        pii = "pseudonymous"
    else:
        pii = "none"
    return {PCI_TAG: pci, PII_TAG: pii}


def _columns(spec: dg.AssetSpec) -> list[str]:
    value = spec.metadata.get(COLUMN_SCHEMA_KEY)
    schema = value.schema if isinstance(value, dg.TableSchemaMetadataValue) else value
    return [c.name for c in schema.columns] if isinstance(schema, dg.TableSchema) else []


def apply_classification(defs: dg.Definitions) -> dg.Definitions:
    """Every asset tagged with the classification of its definition's column schema."""
    return defs.map_asset_specs(func=lambda spec: spec.merge_attributes(tags=classification(_columns(spec))))
