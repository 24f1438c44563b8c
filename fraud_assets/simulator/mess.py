"""The messy-feed injector: turns one business day of one processor's clean rows into the files that
processor delivers, with defects at their configured rates, and records every defect.

Design rule (keeps the ground truth exact): defects the platform repairs change real transactions
(PAN spaces/dashes, comma decimals, exact retransmissions, out-of-order rows, late files, re-sent
files); defects it must quarantine are EXTRA rows with fresh transaction ids from the reserved range
(world.EXTRA_ID_BASE and up), never in the ground truth. A truncated file is followed by a complete
re-send in a later landing folder, so no real transaction is lost.

Every decision comes from a stream keyed by (seed, day, feed, defect kind): a file's defects depend
only on its own day (and, for the reversals it carries past midnight, the day before), and changing one
kind's rate never moves another kind's draws.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from fraud_assets.simulator import reference as ref
from fraud_assets.simulator.config import DEFECT_UNITS, TAG_MESS, SimConfig
from fraud_assets.simulator.feeds import (
    ACQ_A_HEADER,
    Rows,
    concat,
    gzip_bytes,
    render_acq_a,
    render_acq_b,
    take,
    text_file,
)
from fraud_assets.simulator.world import DAY_SECONDS, EXTRA_ID_BASE

FEEDS = ("acq_a", "acq_b")
FEED_CODE = {"acq_a": 0, "acq_b": 1}
EXTENSION = {"acq_a": ".csv.gz", "acq_b": ".jsonl.gz"}
# Stream keys are pinned, so a new defect kind moves no existing stream (same seed, same bytes): extra
# rows' positions keep key 18 (the number of kinds when it was chosen); kinds added later come after it.
ORDER_STREAM = 18
KIND_INDEX = {kind: i if i < ORDER_STREAM else i + 1 for i, kind in enumerate(DEFECT_UNITS)}

# Extra-row kinds, in the order their fresh ids are handed out.
EXTRA_KINDS = (
    "negative_amount",
    "missing_terminal_id",
    "unknown_terminal",
    "invalid_pan",
    "unknown_currency",
    "future_timestamp",
    "outside_business_date",
    "reversal",
    "malformed_line",
    "huge_line",
)
IDS_PER_FEED_DAY = 500_000
# A feed-day's cross-midnight pairs take ids from here up in its block (its other extras from the start):
# the next day's file must know the ids of the reversals it carries.
MIDNIGHT_IDS = 400_000
# A cross-midnight authorisation is in its day's last 10 minutes, its reversal in the next day's first 10.
MIDNIGHT_WINDOW_S = 600
HUGE_LINE_CHARS = 100_000  # the raw layer refuses lines over 4096 characters
LATE_DAYS = (1, 5)  # a late file lands 1-5 days after its business date
RESEND_DAYS = (1, 3)  # a re-sent copy or a truncated file's complete re-send lands 1-3 days later
FUTURE_YEARS = (30, 80)  # a terminal clock set decades ahead: after any business date and ingest time
OUTSIDE_DAYS = (1, 3)  # a stale row from 1-3 days before the file's business date


@dataclass
class LandedFile:
    source: str
    landing_day: int
    name: str
    data: bytes

    def relative(self, start: dt.date) -> str:
        return f"{self.source}/{(start + dt.timedelta(days=self.landing_day)).isoformat()}/{self.name}"


@dataclass
class FeedDay:
    """What one processor delivers for one business day."""

    files: list[LandedFile]
    canonical: LandedFile  # the complete file the platform ingests the day's rows from
    # (defect kind, transaction_id or -1, file, row_number or -1, detail)
    defects: list[tuple[str, int, LandedFile, int, str]] = field(default_factory=list)


def shard_suffix(cfg: SimConfig) -> str | None:
    """The file-name suffix of the shard's files (`s007`); none in a one-shard world."""
    return f"s{cfg.shard:03d}" if cfg.shards > 1 else None


def _format_pan(pan: str, sep: str) -> str:
    return sep.join(pan[i : i + 4] for i in range(0, len(pan), 4))


def _stream(cfg: SimConfig, day: int, feed: str, kind: str | int) -> np.random.Generator:
    index = kind if isinstance(kind, int) else KIND_INDEX[kind]
    return cfg.rng(TAG_MESS, day, FEED_CODE[feed], index)


def _extra_ids(cfg: SimConfig, day: int, feed: str) -> int:
    """The first of the feed-day's fresh ids. 1e6 ids per (day, shard), below 1e12 for every day x shard
    the config allows: a 13-digit id could pass Luhn and be masked as a card number at the door, as any
    producer value would be."""
    return EXTRA_ID_BASE + (day * cfg.shards + cfg.shard) * 1_000_000 + FEED_CODE[feed] * IDS_PER_FEED_DAY


