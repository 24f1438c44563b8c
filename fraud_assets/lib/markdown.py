"""Producer values in Dagster's markdown metadata (table previews, contract failure samples) shown as
text, never rendered as markdown.

The UI renders that markdown: a value such as `![x](https://host/p.png)` would load an image from the
producer's server each time someone opens the asset, `[Re-run here](https://host)` would be a link
under a name of the producer's choosing, and a line break or a `|` would end the table cell so that the
rest is markdown of any kind. Escaping the characters that open links, images, HTML, entities and code
spans, and the cell separator, and showing control characters as symbols (a line feed as U+240A) keeps
every value one plain cell (other markdown, such as emphasis, cannot leave a cell). Nothing added is a
digit or a card-number separator, so an escaped value holds no card number its masked value did not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import pandas as pd
from tabulate import tabulate

_SPECIAL = re.compile(r"([\\|\[\]<>&`])")
# C0 and C1 controls (line feed and carriage return end a table row) and the Unicode line separators.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_cell(text: str) -> str:
    """`text` as a markdown table cell that renders as the text itself."""
    return _CONTROLS.sub(_shown_control, _SPECIAL.sub(r"\\\1", text))


def _shown_control(m: re.Match) -> str:
    """A C0 control as its Unicode control picture (U+2400-U+241F), DEL as U+2421, any other as U+FFFD:
    not an escape such as `\\x09`, whose digits could join the digits around it into a card number."""
    code = ord(m.group())
    return chr(0x2400 + code) if code < 0x20 else "\u2421" if code == 0x7F else "\ufffd"


def markdown_table(df: pd.DataFrame) -> str:
    """`df` (any values, shown as text) as a markdown table whose cells and headers are escaped."""
    return markdown_rows(df.columns, df.astype(str).itertuples(index=False, name=None))


def markdown_rows(columns: Iterable[object], rows: Iterable[Sequence[object]]) -> str:
    """Rows of values under `columns` as `markdown_table` shows them (pandas' `to_markdown` layout), from
    plain rows: a preview is built per day of a range run, where a DataFrame per cell costs ~5 ms a table."""
    headers = [escape_cell(str(c)) for c in columns]
    cells = [[escape_cell(str(v)) for v in row] for row in rows]
    return tabulate(cells, headers=headers, tablefmt="pipe")


def figures_table(df: pd.DataFrame) -> str:
    """Model figures as a markdown table: columns of whole numbers (folds, counts, days, 0/1 flags) as
    integers, every other number to 4 decimals, so a fold reads `1`, not `1.0000`."""
    formats = [".0f" if _whole_numbers(df[c]) else ".4f" for c in df.columns]
    return df.to_markdown(index=False, floatfmt=formats)


def _whole_numbers(column: pd.Series) -> bool:
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return False
    values = column.dropna()
    return bool(len(values)) and bool((values % 1 == 0).all())
