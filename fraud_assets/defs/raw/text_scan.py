"""The register's streaming look at a CSV / JSON Lines file: caps, file-level reasons, rows landed.

One pass over the file in bounded memory: the raw bytes are hashed (SHA-256) as they are read, gzip
is inflated member by member with `max_length` so a bomb never materialises, and each decompressed
chunk is checked with C-speed byte scans (NUL, bare CR, ASCII fast path, else an incremental UTF-8
decoder) and its lines counted without splitting them. The count is the number the raw tables must
reconcile to: non-blank lines (blank = only spaces, tabs, CR, VT, FF), minus the CSV header. The
engine reader (text_reader.py) splits the same bytes into the same lines; a file it would read
differently (bare CR line ends, gzip flags DuckDB does not support, bytes after the last gzip member)
is refused here.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from fraud_assets.defs.raw import reasons as r
from fraud_assets.defs.raw.limits import KIB, MIB, RATIO_SLACK_BYTES, ReaderLimits

WHITESPACE = b" \t\r\x0b\x0c"
BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
DEFLATE = 8
# Header flags DuckDB's gzip reader accepts (FTEXT, FHCRC and FCOMMENT it refuses).
GZIP_FLAGS_READABLE = 0x04 | 0x08
READ_BYTES = 256 * KIB
NEWLINE = 10
_BLANK_OR_NEWLINE = np.zeros(256, dtype=bool)
_BLANK_OR_NEWLINE[list(WHITESPACE + b"\n")] = True
_BLANK_LINE = re.compile(rb"\n[ \t\r\x0b\x0c]*(?=\n)")
# One CSV field per RFC 4180 (the engine reader splits data lines with the same grammar).
CSV_FIELD = r'"(?:[^"]|"")*"|[^,"]*'
_CSV_LINE = re.compile(rf"(?:{CSV_FIELD})(?:,(?:{CSV_FIELD}))*")
_CSV_FIELDS = re.compile(rf",({CSV_FIELD})")


class Rejected(Exception):
    """A file-level reason found while streaming; the scan stops reading content."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TextScan:
    sha256: str
    reason: str | None
    lines: int  # non-blank lines (a CSV header included)
    header: tuple[str, ...] | None  # CSV column names, stripped; None for JSON Lines or a broken header


class _HashingReader:
    """Reads the raw file, hashing every byte; `drain` hashes what the scan did not need to read."""

    def __init__(self, fh: BinaryIO):
        self._fh = fh
        self.hash = hashlib.sha256()
        self.consumed = 0

    def read(self, n: int = READ_BYTES) -> bytes:
        block = self._fh.read(n)
        self.hash.update(block)
        self.consumed += len(block)
        return block

    def drain(self) -> None:
        while self.read(4 * MIB):
            pass


def _plain(raw: _HashingReader, chunk: int) -> Iterator[bytes]:
    while block := raw.read(chunk):
        yield block


def _gunzip(raw: _HashingReader, chunk: int) -> Iterator[bytes]:
    """Decompressed chunks of every gzip member, at most `chunk` bytes each; nothing may follow the
    last member (DuckDB refuses even zero padding there)."""
    pending = raw.read()
    if pending[:2] != GZIP_MAGIC:
        raise Rejected(r.NOT_GZIP)
    while True:
        while len(pending) < 4:
            more = raw.read()
            if not more:
                raise Rejected(r.TRUNCATED_GZIP)
            pending += more
        if pending[:2] != GZIP_MAGIC:
            raise Rejected(r.CORRUPT_GZIP)
        if pending[2] != DEFLATE or pending[3] & ~GZIP_FLAGS_READABLE:
            raise Rejected(r.UNSUPPORTED_GZIP)
        inflater = zlib.decompressobj(wbits=31)
        while not inflater.eof:
            try:
                out = inflater.decompress(pending, chunk)
            except zlib.error:
                raise Rejected(r.CORRUPT_GZIP) from None
            if out:
                yield out
            pending = inflater.unconsumed_tail
            if not pending and not inflater.eof:
                pending = raw.read()
                if not pending:
                    raise Rejected(r.TRUNCATED_GZIP)
        pending = inflater.unused_data or raw.read()
        if not pending:
            return


