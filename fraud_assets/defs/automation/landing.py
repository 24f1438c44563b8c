"""Reading the landing zone the way docs/landing-zone.md defines it, without opening DuckDB.

The sensors keep, in their cursor, every file they have handled (`path -> [size, mtime_ns, sha256]`).
A file is *new* when its path is unknown or its size/mtime changed; it then gets hashed. A new file whose
SHA-256 was already handled for the same source is a re-send: it is recorded and launches nothing (the raw
layer registers it as `duplicate_file` on its next run). Run keys are built from content hashes, so even a
lost cursor cannot launch the same content twice.

File names are producer input and may carry a card number: the cursor, run tags and log lines hold a name
only as `LandingFile.shown_path` (PANs masked). Two names that mask alike share a cursor entry; at worst
they are hashed again on a later tick and recognised by content.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fraud_assets.lib import landing as contract
from fraud_assets.lib.landing import (  # re-exported: the sensors import them from here
    AUTHORIZATIONS,
    CHARGEBACKS,
    FEEDS,
    REFERENCE_SOURCES,
    SOURCES,
    is_ignored,
)
from fraud_assets.lib.pan import mask_pans

__all__ = ["AUTHORIZATIONS", "CHARGEBACKS", "FEEDS", "REFERENCE_SOURCES", "SOURCES", "is_ignored"]

CURSOR_VERSION = 1


@dataclass(frozen=True)
class LandingFile:
    """A contract-conforming file as the sensors see it: the naming rules come from
    `fraud_assets.lib.landing` (the one place that knows them); size and mtime tell a changed file."""

    source: str
    feed: str
    rel_path: str  # relative to the landing root, as raw.file_register.source_file
    landing_date: str
    business_date: str
    size: int
    mtime_ns: int

    def sha256(self, root: Path) -> str:
        return contract.sha256_file(root / self.rel_path)

    @property
    def shown_path(self) -> str:
        """`rel_path` as the sensor may store or print it: card numbers masked."""
        return mask_pans(self.rel_path)

    @property
    def shown_name(self) -> str:
        return self.shown_path.rsplit("/", 1)[-1]


def parse(root: Path, path: Path) -> LandingFile | None:
    """A LandingFile for a contract-conforming path, else None (raw records it as `unrecognised_name`)."""
    try:
        f = contract.parse(root, path)
    except ValueError:  # outside the landing root
        return None
    if not f.recognised:
        return None
    st = path.stat()
    return LandingFile(
        source=f.source,
        feed=f.feed,
        rel_path=f.relative,
        landing_date=f.landing_date,
        business_date=f.business_date,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
    )


def scan(root: Path, sources: Iterable[str] = SOURCES) -> list[LandingFile]:
    """Every complete, well-named file of `sources`, in a stable order (landing date, then name)."""
    found = (parse(root, f.path) for f in contract.scan(root, sources))
    return sorted((f for f in found if f is not None), key=lambda f: (f.landing_date, f.rel_path))


@dataclass
class LandingCursor:
    """What a sensor has handled: shown path (PANs masked) -> (size, mtime_ns, sha256)."""

    files: dict[str, list]

    @classmethod
    def parse(cls, raw: str | None) -> LandingCursor:
        if not raw:
            return cls(files={})
        data = json.loads(raw)
        if data.get("v") != CURSOR_VERSION:
            return cls(files={})
        # Re-keyed through the mask: a cursor written before names were masked must not keep them.
        return cls(files={mask_pans(k): v for k, v in data["files"].items()})

    def serialize(self) -> str:
        return json.dumps({"v": CURSOR_VERSION, "files": self.files}, sort_keys=True, separators=(",", ":"))

    def is_known(self, f: LandingFile) -> bool:
        seen = self.files.get(f.shown_path)
        return seen is not None and seen[0] == f.size and seen[1] == f.mtime_ns

    def seen_hashes(self, source: str) -> set[str]:
        prefix = f"{source}/"
        return {v[2] for k, v in self.files.items() if k.startswith(prefix)}

    def record(self, f: LandingFile, sha: str) -> None:
        self.files[f.shown_path] = [f.size, f.mtime_ns, sha]


@dataclass(frozen=True)
class NewFile:
    file: LandingFile
    sha256: str
    resent: bool  # identical content already handled under another name


def new_files(root: Path, cursor: LandingCursor, sources: Iterable[str]) -> list[NewFile]:
    """Files not in the cursor, hashed; a hash already handled for the source (or twice in this batch)
    marks a re-send."""
    out: list[NewFile] = []
    seen: dict[str, set[str]] = {}
    for f in scan(root, sources):
        if cursor.is_known(f):
            continue
        sha = f.sha256(root)
        known = seen.setdefault(f.source, cursor.seen_hashes(f.source))
        out.append(NewFile(f, sha, resent=sha in known))
        known.add(sha)
    return out


def content_key(shas: Iterable[str]) -> str:
    """One file: its SHA-256. Several files handled together: the SHA-256 of their sorted hashes."""
    ordered = sorted(set(shas))
    if len(ordered) == 1:
        return ordered[0]
    return hashlib.sha256("\n".join(ordered).encode()).hexdigest()
