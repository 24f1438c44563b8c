"""Definition-time column schema, so an asset shows its columns before it is ever materialised.

The UI, `docs/catalog.md` and the asset standard (fraud_assets_tests/test_asset_specs.py) read
`dagster/column_schema` from the asset *definition*; `table_metadata(...)` in a MaterializeResult only
describes a materialisation. One line per asset:

    @dg.asset(..., metadata=column_schema_metadata(TRANSACTION_COLUMNS, descriptions=DESCRIPTIONS))

`columns` is what a layer already has: `(name, type)` or `(name, type, description)` tuples, a
`{name: type}` mapping, or a pandera DataFrameModel / DataFrameSchema (types as pandera reports them).
`contract=` (the table's pandera model, the one its contract check runs) adds each column's constraints
(not null, unique, the checks), read by dagster-pandera: the UI shows them beside each column's type.

Column lineage (`dagster/column_lineage`) is declared once per derived table with `column_lineage`, given
to `column_schema_metadata(..., lineage=...)` for the definition (the catalog reads it there) and to a
single-day run's materialisation (`{COLUMN_LINEAGE_KEY: lineage}`), where Dagster+'s column-lineage view
reads it; a range run's per-day copies leave it out (`table_metadata`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dagster as dg
from dagster_pandera import pandera_schema_to_dagster_type

COLUMN_SCHEMA_KEY = "dagster/column_schema"
COLUMN_LINEAGE_KEY = "dagster/column_lineage"


# A check listing more values than this shows its first few (599 time zone names would fill the page).
_MAX_LISTED = 12


def _contract_schema(model: object) -> dg.TableSchema:
    """The pandera model as dagster-pandera reads it: columns (pandera types, descriptions), constraints."""
    return pandera_schema_to_dagster_type(model).metadata["schema"].schema


def _short(constraint: str) -> str:
    name, _, values = constraint.partition("([")
    listed = values.split(", ")
    return f"{name}([{', '.join(listed[:3])}, ...])" if len(listed) > _MAX_LISTED else constraint


def _constraints(column: dg.TableColumn) -> dg.TableColumnConstraints:
    c = column.constraints
    return dg.TableColumnConstraints(
        nullable=c.nullable, unique=c.unique, other=[_short(o) for o in c.other or []]
    )


def table_schema(
    columns: Iterable[tuple[str, ...]] | Mapping[str, str] | object,
    descriptions: Mapping[str, str] | None = None,
    contract: object | None = None,
) -> dg.TableSchema:
    if hasattr(columns, "to_schema") or (hasattr(columns, "columns") and not isinstance(columns, Mapping)):
        contract = contract or columns
        rows = [(c.name, c.type, c.description) for c in _contract_schema(columns).columns]
    elif isinstance(columns, Mapping):
        rows = [(name, typ, None) for name, typ in columns.items()]
    else:
        rows = [(c[0], c[1], c[2] if len(c) > 2 else None) for c in columns]
    checked = _contract_schema(contract) if contract is not None else dg.TableSchema(columns=[])
    constraints = {c.name: _constraints(c) for c in checked.columns}
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=name,
                type=str(typ),
                description=descriptions.get(name, desc),
                constraints=constraints.get(name),
            )
            for name, typ, desc in rows
        ],
        constraints=checked.constraints if contract is not None else None,
    )


def column_lineage(sources_by_column: Mapping[str, Iterable[tuple[str, str]]]) -> dg.TableColumnLineage:
    """Dagster's column lineage from `{column: [("<layer>/<name>", upstream column), ...]}`."""
    return dg.TableColumnLineage(
        deps_by_column={
            column: [dg.TableColumnDep(dg.AssetKey.from_user_string(a), c) for a, c in sources]
            for column, sources in sources_by_column.items()
        }
    )


def column_schema_metadata(
    columns: Iterable[tuple[str, ...]] | Mapping[str, str] | object,
    descriptions: Mapping[str, str] | None = None,
    lineage: dg.TableColumnLineage | None = None,
    contract: object | None = None,
    **extra: object,
) -> dict[str, object]:
    """`metadata=` for an asset definition: its column schema (with the constraints of its pandera
    `contract`), its column lineage when derived (plus any `extra` entries)."""
    md: dict[str, object] = {COLUMN_SCHEMA_KEY: table_schema(columns, descriptions, contract)}
    if lineage is not None:
        md[COLUMN_LINEAGE_KEY] = lineage
    return {**md, **extra}