def _without_bom(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The stream without a leading UTF-8 BOM (DuckDB drops it too); a BOM may span tiny chunks."""
    head = b""
    for block in chunks:
        if head is None:
            yield block
            continue
        head += block
        if len(head) >= len(BOM):
            yield head.removeprefix(BOM)
            head = None
    if head:
        yield head.removeprefix(BOM)


class _Counter:
    """Byte checks and line counting over a stream of chunks no larger than the line cap."""

    def __init__(self, limits: ReaderLimits, csv: bool):
        self.limits = limits
        self.csv = csv
        self.first_line_cap = limits.max_header_bytes if csv else limits.max_line_bytes
        self.total = 0  # decompressed bytes
        self.newlines = 0
        self.lines = 0  # complete non-blank lines
        self.partial_len = 0  # bytes of the unfinished line
        self.partial_content = False  # the unfinished line has a non-blank byte
        self.cr_pending = False  # the previous chunk ended in CR
        self.first: bytes | None = None  # the first non-blank line, once complete
        self.head = bytearray()  # the unfinished line while `first` is not found
        self.decoder = codecs.getincrementaldecoder("utf-8")("strict")

    def feed(self, block: bytes, compressed_so_far: int) -> None:
        self.total += len(block)
        if self.total > self.limits.max_decompressed_bytes:
            raise Rejected(r.TOO_LARGE)
        if self.total > self.limits.max_compression_ratio * compressed_so_far + RATIO_SLACK_BYTES:
            raise Rejected(r.COMPRESSION_RATIO)
        if b"\x00" in block:
            raise Rejected(r.BINARY_CONTENT)
        self._check_utf8(block)
        self._check_carriage_returns(block)
        if self.first is None:
            block = self._find_first_line(block)
        if block:
            self._count(block)
        if self.newlines + (self.partial_len > 0) > self.limits.max_rows:
            raise Rejected(r.TOO_MANY_ROWS)

    def _check_utf8(self, block: bytes) -> None:
        if block.isascii() and not self.decoder.getstate()[0]:
            return
        try:
            self.decoder.decode(block)
        except UnicodeDecodeError:
            raise Rejected(r.WRONG_ENCODING) from None

    def _check_carriage_returns(self, block: bytes) -> None:
        if self.cr_pending and not block.startswith(b"\n"):
            raise Rejected(r.BARE_CARRIAGE_RETURN)
        self.cr_pending = block.endswith(b"\r")
        if b"\r" in block and block.count(b"\r") != block.count(b"\r\n") + self.cr_pending:
            raise Rejected(r.BARE_CARRIAGE_RETURN)

    def _find_first_line(self, block: bytes) -> bytes:
        """Consume lines until the first non-blank one is complete; return the rest of the block."""
        pos = 0
        if not self.head:
            # Leading blank lines in one C-speed step: a file of newlines must not cost a loop per line.
            rest = block.lstrip(WHITESPACE + b"\n")
            skipped = block[: len(block) - len(rest)]
            if b"\n" in skipped:
                self.newlines += skipped.count(b"\n")
                pos = skipped.rfind(b"\n") + 1
        while True:
            end = block.find(b"\n", pos)
            self.head += block[pos:] if end < 0 else block[pos:end]
            if len(self.head) > self.first_line_cap and self.head.strip(WHITESPACE):
                raise Rejected(r.HEADER_TOO_LONG if self.csv else r.LINE_TOO_LONG_FILE)
            if len(self.head) > self.limits.max_line_bytes:
                raise Rejected(r.LINE_TOO_LONG_FILE)
            if end < 0:
                self.partial_len = len(self.head)
                self.partial_content = bool(self.head.strip(WHITESPACE))
                return b""
            self.newlines += 1
            if self.head.strip(WHITESPACE):
                self.first = bytes(self.head)
                self.lines += 1
                self.head = bytearray()
                self.partial_len, self.partial_content = 0, False
                return block[end + 1 :]
            self.head.clear()
            pos = end + 1

    def _count(self, block: bytes) -> None:
        at = np.flatnonzero(np.frombuffer(block, np.uint8) == NEWLINE)
        newlines = len(at)
        if not newlines:
            self.partial_len += len(block)
            if self.partial_len > self.limits.max_line_bytes:
                raise Rejected(r.LINE_TOO_LONG_FILE)
            self.partial_content = self.partial_content or bool(block.strip(WHITESPACE))
            return
        first, last = int(at[0]), int(at[-1])
        # Lines wholly inside the block are shorter than the block, which is at most the line cap.
        if self.partial_len + first > self.limits.max_line_bytes:
            raise Rejected(r.LINE_TOO_LONG_FILE)
        first_has_content = self.partial_content or bool(block[:first].strip(WHITESPACE))
        # A line inside the block can only be blank if the byte after a newline is blank or a newline.
        maybe_blank = newlines > 1 and _BLANK_OR_NEWLINE[np.frombuffer(block, np.uint8)[at[:-1] + 1]].any()
        blank = len(_BLANK_LINE.findall(block, first, last + 1)) if maybe_blank else 0
        self.lines += int(first_has_content) + newlines - 1 - blank
        self.newlines += newlines
        rest = block[last + 1 :]
        self.partial_len = len(rest)
        self.partial_content = bool(rest.strip(WHITESPACE))

    def finish(self) -> None:
        if self.cr_pending:
            raise Rejected(r.BARE_CARRIAGE_RETURN)
        try:
            self.decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise Rejected(r.WRONG_ENCODING) from None
        if self.first is None and self.head.strip(WHITESPACE):
            self.first = bytes(self.head)
        if self.partial_content:
            self.lines += 1


def csv_fields(line: str) -> list[str] | None:
    """The fields of one CSV line per RFC 4180 (quotes doubled inside quoted fields), or None when
    its quoting is broken. Same grammar as the engine reader's split of data lines."""
    if not _CSV_LINE.fullmatch(line):
        return None
    return [f[1:-1].replace('""', '"') if f.startswith('"') else f for f in _CSV_FIELDS.findall("," + line)]


def scan_text(fh: BinaryIO, *, gz: bool, csv: bool, limits: ReaderLimits) -> TextScan:
    """Hash, caps, file-level reason and non-blank line count of one text file, in bounded memory."""
    raw = _HashingReader(fh)
    counter = _Counter(limits, csv)
    chunk = min(MIB, limits.max_line_bytes)
    reason = None
    try:
        stream = _gunzip(raw, chunk) if gz else _plain(raw, chunk)
        for block in _without_bom(stream):
            counter.feed(block, raw.consumed)
        counter.finish()
    except Rejected as rejected:
        reason = rejected.reason
    raw.drain()
    header = None
    if reason is None and csv and counter.first is not None:
        fields = csv_fields(counter.first.decode("utf-8").removesuffix("\r"))
        header = tuple(f.strip() for f in fields) if fields is not None else None
    lines = 0 if reason else counter.lines
    return TextScan(raw.hash.hexdigest(), reason, lines, header)


def first_line(fh: BinaryIO, *, gz: bool, max_bytes: int) -> str | None:
    """The first non-blank line of a text file (a CSV header), reading only as far as it; None when
    the file has none within `max_bytes`."""
    raw = _HashingReader(fh)
    stream = _without_bom(_gunzip(raw, min(max_bytes, 64 * KIB)) if gz else _plain(raw, 64 * KIB))
    buf = b""
    try:
        for block in stream:
            buf += block
            while (end := buf.find(b"\n")) >= 0:
                line, buf = buf[:end], buf[end + 1 :]
                if line.strip(WHITESPACE):
                    return line.decode("utf-8").removesuffix("\r")
            if not buf.strip(WHITESPACE):
                buf = b""
            elif len(buf) > max_bytes:
                return None
    except Rejected:
        return None
    return buf.decode("utf-8").removesuffix("\r") if buf.strip(WHITESPACE) else None