def midnight_pairs(cfg: SimConfig, day: int, feed: str, real: Rows) -> tuple[Rows, Rows]:
    """Day `day`'s cross-midnight reversals of processor `feed` (from its clean rows): extra
    authorisations in the last minutes of the UTC day and their reversals minutes after midnight, which
    belong to the next day's file. A function of the day alone, so both days' files agree."""
    none = take(real, np.arange(0))
    rate, n = cfg.rate("midnight_reversal"), len(real["transaction_id"])
    if rate == 0 or n == 0:
        return none, none
    r = _stream(cfg, day, feed, "midnight_reversal")
    k = int(r.binomial(n, rate))
    day_start = np.datetime64(cfg.start_date, "s") + np.timedelta64(day * DAY_SECONDS, "s")
    # Copies of afternoon rows: the simulator's zones change clocks between 01:00 and 10:00 UTC, so a
    # local time shifted with its UTC time from there to 00:10 the next day stays right.
    afternoon = np.flatnonzero(real["utc"] >= day_start + np.timedelta64(DAY_SECONDS // 2, "s"))
    if k == 0 or len(afternoon) == 0:
        return none, none
    x = take(real, afternoon[r.integers(0, len(afternoon), k)])
    first = _extra_ids(cfg, day, feed) + MIDNIGHT_IDS
    x["transaction_id"] = np.arange(first, first + 2 * k, 2, dtype=np.int64)
    rev = {key: v.copy() for key, v in x.items()}
    midnight = day_start + np.timedelta64(DAY_SECONDS, "s")
    auth_at = midnight - r.integers(1, MIDNIGHT_WINDOW_S + 1, k).astype("timedelta64[s]")
    rev_at = midnight + r.integers(0, MIDNIGHT_WINDOW_S, k).astype("timedelta64[s]")
    x["local"], x["utc"] = x["local"] + (auth_at - x["utc"]), auth_at
    rev["local"], rev["utc"] = rev["local"] + (rev_at - rev["utc"]), rev_at
    rev["transaction_id"] = x["transaction_id"] + 1
    rev["message_type"] = np.full(k, "reversal", dtype=object)
    rev["original_transaction_id"] = x["transaction_id"].copy()
    return x, rev


def build_feed_day(cfg: SimConfig, day: int, feed: str, real: Rows, previous: Rows | None = None) -> FeedDay:
    """The files of processor `feed` for business day `day` from its clean rows (time-ordered); with the
    day before's (`previous`), the file carries that day's reversals made after midnight."""
    n = len(real["transaction_id"])
    date = (cfg.start_date + dt.timedelta(days=day)).isoformat()
    suffix = shard_suffix(cfg)
    base_name = f"{feed}_{date}_{suffix}" if suffix else f"{feed}_{date}"
    pending: list[tuple[str, int, int, str]] = []  # (kind, transaction_id, line index, detail)

    # Repairs applied to real rows.
    rows = {**real, "pan": real["pan"].copy()}  # only the PAN column is edited in place
    r = _stream(cfg, day, feed, "pan_format")
    hit = r.random(n) < cfg.rate("pan_format")
    dash = r.random(n) < 0.5
    for i in np.flatnonzero(hit):
        rows["pan"][i] = _format_pan(rows["pan"][i], "-" if dash[i] else " ")
        pending.append(("pan_format", int(rows["transaction_id"][i]), i, "dashes" if dash[i] else "spaces"))
    comma = np.zeros(n, dtype=bool)
    if feed == "acq_a":
        r = _stream(cfg, day, feed, "comma_decimal")
        comma = (r.random(n) < cfg.rate("comma_decimal")) & (rows["exponent"] == 2)
        pending += [("comma_decimal", int(rows["transaction_id"][i]), i, "") for i in np.flatnonzero(comma)]

    # Extra rows with fresh ids.
    next_id = _extra_ids(cfg, day, feed)
    extras: list[Rows] = []
    extra_kind: list[str] = []
    extra_detail: list[str] = []
    breaks: dict[int, tuple[str, float]] = {}  # extra index -> how its line is broken
    day_start = np.datetime64(cfg.start_date, "s") + np.timedelta64(day * DAY_SECONDS, "s")
    day_end = day_start + np.timedelta64(DAY_SECONDS - 1, "s")
    for kind in EXTRA_KINDS:
        r = _stream(cfg, day, feed, kind)
        if n == 0:
            continue
        k = int(r.random() < cfg.rate(kind)) if kind == "huge_line" else int(r.binomial(n, cfg.rate(kind)))
        if k == 0:
            continue
        x = take(real, r.integers(0, n, k))
        x["transaction_id"] = np.arange(next_id, next_id + k, dtype=np.int64)
        next_id += k
        details = [""] * k
        if kind == "negative_amount":  # a zero amount is genuine (account verification), not a defect
            x["amount_minor"] = -np.maximum(x["amount_minor"], 1)
            details = ["negative"] * k
        elif kind == "missing_terminal_id":
            x["terminal_id"] = np.full(k, -1, dtype=np.int64)
        elif kind == "unknown_terminal":
            # beyond every shard's terminal ids
            x["terminal_id"] = cfg.shards * cfg.terminals + r.integers(1_000, 1_000_000, k)
        elif kind == "invalid_pan":
            short = r.random(k) < 0.3
            bump = r.integers(1, 10, k)
            pans = x["pan"].copy()
            for i in range(k):
                p = pans[i]
                pans[i] = p[:-4] if short[i] else p[:-1] + str((int(p[-1]) + bump[i]) % 10)
            x["pan"] = pans
            details = ["wrong_length" if s else "luhn" for s in short]
        elif kind == "unknown_currency":
            x["currency"] = np.asarray(ref.UNKNOWN_CURRENCIES, dtype=object)[
                r.integers(0, len(ref.UNKNOWN_CURRENCIES), k)
            ]
            x["exponent"] = np.full(k, 2, dtype=np.int64)
        elif kind == "future_timestamp":
            shift = (r.integers(*FUTURE_YEARS, k) * 365).astype("timedelta64[D]").astype("timedelta64[s]")
            x["utc"] = x["utc"] + shift
            x["local"] = x["local"] + shift
        elif kind == "outside_business_date":
            shift = r.integers(OUTSIDE_DAYS[0], OUTSIDE_DAYS[1] + 1, k).astype("timedelta64[D]")
            x["utc"] = x["utc"] - shift.astype("timedelta64[s]")
            x["local"] = x["local"] - shift.astype("timedelta64[s]")
        elif kind == "reversal":
            # An extra authorisation and, minutes later on the same UTC day, its reversal.
            rev = {key: v.copy() for key, v in x.items()}
            rev["transaction_id"] = np.arange(next_id, next_id + k, dtype=np.int64)
            next_id += k
            later = np.minimum(x["utc"] + r.integers(60, 1800, k).astype("timedelta64[s]"), day_end)
            rev["local"] = x["local"] + (later - x["utc"])
            rev["utc"] = later
            rev["message_type"] = np.full(k, "reversal", dtype=object)
            rev["original_transaction_id"] = x["transaction_id"].copy()
            extras += [x, rev]
            extra_kind += [kind] * (2 * k)
            extra_detail += ["authorisation"] * k + ["reversal"] * k
            continue
        elif kind == "malformed_line":
            modes = r.random(k)
            cuts = r.uniform(0.25, 0.75, k)
            base = len(extra_kind)
            for i in range(k):
                if feed == "acq_a":
                    breaks[base + i] = ("missing_field" if modes[i] < 0.5 else "extra_field", 0.0)
                else:
                    breaks[base + i] = ("cut_json", float(cuts[i]))
            details = [breaks[base + i][0] for i in range(k)]
        elif kind == "huge_line":
            x["channel"] = np.full(k, "X" * HUGE_LINE_CHARS, dtype=object)
            details = [f"{HUGE_LINE_CHARS}_char_field"]
        extras.append(x)
        extra_kind += [kind] * k
        extra_detail += details

    # Cross-midnight pairs: this day's authorisations before midnight (last in time), the day before's
    # reversals after it (first); placed by time, not by the positions' stream, which they leave as is.
    n_scattered = len(extra_kind)
    late_auths, _ = midnight_pairs(cfg, day, feed, real)
    _, early_reversals = (
        midnight_pairs(cfg, day - 1, feed, previous) if previous is not None else (None, None)
    )
    midnight_keys = []
    for part, detail, lo in ((late_auths, "authorisation", n), (early_reversals, "reversal", -1)):
        k = 0 if part is None else len(part["transaction_id"])
        if k:
            extras.append(part)
            extra_kind += ["midnight_reversal"] * k
            extra_detail += [detail] * k
            midnight_keys.append(lo + (np.argsort(np.argsort(part["utc"], kind="stable")) + 1) / (k + 1))

    n_extra = len(extra_kind)
    all_rows = concat([rows, *extras]) if extras else rows
    all_comma = np.concatenate([comma, np.zeros(n_extra, dtype=bool)])
    lines = render_acq_a(all_rows, all_comma) if feed == "acq_a" else render_acq_b(all_rows)
    for i, (mode, cut) in breaks.items():
        line = lines[n + i]
        if mode == "missing_field":
            lines[n + i] = line.rsplit(",", 1)[0]
        elif mode == "extra_field":
            lines[n + i] = line + ",EXTRA"
        else:
            lines[n + i] = line[: max(1, int(len(line) * cut))]
    for j in range(n_extra):
        pending.append((extra_kind[j], int(all_rows["transaction_id"][n + j]), n + j, extra_detail[j]))

    # Positions: real rows in time order; extras scattered; a reversal follows its authorisation.
    order_rng = _stream(cfg, day, feed, ORDER_STREAM)
    keys = np.concatenate(
        [np.arange(n, dtype=float), order_rng.uniform(0, max(n, 1), n_scattered), *midnight_keys]
    )
    is_rev = all_rows["message_type"][: n + n_scattered] == "reversal"
    if is_rev.any():
        auth_pos = {int(t): keys[i] for i, t in enumerate(all_rows["transaction_id"])}
        for i in np.flatnonzero(is_rev):
            keys[i] = auth_pos[int(all_rows["original_transaction_id"][i])] + order_rng.uniform(0.01, 5)

    # Exact retransmissions: the same line again, shortly after the original.
    r = _stream(cfg, day, feed, "duplicate")
    dup_src = np.flatnonzero(r.random(n) < cfg.rate("duplicate"))
    dup_keys = keys[dup_src] + r.uniform(0.01, 3, len(dup_src))
    lines = np.concatenate([lines, lines[dup_src]])
    keys = np.concatenate([keys, dup_keys])
    first_dup = len(lines) - len(dup_src)
    pending += [
        ("duplicate", int(all_rows["transaction_id"][s]), first_dup + j, "") for j, s in enumerate(dup_src)
    ]

    pending_files: list[tuple[str, str]] = []  # (kind, detail) of whole-file defects
    r = _stream(cfg, day, feed, "out_of_order")
    if r.random() < cfg.rate("out_of_order") and len(keys) > 1:
        keys = r.permutation(len(keys)).astype(float)
        pending_files.append(("out_of_order", ""))
    order = np.argsort(keys, kind="stable")
    row_number = np.empty(len(order), dtype=np.int64)
    row_number[order] = np.arange(1, len(order) + 1)
    content = gzip_bytes(text_file(lines[order], ACQ_A_HEADER if feed == "acq_a" else None))

    # Delivery: late files, truncated files with their complete re-send, re-sent copies.
    r = _stream(cfg, day, feed, "late_file")
    late, late_by = r.random() < cfg.rate("late_file"), int(r.integers(LATE_DAYS[0], LATE_DAYS[1] + 1))
    landing = day + (late_by if late else 0)
    r = _stream(cfg, day, feed, "truncated_file")
    truncated, cut = r.random() < cfg.rate("truncated_file"), r.uniform(0.3, 0.8)
    resend_after = int(r.integers(RESEND_DAYS[0], RESEND_DAYS[1] + 1))
    ext = EXTENSION[feed]
    files: list[LandedFile] = []
    defects: list[tuple[str, int, LandedFile, int, str]] = []
    if truncated:
        broken = LandedFile(
            "authorizations", landing, base_name + ext, content[: max(12, int(len(content) * cut))]
        )
        canonical = LandedFile("authorizations", landing + resend_after, f"{base_name}_002{ext}", content)
        files += [broken, canonical]
        defects.append(("truncated_file", -1, broken, -1, f"complete re-send: {canonical.name}"))
    else:
        canonical = LandedFile("authorizations", landing, base_name + ext, content)
        files.append(canonical)
    if late:
        defects.append(("late_file", -1, canonical, -1, f"{late_by} days late"))
    r = _stream(cfg, day, feed, "resent_file")
    resent, resend_by = (
        r.random() < cfg.rate("resent_file"),
        int(r.integers(RESEND_DAYS[0], RESEND_DAYS[1] + 1)),
    )
    if resent:
        copy = LandedFile(
            "authorizations", canonical.landing_day + resend_by, f"{base_name}_resend{ext}", content
        )
        files.append(copy)
        defects.append(("resent_file", -1, copy, -1, f"copy of {canonical.name}"))
    defects += [(kind, -1, canonical, -1, detail) for kind, detail in pending_files]
    defects += [(kind, tid, canonical, int(row_number[i]), detail) for kind, tid, i, detail in pending]
    return FeedDay(files=files, canonical=canonical, defects=defects)
