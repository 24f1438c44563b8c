"""The landing zone's naming rules (docs/landing-zone.md), in one place for ingestion, sensors and CLIs.

`landing/<source>/<landing-date>/<feed>_<business-date>[_<suffix>].<ext>`; files being written (names
starting with `.` or ending in `.tmp`/`.part`) are invisible until renamed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

SOURCES = ("authorizations", "chargebacks", "cardholders", "merchants", "fx_rates")
FILE_NAME = re.compile(
    r"^(?P<feed>[a-z][a-z0-9_]*?)_(?P<business_date>\d{4}-\d{2}-\d{2})(?:_(?P<suffix>[A-Za-z0-9_.-]+?))?"
    r"\.(?P<ext>csv|csv\.gz|jsonl|jsonl\.gz|parquet)$"
)
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class LandingFile:
    path: Path
    relative: str
    source: str
    landing_date: str | None
    feed: str | None
    business_date: str | None
    ext: str | None

    @property
    def recognised(self) -> bool:
        return None not in (self.landing_date, self.feed, self.business_date, self.ext)


def is_in_flight(name: str) -> bool:
    return name.startswith(".") or name.endswith((".tmp", ".part"))


def parse(root: Path, path: Path) -> LandingFile:
    rel = path.relative_to(root)
    parts = rel.parts
    source = parts[0]
    landing_date = parts[1] if len(parts) == 3 and DATE.match(parts[1]) else None
    m = FILE_NAME.match(path.name)
    return LandingFile(
        path=path,
        relative=rel.as_posix(),
        source=source,
        landing_date=landing_date,
        feed=m["feed"] if m else None,
        business_date=m["business_date"] if m else None,
        ext=m["ext"] if m else None,
    )


def list_files(root: Path, source: str | None = None) -> list[LandingFile]:
    """Every visible file under the landing root (or one source), sorted by path."""
    base = root / source if source else root
    if not base.exists():
        return []
    return [
        parse(root, p)
        for p in sorted(base.rglob("*"))
        if p.is_file() and not is_in_flight(p.name) and p.relative_to(root).parts[0] in SOURCES
    ]


def business_dates_in_landing(root: Path) -> list[str]:
    """Sorted business dates that have at least one authorisation file."""
    return sorted(
        {f.business_date for f in list_files(root, "authorizations") if f.recognised and f.business_date}
    )


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
