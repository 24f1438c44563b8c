"""The landing zone's naming rules (docs/landing-zone.md), the one implementation for ingestion, sensors,
CLIs and the simulator.

`landing/<source>/<landing-date>/<feed>_<business-date>[_<suffix>].<ext>`; files being written (names
starting with `.` or ending in `.tmp`/`.part`) are invisible until renamed. Only names and paths live
here (plus a file's SHA-256); reading a file's content is the raw layer's job.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

AUTHORIZATIONS = "authorizations"
CHARGEBACKS = "chargebacks"
REFERENCE_SOURCES = ("cardholders", "merchants", "fx_rates")
SOURCES = (AUTHORIZATIONS, CHARGEBACKS, *REFERENCE_SOURCES)
FEEDS = {
    AUTHORIZATIONS: ("acq_a", "acq_b"),
    CHARGEBACKS: ("chargebacks",),
    "cardholders": ("cardholders",),
    "merchants": ("merchants",),
    "fx_rates": ("fx_rates",),
}
SOURCE_OF_FEED = {feed: source for source, feeds in FEEDS.items() for feed in feeds}
# Allowed extensions per feed (no leading dot), the delivered one first; authorisation feeds may
# arrive uncompressed too.
EXTENSIONS = {
    "acq_a": ("csv.gz", "csv"),
    "acq_b": ("jsonl.gz", "jsonl"),
    "chargebacks": ("csv",),
    "cardholders": ("parquet",),
    "merchants": ("parquet",),
    "fx_rates": ("csv",),
}
# Lazy feed and suffix so the date and the extension anchor the split; the suffix is free text.
FILE_NAME = re.compile(
    r"^(?P<feed>[a-z][a-z0-9_]*?)_(?P<business_date>\d{4}-\d{2}-\d{2})(?:_(?P<suffix>[^/]+?))?"
    r"\.(?P<ext>csv\.gz|jsonl\.gz|csv|jsonl|parquet)$"
)
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
REJECT_NAME = "unrecognised_name"


@dataclass(frozen=True)
class LandingFile:
    """One file under the landing root. Fields are None where the path breaks the contract."""

    path: Path
    relative: str  # relative to the landing root, forward slashes (= raw.file_register.source_file)
    source: str | None  # None outside the five source folders
    landing_date: str | None  # YYYY-MM-DD
    feed: str | None
    business_date: str | None  # YYYY-MM-DD
    ext: str | None  # without the dot: csv, csv.gz, jsonl, jsonl.gz, parquet
    suffix: str | None = None

    @property
    def recognised(self) -> bool:
        return None not in (self.source, self.landing_date, self.feed, self.business_date, self.ext)

    @property
    def name_error(self) -> str | None:
        """The register's rejection reason for the name, None when it follows the contract."""
        return None if self.recognised else REJECT_NAME

    @property
    def source_file(self) -> str:
        return self.relative

    @property
    def landing_day(self) -> dt.date | None:
        return dt.date.fromisoformat(self.landing_date) if self.landing_date else None

    @property
    def business_day(self) -> dt.date | None:
        return dt.date.fromisoformat(self.business_date) if self.business_date else None


@dataclass(frozen=True)
class FileName:
    feed: str
    business_date: str
    suffix: str | None
    ext: str


def is_in_flight(name: str) -> bool:
    """Files still being written (contract: atomic rename) are not there yet."""
    return name.startswith(".") or name.endswith((".tmp", ".part"))


is_ignored = is_in_flight


def _valid_date(text: str) -> bool:
    if not DATE.match(text):
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def parse_name(name: str, source: str | None = None) -> FileName | None:
    """The parts of a file name, or None when it breaks the contract (for `source` when given: the
    feed must be one of the source's and the extension one of the feed's)."""
    m = FILE_NAME.match(name)
    if m is None or not _valid_date(m["business_date"]):
        return None
    feed, ext = m["feed"], m["ext"]
    if feed not in EXTENSIONS or ext not in EXTENSIONS[feed]:
        return None
    if source is not None and feed not in FEEDS.get(source, ()):
        return None
    return FileName(feed, m["business_date"], m["suffix"], ext)


def file_name(
    feed: str, business_date: dt.date | str, suffix: str | None = None, ext: str | None = None
) -> str:
    """`<feed>_<business-date>[_<suffix>].<ext>`; `ext` defaults to the feed's delivered extension."""
    if feed not in EXTENSIONS:
        raise ValueError(f"unknown feed {feed!r}")
    ext = (ext or EXTENSIONS[feed][0]).lstrip(".")
    date = business_date.isoformat() if isinstance(business_date, dt.date) else str(business_date)
    name = f"{feed}_{date}{f'_{suffix}' if suffix else ''}.{ext}"
    if parse_name(name) != FileName(feed, date, suffix or None, ext):
        raise ValueError(f"{name!r} would not follow the landing contract")
    return name


def relative_path(source: str, landing_date: dt.date | str, name: str) -> str:
    """`<source>/<landing-date>/<name>`, relative to the landing root."""
    date = landing_date.isoformat() if isinstance(landing_date, dt.date) else str(landing_date)
    return f"{source}/{date}/{name}"


def parse(root: Path, path: Path) -> LandingFile:
    """Classify `path` (under `root`) against the naming contract; never raises on a bad name."""
    rel = path.relative_to(root)
    parts = rel.parts
    source = parts[0] if parts and parts[0] in SOURCES else None
    bad = LandingFile(path, rel.as_posix(), source, None, None, None, None)
    if source is None or len(parts) != 3 or not _valid_date(parts[1]):
        return bad
    name = parse_name(parts[2], source)
    if name is None:
        return bad
    return LandingFile(
        path, rel.as_posix(), source, parts[1], name.feed, name.business_date, name.ext, name.suffix
    )


classify = parse


def discover(root: Path) -> list[LandingFile]:
    """Every visible file under the landing root, recognised or not, sorted by path (the register's
    view: a stray file is recorded as `unrecognised_name`, not ignored)."""
    if not root.exists():
        return []
    return [parse(root, p) for p in sorted(root.rglob("*")) if p.is_file() and not is_in_flight(p.name)]


def list_files(root: Path, source: str | None = None) -> list[LandingFile]:
    """Every visible file of the five sources (or of one), recognised or not, sorted by path."""
    base = root / source if source else root
    if not base.exists():
        return []
    return [
        parse(root, p)
        for p in sorted(base.rglob("*"))
        if p.is_file() and not is_in_flight(p.name) and p.relative_to(root).parts[0] in SOURCES
    ]


def scan(root: Path, sources: Iterable[str] = SOURCES) -> list[LandingFile]:
    """Recognised files of `sources` only, in arrival order (landing date, then path): what a sensor
    may launch runs for."""
    found = [f for s in sources for f in list_files(root, s) if f.recognised]
    return sorted(found, key=lambda f: (f.landing_date, f.relative))


def business_dates_in_landing(root: Path) -> list[str]:
    """Sorted business dates that have at least one authorisation file."""
    return sorted({f.business_date for f in list_files(root, AUTHORIZATIONS) if f.recognised})


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Content identity of a landing file (a re-send is the same hash under another name)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
