"""What a simulated world is made of: the run configuration and the defect rates.

The world is a deterministic function of (seed, profile, start, day index): every random draw comes
from a stream keyed by the seed, a purpose tag and (for daily draws) the day index, so generating
N + M days reproduces the first N days exactly. `--append-days` relies on that.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

import numpy as np

PROFILES = ("handbook", "realistic")
# Shard s's transaction ids start after `s * SHARD_ID_STRIDE`: below world.EXTRA_ID_BASE (9e11) for
# every shard up to MAX_SHARDS.
SHARD_ID_STRIDE = 10**9
MAX_SHARDS = 899

# Defect kinds, their unit and realistic default rates. Rates are probabilities per unit:
# - row:   per real authorisation row of a file (repairs change that row; extras add rows with
#          fresh transaction ids, so expected extras = rate * real rows);
# - file:  per authorisation file;
# - report: per chargeback report;
# - transaction: per genuine transaction (a non-fraud dispute: a real row of another kind, not a defect of
#   the feed, listed with the defects so tests can tell it from a fraud report).
# The expected platform outcome of each kind is in DEFECT_OUTCOMES (docs/landing-zone.md).
DEFECT_UNITS: dict[str, str] = {
    # repaired on real transactions (ground truth stays exact)
    "pan_format": "row",
    "comma_decimal": "row",
    "duplicate": "row",
    # extra rows with fresh ids from the reserved range, never in ground truth
    "negative_amount": "row",
    "missing_terminal_id": "row",
    "unknown_terminal": "row",
    "invalid_pan": "row",
    "unknown_currency": "row",
    "future_timestamp": "row",
    "outside_business_date": "row",
    "malformed_line": "row",
    "reversal": "row",
    # whole files
    "out_of_order": "file",
    "late_file": "file",
    "resent_file": "file",
    "truncated_file": "file",
    "huge_line": "file",
    # chargebacks
    "duplicate_chargeback": "report",
    # (kinds added later go last: the order numbers the random streams)
    "non_fraud_dispute": "transaction",
    # an extra authorisation just before midnight UTC and its reversal just after, in the next day's file
    "midnight_reversal": "row",
}

DEFAULT_RATES: dict[str, float] = {
    "pan_format": 0.01,
    "comma_decimal": 0.005,
    "duplicate": 0.002,
    "negative_amount": 0.0005,
    "missing_terminal_id": 0.0005,
    "unknown_terminal": 0.0005,
    "invalid_pan": 0.0005,
    "unknown_currency": 0.0002,
    "future_timestamp": 0.0002,
    "outside_business_date": 0.0002,
    "malformed_line": 0.0003,
    "reversal": 0.001,
    "out_of_order": 0.05,
    "late_file": 0.03,
    "resent_file": 0.02,
    "truncated_file": 0.01,
    "huge_line": 0.005,
    "duplicate_chargeback": 0.01,
    # real feeds: often half or more of all chargebacks; 0.5 % of genuine transactions is about a third
    # of the chargebacks of a handbook-rate world
    "non_fraud_dispute": 0.005,
    # Off unless asked for (`--rate midnight_reversal=...`): the last simulated day's authorisations wait
    # for reversals that land only with the next day, so a world's cleaned rows would differ from its
    # ground truth until then.
    "midnight_reversal": 0.0,
}

# What the platform is expected to do with each defect (docs/landing-zone.md, "Defects").
DEFECT_OUTCOMES: dict[str, str] = {
    "pan_format": "repaired",
    "comma_decimal": "repaired",
    "duplicate": "repaired",
    "negative_amount": "negative_amount",
    "missing_terminal_id": "missing_terminal_id",
    "unknown_terminal": "unknown_terminal",
    "invalid_pan": "invalid_pan",
    "unknown_currency": "unknown_currency",
    "future_timestamp": "future_timestamp",
    "outside_business_date": "outside_business_date",
    "malformed_line": "malformed_line",
    "huge_line": "malformed_line",
    "reversal": "reversed",
    "out_of_order": "repaired",
    "late_file": "repaired",
    "resent_file": "duplicate_file",
    "truncated_file": "truncated_gzip",
    "duplicate_chargeback": "repaired",
    "non_fraud_dispute": "non_fraud_dispute",
    "midnight_reversal": "reversed",
}

# Share of merchants whose terminals are acquired by processor B (feed acq_b, drifted schema).
DEFAULT_ACQ_B_SHARE = 0.3


@dataclass(frozen=True)
class SimConfig:
    """One simulated world and how it is delivered.

    `rates` overrides DEFAULT_RATES per defect kind; `clean=True` turns every defect off (the two
    processor feeds stay: the drifted acq_b schema is how processor B delivers, not a defect; set
    `acq_b_share=0` for a single feed).
    """

    profile: str = "realistic"
    start: str | dt.date = "2018-04-01"
    days: int = 183
    customers: int = 5000
    terminals: int = 10000
    seed: int = 0
    clean: bool = False
    handbook_labels: bool = False
    # Every fraud reported exactly this many days after it (the handbook's evaluation protocol); None:
    # the delays of `handbook_labels` or the realistic long tail.
    label_delay_days: int | None = None
    rates: dict[str, float] = field(default_factory=dict)
    acq_b_share: float = DEFAULT_ACQ_B_SHARE
    # A world of `shards` independent populations, each `customers` x `terminals` on its own 100x100
    # grid with its own random streams, ids and files: the handbook's density and fraud rate at any
    # volume, and memory bounded by one shard (they are generated and written one after another).
    shards: int = 1
    # The shard this configuration generates (shard_config); 0 for a one-shard world.
    shard: int = 0

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, not {self.profile!r}")
        start = self.start if isinstance(self.start, dt.date) else dt.date.fromisoformat(str(self.start))
        object.__setattr__(self, "start", start)
        if self.days < 1:
            raise ValueError("days must be at least 1")
        if self.days * self.shards >= 100_000:
            raise ValueError("days x shards must be below 100000 (extra ids are allotted per day and shard)")
        if self.customers < 3 or self.terminals < 2:
            raise ValueError("the fraud scenarios need at least 3 customers and 2 terminals")
        if self.seed < 0:
            raise ValueError("seed must be non-negative")
        if self.label_delay_days is not None:
            if self.label_delay_days < 1:
                raise ValueError("label_delay_days must be at least 1")
            if self.handbook_labels:
                raise ValueError("label_delay_days and handbook_labels are two label modes: choose one")
        unknown = set(self.rates) - set(DEFECT_UNITS)
        if unknown:
            raise ValueError(f"unknown defect kind(s) {sorted(unknown)}; known: {sorted(DEFECT_UNITS)}")
        for kind, rate in self.rates.items():
            if not 0.0 <= float(rate) <= 1.0:
                raise ValueError(f"rate for {kind} must be within [0, 1], not {rate}")
        if not 0.0 <= self.acq_b_share <= 1.0:
            raise ValueError("acq_b_share must be within [0, 1]")
        if not 1 <= self.shards <= MAX_SHARDS:
            raise ValueError(f"shards must be within [1, {MAX_SHARDS}] (each has its own id range)")
        if not 0 <= self.shard < self.shards:
            raise ValueError("shard must be within [0, shards)")

    @property
    def start_date(self) -> dt.date:
        return self.start  # type: ignore[return-value]  # normalised in __post_init__

    def rate(self, kind: str) -> float:
        if self.clean:
            return 0.0
        return float(self.rates.get(kind, DEFAULT_RATES[kind]))

    def with_days(self, days: int) -> SimConfig:
        return dataclasses.replace(self, days=days)

    def shard_config(self, shard: int) -> SimConfig:
        return dataclasses.replace(self, shard=shard)

    def rng(self, *keys: int) -> np.random.Generator:
        """This shard's stream `keys`: the world's own for shard 0 (a one-shard world is the world of
        its seed), prefixed by TAG_SHARD and the shard beyond, so no two shards share a stream."""
        return rng(self.seed, *keys) if self.shard == 0 else rng(self.seed, TAG_SHARD, self.shard, *keys)

    @property
    def id_offset(self) -> int:
        """This shard's transaction ids are `id_offset + 1, 2, ...` (disjoint ranges per shard)."""
        return self.shard * SHARD_ID_STRIDE

    def to_state(self) -> dict:
        state = dataclasses.asdict(self)
        state["start"] = self.start_date.isoformat()
        del state["shard"]  # a stored world is all its shards
        # Worlds of the other label modes and one-shard worlds keep their stored bytes.
        if self.label_delay_days is None:
            del state["label_delay_days"]
        if self.shards == 1:
            del state["shards"]
        return state

    @classmethod
    def from_state(cls, state: dict) -> SimConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in state.items() if k in known})


# Stream tags: the first key after the seed says what a stream is for, so adding a new kind of draw
# never shifts an existing one.
TAG_CUSTOMERS = 1
TAG_TERMINALS = 2
TAG_CARDS = 3
TAG_MERCHANTS = 4
TAG_DAY = 10
TAG_SCENARIO_2 = 20
TAG_SCENARIO_3 = 30
TAG_SCENARIO_3_PICK = 31
TAG_FX = 40
TAG_MESS = 50
TAG_CHARGEBACK_MESS = 51
TAG_DISPUTE = 52
TAG_SHARD = 60


def rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])
